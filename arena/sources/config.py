"""What a contender's ``source_config`` may hold, per ``source_kind``, checked in one place.

The admin form, ``load_contenders`` and :func:`arena.sources.source_for` all go through
:func:`validate_source_config`, so a config that is stored is a config a source can be built from.
Secrets are never part of it: an OpenAI-compatible source names the environment variable that holds its
key (``api_key_env``), and a literal ``api_key`` is refused.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from config.errors import ValidationFailed

KINDS = ("pool", "openai", "transformers", "none")
LIVE_KINDS = frozenset({"openai", "transformers"})   # kinds that answer any typed prompt

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DEVICE = re.compile(r"^(cpu|mps|(cuda|xpu)(:\d+)?)$")
_SECRET_KEYS = frozenset({"api_key", "apikey", "key", "token", "secret", "password", "authorization"})


class SourceConfigError(ValidationFailed):
    """A contender's source kind or config is unusable; ``field`` is ``source_config.<key>`` (or the kind)."""

    code = "invalid_source_config"


def _fail(key: str, message: str) -> SourceConfigError:
    return SourceConfigError(message, field=f"source_config.{key}" if key else "source_config")


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(key, "must be a non-empty string")
    return value.strip()


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _fail(key, "must be a whole number above 0")
    return value


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:  # NaN != NaN
        raise _fail(key, "must be a number")
    return float(value)


def _base_url(key: str, value: Any) -> str:
    url = _string(key, value).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail(key, "must be an http:// or https:// URL, such as http://127.0.0.1:11434/v1")
    if parts.username or parts.password:
        raise _fail(key, "must not contain credentials; put the key in an environment variable named by api_key_env")
    return url


def _api_key_env(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _ENV_NAME.match(value):
        raise _fail(key, "must be the name of an environment variable, such as VLLM_API_KEY")
    return value


def _timeout(key: str, value: Any) -> float:
    seconds = _number(key, value)
    if not 0 < seconds <= 3600:
        raise _fail(key, "must be above 0 and at most 3600 seconds")
    return seconds


def _temperature(key: str, value: Any) -> float:
    t = _number(key, value)
    if not 0 <= t <= 2:
        raise _fail(key, "must be between 0 and 2")
    return t


def _max_retries(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise _fail(key, "must be a whole number from 0 to 10")
    return value


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(key, "must be true or false")
    return value


def _seed(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise _fail(key, "must be a whole number from 0 to 2**63 - 1")
    return value


def _device(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _DEVICE.match(value):
        raise _fail(key, "must be cpu, cuda, cuda:N, mps or xpu")
    return value


Check = Callable[[str, Any], Any]

# kind -> (required keys, optional keys); each key with the check that normalises it.
_SCHEMAS: dict[str, tuple[dict[str, Check], dict[str, Check]]] = {
    "pool": ({}, {}),
    "none": ({}, {}),
    "openai": (
        {"base_url": _base_url, "model": _string},
        {"api_key_env": _api_key_env, "timeout_s": _timeout, "max_tokens": _positive_int,
         "temperature": _temperature, "max_retries": _max_retries, "stream": _boolean, "seed": _seed},
    ),
    "transformers": (
        {"path": _string},
        {"adapter": _string, "max_tokens": _positive_int, "temperature": _temperature, "seed": _seed,
         "device": _device},
    ),
}


def validate_source_config(kind: str, config: Any) -> dict[str, Any]:
    """Check ``config`` for a source of ``kind`` and return it normalised (strings stripped, numbers typed).

    Defaults are not filled in: the source applies them, so a changed default reaches every contender
    that did not choose a value.

    Raises
    ------
    SourceConfigError
        Naming the offending key as ``source_config.<key>`` (``source_kind`` for an unknown kind).
    """
    if kind not in _SCHEMAS:
        raise SourceConfigError(f"unknown source kind {kind!r}; expected one of {', '.join(KINDS)}",
                                field="source_kind")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise _fail("", "must be a JSON object")
    required, optional = _SCHEMAS[kind]
    for key in config:
        if key.lower() in _SECRET_KEYS:
            raise _fail(key, "secrets are not stored in the database: put the key in an environment variable "
                             "and give its name as api_key_env")
        if key not in required and key not in optional:
            allowed = ", ".join([*required, *optional]) or "none"
            raise _fail(key, f"unknown key for source kind {kind!r} (allowed: {allowed})")
    normalised: dict[str, Any] = {}
    for key, check in required.items():
        if config.get(key) is None:
            raise _fail(key, "required")
        normalised[key] = check(key, config[key])
    for key, check in optional.items():
        if config.get(key) is not None:
            normalised[key] = check(key, config[key])
    return normalised
