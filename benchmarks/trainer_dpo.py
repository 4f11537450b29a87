"""Tokens per second of a DPO step: ``python -m trainer.train`` against TRL's ``DPOTrainer``, same model and data.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.trainer_dpo [--steps 2] [--records N] [--reps 3]
        [--hidden 512] [--layers 5] [--vocab 8000] [--batch-size 8] [--max-length 512] [--workdir DIR] [--keep]

Needs TRL beside the project's pins (a test-only dependency; measured with trl 1.16.0).

Setup (once, nothing downloaded): a byte-level BPE tokenizer trained in-process with ``tokenizers`` on a synthetic
corpus of pseudo-words (vocab 8000), a random-initialised Llama (default hidden 512, 5 layers, MLP 1376, 8 heads,
tied embeddings: 19.9M parameters) saved with ``save_pretrained``, and synthetic pairwise records whose rendered
prompts and whose responses (with their EOS) are each 20-200 tokens long, uniformly. By default the training file
holds ``steps x batch size`` records, so that every run is exactly one epoch: both trainers then train on the same
tokens, and the reference precompute covers exactly what is trained on. (On the project's 2-core machine a DPO step
of this model takes 14-30 s on one thread, so a few hundred records, i.e. tens of steps per run and a precompute over
all of them in every run, would take well over an hour for 3 x 3 runs; ``--records`` and ``--steps`` make any size
possible.) An 8-record eval file goes to our trainer, which always ends with an evaluation (without ``eval_file``
over the whole training file: outside the timed window, but wall time).

Then, ``--reps`` times, in this order (so that machine noise hits every system alike), each as its own process:

* ``ours``: ``python -m trainer.train job.json`` (``dpo``, batch 8, ``max_steps`` N, fp32, cpu, reference log-probs
  precomputed before training, into a fresh cache in every rep).
  Tokens/s is the trainer's own ``tokens_per_s`` of its single ``metrics.jsonl`` training line (``log_every`` = N):
  real tokens of the N steps over the wall time from the start of the loop to the end of step N.
* ``trl``: ``DPOTrainer`` with ``precompute_ref_log_probs=False`` (TRL's default: a reference forward in every step).
* ``trl_pre``: ``DPOTrainer`` with ``precompute_ref_log_probs=True`` (computed in every rep: its cache key, the
  dataset's fingerprint, is not stable across processes, so a second process does not find it; ours is made to
  recompute too, so that both are timed cold).

Both trainers see the same token ids (the TRL dataset holds each prompt already rendered by ``trainer.chat``; no chat
template; ``tests/trainer/test_trl_parity.py`` checks the ids, log-probs and loss agree), the same model weights,
batch size (8 pairs, both responses in one forward), ``max_length`` (nothing is truncated), AdamW, lr 1e-6, linear
schedule, no warm-up, clipping at 1.0, fp32, one thread (``OMP_NUM_THREADS=1`` and ``torch.set_num_threads(1)``: on
the project's 2-core machine two threads were ~30x slower), no evaluation, no checkpoints, no logging but one line.
TRL's gradient checkpointing (on by default in TRL) is turned off, as ours has none. What differs is each trainer's own
design: ours cuts length-bucketed batches and runs the LM head on response positions only; TRL samples batches at
random and (on CPU) scores every position through its chunked fused LM head.

Counted identically for both: tokens = non-pad tokens of every row in the training forwards (prompt + chosen, prompt
+ rejected: the attention mask's sum; TRL's ``_total_train_tokens``, ours ``Batch.tokens``), over the wall time of
the N optimizer steps (TRL: from ``on_train_begin`` to ``on_step_end`` of step N, by a callback). Excluded: process
start, imports, model loading, tokenisation, the reference precompute, the final evaluation and saving.

Including the reference precompute: the precompute is a forward over every record of the file (its tokens are the
same attention-mask sum over the whole file; the time is the median over the reps, from our trainer's log line and
from a wrapper around TRL's ``_precompute_ref_logps``). Per epoch of the file, whose training processes the same
tokens once: ``1 / (1 / train_rate + 1 / precompute_rate)`` tokens/s; with the default one-epoch file that is exactly
the training tokens over (training time + precompute time). ``trl`` has nothing to precompute (its reference forward
is inside every step), so its figure is the same with or without.

Prints one line per run, then the medians and the ratios ours / TRL, as JSON on the last line.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
       "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
       "PYTHONPATH": str(ROOT)}
LR = 1e-6
BETA = 0.1
SEED = 0


# ------------------------------------------------------------------------------------------------------------
# Setup: tokenizer, model, records
# ------------------------------------------------------------------------------------------------------------

def _pseudo_words(rng: random.Random, n: int) -> list[str]:
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(1, 4))))
    return sorted(words)


def _text(rng: random.Random, words: list[str], weights: list[float], n_words: int) -> str:
    out = []
    for i, word in enumerate(rng.choices(words, weights=weights, k=n_words)):
        out.append(word.capitalize() if i == 0 or out[-1].endswith(".") else word)
        if rng.random() < 0.08:
            out[-1] += rng.choice([".", ",", "?", "!"])
    return " ".join(out)


def build(workdir: Path, *, records: int, hidden: int, layers: int, vocab: int) -> dict[str, Any]:
    """Tokenizer + model in ``workdir/model``, ``train.jsonl``, ``eval.jsonl`` and TRL's ``train_trl.jsonl``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from trainer.chat import as_messages, plain_prompt

    rng = random.Random(SEED)
    words = _pseudo_words(rng, 6000)
    weights = [1.0 / (rank + 10) for rank in range(len(words))]           # Zipf-like word frequencies
    rng.shuffle(words)
    corpus = [_text(rng, words, weights, 60) for _ in range(8000)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=["<|endoftext|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                        pad_token="<pad>")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 43 // 16,
                         num_hidden_layers=layers, num_attention_heads=hidden // 64,
                         num_key_value_heads=hidden // 64, max_position_embeddings=1024,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        model = LlamaForCausalLM(config)
    model_dir = workdir / "model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    n_params = sum(p.numel() for p in model.parameters())

    frame = len(tokenizer(plain_prompt(as_messages("x")))["input_ids"]) - len(tokenizer("x")["input_ids"])

    def sized(n_tokens: int) -> str:
        """A text of about ``n_tokens`` tokens."""
        text = _text(rng, words, weights, n_tokens + 20)
        return tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"][:n_tokens]).strip()

    def record() -> dict[str, Any]:   # rendered prompt 20-200 tokens, responses 20-200 tokens with their EOS
        return {"prompt": sized(rng.randint(20, 200) - frame), "chosen": sized(rng.randint(20, 200) - 1),
                "rejected": sized(rng.randint(20, 200) - 1)}

    train = [record() for _ in range(records)]
    evals = [record() for _ in range(8)]
    for name, rows in (("train.jsonl", train), ("eval.jsonl", evals)):
        (workdir / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    trl_rows = [{"prompt": plain_prompt(as_messages(r["prompt"])), "chosen": r["chosen"], "rejected": r["rejected"]}
                for r in train]
    (workdir / "train_trl.jsonl").write_text("".join(json.dumps(r) + "\n" for r in trl_rows), encoding="utf-8")
    return {"params": n_params, "vocab": len(tokenizer), "model": str(model_dir)}


def data_stats(workdir: Path, max_length: int) -> dict[str, Any]:
    """Token counts of the training file as our trainer tokenises it (TRL's ids are the same)."""
    from transformers import AutoTokenizer

    from trainer.data import read_records, tokenize

    tokenizer = AutoTokenizer.from_pretrained(workdir / "model", local_files_only=True)
    examples, stats = tokenize(read_records(workdir / "train.jsonl"), tokenizer, max_length=max_length)
    prompts = [len(e.prompt) for e in examples]
    responses = [len(r) for e in examples for r in e.responses]
    return {"records": len(examples), "truncated": stats.truncated, "tokens": stats.tokens,
            "prompt_tokens": [min(prompts), round(statistics.mean(prompts), 1), max(prompts)],
            "response_tokens": [min(responses), round(statistics.mean(responses), 1), max(responses)]}


# ------------------------------------------------------------------------------------------------------------
# The two trainers, each in its own process
# ------------------------------------------------------------------------------------------------------------

def run_ours(workdir: Path, rep: int, args: argparse.Namespace) -> dict[str, Any]:
    out = workdir / "runs" / f"ours-{rep}"
    shutil.rmtree(out, ignore_errors=True)
    job = {"base_model": str(workdir / "model"), "train_file": str(workdir / "train.jsonl"),
           "eval_file": str(workdir / "eval.jsonl"), "output_dir": str(out),
           "loss": "dpo", "beta": BETA, "batch_size": args.batch_size,
           "learning_rate": LR, "max_length": args.max_length, "max_steps": args.steps, "log_every": args.steps,
           "save_every": None, "precompute_ref": True, "device": "cpu", "precision": "fp32", "seed": SEED}
    out.parent.mkdir(parents=True, exist_ok=True)
    job_path = out.parent / f"ours-{rep}.json"
    job_path.write_text(json.dumps(job))
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "trainer.train", str(job_path)], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **ENV})
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"trainer.train failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train = [x for x in lines if x["split"] == "train"]
    assert len(train) == 1 and train[0]["step"] == args.steps, train
    match = re.search(r"reference log-probs for train_file: computed for \d+ records in ([0-9.]+) s", proc.stderr)
    return {"system": "ours", "rep": rep, "train_tokens_per_s": train[0]["tokens_per_s"],
            "precompute_s": float(match.group(1)) if match else None,
            "ref_cache": "computed" if match else "loaded", "process_wall_s": round(wall, 1)}


