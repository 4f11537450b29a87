"""The ``transformers`` judge backend: a causal LM in a local directory (named ``local`` so that it cannot
shadow the ``transformers`` package). Loading and seeded generation are the arena's own (one copy of the
weights per process, whether a contender or a judge uses them)."""
from __future__ import annotations

import time
from typing import Any

from arena.sources.base import elapsed_ms
from arena.sources.local_transformers import ModelLoadError, encode, generate_text, load_model

from . import JudgeBackendError, JudgeCompletion, JudgeHints, JudgeParams, Messages


class TransformersJudge:
    """Config: ``path`` (required), ``adapter``, ``device`` (default cpu). Greedy when the judge's temperature
    is 0; otherwise sampled with the judge's seed (plus the replicate), or seed 0 when it has none, so that a
    cached judgment can always be reproduced."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def complete(self, messages: Messages, params: JudgeParams, hints: JudgeHints) -> JudgeCompletion:
        started = time.monotonic()
        cfg = self.config
        try:
            loaded = load_model(cfg["path"], adapter=cfg.get("adapter"), device=cfg.get("device", "cpu"))
            generated = generate_text(loaded, messages, max_tokens=params.max_tokens, temperature=params.temperature,
                                      seed=params.seed if params.seed is not None else 0)
            prompt_tokens = int(encode(loaded.tokenizer, messages)["input_ids"].shape[-1])
        except ModelLoadError as exc:
            raise JudgeBackendError(exc.reason) from exc
        except (RuntimeError, ValueError) as exc:   # generation itself failed (out of memory, bad input)
            raise JudgeBackendError(f"local generation failed: {type(exc).__name__}") from exc
        return JudgeCompletion(text=generated.text, prompt_tokens=prompt_tokens,
                               completion_tokens=generated.token_count, latency_ms=elapsed_ms(started))
