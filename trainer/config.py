"""The training job's configuration (``JOB.json``): one dataclass, every field documented and validated. No Django.

``load_config(path)`` reads the JSON object, checks every key (unknown keys, types, ranges, files that must
exist, the device) and returns a frozen :class:`TrainConfig`, or raises :class:`ConfigError` naming the key.
Nothing is created or loaded while checking. Relative paths are taken relative to the directory of the job
file (so a job directory can be moved as a whole); the returned config holds absolute paths.

``python -m trainer.train --help-config`` prints the table of keys built from the ``help`` metadata below.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

PAIRWISE_LOSSES = ("dpo", "soft_dpo", "robust_dpo", "ipo", "rao_kupper")
LISTWISE_LOSSES = ("plackett_luce", "lipo", "pro")
LOSSES = PAIRWISE_LOSSES + LISTWISE_LOSSES
PRECISIONS = ("auto", "fp32", "bf16")

# Keys that may change between a run and its resumption (the rest must match the checkpoint's config).
RESUMABLE_CHANGES = frozenset({"eval_file", "device", "log_every", "eval_every", "save_every", "max_steps",
                               "epochs", "ref_cache_dir"})


class ConfigError(ValueError):
    """A bad job: ``key`` names the offending key (None when the file itself is unreadable)."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message

    def __str__(self) -> str:
        return f"key '{self.key}': {self.message}" if self.key else self.message


