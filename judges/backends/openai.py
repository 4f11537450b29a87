"""The ``openai`` judge backend: any OpenAI-compatible chat endpoint, through the project's one client."""
from __future__ import annotations

import logging
from typing import Any

from arena.sources.openai_compat import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_S,
    ChatCompletionError,
    api_key_from_env,
    chat_completion,
)

from . import JudgeBackendError, JudgeCompletion, JudgeHints, JudgeParams, Messages

logger = logging.getLogger(__name__)

# A judge's answer is read whole (nobody watches it stream), so the call is not streamed: a retry is then
# possible at any point, since no partial text has been handed on.
JUDGE_TIMEOUT_S = 120.0
JUDGE_MAX_RETRIES = 4


class OpenAIJudge:
    """Config: ``base_url``, ``model``, optional ``api_key_env``, ``timeout_s`` (default 120), ``max_retries``
    (default 4). Sampling parameters come from the judge (temperature, max_tokens, seed)."""

    def __init__(self, config: dict[str, Any], *, backoff_s: float | None = None) -> None:
        self.config = config
        self.backoff_s = backoff_s

    def complete(self, messages: Messages, params: JudgeParams, hints: JudgeHints) -> JudgeCompletion:
        cfg = self.config
        extra = {"backoff_s": self.backoff_s} if self.backoff_s is not None else {}
        try:
            completion = chat_completion(
                base_url=cfg["base_url"], model=cfg["model"], api_key=api_key_from_env(cfg.get("api_key_env")),
                messages=messages, max_tokens=params.max_tokens, temperature=params.temperature, seed=params.seed,
                timeout_s=cfg.get("timeout_s", max(JUDGE_TIMEOUT_S, DEFAULT_TIMEOUT_S)),
                max_retries=cfg.get("max_retries", max(JUDGE_MAX_RETRIES, DEFAULT_MAX_RETRIES)), stream=False,
                **extra,
            )
        except ChatCompletionError as exc:
            logger.warning("judge call failed after %d attempt(s): %s", exc.attempts, exc.detail)
            raise JudgeBackendError(exc.reason, retryable=exc.retryable) from exc
        return JudgeCompletion(text=completion.text, prompt_tokens=completion.prompt_tokens,
                               completion_tokens=completion.completion_tokens, latency_ms=completion.latency_ms)
