"""Response-source health: consecutive failures per contender, kept in the Django cache.

A source that failed ``ARENA_SOURCE_FAILURE_LIMIT`` times in a row (default 3) is left out of
matchmaking, so visitors stop getting battles that die half-way. The count expires
``ARENA_SOURCE_COOLDOWN_S`` seconds (default 300) after the last failure: a server that came back
is then tried again, and a success resets the count at once.

The cache, not the database: this is transient state written on every failed request, shared by
every worker through Redis (locmem in a single-process demo). Only atomic cache operations
(``add``, ``incr``) touch the count, so concurrent failures are never lost.
"""
from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache

KEY_PREFIX = "arena:source-failures:"


def _key(contender_id: int) -> str:
    return f"{KEY_PREFIX}{int(contender_id)}"


def failure_limit() -> int:
    """Consecutive failures after which a source counts as failing."""
    return int(getattr(settings, "ARENA_SOURCE_FAILURE_LIMIT", 3))


def cooldown_s() -> int:
    """Seconds after its last failure that a failing source is left out."""
    return int(getattr(settings, "ARENA_SOURCE_COOLDOWN_S", 300))


def source_failure_record(contender_id: int) -> int:
    """Count one more consecutive failure of the contender's source; return the count now."""
    key, timeout = _key(contender_id), cooldown_s()
    if cache.add(key, 1, timeout=timeout):
        return 1
    try:
        count = cache.incr(key)
    except ValueError:  # the count expired between add and incr: this failure starts a new run
        cache.add(key, 1, timeout=timeout)
        return 1
    if count is None:  # the cache is down (its connection errors are ignored, config/settings.py): count nothing
        return 0
    # incr keeps the first failure's expiry; the cool-down runs from the latest failure instead, so
    # failures a few minutes apart still add up while the source keeps failing.
    cache.touch(key, timeout)
    return int(count)


def source_success_record(contender_id: int) -> None:
    """The contender's source answered: it is healthy again, whatever failed before."""
    cache.delete(_key(contender_id))


def source_failing(contender_ids: Iterable[int]) -> set[int]:
    """The ids among ``contender_ids`` whose source is failing now (one cache round trip)."""
    keys = {_key(i): int(i) for i in contender_ids}
    if not keys:
        return set()
    limit = failure_limit()
    counts = cache.get_many(list(keys))
    return {keys[key] for key, count in counts.items() if int(count) >= limit}