def run_trl(workdir: Path, rep: int, args: argparse.Namespace, *, precompute: bool) -> dict[str, Any]:
    name = "trl_pre" if precompute else "trl"
    spec = {"workdir": str(workdir), "rep": rep, "precompute": precompute, "steps": args.steps,
            "batch_size": args.batch_size, "max_length": args.max_length}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "benchmarks.trainer_dpo", "--trl-worker", json.dumps(spec)],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, **ENV})
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"TRL worker failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"system": name, "rep": rep, **result, "process_wall_s": round(wall, 1)}


def trl_worker(spec: dict[str, Any]) -> None:
    """One TRL training run (in a child process); prints its measurements as one JSON line."""
    import torch

    torch.set_num_threads(1)
    import datasets
    from transformers import AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    datasets.disable_progress_bars()
    workdir, steps = Path(spec["workdir"]), spec["steps"]
    timing: dict[str, Any] = {"precompute_s": None}

    class Timed(DPOTrainer):
        def _precompute_ref_logps(self, dataset: Any, name: str, batch_size: int) -> Any:
            t0 = time.monotonic()
            out = super()._precompute_ref_logps(dataset, name, batch_size)
            timing["precompute_s"] = time.monotonic() - t0
            prepared = dataset
            timing["precompute_tokens"] = sum(2 * len(p) + len(c) + len(r) for p, c, r in zip(
                prepared["prompt_ids"], prepared["chosen_ids"], prepared["rejected_ids"], strict=True))
            return out

    class Clock(TrainerCallback):
        def on_train_begin(self, *a: Any, **k: Any) -> None:
            timing["t0"] = time.monotonic()

        def on_step_end(self, args: Any, state: Any, control: Any, **k: Any) -> None:
            if state.global_step == steps:
                timing["t1"] = time.monotonic()

    tokenizer = AutoTokenizer.from_pretrained(workdir / "model", local_files_only=True)
    dataset = datasets.load_dataset("json", data_files=str(workdir / "train_trl.jsonl"), split="train",
                                    cache_dir=str(workdir / "hf_datasets"))
    out = workdir / "runs" / f"{'trl_pre' if spec['precompute'] else 'trl'}-{spec['rep']}"
    config = DPOConfig(output_dir=str(out), per_device_train_batch_size=spec["batch_size"], max_steps=steps,
                       learning_rate=LR, lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0,
                       max_grad_norm=1.0, optim="adamw_torch", beta=BETA, loss_type=["sigmoid"],
                       max_length=spec["max_length"], precompute_ref_log_probs=spec["precompute"],
                       model_init_kwargs={"dtype": torch.float32}, bf16=False, use_cpu=True,
                       activation_checkpointing=False, report_to="none", logging_steps=steps, save_strategy="no",
                       eval_strategy="no", dataloader_num_workers=0, disable_tqdm=True, seed=SEED)
    trainer = Timed(model=str(workdir / "model"), args=config, train_dataset=dataset, processing_class=tokenizer,
                    callbacks=[Clock()])
    truncated = sum(len(p) + max(len(c), len(r)) > spec["max_length"] for p, c, r in zip(
        trainer.train_dataset["prompt_ids"], trainer.train_dataset["chosen_ids"], trainer.train_dataset["rejected_ids"],
        strict=True))
    trainer.train()
    seconds = timing["t1"] - timing["t0"]
    tokens = int(trainer._total_train_tokens)
    print(json.dumps({"train_tokens": tokens, "train_s": round(seconds, 3), "train_tokens_per_s": tokens / seconds,
                      "precompute_s": timing["precompute_s"], "precompute_tokens": timing.get("precompute_tokens"),
                      "truncated": truncated, "attn": trainer.model.config._attn_implementation,
                      "threads": torch.get_num_threads()}))


