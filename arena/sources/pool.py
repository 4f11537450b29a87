"""The 'pool' source: pre-generated answers (``PoolResponse``) to known prompts.

A pooled answer was generated for one prompt alone, so the pool answers only a conversation that is
exactly one user message: with a system prompt or earlier turns the stored text would not be an answer
to what was asked.
"""
from __future__ import annotations

import time

from arena.fingerprints import prompt_sha256
from arena.models import PoolResponse

from .base import GenerationParams, Messages, OnDelta, SourceResult, elapsed_ms


def single_prompt(messages: Messages) -> str | None:
    """The text of a one-message user conversation, else None."""
    if (isinstance(messages, list) and len(messages) == 1 and isinstance(messages[0], dict)
            and messages[0].get("role") == "user" and isinstance(messages[0].get("content"), str)):
        return messages[0]["content"]
    return None


class PoolSource:
    """Pre-generated answers; ``chars_per_s`` > 0 streams them at that pace.

    In an arena that also has live models, a pooled answer that appeared all at once would stand out
    from the streamed ones and tell the voter which slot (or that every slot) holds a pool model; the
    arena therefore streams pooled text at a typical model's pace (``ARENA_POOL_STREAM_CHARS_PER_S``).
    """

    STEP_S = 0.05  # one piece per 50 ms

    def __init__(self, contender_id: int, *, chars_per_s: float = 0.0) -> None:
        self.contender_id = contender_id
        self.chars_per_s = chars_per_s

    def _lookup(self, messages: Messages) -> PoolResponse | None:
        text = single_prompt(messages)
        if text is None:
            return None
        return (PoolResponse.objects.filter(contender_id=self.contender_id, prompt__sha256=prompt_sha256(text))
                .only("text", "token_count").first())

    def can_answer(self, messages: Messages) -> bool:
        return self._lookup(messages) is not None

    def generate(self, messages: Messages, params: GenerationParams, on_delta: OnDelta | None = None) -> SourceResult:
        """The stored answer, whole; ``params`` do not apply (the text is fixed)."""
        started = time.monotonic()
        if single_prompt(messages) is None:
            return SourceResult.failure("pre-generated answers exist only for single-turn prompts", started=started)
        found = self._lookup(messages)
        if found is None:
            return SourceResult.failure("no pre-generated answer to this prompt", started=started)
        if on_delta is not None:
            self._deliver(found.text, on_delta)
        return SourceResult(text=found.text, token_count=found.token_count, latency_ms=elapsed_ms(started))

    def _deliver(self, text: str, on_delta: OnDelta) -> None:
        if self.chars_per_s <= 0:
            on_delta(text)
            return
        size = max(1, round(self.chars_per_s * self.STEP_S))
        for start in range(0, len(text), size):
            if start:
                time.sleep(self.STEP_S)
            on_delta(text[start:start + size])