@dataclass(frozen=True)
class LoraSpec:
    """LoRA adapter settings (peft ``LoraConfig``)."""

    r: int = field(default=8, metadata={"help": "adapter rank (int >= 1)"})
    alpha: float = field(default=16.0, metadata={"help": "lora_alpha: the adapter's output is scaled by alpha / r"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the adapter's input, in [0, 1)"})
    target_modules: tuple[str, ...] | str = field(
        default=("q_proj", "k_proj", "v_proj", "o_proj"),
        metadata={"help": "module names to adapt (list of str), or \"all-linear\""})


@dataclass(frozen=True)
class TrainConfig:
    """One preference-training job. See each field's ``help``."""

    base_model: str = field(metadata={"help": "directory of the policy's starting weights (save_pretrained); "
                                              "also the frozen reference model"})
    train_file: str = field(metadata={"help": "preference records, JSONL (pairwise or K-wise; see trainer.data)"})
    output_dir: str = field(metadata={"help": "where metrics, checkpoints, final/ and manifest.json go; a run "
                                              "finding checkpoints here resumes from the latest"})
    loss: str = field(metadata={"help": "one of " + ", ".join(LOSSES)})
    tokenizer: str | None = field(default=None, metadata={"help": "tokenizer directory (default: base_model)"})
    eval_file: str | None = field(default=None, metadata={
        "help": "held-out records, same format (optional; without it the final evaluation uses train_file)"})
    beta: float = field(default=0.1, metadata={"help": "strength of the KL tie to the reference (> 0)"})
    epsilon: float = field(default=0.1, metadata={"help": "robust_dpo: assumed label-flip rate, in [0, 0.5)"})
    nu: float | str = field(default="fit", metadata={
        "help": "rao_kupper: tie parameter nu >= 1 (a number fixes it), or \"fit\" to learn log nu along with "
                "the model, starting from the tie share of train_file"})
    sft_weight: float = field(default=1.0, metadata={"help": "pro: weight of the SFT term on the best response (>= 0)"})
    lora: LoraSpec | None = field(default=None, metadata={
        "help": "null for full fine-tuning, or {r, alpha, dropout, target_modules} to train a LoRA adapter "
                "(the reference is then the base with the adapter disabled)"})
    precompute_ref: bool = field(default=True, metadata={
        "help": "compute the reference log-probs once before training and cache them on disk"})
    ref_cache_dir: str | None = field(default=None, metadata={
        "help": "where the reference cache lives (default output_dir/ref_cache); point several jobs at one "
                "directory to share it"})
    epochs: int = field(default=1, metadata={"help": "passes over train_file (int >= 1)"})
    batch_size: int = field(default=8, metadata={
        "help": "records per optimizer micro-step per process (all responses of a record go in one forward)"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step (int >= 1)"})
    learning_rate: float = field(default=1e-6, metadata={"help": "peak AdamW learning rate (> 0)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay (>= 0; not on biases, norms)"})
    warmup_steps: int = field(default=0, metadata={
        "help": "linear warm-up steps; then linear decay to 0 at the last step (int >= 0)"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm (0 disables)"})
    max_length: int = field(default=1024, metadata={
        "help": "max tokens of prompt + response; longer prompts lose their start, then responses their end"})
    seed: int = field(default=0, metadata={"help": "seed of the data order, LoRA init and dropout (int >= 0)"})
    device: str = field(default="auto", metadata={
        "help": "auto (CUDA when present), cpu, cuda or cuda:N; under torchrun each process takes cuda:LOCAL_RANK"})
    precision: str = field(default="auto", metadata={
        "help": "fp32, or bf16 (autocast; fp32 master weights; CUDA only); auto = bf16 on CUDA if supported"})
    log_every: int = field(default=10, metadata={"help": "optimizer steps between metrics lines (int >= 1)"})
    eval_every: int | None = field(default=None, metadata={
        "help": "optimizer steps between evaluations on eval_file (null: only at the end)"})
    save_every: int | None = field(default=500, metadata={
        "help": "optimizer steps between checkpoints (null: none before the end)"})
    max_steps: int | None = field(default=None, metadata={"help": "stop after this many optimizer steps (optional)"})

    @property
    def tokenizer_dir(self) -> str:
        return self.tokenizer or self.base_model

    @property
    def ref_cache(self) -> Path:
        return Path(self.ref_cache_dir) if self.ref_cache_dir else Path(self.output_dir) / "ref_cache"

    @property
    def pairwise(self) -> bool:
        return self.loss in PAIRWISE_LOSSES

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.lora is not None:
            data["lora"]["target_modules"] = (list(self.lora.target_modules)
                                              if not isinstance(self.lora.target_modules, str)
                                              else self.lora.target_modules)
        return data


def help_text() -> str:
    """A table of every key, its default and its help."""
    lines = []
    for f in fields(TrainConfig):
        default = "required" if f.default is MISSING else json.dumps(f.default if not isinstance(f.default, tuple)
                                                                       else list(f.default))
        lines.append(f"{f.name:<15} {default:<12} {f.metadata['help']}")
    lines.append("lora keys:")
    for f in fields(LoraSpec):
        default = json.dumps(list(f.default) if isinstance(f.default, tuple) else f.default)
        lines.append(f"  {f.name:<13} {default:<12} {f.metadata['help']}")
    return "\n".join(lines)


def load_config(path: str | Path, *, cuda_devices: int | None = None) -> TrainConfig:
    """Read and validate a job file.

    Parameters
    ----------
    path : str or Path
        The JSON file.
    cuda_devices : int, optional
        How many CUDA devices there are (default: ask torch); lets tests pretend.

    Raises
    ------
    ConfigError
        On anything wrong, naming the key.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(None, f"cannot read the job file: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(None, f"not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(None, "the job file must hold a JSON object")
    return config_from_dict(data, base_dir=path.resolve().parent, cuda_devices=cuda_devices)


def config_from_dict(data: dict[str, Any], *, base_dir: Path, cuda_devices: int | None = None) -> TrainConfig:
    """Validate ``data`` (a parsed job) into a :class:`TrainConfig`; see :func:`load_config`."""
    known = {f.name: f for f in fields(TrainConfig)}
    for key in data:
        if key not in known:
            hint = _close(key, known)
            raise ConfigError(key, "unknown key" + (f" (did you mean '{hint}'?)" if hint else ""))
    values: dict[str, Any] = {}
    for name, f in known.items():
        if name in data:
            values[name] = data[name]
        elif f.default is MISSING:
            raise ConfigError(name, "required")
        else:
            values[name] = f.default
    v = values

    def path_of(key: str, *, kind: str) -> str:
        raw = _typed(key, v[key], str)
        if not raw:
            raise ConfigError(key, "must be a non-empty path")
        p = Path(raw).expanduser()
        p = (base_dir / p).resolve() if not p.is_absolute() else p.resolve()
        if kind == "file" and not p.is_file():
            raise ConfigError(key, f"no such file: {p}")
        if kind == "dir" and not p.is_dir():
            raise ConfigError(key, f"no such directory: {p}")
        if kind == "out" and p.exists() and not p.is_dir():
            raise ConfigError(key, f"exists and is not a directory: {p}")
        return str(p)

    out: dict[str, Any] = {}
    out["loss"] = _typed("loss", v["loss"], str)
    if out["loss"] not in LOSSES:
        raise ConfigError("loss", f"unknown loss {out['loss']!r}; one of {', '.join(LOSSES)}")
    out["base_model"] = path_of("base_model", kind="dir")
    if not (Path(out["base_model"]) / "config.json").is_file():
        raise ConfigError("base_model", f"no config.json in {out['base_model']} (not a save_pretrained directory)")
    out["tokenizer"] = path_of("tokenizer", kind="dir") if v["tokenizer"] is not None else None
    out["train_file"] = path_of("train_file", kind="file")
    out["eval_file"] = path_of("eval_file", kind="file") if v["eval_file"] is not None else None
    out["output_dir"] = path_of("output_dir", kind="out")
    out["ref_cache_dir"] = path_of("ref_cache_dir", kind="out") if v["ref_cache_dir"] is not None else None

    out["beta"] = _number("beta", v["beta"], low=0.0, low_open=True)
    out["epsilon"] = _number("epsilon", v["epsilon"], low=0.0, high=0.5, high_open=True)
    if isinstance(v["nu"], str):
        if v["nu"] != "fit":
            raise ConfigError("nu", f"must be a number >= 1 or \"fit\", got {v['nu']!r}")
        out["nu"] = "fit"
    else:
        out["nu"] = _number("nu", v["nu"], low=1.0)
    out["sft_weight"] = _number("sft_weight", v["sft_weight"], low=0.0)
    out["lora"] = _lora(v["lora"]) if v["lora"] is not None else None
    out["precompute_ref"] = _typed("precompute_ref", v["precompute_ref"], bool)
    out["epochs"] = _integer("epochs", v["epochs"], low=1)
    out["batch_size"] = _integer("batch_size", v["batch_size"], low=1)
    out["grad_accum"] = _integer("grad_accum", v["grad_accum"], low=1)
    out["learning_rate"] = _number("learning_rate", v["learning_rate"], low=0.0, low_open=True)
    out["weight_decay"] = _number("weight_decay", v["weight_decay"], low=0.0)
    out["warmup_steps"] = _integer("warmup_steps", v["warmup_steps"], low=0)
    out["max_grad_norm"] = _number("max_grad_norm", v["max_grad_norm"], low=0.0)
    out["max_length"] = _integer("max_length", v["max_length"], low=16)
    out["seed"] = _integer("seed", v["seed"], low=0, high=2**63 - 1)
    out["device"] = _device(v["device"], cuda_devices)
    out["precision"] = _typed("precision", v["precision"], str)
    if out["precision"] not in PRECISIONS:
        raise ConfigError("precision", f"must be one of {', '.join(PRECISIONS)}, got {out['precision']!r}")
    if out["precision"] == "bf16" and out["device"] == "cpu":
        raise ConfigError("precision", "bf16 needs a CUDA device (device is cpu)")
    out["log_every"] = _integer("log_every", v["log_every"], low=1)
    for key in ("eval_every", "save_every", "max_steps"):
        out[key] = _integer(key, v[key], low=1) if v[key] is not None else None
    return TrainConfig(**out)


def _close(key: str, known: dict[str, Any]) -> str | None:
    import difflib

    match = difflib.get_close_matches(key, list(known), n=1)
    return match[0] if match else None


def _typename(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def _typed(key: str, value: Any, kind: type) -> Any:
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        want = {bool: "a boolean", int: "an integer", str: "a string", dict: "an object", list: "a list"}[kind]
        raise ConfigError(key, f"must be {want}, got {_typename(value)} {json.dumps(value)}")
    return value


def _number(key: str, value: Any, *, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"must be a number, got {_typename(value)} {json.dumps(value)}")
    x = float(value)
    if not math.isfinite(x):
        raise ConfigError(key, f"must be finite, got {value!r}")
    if low is not None and (x < low or (low_open and x == low)):
        raise ConfigError(key, f"must be {'>' if low_open else '>='} {low:g}, got {value!r}")
    if high is not None and (x > high or (high_open and x == high)):
        raise ConfigError(key, f"must be {'<' if high_open else '<='} {high:g}, got {value!r}")
    return x


def _integer(key: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    value = _typed(key, value, int)
    if low is not None and value < low:
        raise ConfigError(key, f"must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ConfigError(key, f"must be <= {high}, got {value}")
    return value


def _device(value: Any, cuda_devices: int | None) -> str:
    value = _typed("device", value, str)
    if value in ("auto", "cpu"):
        return value
    match = re.fullmatch(r"cuda(?::(\d+))?", value)
    if not match:
        raise ConfigError("device", f"must be auto, cpu, cuda or cuda:N, got {value!r}")
    if cuda_devices is None:
        import torch

        cuda_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if cuda_devices == 0:
        raise ConfigError("device", f"{value!r} asked for, but this machine has no CUDA device")
    if match.group(1) is not None and int(match.group(1)) >= cuda_devices:
        raise ConfigError("device", f"{value!r} asked for, but this machine has {cuda_devices} CUDA device(s)")
    return value


def _lora(value: Any) -> LoraSpec:
    value = _typed("lora", value, dict)
    known = {f.name for f in fields(LoraSpec)}
    for key in value:
        if key not in known:
            raise ConfigError(f"lora.{key}", f"unknown key; lora takes {', '.join(sorted(known))}")
    spec = LoraSpec()
    r = _integer("lora.r", value.get("r", spec.r), low=1)
    alpha = _number("lora.alpha", value.get("alpha", spec.alpha), low=0.0, low_open=True)
    dropout = _number("lora.dropout", value.get("dropout", spec.dropout), low=0.0, high=1.0, high_open=True)
    targets = value.get("target_modules", list(spec.target_modules))
    if isinstance(targets, str):
        if targets != "all-linear":
            raise ConfigError("lora.target_modules",
                              f"must be a list of module names or \"all-linear\", got {targets!r}")
        return LoraSpec(r=r, alpha=alpha, dropout=dropout, target_modules=targets)
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t for t in targets):
        raise ConfigError("lora.target_modules", "must be a non-empty list of module names or \"all-linear\"")
    return LoraSpec(r=r, alpha=alpha, dropout=dropout, target_modules=tuple(targets))
