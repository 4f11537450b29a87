"""The 'transformers' source: a causal LM saved with ``save_pretrained`` on this host. No Django here.

(Named ``local_transformers`` so that it cannot shadow the ``transformers`` package.)

- Loading is lazy and happens once per process for each (path, adapter, device): the first call loads,
  concurrent first calls wait for it instead of loading a second copy. Nothing is ever downloaded
  (``local_files_only=True``). A failed load is not cached, so a fixed directory is picked up on the next call.
- Generation is serialised per model by a lock: one forward pass at a time per set of weights (the
  model is not thread-safe to share, and concurrent calls would only fight for the same cores or GPU).
- Sampling draws from a ``torch.Generator`` seeded per call, never from torch's global RNG: the same
  seed gives the same text whatever else the process generated before or meanwhile. The draw is made
  by a logits processor that leaves exactly one finite logit, so ``generate`` runs greedy decoding
  on top of it and its own (global-RNG) sampler is never used.
"""
from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from arena.chat_format import encode, plain_prompt  # noqa: F401 -- plain_prompt: part of this module's API

from .base import GenerationParams, Messages, OnDelta, SourceResult, elapsed_ms, messages_problem, pick

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 256
DEFAULT_TEMPERATURE = 0.7


class ModelLoadError(Exception):
    """The model could not be loaded; ``reason`` is voter-safe (it names no path)."""

    def __init__(self, reason: str, *, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclass(eq=False)
class LoadedModel:
    model: Any            # a transformers (or peft) causal LM, in eval mode, on ``device``
    tokenizer: Any
    device: torch.device
    lock: threading.Lock  # held for the whole of one generation


CacheKey = tuple[str, str | None, str]
_cache: dict[CacheKey, LoadedModel] = {}
_key_locks: dict[CacheKey, threading.Lock] = {}
_cache_lock = threading.Lock()   # guards the two dicts only; loading happens under the key's own lock
# from_pretrained builds a model on the meta device inside process-wide context managers, so two loads of
# different models at once break each other ("Cannot copy out of meta tensor", weights reported missing):
# loads are serialised across models too. Generation, the frequent part, is not.
_load_lock = threading.Lock()


def load_model(path: str, *, adapter: str | None = None, device: str = "cpu") -> LoadedModel:
    """The model in ``path`` (with the peft adapter in ``adapter``, if any), loaded once per process.

    Raises
    ------
    ModelLoadError
        When a directory is missing or its contents do not load.
    """
    key: CacheKey = (str(Path(path).expanduser().resolve()),
                     str(Path(adapter).expanduser().resolve()) if adapter else None, device)
    with _cache_lock:
        if (loaded := _cache.get(key)) is not None:
            return loaded
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:   # a second caller for the same model waits here, then finds it cached
        with _cache_lock:
            if (loaded := _cache.get(key)) is not None:
                return loaded
        with _load_lock:
            loaded = _load(*key)
        with _cache_lock:
            _cache[key] = loaded
        return loaded


def unload_all() -> None:
    """Forget every loaded model (tests; a long-lived worker that swaps models)."""
    with _cache_lock:
        _cache.clear()


def _load(path: str, adapter: str | None, device: str) -> LoadedModel:
    if not Path(path).is_dir():
        raise ModelLoadError("the model's files are missing on the server", detail=f"no directory {path}")
    if adapter is not None and not Path(adapter).is_dir():
        raise ModelLoadError("the model's adapter files are missing on the server", detail=f"no directory {adapter}")
    started = time.monotonic()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
        if adapter is not None:
            from peft import PeftModel  # only hosts that serve adapters pay for importing peft

            model = PeftModel.from_pretrained(model, adapter, is_trainable=False)
        target = torch.device(device)
        model.to(target)
        model.eval()
    except Exception as exc:  # a corrupt or incompatible directory, an unavailable device, out of memory, ...
        raise ModelLoadError("the model could not be loaded", detail=f"{type(exc).__name__}: {exc}") from exc
    logger.info("loaded %s%s on %s in %d ms", path, f" + adapter {adapter}" if adapter else "", device,
                elapsed_ms(started))
    return LoadedModel(model=model, tokenizer=tokenizer, device=target, lock=threading.Lock())


class SeededSampler(LogitsProcessor):
    """Samples the next token at ``temperature`` with a private generator; leaves only that token's logit finite."""

    def __init__(self, temperature: float, generator: torch.Generator) -> None:
        self.temperature = temperature
        self.generator = generator

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)               # (B, V)
        chosen = torch.multinomial(probs, num_samples=1, generator=self.generator)      # (B, 1)
        return torch.full_like(scores, float("-inf")).scatter_(-1, chosen, 0.0)


