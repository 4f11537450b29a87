"""Chat completions from any OpenAI-compatible server (vLLM, Ollama, llama.cpp, hosted APIs). No Django here.

Two layers:

- :func:`chat_completion` -- the low-level call, shared with other parts of the project (the LLM-as-judge
  backend): it returns a :class:`Completion` or raises :class:`ChatCompletionError`.
- :class:`OpenAICompatSource` -- a contender's :class:`~arena.sources.base.ResponseSource` around it,
  which turns every failure into a :class:`~arena.sources.base.SourceResult` with an error.

Retries are ours, not the SDK's (the client is built with ``max_retries=0``): connection errors, HTTP 408,
429 and 5xx are retried with exponential backoff, but only before the first streamed chunk (a retry after
pieces went to ``on_delta`` would show them twice), and never past the call's ``timeout_s``, which
bounds the whole call including retries and backoff -- a voter waits for one deadline, not one per attempt.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import openai
import pydantic

from .base import GenerationParams, Messages, OnDelta, SourceResult, elapsed_ms, messages_problem, pick

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_RETRIES = 2
DEFAULT_BACKOFF_S = 0.5          # first retry after ~0.5 s, then 1 s, 2 s, ... (with jitter)
MAX_BACKOFF_S = 8.0
# Keyless local servers (Ollama, llama.cpp, vLLM without --api-key) ignore the Authorization header, but the
# SDK refuses to send a request without one: this stands in for "no key".
PLACEHOLDER_API_KEY = "no-key-configured"
_RETRYABLE_STATUS = frozenset({408, 429})


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int | None        # from the server's usage report, when it sends one
    completion_tokens: int | None
    latency_ms: int                  # wall time of the whole call, retries included
    finish_reason: str | None = None


class ChatCompletionError(Exception):
    """A chat completion failed.

    ``reason`` is safe to show anyone (it names neither the model nor the server); ``detail`` is for logs.
    """

    def __init__(self, reason: str, *, detail: str = "", status: int | None = None, retryable: bool = False,
                 attempts: int = 1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail
        self.status = status
        self.retryable = retryable
        self.attempts = attempts


class ChatCompletionTimeout(ChatCompletionError):
    pass


def chat_completion(
    *, base_url: str, model: str, api_key: str | None, messages: Sequence[dict[str, str]],
    max_tokens: int | None = None, temperature: float | None = None, seed: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S, max_retries: int = DEFAULT_MAX_RETRIES, stream: bool = True,
    on_delta: OnDelta | None = None, backoff_s: float = DEFAULT_BACKOFF_S,
) -> Completion:
    """One chat completion from an OpenAI-compatible server.

    Parameters
    ----------
    base_url : str
        The API root, e.g. ``http://127.0.0.1:8001/v1`` (the SDK appends ``/chat/completions``).
    api_key : str or None
        Sent as ``Authorization: Bearer ...``; None sends :data:`PLACEHOLDER_API_KEY`. Never read from the
        environment here: the SDK would otherwise send ``OPENAI_API_KEY`` to whatever ``base_url`` says.
    max_tokens, temperature, seed : optional
        Omitted from the request when None (the server's defaults apply).
    timeout_s : float
        Bounds the whole call, retries and backoff included. A stalled stream is abandoned at most
        ``timeout_s`` after its last chunk, so the worst case is under twice ``timeout_s``.
    max_retries : int
        Further attempts after a connection error or HTTP 408/429/5xx before any text arrived.
    stream : bool
        Stream with ``stream=True`` and call ``on_delta`` with each piece, in order; when False the whole
        text goes to ``on_delta`` once. Usage is requested with ``stream_options.include_usage``.
    backoff_s : float
        The first retry's delay; each next one doubles (up to 8 s), less up to 25 % jitter. A server's
        ``Retry-After`` wins when it is shorter than what is left of ``timeout_s``.

    Raises
    ------
    ChatCompletionError
        (:class:`ChatCompletionTimeout` for timeouts) with a voter-safe ``reason``. An exception raised by
        ``on_delta`` itself propagates unchanged: a caller may use it to abandon the call.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    client = _client(base_url, api_key or PLACEHOLDER_API_KEY)
    request: dict[str, Any] = {"model": model, "messages": list(messages)}
    request.update({k: v for k, v in (("max_tokens", max_tokens), ("temperature", temperature), ("seed", seed))
                    if v is not None})
    if stream:
        request.update(stream=True, stream_options={"include_usage": True})
    for attempt in range(1, max_retries + 2):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _timeout(timeout_s, attempts=attempt - 1)
        try:
            response = client.chat.completions.create(**request, timeout=remaining)
        except Exception as exc:  # every SDK or transport failure is classified; nothing else runs here
            error = _classify(exc, timeout_s=timeout_s, attempts=attempt)
            delay = _retry_delay(exc, attempt=attempt, backoff_s=backoff_s)
            if not error.retryable or attempt > max_retries or time.monotonic() + delay >= deadline:
                if attempt > 1:
                    error.reason = f"{error.reason} (after {attempt} attempts)"
                    error.args = (error.reason,)
                raise error from exc
            logger.info("chat completion attempt %d failed (%s); retrying in %.2f s", attempt, error.detail, delay)
            time.sleep(delay)
            continue
        if stream:
            return _read_stream(response, started=started, deadline=deadline, timeout_s=timeout_s,
                                on_delta=on_delta, attempts=attempt)
        return _read_whole(response, started=started, on_delta=on_delta, attempts=attempt)
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


@functools.lru_cache(maxsize=64)
def _client(base_url: str, api_key: str) -> openai.OpenAI:
    """One client (and connection pool) per server and key, shared by every thread of the process."""
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=DEFAULT_TIMEOUT_S)
    # The SDK fills these from OPENAI_ORG_ID / OPENAI_PROJECT_ID: they are this host's OpenAI account
    # details, which a third-party server has no business receiving.
    client.organization = None
    client.project = None
    return client


