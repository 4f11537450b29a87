"""``python -m trainer.train JOB.json``: through its front door (``main``, as the CLI calls it), on a tiny model.

Fixtures (tiny model, planted-preference files, ``run_job``) are in ``conftest.py``.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.trainer.conftest import base_job, write_jsonl

ROOT = Path(__file__).resolve().parents[2]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def weights(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(directory.glob("*.safetensors"))
    assert files, f"no weights in {directory}"
    return {k: v for f in files for k, v in load_file(f).items()}


def assert_same_weights(a: Path, b: Path, *, atol: float) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], atol=atol, rtol=0, msg=lambda m, k=key: f"{k}: {m}")


# ------------------------------------------------------------------------------------------------------------
# Bad jobs
# ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "key", "message"), [
    ({"learning_rat": 1e-3}, "learning_rat", "unknown key (did you mean 'learning_rate'?)"),
    ({"train_file": None}, "train_file", "required"),
    ({"train_file": "missing.jsonl"}, "train_file", "no such file"),
    ({"loss": "foo"}, "loss", "unknown loss 'foo'"),
    ({"beta": -1}, "beta", "must be > 0, got -1"),
    ({"batch_size": "8"}, "batch_size", "must be an integer"),
    ({"precompute_ref": 1}, "precompute_ref", "must be a boolean"),
    ({"epsilon": 0.5, "loss": "robust_dpo"}, "epsilon", "must be < 0.5"),
    ({"nu": 0.5, "loss": "rao_kupper"}, "nu", "must be >= 1"),
    ({"lora": {"r": 0}}, "lora.r", "must be >= 1"),
    ({"lora": {"rank": 8}}, "lora.rank", "unknown key"),
    ({"device": "tpu"}, "device", "must be auto, cpu, cuda or cuda:N"),
    ({"max_steps": 0}, "max_steps", "must be >= 1"),
])
def test_a_bad_job_exits_2_naming_the_key_and_writes_nothing(run_job, tiny_lm, planted, tmp_path, change, key,
                                                             message):
    job = base_job(tiny_lm, planted["pairs_train"], tmp_path / "out")
    job.update(change)
    if change.get("train_file", "") is None:
        del job["train_file"]
    run = run_job(job, name="job")
    assert run.code == 2
    assert run.stderr.startswith(f"{tmp_path / 'job.json'}: key '{key}': ")
    assert message in run.stderr
    assert not (tmp_path / "out").exists()


def test_a_job_file_that_is_not_json_exits_2(tmp_path, capsys):
    from trainer.train import main

    path = tmp_path / "job.json"
    path.write_text("{not json")
    assert main([str(path)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_a_ranking_record_for_a_pairwise_loss_is_an_error_naming_its_line(run_job, tiny_lm, planted, tmp_path):
    lines = planted["pairs_train"].read_text().splitlines()[:5] + planted["rank3_train"].read_text().splitlines()[:1]
    train = tmp_path / "mixed.jsonl"
    train.write_text("\n".join(lines) + "\n")
    run = run_job(base_job(tiny_lm, train, tmp_path / "out"))
    assert run.code == 2
    assert "key 'train_file'" in run.stderr and "line 6" in run.stderr and "K-wise record" in run.stderr
    assert not (tmp_path / "out").exists()


def test_a_malformed_record_names_its_line(run_job, tiny_lm, tmp_path):
    train = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "Hi", "chosen": "a", "rejected": "b"},
                                                 {"prompt": "Hi", "chosen": "a", "rejected": "b", "p": 2}])
    run = run_job(base_job(tiny_lm, train, tmp_path / "out"))
    assert run.code == 2
    assert "line 2: 'p' must be a number in [0, 1]" in run.stderr


# ------------------------------------------------------------------------------------------------------------
# Learning a planted preference
# ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("loss", "data", "extra"), [
    ("dpo", "pairs", {}),
    ("rao_kupper", "ties", {"nu": "fit"}),
    ("plackett_luce", "rank3", {"epochs": 2}),
])
def test_held_out_reward_accuracy_of_a_planted_preference(run_job, tiny_lm, planted, tmp_path, loss, data, extra):
    job = base_job(tiny_lm, planted[f"{data}_train"], tmp_path / "out", loss=loss,
                   eval_file=str(planted[f"{data}_eval"]), **extra)
    run = run_job(job)
    assert run.code == 0, run.stderr
    final = run.final_eval()
    assert final["data"] == "eval_file" and final["split"] == "eval"
    assert final["reward_accuracy"] >= 0.9, final
    assert final["reward_margin"] > 0
    train_lines = [m for m in run.metrics() if m["split"] == "train"]
    steps = [m["step"] for m in train_lines]
    assert steps == list(range(2, steps[-1] + 1, 2))   # one line per log step (log_every 2)
    assert set(train_lines[0]) >= {"split", "step", "epoch", "loss", "reward_accuracy", "reward_margin",
                                   "tokens_per_s", "lr", "time"}
    assert train_lines[-1]["loss"] < train_lines[0]["loss"]
    progress = json.loads((run.output_dir / "progress.json").read_text())
    assert progress["step"] == progress["total_steps"] == steps[-1] and progress["state"] == "done"
    assert set(progress) >= {"step", "total_steps", "epoch", "loss", "started", "updated", "eta_s"}
    if loss == "rao_kupper":
        assert "ties" not in run.manifest()["data"]["train_file"]["dropped"]   # rao_kupper uses the tie records
        assert final["nu"] > 1


def test_dpo_drops_tie_records_and_says_so(run_job, tiny_lm, planted, tmp_path):
    run = run_job(base_job(tiny_lm, planted["ties_train"], tmp_path / "out", max_steps=2))
    assert run.code == 0, run.stderr
    dropped = run.manifest()["data"]["train_file"]["dropped"]["ties"]
    ties = sum(json.loads(line)["tie"] for line in planted["ties_train"].read_text().splitlines())
    assert dropped == ties > 0
    assert f"train_file: dropped {ties} ties record(s): loss 'dpo' cannot use them" in run.stderr


@pytest.mark.parametrize(("loss", "data"), [("soft_dpo", "ties"), ("robust_dpo", "pairs"), ("ipo", "pairs"),
                                            ("lipo", "rank3"), ("pro", "pairs")])
def test_the_other_losses_train(run_job, tiny_lm, planted, tmp_path, loss, data):
    run = run_job(base_job(tiny_lm, planted[f"{data}_train"], tmp_path / "out", loss=loss,
                           eval_file=str(planted[f"{data}_eval"]), max_steps=8))
    assert run.code == 0, run.stderr
    assert run.final_eval()["reward_accuracy"] >= 0.75


# ------------------------------------------------------------------------------------------------------------
# LoRA
# ------------------------------------------------------------------------------------------------------------

def test_lora_writes_an_adapter_leaves_the_base_alone_and_uses_it_as_the_reference(run_job, tiny_lm, planted,
                                                                                  tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.data import collate, read_records, tokenize
    from trainer.train import response_logps

    before = {p.name: sha256(p) for p in tiny_lm.iterdir() if p.is_file()}
    lora = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "v_proj", "up_proj", "down_proj"]}
    job = base_job(tiny_lm, planted["pairs_train"], tmp_path / "out", lora=lora, learning_rate=2e-2,
                   eval_file=str(planted["pairs_eval"]))
    run = run_job(job)
    assert run.code == 0, run.stderr
    final = run.output_dir / "final"
    assert (final / "adapter_config.json").is_file() and (final / "tokenizer.json").is_file()
    assert not (final / "model.safetensors").exists()
    assert {p.name: sha256(p) for p in tiny_lm.iterdir() if p.is_file()} == before
    assert run.manifest()["contender"] == {"path": str(tiny_lm), "adapter": str(final)}
    assert run.final_eval()["reward_accuracy"] >= 0.9

    # The cached reference log-probs are the base model's: the adapter was disabled for them.
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    records = read_records(planted["pairs_eval"])
    examples, _ = tokenize(records, tokenizer, max_length=64)
    n = len(examples)
    batch = collate(examples, pad_id=tokenizer.pad_token_id)
    base = AutoModelForCausalLM.from_pretrained(tiny_lm).eval()
    with torch.inference_mode():
        expected = response_logps(base, batch, flat=False).view(n, 2)
    cache = torch.load(run.output_dir / "ref_cache" / f"{run.manifest()['reference']['keys']['eval_file']}.pt")
    torch.testing.assert_close(cache["values"].view(n, 2), expected, atol=1e-4, rtol=1e-5)

    # The trained adapter moves the policy; disabled, it is the base model again.
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_lm), final).eval()
    with torch.inference_mode():
        policy = response_logps(tuned, batch, flat=False).view(n, 2)
        with tuned.disable_adapter():
            reference = response_logps(tuned, batch, flat=False).view(n, 2)
    torch.testing.assert_close(reference, expected, atol=1e-4, rtol=1e-5)
    assert ((policy - reference)[:, 0] > (policy - reference)[:, 1]).float().mean() >= 0.9


def test_lora_without_precomputed_reference_runs_the_base_with_the_adapter_disabled(run_job, tiny_lm, planted,
                                                                                      tmp_path):
    lora = {"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj", "up_proj", "down_proj"]}
    run = run_job(base_job(tiny_lm, planted["pairs_train"], tmp_path / "out", lora=lora, learning_rate=2e-2,
                           precompute_ref=False, eval_file=str(planted["pairs_eval"])))
    assert run.code == 0, run.stderr
    assert not (run.output_dir / "ref_cache").exists()
    assert run.manifest()["reference"]["cache"] == {}
    # Were the reference the adapted policy itself, every reward would be 0 and the accuracy 0.
    assert run.final_eval()["reward_accuracy"] >= 0.9


# ------------------------------------------------------------------------------------------------------------
# Resume, reference cache, artifacts
# ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("lora", [None, {"r": 4, "alpha": 8, "dropout": 0.1}], ids=["full", "lora"])
def test_an_interrupted_run_resumed_ends_with_the_weights_of_an_uninterrupted_one(run_job, tiny_lm, planted,
                                                                                  tmp_path, lora):
    # 96 records in batches of 8, 2 per step: 6 steps an epoch, 12 in all; interrupted after step 7, in the
    # second epoch. With accumulation, warm-up, decay, and LoRA dropout (the same masks must be drawn again).
    train = tmp_path / "train.jsonl"
    train.write_text("".join(line + "\n" for line in planted["pairs_train"].read_text().splitlines()[:96]))
    common = {"save_every": 4, "log_every": 1, "warmup_steps": 3, "grad_accum": 2, "batch_size": 8,
              "weight_decay": 0.01, "epochs": 2, "lora": lora, "learning_rate": 2e-2 if lora else 3e-3}
    whole = run_job(base_job(tiny_lm, train, tmp_path / "whole", **common))
    assert whole.code == 0, whole.stderr

    job = base_job(tiny_lm, train, tmp_path / "parts", **common)
    first = run_job(job, env={"TRAINER_STOP_AFTER_STEP": "7"}, name="parts")
    assert first.code == 75
    assert "interrupted after step 7" in first.stderr
    assert sorted(p.name for p in (first.output_dir / "checkpoints").iterdir()) == ["step_4", "step_7"]
    assert json.loads((first.output_dir / "progress.json").read_text())["state"] == "interrupted"
    assert not (first.output_dir / "manifest.json").exists()

    second = run_job(job, name="parts")
    assert second.code == 0, second.stderr
    assert "resuming from" in second.stderr and "step 7 of 12" in second.stderr
    assert_same_weights(whole.output_dir / "final", second.output_dir / "final", atol=1e-6)
    # The metrics are the uninterrupted run's too: every step once, the same losses.
    ours, theirs = second.metrics(), whole.metrics()
    assert [m["step"] for m in ours] == [m["step"] for m in theirs] == [*range(1, 13), 12]
    for a, b in zip(ours, theirs, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
    # The resumed run loaded the reference log-probs the first part computed.
    assert "reference log-probs for train_file: loaded from cache" in second.stderr
    assert second.manifest()["reference"]["cache"] == {"train_file": "loaded"}
    assert first.stderr.count("computed for") == 1

    # A finished job run again does nothing.
    again = run_job(job, name="parts")
    assert again.code == 0 and "already finished" in again.stderr


def test_a_second_job_on_the_same_data_and_model_reuses_the_reference_cache(run_job, tiny_lm, planted, tmp_path):
    shared = tmp_path / "refs"
    one = run_job(base_job(tiny_lm, planted["pairs_train"], tmp_path / "one", ref_cache_dir=str(shared),
                           max_steps=2))
    two = run_job(base_job(tiny_lm, planted["pairs_train"], tmp_path / "two", ref_cache_dir=str(shared),
                           max_steps=2, loss="ipo", seed=3))
    assert one.code == two.code == 0, two.stderr
    assert one.manifest()["reference"]["cache"] == {"train_file": "computed"}
    assert two.manifest()["reference"]["cache"] == {"train_file": "loaded"}
    assert json.loads((two.output_dir / "progress.json").read_text())["ref_cache"] == "loaded"
    # Another max_length is another key.
    three = run_job(base_job(tiny_lm, planted["pairs_train"], tmp_path / "three", ref_cache_dir=str(shared),
                             max_steps=1, max_length=48))
    assert three.manifest()["reference"]["cache"] == {"train_file": "computed"}


def test_the_manifest_lists_every_artifact_with_its_hash_and_checkpoints_hold_the_training_state(
        run_job, tiny_lm, planted, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "train.log").write_text("the job runner's log\n")   # not the trainer's: not listed
    run = run_job(base_job(tiny_lm, planted["pairs_train"], tmp_path / "out", max_steps=4, save_every=2,
                           eval_file=str(planted["pairs_eval"]), eval_every=2))
    assert run.code == 0, run.stderr
    manifest = run.manifest()
    listed = {a["path"]: a for a in manifest["artifacts"]}
    on_disk = {str(p.relative_to(run.output_dir)) for p in run.output_dir.rglob("*") if p.is_file()}
    assert set(listed) == on_disk - {"manifest.json", "progress.json", "train.log"}
    for rel, artifact in listed.items():
        path = run.output_dir / rel
        assert artifact["sha256"] == sha256(path) and artifact["size"] == path.stat().st_size
    assert {"final/model.safetensors", "final/tokenizer.json", "metrics.jsonl",
            "checkpoints/step_2/state.pt", "checkpoints/step_4/model.safetensors"} <= set(listed)
    assert manifest["data"]["train_file"]["sha256"] == sha256(planted["pairs_train"])
    assert manifest["data"]["eval_file"]["sha256"] == sha256(planted["pairs_eval"])
    assert manifest["config"]["loss"] == "dpo" and manifest["final_eval"]["final"] is True
    assert manifest["contender"] == {"path": str(run.output_dir / "final")}
    evals = [m for m in run.metrics() if m["split"] == "eval"]
    assert [(m["step"], m.get("final", False)) for m in evals] == [(2, False), (4, True)]

    state = torch.load(run.output_dir / "checkpoints" / "step_2" / "state.pt", weights_only=False)
    assert state["step"] == 2 and state["config"] == manifest["config"]
    assert state["optimizer"]["state"] and state["scheduler"]["last_epoch"] == 2
    assert set(state["rng"][0]) >= {"torch", "numpy", "python"}
    assert (state["epoch"], state["position"]) == (0, 2)


def test_sigterm_saves_a_checkpoint_and_exits_75(tiny_lm, planted, tmp_path):
    out = tmp_path / "out"
    job = base_job(tiny_lm, planted["pairs_train"], out, log_every=1, epochs=500, save_every=None)
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-m", "trainer.train", str(path)], cwd=ROOT, env=env,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            progress = out / "progress.json"
            if progress.is_file() and json.loads(progress.read_text()).get("step", 0) >= 2:
                break
            time.sleep(0.1)
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 75, stderr
    step = json.loads((out / "progress.json").read_text())["step"]
    assert [p.name for p in (out / "checkpoints").iterdir()] == [f"step_{step}"]


# ------------------------------------------------------------------------------------------------------------
# Prompt rendering
# ------------------------------------------------------------------------------------------------------------

CONVERSATIONS = [
    [{"role": "user", "content": "Write a haiku about rain."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 2?"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me a story\nwith two lines."}],
]
TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.mark.parametrize("template", [None, TEMPLATE], ids=["plain", "chat-template"])
def test_training_prompts_render_exactly_as_the_arena_serves_them(tiny_lm, template):
    from transformers import AutoTokenizer

    from arena.sources import local_transformers as arena
    from trainer import chat
    from trainer.data import Record, tokenize

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    tokenizer.chat_template = template
    for messages in CONVERSATIONS:
        assert chat.plain_prompt(messages) == arena.plain_prompt(messages)
        served, ours = arena.encode(tokenizer, messages), chat.encode(tokenizer, messages)
        assert torch.equal(served["input_ids"], ours["input_ids"])
        assert torch.equal(served["attention_mask"], ours["attention_mask"])
        record = Record(line=1, kind="pairwise", messages=messages, responses=("Yes.", "No."), group=(0, 1))
        (example,), _ = tokenize([record], tokenizer, max_length=512)
        assert example.prompt == served["input_ids"][0].tolist()
        assert example.responses[0][-1] == tokenizer.eos_token_id
    if template:
        rendered = tokenizer.decode(chat.prompt_ids(tokenizer, CONVERSATIONS[0]))
        assert rendered.endswith("<|assistant|>")


def test_the_lm_head_on_response_positions_only_gives_the_full_logits_log_probs(tiny_lm, planted):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.data import collate, read_records, tokenize
    from trainer.train import response_logps

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    examples, _ = tokenize(read_records(planted["rank3_eval"]), tokenizer, max_length=64)
    batch = collate(examples[:10], pad_id=tokenizer.pad_token_id)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm).eval()
    with torch.inference_mode():
        flat, full = response_logps(model, batch, flat=True), response_logps(model, batch, flat=False)
    assert flat.shape == (30,)
    torch.testing.assert_close(flat, full, atol=1e-4, rtol=1e-5)
