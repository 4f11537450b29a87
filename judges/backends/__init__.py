"""Judge backends behind one interface. No Django here.

``complete(messages, params, hints) -> JudgeCompletion`` or raises :class:`JudgeBackendError`.

- ``openai``: any OpenAI-compatible chat endpoint, through the project's one client
  (:func:`arena.sources.openai_compat.chat_completion`: retries with backoff on connection errors, 408,
  429 and 5xx, one deadline for the whole call). The key comes from the environment variable named by
  ``api_key_env``.
- ``transformers``: a causal LM in a local ``save_pretrained`` directory, loaded once per process by the
  same loader as the arena's local contenders (nothing is downloaded).
- ``scripted``: a parametric fake judge (:mod:`judges.simulation`) with planted position, length,
  markdown and self-preference biases. It reads the battle's facts from ``hints`` -- which real backends
  ignore -- so that users can check, on their own battles, that the audit finds biases they planted.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class JudgeParams:
    temperature: float
    max_tokens: int
    seed: int | None


@dataclass(frozen=True)
class ShownAnswer:
    """Facts about one answer as shown to the judge (used only by the scripted backend)."""

    model: str
    family: str
    tokens: int
    markdown: int
    perturbed: bool = False


@dataclass(frozen=True)
class JudgeHints:
    """What a simulated judge may know about the battle; real judges see only the messages."""

    shown: Sequence[ShownAnswer]
    judge_family: str
    human_ranking: Sequence[Sequence[int]] | None = None   # shown positions as ordered groups, best first
    perturbation: str = ""
    key: str = ""                                           # a stable per-call string (seeds the scripted judge)
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JudgeCompletion:
    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: int


class JudgeBackendError(Exception):
    """A judge call failed after its retries; ``reason`` says why (kept on the run)."""

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class JudgeBackend(Protocol):
    def complete(self, messages: Messages, params: JudgeParams, hints: JudgeHints) -> JudgeCompletion:
        ...


def backend_create(kind: str, config: Mapping[str, Any]) -> JudgeBackend:
    """The backend of ``kind`` with a validated ``config`` (see :func:`validate_judge_config`)."""
    if kind == "openai":
        from .openai import OpenAIJudge

        return OpenAIJudge(dict(config))
    if kind == "transformers":
        from .local import TransformersJudge

        return TransformersJudge(dict(config))
    if kind == "scripted":
        from .scripted import ScriptedJudge

        return ScriptedJudge(dict(config))
    raise ValueError(f"unknown judge backend {kind!r}")