def _read_stream(response: Any, *, started: float, deadline: float, timeout_s: float, on_delta: OnDelta | None,
                 attempts: int) -> Completion:
    pieces: list[str] = []
    usage: Any = None
    finish_reason: str | None = None
    try:
        for chunk in response:
            if getattr(chunk, "usage", None) is not None:
                usage = chunk.usage
            for choice in getattr(chunk, "choices", None) or []:
                if getattr(choice, "index", 0) != 0:
                    continue
                finish_reason = getattr(choice, "finish_reason", None) or finish_reason
                piece = getattr(getattr(choice, "delta", None), "content", None)
                if piece:
                    if not isinstance(piece, str):
                        raise _malformed(f"delta content is {type(piece).__name__}", attempts=attempts)
                    pieces.append(piece)
                    if on_delta is not None:
                        on_delta(piece)
            if time.monotonic() > deadline:
                raise _timeout(timeout_s, attempts=attempts)
    except ChatCompletionError:
        raise
    except Exception as exc:
        if _is_sdk_failure(exc):
            raise _classify(exc, timeout_s=timeout_s, attempts=attempts, mid_stream=True) from exc
        raise  # on_delta's own exception: the caller's to handle
    finally:
        response.close()
    return Completion(text="".join(pieces), prompt_tokens=_usage(usage, "prompt_tokens"),
                      completion_tokens=_usage(usage, "completion_tokens"), latency_ms=elapsed_ms(started),
                      finish_reason=finish_reason)


def _read_whole(completion: Any, *, started: float, on_delta: OnDelta | None, attempts: int) -> Completion:
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise _malformed("no choices in the answer", attempts=attempts)
    message = getattr(choices[0], "message", None)
    text = getattr(message, "content", None)
    if text is None:
        text = ""  # e.g. a refusal or tool call: no text for a voter
    if not isinstance(text, str):
        raise _malformed(f"message content is {type(text).__name__}", attempts=attempts)
    if text and on_delta is not None:
        on_delta(text)
    usage = getattr(completion, "usage", None)
    return Completion(text=text, prompt_tokens=_usage(usage, "prompt_tokens"),
                      completion_tokens=_usage(usage, "completion_tokens"), latency_ms=elapsed_ms(started),
                      finish_reason=getattr(choices[0], "finish_reason", None))


