"""``python -m trainer.train JOB.json``: preference training of a causal LM on arena votes. No Django here.

The job file is described by :class:`trainer.config.TrainConfig` (``--help-config`` prints every key). The
loop is deliberately small (nanoGPT / TRL style): AdamW, linear warm-up then linear decay, gradient clipping,
gradient accumulation, one forward per micro-batch holding every response of every record.

Outputs in ``output_dir``
-------------------------
- ``metrics.jsonl``: one line per log step (``split`` train|eval, ``step``, ``epoch``, ``loss``,
  ``reward_accuracy``, ``reward_margin``, ``tokens_per_s``, ``lr``, ``time`` = Unix seconds), eval lines every
  ``eval_every`` steps, and a last ``{"split": "eval", "final": true, ...}`` line (on ``eval_file``, else on the
  training records, said by its ``data`` field).
- ``progress.json``: rewritten atomically at every log step: ``step``, ``total_steps``, ``epoch``, ``loss``,
  ``started`` and ``updated`` (ISO 8601, UTC), ``eta_s``, plus ``state`` (starting | reference | training |
  interrupted | done) and ``ref_cache`` (computed | loaded | off).
- ``checkpoints/step_N/``: the model (full fine-tuning) or the adapter (LoRA) and ``state.pt`` (config dict,
  step, epoch and position in the epoch's batch plan, optimizer, scheduler, torch / CUDA / numpy / Python RNG
  states of every process). Written to ``step_N.tmp`` then renamed, so a checkpoint directory is always whole.
- ``final/``: the model, or the peft adapter, with the tokenizer beside it. As an arena contender: ``path`` =
  ``final/``, or ``path`` = ``base_model`` and ``adapter`` = ``final/`` (``manifest.json`` says which).
- ``manifest.json``, written last: every file the trainer wrote (``metrics.jsonl``, ``final/``, ``checkpoints/``,
  ``ref_cache/`` when it lies in ``output_dir``) with sha256 and size, the config, the data files' sha256 and
  what was used of them, the final eval metrics.

Resuming
--------
A run that finds checkpoints in ``output_dir`` continues from the latest one exactly: the same batches in the
same order (the order is a function of ``seed`` and the epoch), the restored optimizer, scheduler and RNG
states. Lines of ``metrics.jsonl`` past the checkpoint are dropped. The config must match the checkpoint's,
except ``RESUMABLE_CHANGES`` (``max_steps``, ``epochs``, logging, device, ...), and the number of processes must
be the same. SIGTERM or SIGINT make the run finish its current optimizer step, save a checkpoint and exit with
code 75 (before the first step they exit 75 at once); so does reaching step N when the environment variable
``TRAINER_STOP_AFTER_STEP=N`` is set (how the tests interrupt a run without changing its schedule). A finished
job run again exits 0 at once.

Reference log-probs
-------------------
With ``precompute_ref`` (the default) the reference model's log-prob of every response is computed once,
before training, and cached as ``<ref cache dir>/<key>.pt``. The key is the sha256 of the base model's files,
the tokenizer's files, the data file, ``max_length`` and the precision, so a resumed run, or another job on the
same data and base model, loads the cache instead of recomputing (the log and ``progress.json`` say which).
Without it the reference pass runs in every step under ``torch.inference_mode``. Under LoRA the reference is
the base model with the adapter disabled (peft ``disable_adapter``), never a second copy of the weights; under
full fine-tuning it is the policy's own starting weights (precomputed) or a frozen copy of ``base_model``.

Distributed
-----------
Under ``torchrun --nproc_per_node N`` or ``accelerate launch`` (``WORLD_SIZE`` > 1) the process group is
initialised from the environment (``nccl`` on CUDA, ``gloo`` on CPU) and the model wrapped in DDP. A planned
batch holds ``batch_size * WORLD_SIZE`` records and process ``r`` takes its items ``r::WORLD_SIZE``. Each
process's loss is scaled so that the averaged gradient is that of the mean loss over the whole global batch
(exactly what one process with ``batch_size * WORLD_SIZE`` computes, up to float rounding); metrics are summed
over processes before dividing. Only rank 0 prints, writes metrics and progress, and saves.

Exit codes: 0 done (or already done); 2 bad job (``JOB.json: key 'x': message`` on stderr, before any model
is loaded; bad records name their line); 75 interrupted after a checkpoint (run again to resume); 1 anything else.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import inspect
import json
import math
import os
import random
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainer import losses
from trainer.config import RESUMABLE_CHANGES, ConfigError, TrainConfig, help_text, load_config
from trainer.data import (
    Batch,
    DataError,
    Example,
    Record,
    collate,
    plan_epoch,
    read_records,
    select_for_loss,
    shard,
    tokenize,
)

EXIT_OK, EXIT_FAILED, EXIT_BAD_JOB, EXIT_INTERRUPTED = 0, 1, 2, 75
STOP_ENV = "TRAINER_STOP_AFTER_STEP"
REF_CACHE_VERSION = 1
NU_LEARNING_RATE = 1e-2   # log nu is one scalar: it needs a larger step than the weights


# ------------------------------------------------------------------------------------------------------------
# Processes
# ------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dist:
    """This process's place in the job; collective calls are no-ops for a single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))   # where collective tensors live

    @classmethod
    def from_env(cls) -> Dist:
        return cls(rank=int(os.environ.get("RANK", 0)), world_size=int(os.environ.get("WORLD_SIZE", 1)),
                   local_rank=int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum over the processes (float64)."""
        t = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        if self.active:
            torch.distributed.all_reduce(t)
        return t.tolist()

    def any(self, flag: bool) -> bool:
        if not self.active:
            return flag
        return self.sum([1.0 if flag else 0.0])[0] > 0

    def gather(self, obj: Any) -> list[Any]:
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        if not self.active:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()


# ------------------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.train", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job", nargs="?", help="the job file (JSON); relative paths in it are relative to it")
    parser.add_argument("--help-config", action="store_true", help="print every key of the job file and exit")
    args = parser.parse_args(argv)
    if args.help_config:
        print(help_text())
        return EXIT_OK
    if not args.job:
        parser.error("the job file is required")
    dist = Dist.from_env()
    try:
        cfg = load_config(args.job)
    except ConfigError as exc:
        if dist.main:
            print(f"{args.job}: {exc}", file=sys.stderr, flush=True)
        return EXIT_BAD_JOB

    device = _device(cfg, dist)
    if dist.active:
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
        dist = Dist(rank=dist.rank, world_size=dist.world_size, local_rank=dist.local_rank, device=device)
    stop = _StopFlag()
    try:
        with stop.installed():
            return Trainer(cfg, dist=dist, device=device, stop=stop).run()
    except ConfigError as exc:   # bad records, or an output_dir holding another job
        if dist.main:
            print(f"{args.job}: {exc}", file=sys.stderr, flush=True)
        return EXIT_BAD_JOB
    finally:
        if dist.active and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _device(cfg: TrainConfig, dist: Dist) -> torch.device:
    use_cuda = cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())
    if not use_cuda:
        return torch.device("cpu")
    if dist.active:   # one device per process, whatever index the job named
        device = torch.device("cuda", dist.local_rank)
    elif cfg.device.startswith("cuda:"):
        device = torch.device(cfg.device)
    else:
        device = torch.device("cuda", torch.cuda.current_device())
    torch.cuda.set_device(device)
    return device


class _StopFlag:
    """SIGTERM / SIGINT: once training has started (``armed``), the loop saves a checkpoint after the current
    step and exits 75; before that there is nothing to save and the run exits 75 at once."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.armed = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

        def handler(signum: int, frame: Any) -> None:
            self.signal = signum
            if not self.armed:
                raise SystemExit(EXIT_INTERRUPTED)

        for s in previous:
            signal.signal(s, handler)
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


def _say(dist: Dist, message: str) -> None:
    if dist.main:
        print(f"trainer: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------------------

def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_json(path: Path, obj: Any) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).isoformat(timespec="seconds")


def _tree_hashes(directory: str | Path, memo: dict[str, Any]) -> dict[str, str]:
    """sha256 of every regular file under ``directory`` (relative path -> hash).

    ``memo`` (absolute path -> size, mtime, hash) skips re-reading files whose size and mtime are unchanged, so
    a resumed run does not hash a large model again; it is updated in place.
    """
    out = {}
    root = Path(directory)
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        st = path.stat()
        key = str(path.resolve())
        seen = memo.get(key)
        if seen and seen["size"] == st.st_size and seen["mtime_ns"] == st.st_mtime_ns:
            digest = seen["sha256"]
        else:
            digest = sha256_file(path)
            memo[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
        out[str(path.relative_to(root))] = digest
    return out


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The checkpoint with the highest step that has its ``state.pt``, or None."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return None
    found = [(int(p.name.split("_")[1]), p) for p in root.iterdir()
             if p.is_dir() and p.name.startswith("step_") and p.name[5:].isdigit() and (p / "state.pt").is_file()]
    return max(found)[1] if found else None


# ------------------------------------------------------------------------------------------------------------
# Data splits
# ------------------------------------------------------------------------------------------------------------

@dataclass
class Split:
    key: str                       # the config key it came from
    path: str
    sha256: str
    records: list[Record]
    all_examples: list[Example]    # every record, in file order (the reference cache covers all of them)
    examples: list[Example]        # what the loss uses
    dropped: Counter[str]
    truncated: int

    def describe(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "records": len(self.records), "used": len(self.examples),
                "dropped": dict(self.dropped), "truncated": self.truncated}


def load_split(cfg: TrainConfig, key: str, tokenizer: Any) -> Split:
    path = getattr(cfg, key)
    try:
        records = read_records(path)
        examples, stats = tokenize(records, tokenizer, max_length=cfg.max_length)
        used, dropped = select_for_loss(records, examples, cfg.loss, path=path)
    except DataError as exc:
        raise ConfigError(key, str(exc)) from exc
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror or exc}") from exc
    if not used:
        raise ConfigError(key, f"{path}: no record usable by loss '{cfg.loss}' (dropped: {dict(dropped)})")
    return Split(key=key, path=path, sha256=sha256_file(path), records=records, all_examples=examples,
                 examples=used, dropped=dropped, truncated=stats.truncated)


# ------------------------------------------------------------------------------------------------------------
# Model pieces
# ------------------------------------------------------------------------------------------------------------

def load_causal_lm(path: str | Path) -> Any:
    """A causal LM in float32 (the master weights; bf16 runs under autocast), without dropout, no KV cache."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    model.config.use_cache = False
    for module in model.modules():   # DPO-style training compares log-probs: dropout would only add noise
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model


def _peft_config(cfg: TrainConfig) -> Any:
    from peft import LoraConfig

    assert cfg.lora is not None
    targets = cfg.lora.target_modules if isinstance(cfg.lora.target_modules, str) else list(cfg.lora.target_modules)
    return LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=targets, task_type="CAUSAL_LM")


def _supports_logits_to_keep(model: Any) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def response_logps(model: Any, batch: Batch, *, flat: bool) -> Tensor:
    """Summed log-prob of each row's response tokens, (R,).

    With ``flat`` (models whose forward takes ``logits_to_keep``), the LM head runs on the response positions
    only (a boolean ``logits_to_keep`` mask): no logits for prompts or padding.
    """
    targets = batch.loss_mask[:, 1:]                                       # (R, T-1): token t+1 is a response token
    labels = batch.input_ids[:, 1:]                                        # (R, T-1)
    if flat:
        keep = torch.zeros_like(batch.loss_mask)
        keep[:, :-1] = targets                                             # (R, T): position t predicts token t+1
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, logits_to_keep=keep,
                       use_cache=False).logits
        if logits.dim() == 2:                                              # (N, V): one row per response token
            token = losses.sequence_logps(logits.unsqueeze(1), labels[targets].unsqueeze(1),
                                          torch.ones_like(labels[targets], dtype=torch.bool).unsqueeze(1))  # (N,)
            rows = torch.arange(targets.shape[0], device=targets.device).unsqueeze(1).expand_as(targets)[targets]
            return token.new_zeros(targets.shape[0]).index_add(0, rows, token)
        return losses.sequence_logps(logits[:, :-1], labels, targets)      # a model that ignored the mask
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
    return losses.sequence_logps(logits[:, :-1], labels, targets)          # (R,)


def by_slot(values: Tensor, batch: Batch) -> Tensor:
    """Per-row values (R,) laid out as (B, K) by slot; padded slots are 0."""
    b, k = batch.mask.shape
    return values.new_zeros(b * k).index_add(0, batch.slot, values).view(b, k)


class Sums:
    """Running metric sums for one window, kept on the device (no sync per step); ``reduce`` adds the processes'.

    Slots: loss x examples, examples, correct pairs, pairs, margin sum, tokens.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.values = torch.zeros(6, dtype=torch.float64, device=device)

    def add(self, values: Tensor) -> None:
        self.values += values.to(self.values.device, torch.float64)

    def reduce(self, dist: Dist) -> dict[str, float]:
        values = self.values.clone()
        if dist.active:
            torch.distributed.all_reduce(values)
        loss, examples, correct, pairs, margin, tokens = values.tolist()
        return {"loss": loss / examples if examples else None,
                "reward_accuracy": correct / pairs if pairs else None,
                "reward_margin": margin / pairs if pairs else None,
                "examples": int(examples), "tokens": tokens}


def preference_loss(cfg: TrainConfig, logp: Tensor, ref: Tensor, n_tokens: Tensor, batch: Batch,
                    log_nu: Tensor | float | None) -> tuple[Tensor, Tensor]:
    """The batch's mean loss, and its metric sums (see :class:`Sums`), detached, on the device.

    ``logp``, ``ref`` and ``n_tokens`` are (B, K) by slot; for pairs slot 0 is chosen, slot 1 rejected. Reward
    accuracy and margin are taken over every ordered pair of slots (better group, worse group) of a record, with
    the definitions of ``losses.reward_accuracy`` (strictly above) and ``reward_margin``; a tie counts in neither.
    """
    mask, group = batch.mask, batch.group
    h = (logp - ref).masked_fill(~mask, 0.0)                               # (B, K) unscaled log-ratios
    s = losses.rewards(logp, ref, cfg.beta).masked_fill(~mask, 0.0)        # (B, K) implicit rewards
    name = cfg.loss
    if name == "dpo":
        loss = losses.dpo_loss(s[:, 0], s[:, 1])
    elif name == "soft_dpo":
        loss = losses.soft_dpo_loss(s[:, 0], s[:, 1], batch.p.to(s.dtype))
    elif name == "robust_dpo":
        loss = losses.robust_dpo_loss(s[:, 0], s[:, 1], cfg.epsilon)
    elif name == "ipo":
        loss = losses.ipo_loss(h[:, 0], h[:, 1], cfg.beta)
    elif name == "rao_kupper":
        assert log_nu is not None
        loss = losses.rao_kupper_loss(s[:, 0], s[:, 1], batch.tie, log_nu)
    elif name == "plackett_luce":
        loss = losses.plackett_luce_loss(s, group, mask)
    elif name == "lipo":
        worst = group.masked_fill(~mask, 0).amax(-1, keepdim=True)         # (B, 1)
        loss = losses.lipo_lambda_loss(s, (worst - group).masked_fill(~mask, 0), mask)
    elif name == "pro":
        best = mask & (group == 0)                                         # (B, K) the best group's members
        nll = -(logp / n_tokens.clamp_min(1)).masked_fill(~best, 0.0).sum(-1) / best.sum(-1).clamp_min(1)  # (B,)
        loss = losses.pro_loss(s, group, mask, nll, cfg.sft_weight)
    else:  # pragma: no cover - the config refuses other names
        raise ValueError(name)
    with torch.no_grad():
        pairs = mask.unsqueeze(2) & mask.unsqueeze(1) & (group.unsqueeze(2) < group.unsqueeze(1))   # (B, K, K)
        diff = s.unsqueeze(2) - s.unsqueeze(1)                             # (B, K, K): better minus worse
        n_pairs = pairs.sum()
        correct = ((diff > 0) & pairs).sum()                               # = reward_accuracy * n_pairs
        margin = diff.masked_fill(~pairs, 0.0).sum()                       # = reward_margin * n_pairs
        b = batch.size
        sums = torch.stack([loss.detach().double() * b, torch.tensor(float(b), device=s.device, dtype=torch.float64),
                            correct.double(), n_pairs.double(), margin.double(),
                            torch.tensor(float(batch.tokens), device=s.device, dtype=torch.float64)])
    return loss, sums


# ------------------------------------------------------------------------------------------------------------
# The trainer
# ------------------------------------------------------------------------------------------------------------

@dataclass
class RefStatus:
    status: dict[str, str] = field(default_factory=dict)    # split key -> computed | loaded
    keys: dict[str, str] = field(default_factory=dict)      # split key -> cache key


class Trainer:
    """One run of a job: :meth:`run` returns the exit code."""

    def __init__(self, cfg: TrainConfig, *, dist: Dist, device: torch.device, stop: _StopFlag) -> None:
        self.cfg = cfg
        self.dist = dist
        self.device = device
        self.stop = stop
        self.out = Path(cfg.output_dir)
        self.started = time.time()
        self.bf16 = device.type == "cuda" and (
            cfg.precision == "bf16" or (cfg.precision == "auto" and torch.cuda.is_bf16_supported()))
        self.ref = RefStatus()

    # -- helpers ---------------------------------------------------------------------------------------------
    def say(self, message: str) -> None:
        _say(self.dist, message)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()

    def progress(self, **fields: Any) -> None:
        if not self.dist.main:
            return
        now = time.time()
        self._progress.update(fields, updated=_iso(now))
        _write_json(self.out / "progress.json", self._progress)

    def metrics_line(self, line: dict[str, Any]) -> None:
        if self.dist.main:
            with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(line) + "\n")

    # -- the run ---------------------------------------------------------------------------------------------
    def run(self) -> int:
        cfg, dist = self.cfg, self.dist
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()   # a job's log is read by people and the job runner, not a terminal

        tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer_dir, local_files_only=True)
        self.tokenizer = tokenizer
        self.pad_id = next(t for t in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0) if t is not None)
        train = load_split(cfg, "train_file", tokenizer)
        evals = load_split(cfg, "eval_file", tokenizer) if cfg.eval_file else None
        for split in (train, evals):
            if split is None:
                continue
            if split.dropped:
                why = ", ".join(f"{n} {kind}" for kind, n in sorted(split.dropped.items()))
                self.say(f"{split.key}: dropped {why} record(s): loss '{cfg.loss}' cannot use them")
            if split.truncated:
                self.say(f"{split.key}: {split.truncated} record(s) cut to max_length {cfg.max_length}")

        manifest_path = self.out / "manifest.json"
        if manifest_path.is_file():
            done = json.loads(manifest_path.read_text(encoding="utf-8"))
            if done.get("complete") and done.get("config") == cfg.to_dict():
                self.say(f"already finished: {manifest_path}")
                return EXIT_OK
        checkpoint = latest_checkpoint(self.out)
        state = torch.load(checkpoint / "state.pt", map_location="cpu", weights_only=False) if checkpoint else None
        if state is None and manifest_path.is_file():
            raise ConfigError("output_dir", f"{self.out} holds the results of a different job; use a fresh directory")
        if state is not None:
            self._check_resumable(state)

        world = dist.world_size
        global_batch = cfg.batch_size * world
        n_batches = math.ceil(len(train.examples) / global_batch)
        steps_per_epoch = math.ceil(n_batches / cfg.grad_accum)
        total = cfg.epochs * steps_per_epoch
        if cfg.max_steps is not None:
            total = min(total, cfg.max_steps)
        self.total = total

        if dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            if state is not None:
                self._truncate_metrics(state["step"])
        started = state["started"] if state is not None else self.started
        self._progress = {"step": state["step"] if state else 0, "total_steps": total,
                          "epoch": state["epoch_float"] if state else 0.0, "loss": None, "started": _iso(started),
                          "updated": _iso(time.time()), "eta_s": None, "state": "starting",
                          "ref_cache": "off" if not cfg.precompute_ref else None}
        self.progress()
        if state is not None:
            self.say(f"resuming from {checkpoint} (step {state['step']} of {total})")

        random.seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        torch.manual_seed(cfg.seed)

        # Model: the base (or a full checkpoint), then the adapter.
        lora = cfg.lora is not None
        if lora:
            base = load_causal_lm(cfg.base_model)
            from peft import PeftModel, get_peft_model

            if state is not None:
                model = PeftModel.from_pretrained(base, str(checkpoint), is_trainable=True)
            else:
                model = get_peft_model(base, _peft_config(cfg))
        else:
            model = load_causal_lm(checkpoint if state is not None else cfg.base_model)
        model.to(self.device)
        self.flat = _supports_logits_to_keep(model)

        # Reference log-probs.
        ref_model = None
        if cfg.precompute_ref:
            self.progress(state="reference")
            self._precompute_reference(model, [s for s in (train, evals) if s is not None],
                                       resumed_full=state is not None and not lora)
            status = sorted(set(self.ref.status.values()))
            self.progress(ref_cache=status[0] if len(status) == 1 else "mixed")
        elif not lora:
            ref_model = load_causal_lm(cfg.base_model).to(self.device).eval()
            ref_model.requires_grad_(False)
        self.ref_model = ref_model

        # log nu for Rao-Kupper.
        raw_nu = None
        if cfg.loss == "rao_kupper" and cfg.nu == "fit":
            share = sum(e.tie for e in train.examples) / len(train.examples)
            share = min(max(share, 0.01), 0.9)
            log_nu0 = math.log((1 + share) / (1 - share))                 # P(tie | equal rewards) = share
            raw_nu = torch.nn.Parameter(torch.tensor(math.log(math.expm1(log_nu0)), device=self.device))
        self.raw_nu = raw_nu

        # DDP, optimizer, schedule.
        unwrapped = model
        if dist.active:
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda"
                                            else None)
        params = [(n, p) for n, p in unwrapped.named_parameters() if p.requires_grad]
        groups = [{"params": [p for n, p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
                  {"params": [p for n, p in params if p.ndim < 2], "weight_decay": 0.0}]
        if raw_nu is not None:
            groups.append({"params": [raw_nu], "weight_decay": 0.0, "lr": NU_LEARNING_RATE})
        optimizer = torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(0.9, 0.999), eps=1e-8,
                                      fused=self.device.type == "cuda")
        warmup = cfg.warmup_steps

        def schedule(step: int) -> float:   # HF's linear schedule with warm-up
            if step < warmup:
                return step / max(1, warmup)
            return max(0.0, (total - step) / max(1, total - warmup))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        self.trainable = [p for _, p in params] + ([raw_nu] if raw_nu is not None else [])

        step, epoch, position = 0, 0, 0
        if state is not None:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if raw_nu is not None:
                with torch.no_grad():
                    raw_nu.copy_(state["raw_nu"].to(self.device))
            step, epoch, position = state["step"], state["epoch"], state["position"]
            _set_rng(state["rng"][dist.rank])

        self.model, self.unwrapped = model, unwrapped
        return self._loop(train, evals, optimizer, scheduler, step=step, epoch=epoch, position=position,
                          n_batches=n_batches)

    # -- checks ----------------------------------------------------------------------------------------------
    def _check_resumable(self, state: dict[str, Any]) -> None:
        then, now = state["config"], self.cfg.to_dict()
        for key in sorted(set(then) | set(now)):
            if key not in RESUMABLE_CHANGES and then.get(key) != now.get(key):
                raise ConfigError(key, f"differs from the checkpoints in {self.out} ({then.get(key)!r} there): "
                                       "resume with the same job, or use a fresh output_dir")
        if state["world_size"] != self.dist.world_size:
            raise ConfigError("output_dir", f"its checkpoints were written by {state['world_size']} process(es); "
                                            f"resume with the same number (not {self.dist.world_size})")

    def _truncate_metrics(self, step: int) -> None:
        path = self.out / "metrics.jsonl"
        if not path.is_file():
            return
        kept = [line for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step and not json.loads(line).get("final")]
        path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    # -- reference -------------------------------------------------------------------------------------------
    def _ref_key(self, split: Split) -> str:
        memo_path = self.cfg.ref_cache / "file_hashes.json"
        memo = json.loads(memo_path.read_text(encoding="utf-8")) if memo_path.is_file() else {}
        spec = {"version": REF_CACHE_VERSION, "model": _tree_hashes(self.cfg.base_model, memo),
                "tokenizer": _tree_hashes(self.cfg.tokenizer_dir, memo), "data": split.sha256,
                "max_length": self.cfg.max_length, "precision": "bf16" if self.bf16 else "fp32"}
        self.cfg.ref_cache.mkdir(parents=True, exist_ok=True)
        _write_json(memo_path, memo)
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()

    def _precompute_reference(self, model: Any, splits: list[Split], *, resumed_full: bool) -> None:
        """Fill ``Example.ref`` for every split, from the cache or by one inference pass (then cached)."""
        dist = self.dist
        ref_model = None
        for split in splits:
            key = dist.broadcast(self._ref_key(split) if dist.main else None)
            path = self.cfg.ref_cache / f"{key}.pt"
            self.ref.keys[split.key] = key
            values: list[list[float]] | None = None
            if dist.main and path.is_file():   # rank 0 decides and hands the values out: one decision for all
                cached = torch.load(path, map_location="cpu", weights_only=True)
                offsets, flat = cached["offsets"].tolist(), cached["values"].tolist()
                values = [flat[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
                if len(values) != len(split.all_examples):
                    values = None
            values = dist.broadcast(values)
            if values is not None:
                self.ref.status[split.key] = "loaded"
                self.say(f"reference log-probs for {split.key}: loaded from cache {path}")
            else:
                t0 = time.monotonic()
                if resumed_full and ref_model is None:   # the policy has moved on: the reference is the base
                    ref_model = load_causal_lm(self.cfg.base_model).to(self.device)
                values = self._reference_pass(ref_model if ref_model is not None else model, split.all_examples)
                self.ref.status[split.key] = "computed"
                self.say(f"reference log-probs for {split.key}: computed for {len(values)} records in "
                         f"{time.monotonic() - t0:.1f} s, cached at {path}")
                if dist.main:
                    offsets = np.cumsum([0] + [len(v) for v in values])
                    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")   # jobs may share the cache
                    torch.save({"offsets": torch.tensor(offsets, dtype=torch.long),
                                "values": torch.tensor([x for v in values for x in v], dtype=torch.float32)}, tmp)
                    os.replace(tmp, path)
            for example in split.all_examples:
                example.ref = values[example.index]
        del ref_model

    @contextlib.contextmanager
    def _as_reference(self, model: Any) -> Iterator[Any]:
        """``model`` evaluated as the reference: eval mode, inference mode, the adapter (if any) disabled."""
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode(), self.autocast():
                if self.cfg.lora is not None:   # the peft policy itself, with its adapter off: the base model
                    with model.disable_adapter():
                        yield model
                else:
                    yield model
        finally:
            model.train(was_training)

    def _reference_pass(self, model: Any, examples: Sequence[Example]) -> list[list[float]]:
        """Reference log-probs of every response of every example, split over the processes."""
        dist = self.dist
        order = sorted(range(len(examples)), key=lambda i: examples[i].length)
        size = self.cfg.batch_size * 2
        batches = [order[j:j + size] for j in range(0, len(order), size)][dist.rank::dist.world_size]
        mine: dict[int, list[float]] = {}
        with self._as_reference(model) as ref:
            for idx in batches:
                items = [examples[i] for i in idx]
                batch = collate(items, pad_id=self.pad_id).to(self.device)
                scores = by_slot(response_logps(ref, batch, flat=self.flat).float(), batch).cpu()
                for b, i in enumerate(idx):
                    mine[examples[i].index] = scores[b, :len(examples[i].responses)].tolist()
        merged: dict[int, list[float]] = {}
        for part in dist.gather(mine):
            merged.update(part)
        return [merged[e.index] for e in examples]

    def _reference_for(self, batch: Batch) -> Tensor:
        """(B, K) reference log-probs: precomputed, or one inference pass of the reference now."""
        if batch.ref is not None:
            return batch.ref
        model = self.ref_model if self.ref_model is not None else self.unwrapped
        with self._as_reference(model) as ref:
            values = by_slot(response_logps(ref, batch, flat=self.flat).float(), batch)
        return values.clone()   # a normal tensor, usable beside autograd

    def _log_nu(self) -> Tensor | float | None:
        if self.cfg.loss != "rao_kupper":
            return None
        if self.raw_nu is not None:
            return torch.nn.functional.softplus(self.raw_nu)
        return math.log(float(self.cfg.nu))

    # -- forward ---------------------------------------------------------------------------------------------
    def _forward(self, model: Any, examples: Sequence[Example]) -> tuple[Tensor, Tensor]:
        batch = collate(examples, pad_id=self.pad_id).to(self.device)
        ref = self._reference_for(batch)
        with self.autocast():
            rows = response_logps(model, batch, flat=self.flat)
        logp = by_slot(rows.float(), batch)
        n_tokens = by_slot(batch.loss_mask[:, 1:].sum(-1).float(), batch)
        return preference_loss(self.cfg, logp, ref, n_tokens, batch, self._log_nu())

    def evaluate(self, split: Split) -> dict[str, Any]:
        dist = self.dist
        examples = split.examples
        order = sorted(range(len(examples)), key=lambda i: examples[i].length)
        size = self.cfg.batch_size * 2
        batches = [order[j:j + size] for j in range(0, len(order), size)][dist.rank::dist.world_size]
        sums = Sums(self.device)
        t0 = time.monotonic()
        model = self.unwrapped
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                for idx in batches:
                    _, part = self._forward(model, [examples[i] for i in idx])
                    sums.add(part)
        finally:
            model.train(was_training)
        metrics = sums.reduce(dist)
        metrics["tokens_per_s"] = metrics.pop("tokens") / max(time.monotonic() - t0, 1e-9)
        return metrics

    # -- loop ------------------------------------------------------------------------------------------------
    def _loop(self, train: Split, evals: Split | None, optimizer: Any, scheduler: Any, *, step: int, epoch: int,
              position: int, n_batches: int) -> int:
        cfg, dist, total = self.cfg, self.dist, self.total
        world = dist.world_size
        examples = train.examples
        lengths = [e.length for e in examples]
        plan = plan_epoch(lengths, cfg.batch_size * world, seed=cfg.seed, epoch=epoch)
        stop_after = int(os.environ[STOP_ENV]) if os.environ.get(STOP_ENV, "").isdigit() else None
        first_step, t_run = step, time.monotonic()
        window, t_window = Sums(self.device), time.monotonic()
        model = self.model
        model.train()
        self.progress(state="training")
        self.stop.armed = True
        self.say(f"training: {len(examples)} records, {total} steps of {cfg.grad_accum} x {cfg.batch_size * world} "
                 f"records, {world} process(es), {self.device}{', bf16' if self.bf16 else ''}")

        def epoch_float() -> float:
            return epoch + position / max(1, n_batches)

        while step < total:
            if position >= len(plan):
                epoch, position = epoch + 1, 0
                plan = plan_epoch(lengths, cfg.batch_size * world, seed=cfg.seed, epoch=epoch)
            micro = plan[position:position + cfg.grad_accum]
            n_global = sum(len(b) for b in micro)
            for i, global_batch in enumerate(micro):
                local = shard(global_batch, dist.rank, world)
                last = i == len(micro) - 1
                sync = contextlib.nullcontext() if last or not dist.active else model.no_sync()
                with sync:
                    if local:
                        loss, part = self._forward(model, [examples[j] for j in local])
                        (loss * (len(local) * world / n_global)).backward()
                        window.add(part)
                    else:   # this process has no share of a short last batch: keep DDP's collectives in step
                        loss, _ = self._forward(model, [examples[global_batch[0]]])
                        (loss * 0.0).backward()
            if self.raw_nu is not None and dist.active and self.raw_nu.grad is not None:
                torch.distributed.all_reduce(self.raw_nu.grad)
                self.raw_nu.grad /= world
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.trainable, cfg.max_grad_norm)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            position += len(micro)

            if step % cfg.log_every == 0 or step == total:
                now = time.monotonic()
                reduced = window.reduce(dist)
                tokens = reduced.pop("tokens")
                line = {"split": "train", "step": step, "epoch": round(epoch_float(), 6), **reduced,
                        "tokens_per_s": tokens / max(now - t_window, 1e-9), "lr": lr, "time": time.time()}
                if self.raw_nu is not None:
                    line["nu"] = math.exp(float(torch.nn.functional.softplus(self.raw_nu.detach())))
                self.metrics_line(line)
                rate = (now - t_run) / max(1, step - first_step)
                self.progress(step=step, epoch=line["epoch"], loss=line["loss"], eta_s=round(rate * (total - step), 1))
                window, t_window = Sums(self.device), time.monotonic()
            if cfg.eval_every and step % cfg.eval_every == 0 and step < total and evals is not None:
                self.metrics_line({"split": "eval", "step": step, "epoch": round(epoch_float(), 6),
                                   **self.evaluate(evals), "lr": lr, "time": time.time()})
                t_window = time.monotonic()
            interrupted = dist.any(self.stop.signal is not None) or (stop_after is not None and step == stop_after)
            if (cfg.save_every and step % cfg.save_every == 0) or (interrupted and step < total):
                self._save_checkpoint(optimizer, scheduler, step=step, epoch=epoch, position=position,
                                      epoch_float=epoch_float())
            if interrupted and step < total:
                self.progress(state="interrupted")
                self.say(f"interrupted after step {step}; checkpoint saved; run the job again to resume")
                return EXIT_INTERRUPTED

        return self._finish(train, evals, step=step, epoch_float=epoch_float(),
                            lr=optimizer.param_groups[0]["lr"])

    # -- saving ----------------------------------------------------------------------------------------------
    def _save_checkpoint(self, optimizer: Any, scheduler: Any, *, step: int, epoch: int, position: int,
                         epoch_float: float) -> None:
        rng = self.dist.gather(_rng_state())
        if self.dist.main:
            root = self.out / "checkpoints"
            root.mkdir(parents=True, exist_ok=True)
            final, tmp = root / f"step_{step}", root / f"step_{step}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            self.unwrapped.save_pretrained(tmp)
            state = {"config": self.cfg.to_dict(), "step": step, "epoch": epoch, "position": position,
                     "epoch_float": epoch_float, "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "rng": rng, "world_size": self.dist.world_size,
                     "started": _parse_iso(self._progress["started"]),
                     "raw_nu": self.raw_nu.detach().cpu() if self.raw_nu is not None else None}
            torch.save(state, tmp / "state.pt")
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        self.dist.barrier()

    def _finish(self, train: Split, evals: Split | None, *, step: int, epoch_float: float, lr: float) -> int:
        cfg, dist = self.cfg, self.dist
        split = evals if evals is not None else train
        final_eval = {"split": "eval", "final": True, "data": split.key, "step": step, "epoch": round(epoch_float, 6),
                      **self.evaluate(split), "lr": lr, "time": time.time()}
        if self.raw_nu is not None:
            final_eval["nu"] = math.exp(float(torch.nn.functional.softplus(self.raw_nu.detach())))
        self.metrics_line(final_eval)
        self.say(f"final eval on {split.key}: loss {final_eval['loss']}, reward accuracy "
                 f"{final_eval['reward_accuracy']}, margin {final_eval['reward_margin']}")
        if dist.main:
            final, tmp = self.out / "final", self.out / "final.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            self.unwrapped.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            self.progress(step=step, state="done", eta_s=0.0)
            lora = cfg.lora is not None
            contender = ({"path": cfg.base_model, "adapter": str(final)} if lora else {"path": str(final)})
            artifacts = [{"path": str(p.relative_to(self.out)), "sha256": sha256_file(p), "size": p.stat().st_size}
                         for p in self._artifact_files()]
            manifest = {"format": 1, "complete": True, "config": cfg.to_dict(), "steps": step,
                        "world_size": dist.world_size,
                        "data": {s.key: s.describe() for s in (train, evals) if s is not None},
                        "reference": {"precomputed": cfg.precompute_ref, "cache": dict(self.ref.status),
                                      "keys": dict(self.ref.keys),
                                      "model": "base model with the adapter disabled" if lora else "base_model"},
                        "final_eval": final_eval, "contender": contender, "artifacts": artifacts,
                        "started": self._progress["started"], "finished": _iso(time.time())}
            _write_json(self.out / "manifest.json", manifest)
        dist.barrier()
        return EXIT_OK


    def _artifact_files(self) -> list[Path]:
        """What this trainer wrote (not, e.g., the job runner's log beside it), but manifest and progress."""
        roots = [self.out / "metrics.jsonl", self.out / "final", self.out / "checkpoints", self.out / "ref_cache"]
        files = []
        for root in roots:
            candidates = [root] if root.is_file() else sorted(root.rglob("*")) if root.is_dir() else []
            files += [p for p in candidates if p.is_file() and not p.name.startswith(".")
                      and not any(part.endswith(".tmp") for part in p.relative_to(self.out).parts)]
        return files


def _parse_iso(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


if __name__ == "__main__":
    sys.exit(main())
