"""Response sources: where a contender's answers come from, behind one interface.

``source_for(contender)`` builds the :class:`ResponseSource` for a contender's ``source_kind`` and
``source_config``:

- ``pool`` -- pre-generated answers to known prompts (:mod:`arena.sources.pool`);
- ``openai`` -- any OpenAI-compatible chat-completions server (:mod:`arena.sources.openai_compat`);
- ``transformers`` -- a local model directory (:mod:`arena.sources.local_transformers`);
- ``none`` -- nothing (contenders that only have imported votes).

The live kinds' modules (the OpenAI SDK, torch) are imported on first use, so that importing this
package stays cheap for code that only validates configs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .base import GenerationParams, NoSource, ResponseSource, SourceResult
from .config import KINDS, LIVE_KINDS, SourceConfigError, validate_source_config

if TYPE_CHECKING:
    from arena.models import Contender

__all__ = ["KINDS", "LIVE_KINDS", "GenerationParams", "ResponseSource", "SourceConfigError", "SourceResult",
           "source_for", "validate_source_config"]


def source_for(contender: Contender) -> ResponseSource:
    """The response source described by ``contender.source_kind`` and ``contender.source_config``.

    Cheap: a local model is loaded on its first ``generate``, not here.

    Raises
    ------
    SourceConfigError
        When the stored kind or config is invalid (the message names the key).
    """
    kind = contender.source_kind
    config = validate_source_config(kind, contender.source_config)
    if kind == "pool":
        from django.conf import settings

        from .pool import PoolSource

        return PoolSource(contender.pk, chars_per_s=getattr(settings, "ARENA_POOL_STREAM_CHARS_PER_S", 0.0))
    if kind == "openai":
        from .openai_compat import OpenAICompatSource

        return OpenAICompatSource(config)
    if kind == "transformers":
        from .local_transformers import LocalTransformersSource

        return LocalTransformersSource(config)
    return NoSource()