def _usage(usage: Any, field: str) -> int | None:
    value = getattr(usage, field, None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _is_sdk_failure(exc: Exception) -> bool:
    """Failures of the server or the transport, as opposed to an exception from the caller's on_delta."""
    return isinstance(exc, openai.OpenAIError | json.JSONDecodeError | pydantic.ValidationError)


def _timeout(timeout_s: float, *, attempts: int) -> ChatCompletionTimeout:
    return ChatCompletionTimeout(f"timed out after {timeout_s:g} s", detail="deadline passed", attempts=attempts)


def _malformed(detail: str, *, attempts: int) -> ChatCompletionError:
    return ChatCompletionError("the model's server sent a malformed answer", detail=detail, attempts=attempts)


def _classify(exc: Exception, *, timeout_s: float, attempts: int, mid_stream: bool = False) -> ChatCompletionError:
    """A voter-safe error for ``exc``; the SDK's own message (which may quote the URL or model) goes to detail."""
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, openai.APITimeoutError):
        return ChatCompletionTimeout(f"timed out after {timeout_s:g} s", detail=detail, attempts=attempts)
    if isinstance(exc, openai.APIConnectionError):
        reason = "the connection to the model's server broke" if mid_stream else "could not reach the model's server"
        return ChatCompletionError(reason, detail=detail, retryable=not mid_stream, attempts=attempts)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status in (401, 403):
            reason = f"the model's server refused the credentials (HTTP {status})"
        elif status == 429:
            reason = "the model's server is rate limiting requests (HTTP 429)"
        else:
            reason = f"the model's server answered HTTP {status}"
        return ChatCompletionError(reason, detail=detail, status=status, attempts=attempts,
                                   retryable=status in _RETRYABLE_STATUS or status >= 500)
    if isinstance(exc, openai.APIError) and not isinstance(exc, openai.APIResponseValidationError):
        return ChatCompletionError("the model's server reported an error while answering", detail=detail,
                                   attempts=attempts)
    if _is_sdk_failure(exc) or isinstance(exc, AttributeError | TypeError | ValueError | KeyError | IndexError):
        return _malformed(detail, attempts=attempts)
    return ChatCompletionError("the request to the model's server failed", detail=detail, attempts=attempts)


def _retry_delay(exc: Exception, *, attempt: int, backoff_s: float) -> float:
    """Seconds before the next attempt: the server's Retry-After when it gives one, else exponential backoff."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is not None:
        for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
            try:
                return max(0.0, float(headers.get(header)) * scale)
            except (TypeError, ValueError):
                continue
    return min(backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S) * (1 - 0.25 * random.random())


def api_key_from_env(name: str | None) -> str | None:
    """The key held by environment variable ``name``; None when no name is configured or the variable is unset.

    Read at each call, so that a rotated key is picked up without a restart.
    """
    if not name:
        return None
    value = os.environ.get(name, "").strip()
    if not value:
        logger.warning("environment variable %s (api_key_env) is unset: sending no key", name)
    return value or None


class OpenAICompatSource:
    """A contender served by an OpenAI-compatible chat-completions endpoint.

    ``config`` is a validated ``source_config`` (see :func:`arena.sources.config.validate_source_config`):
    ``base_url``, ``model``, and optionally ``api_key_env``, ``timeout_s``, ``max_tokens``, ``temperature``,
    ``seed``, ``max_retries`` and ``stream``. When ``api_key_env`` is absent or the variable is unset, a
    placeholder key is sent, which keyless local servers (Ollama, llama.cpp, vLLM without ``--api-key``)
    accept; a hosted API then answers 401, reported as refused credentials.
    """

    def __init__(self, config: dict[str, Any], *, backoff_s: float = DEFAULT_BACKOFF_S,
                 key_lookup: Callable[[str | None], str | None] = api_key_from_env) -> None:
        self.config = config
        self.backoff_s = backoff_s
        self._key_lookup = key_lookup

    def can_answer(self, messages: Messages) -> bool:
        return not messages_problem(messages)

    def generate(self, messages: Messages, params: GenerationParams, on_delta: OnDelta | None = None) -> SourceResult:
        started = time.monotonic()
        if problem := messages_problem(messages):
            return SourceResult.failure(problem, started=started)
        cfg = self.config
        try:
            completion = chat_completion(
                base_url=cfg["base_url"], model=cfg["model"], api_key=self._key_lookup(cfg.get("api_key_env")),
                messages=messages, max_tokens=pick(params.max_tokens, cfg.get("max_tokens")),
                temperature=pick(params.temperature, cfg.get("temperature")), seed=pick(params.seed, cfg.get("seed")),
                timeout_s=cfg.get("timeout_s", DEFAULT_TIMEOUT_S),
                max_retries=cfg.get("max_retries", DEFAULT_MAX_RETRIES), stream=cfg.get("stream", True),
                on_delta=on_delta, backoff_s=self.backoff_s,
            )
        except ChatCompletionError as exc:
            logger.warning("openai-compatible source failed after %d attempt(s): %s", exc.attempts, exc.detail)
            return SourceResult.failure(exc.reason, started=started)
        if not completion.text.strip():
            return SourceResult.failure("the model returned an empty response", started=started)
        return SourceResult(text=completion.text, token_count=completion.completion_tokens,
                            latency_ms=completion.latency_ms)
