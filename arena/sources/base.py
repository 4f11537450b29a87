"""The one interface every contender's response source implements. No Django here.

A source turns an OpenAI-style conversation into one response. It never raises for its own failures
(a server that times out, answers HTTP 500 or garbage, a model directory that will not load): it
returns a :class:`SourceResult` whose ``error`` says what went wrong in words a voter may read before
the reveal -- so an error never names the model, its server or its files.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

Messages = list[dict[str, str]]
OnDelta = Callable[[str], None]

ROLES = frozenset({"system", "user", "assistant"})


@dataclass(frozen=True)
class GenerationParams:
    """Per-call overrides; ``None`` keeps the contender's configured default."""

    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None


@dataclass(frozen=True)
class SourceResult:
    text: str                  # the full response ("" on failure)
    token_count: int | None    # completion tokens, if the source knows them
    latency_ms: int            # wall time of the whole generation
    error: str = ""            # non-empty: the source failed; safe to show a voter (no model name, no URL)

    @property
    def ok(self) -> bool:
        return not self.error

    @classmethod
    def failure(cls, error: str, *, started: float) -> SourceResult:
        return cls(text="", token_count=None, latency_ms=elapsed_ms(started), error=error)


class ResponseSource(Protocol):
    def can_answer(self, messages: Messages) -> bool:
        """Whether ``generate`` can answer this conversation (a pool only knows its own prompts)."""
        ...

    def generate(self, messages: Messages, params: GenerationParams, on_delta: OnDelta | None = None) -> SourceResult:
        """Answer ``messages``; ``on_delta`` gets each new piece of text, in order, as it is produced.

        When the result is a failure, pieces already passed to ``on_delta`` are void: the caller
        discards them (a stream can break half way).
        """
        ...


def elapsed_ms(started: float) -> int:
    """Milliseconds since ``started`` (a ``time.monotonic()`` reading)."""
    return max(0, round((time.monotonic() - started) * 1000))


def pick(override: float | int | None, default: float | int | None) -> float | int | None:
    """The call's parameter when given, else the contender's default."""
    return default if override is None else override


def messages_problem(messages: object) -> str:
    """Why ``messages`` is not a usable conversation, or "" when it is.

    Sources check before talking to a model so that a caller's bug reads as such, not as a model failure.
    """
    if not isinstance(messages, list) or not messages:
        return "the conversation is empty"
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES or not isinstance(
                message.get("content"), str):
            return "the conversation has a malformed message"
    if messages[-1]["role"] != "user":
        return "the conversation does not end with a user message"
    return ""


class NoSource:
    """The source of a contender that only has imported votes: it answers nothing."""

    def can_answer(self, messages: Messages) -> bool:
        return False

    def generate(self, messages: Messages, params: GenerationParams, on_delta: OnDelta | None = None) -> SourceResult:
        return SourceResult.failure("this contender has no response source", started=time.monotonic())