class _Cancelled(StoppingCriteria):
    """Stops generation early once the reading side has given up (its on_delta raised)."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


@dataclass(frozen=True)
class Generated:
    text: str
    token_count: int


def generate_text(loaded: LoadedModel, messages: Messages, *, max_tokens: int, temperature: float, seed: int,
                  on_delta: OnDelta | None = None) -> Generated:
    """Generate under the model's lock, streaming pieces to ``on_delta``; ``temperature`` 0 is greedy.

    Raises whatever ``generate`` raised (on the worker thread), and whatever ``on_delta`` raised.
    """
    tokenizer, model = loaded.tokenizer, loaded.model
    with loaded.lock:
        encoded = encode(tokenizer, messages)
        # Only what every causal LM's generate takes (some tokenizers add token_type_ids, which Llama refuses).
        inputs = {k: encoded[k].to(loaded.device) for k in ("input_ids", "attention_mask") if k in encoded}
        prompt_len = inputs["input_ids"].shape[-1]
        generator = torch.Generator(device=loaded.device).manual_seed(seed)
        processors = LogitsProcessorList([SeededSampler(temperature, generator)] if temperature > 0 else [])
        cancel = _Cancelled()
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        eos = tokenizer.eos_token_id
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                with torch.inference_mode():
                    outcome["ids"] = model.generate(
                        **inputs, streamer=streamer, max_new_tokens=max_tokens, do_sample=False,
                        logits_processor=processors, stopping_criteria=StoppingCriteriaList([cancel]),
                        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos,
                    )
            except BaseException as exc:  # handed to the reading thread, which re-raises it
                outcome["error"] = exc
                streamer.end()  # unblock the reader, which would otherwise wait for text forever

        worker = threading.Thread(target=work, name="arena-transformers-generate", daemon=True)
        worker.start()
        pieces: list[str] = []
        try:
            for piece in streamer:
                if piece:
                    pieces.append(piece)
                    if on_delta is not None:
                        on_delta(piece)
        except BaseException:
            cancel.event.set()
            raise
        finally:
            worker.join()   # the lock is released only when the model is idle again
    if "error" in outcome:
        raise outcome["error"]
    new_tokens = outcome["ids"][0, prompt_len:].tolist()
    if new_tokens and eos is not None and new_tokens[-1] == eos:
        new_tokens = new_tokens[:-1]
    return Generated(text="".join(pieces), token_count=len(new_tokens))


class LocalTransformersSource:
    """A contender answered by a local model; ``config`` is a validated ``source_config``.

    Keys: ``path`` (required), ``adapter`` (a peft adapter directory), ``max_tokens`` (default 256),
    ``temperature`` (default 0.7; 0 is greedy), ``seed`` (default: a fresh random one per call),
    ``device`` (default ``cpu``).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def can_answer(self, messages: Messages) -> bool:
        return not messages_problem(messages)

    def load(self) -> LoadedModel:
        """The shared loaded model (loading it on first use). Raises ModelLoadError."""
        cfg = self.config
        return load_model(cfg["path"], adapter=cfg.get("adapter"), device=cfg.get("device", "cpu"))

    def generate(self, messages: Messages, params: GenerationParams, on_delta: OnDelta | None = None) -> SourceResult:
        started = time.monotonic()
        if problem := messages_problem(messages):
            return SourceResult.failure(problem, started=started)
        cfg = self.config
        seed = pick(params.seed, cfg.get("seed"))
        callback_failed = False

        def deliver(piece: str) -> None:
            nonlocal callback_failed
            try:
                on_delta(piece)  # type: ignore[misc]  # only installed when on_delta is given
            except BaseException:
                callback_failed = True
                raise

        try:
            loaded = self.load()
            generated = generate_text(
                loaded, messages,
                max_tokens=int(pick(params.max_tokens, cfg.get("max_tokens")) or DEFAULT_MAX_TOKENS),
                temperature=float(pick(pick(params.temperature, cfg.get("temperature")), DEFAULT_TEMPERATURE)),
                # No seed configured: a fresh one per call, from the OS, so that nothing depends on call order.
                seed=int(seed) if seed is not None else secrets.randbits(63),
                on_delta=deliver if on_delta is not None else None,
            )
        except ModelLoadError as exc:
            logger.warning("transformers source could not load its model: %s", exc.detail)
            return SourceResult.failure(exc.reason, started=started)
        except Exception:  # the model failed while generating (bad input length, out of memory, ...)
            if callback_failed:
                raise  # the caller's own exception (a way to abandon the generation), not the model's failure
            logger.exception("transformers source failed while generating")
            return SourceResult.failure("the model failed while generating", started=started)
        if not generated.text.strip():
            return SourceResult.failure("the model returned an empty response", started=started)
        return SourceResult(text=generated.text, token_count=generated.token_count, latency_ms=elapsed_ms(started))