# ------------------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2, help="optimizer steps per run (N)")
    parser.add_argument("--records", type=int, default=None,
                        help="records in the training file (default: steps x batch size, one epoch per run)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--trl-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.trl_worker:
        trl_worker(json.loads(args.trl_worker))
        return 0
    os.environ.update(ENV)
    import torch

    torch.set_num_threads(1)

    if args.records is None:
        args.records = args.steps * args.batch_size
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="trainer-dpo-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.monotonic()
        setup = build(workdir, records=args.records, hidden=args.hidden, layers=args.layers, vocab=args.vocab)
        data = data_stats(workdir, args.max_length)
        assert data["truncated"] == 0, data
        print(f"setup {time.monotonic() - t0:.1f} s: {setup['params'] / 1e6:.1f}M parameters, vocab "
              f"{setup['vocab']}, {data}", flush=True)
        runs: list[dict[str, Any]] = []
        for rep in range(1, args.reps + 1):
            for system in ("ours", "trl", "trl_pre"):
                if system == "ours":
                    result = run_ours(workdir, rep, args)
                else:
                    result = run_trl(workdir, rep, args, precompute=system == "trl_pre")
                runs.append(result)
                print(json.dumps(result), flush=True)
        summary = summarise(runs, data)
        print(json.dumps({"summary": summary, "setup": {**setup, **data, "steps": args.steps,
                                                        "batch_size": args.batch_size, "reps": args.reps,
                                                        "max_length": args.max_length}}))
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def summarise(runs: list[dict[str, Any]], data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for system in ("ours", "trl", "trl_pre"):
        mine = [r for r in runs if r["system"] == system]
        rate = statistics.median(r["train_tokens_per_s"] for r in mine)
        cold = [r["precompute_s"] for r in mine if r.get("precompute_s") is not None]
        entry = {"train_tokens_per_s": [round(r["train_tokens_per_s"], 1) for r in mine],
                 "median_train_tokens_per_s": round(rate, 1)}
        if system != "trl":
            pre_s = statistics.median(cold)
            pre_rate = data["tokens"] / pre_s
            entry.update({"precompute_s": [round(x, 2) for x in cold], "precompute_tokens_per_s": round(pre_rate, 1),
                          "epoch_tokens_per_s_incl_precompute": round(1 / (1 / rate + 1 / pre_rate), 1)})
        else:
            entry["epoch_tokens_per_s_incl_precompute"] = round(rate, 1)
        out[system] = entry
    for peer in ("trl", "trl_pre"):
        out[f"ratio_ours_over_{peer}"] = round(out["ours"]["median_train_tokens_per_s"]
                                               / out[peer]["median_train_tokens_per_s"], 2)
        out[f"ratio_ours_over_{peer}_incl_precompute"] = round(out["ours"]["epoch_tokens_per_s_incl_precompute"]
                                                               / out[peer]["epoch_tokens_per_s_incl_precompute"], 2)
    return out


if __name__ == "__main__":
    sys.exit(main())
