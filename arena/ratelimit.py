"""Per-voter and per-address rate limits on opening battles and voting, counted in the shared cache.

Fixed windows counted with ``cache.add`` + ``cache.incr``: both are single atomic commands on Redis,
so concurrent requests on several web processes never lose a count. (On the local-memory cache of
the demo they are atomic within the one process.) A refused request raises ``RateLimited``, which the
API answers with 429, a ``Retry-After`` header and a JSON body, and a page shows as a message.

When the cache cannot count (Redis down or unreachable), the limits fail closed: a vote or a new battle is
refused with ``RateLimitUnavailable`` (503, ``Retry-After``, the same JSON body shape, nothing written) until
Redis answers again, because an uncounted request would be an unlimited one, and votes are what an attacker
wants to send in bulk. The rest of the site does not need the cache to be up (it ignores connection errors, see
``REDIS_CACHE_OPTIONS`` in config/settings.py): pages, battle reads and the leaderboard keep answering.
"""
from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from redis.exceptions import RedisError

from config.errors import ApplicationError

from .identity import client_ip, voter_key_for_request
from .services import address_block, ip_hash

logger = logging.getLogger(__name__)

PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
SCOPES = {  # scope -> (per-voter setting, per-address setting)
    "battle": ("ARENA_BATTLE_RATE_LIMIT", "ARENA_BATTLE_IP_RATE_LIMIT"),
    "vote": ("ARENA_VOTE_RATE_LIMIT", "ARENA_VOTE_IP_RATE_LIMIT"),
}


class RateLimited(ApplicationError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimitUnavailable(RateLimited):
    """The request could not be counted (the cache is down): refused for now, as ``RateLimited`` is, but 503.

    A subclass, so that every place answering ``RateLimited`` with its ``Retry-After`` answers this one too.
    """

    status = 503
    code = "rate_limit_unavailable"


# A Redis restart or fail-over takes seconds; a client that waits this long mostly finds it back.
UNAVAILABLE_RETRY_AFTER_S = 5


def parse_rate(rate: str) -> tuple[int, int]:
    """``"30/minute"`` -> (30, 60)."""
    try:
        count, period = rate.split("/")
        return int(count), PERIODS[period.strip()]
    except (ValueError, KeyError):
        raise ImproperlyConfigured(f"rate {rate!r} is not N/second|minute|hour|day") from None


class _Uncounted(Exception):
    """The cache did not count a request."""


def _hit(key: str, *, limit: int, window: int, now: float) -> int | None:
    """Count one request against ``key``; the seconds until its window ends if over the limit, else None.

    Raises ``_Uncounted`` when the cache did not count it: with django-redis ignoring connection errors, ``add``
    and ``incr`` then return None instead of a bool and a count; without that option they raise RedisError.
    """
    start = int(now // window) * window
    bucket = f"ratelimit:{key}:{window}:{start}"
    try:
        try:  # one round trip in the common case: the window's bucket exists
            count = cache.incr(bucket)
        except ValueError:  # no bucket yet: this request opens the window, unless another one just did
            added = cache.add(bucket, 1, timeout=window + 1)
            count = None if added is None else 1 if added else cache.incr(bucket)
    except RedisError as exc:
        raise _Uncounted from exc
    if count is None:
        raise _Uncounted
    return max(1, int(start + window - now + 0.999)) if count > limit else None


def rate_limit_enforce(request: HttpRequest, *, scope: str) -> None:
    """Count this request in ``scope`` for its voter and its address; raise RateLimited past either limit, and
    RateLimitUnavailable when the cache cannot count it."""
    voter_setting, ip_setting = SCOPES[scope]
    now = time.time()
    checks = [(f"{scope}:voter:{voter_key_for_request(request)}", getattr(settings, voter_setting))]
    if ip := client_ip(request):
        checks.append((f"{scope}:ip:{ip_hash(address_block(ip))}", getattr(settings, ip_setting)))
    what = "new battles" if scope == "battle" else "votes"
    for key, rate in checks:
        limit, window = parse_rate(rate)
        try:
            retry_after = _hit(key, limit=limit, window=window, now=now)
        except _Uncounted:
            logger.warning("rate-limit store unreachable: %s refused (fail closed)", what)
            raise RateLimitUnavailable(
                f"{what.capitalize()} are paused for a moment: the service that counts them against abuse is "
                f"unreachable. Try again in {UNAVAILABLE_RETRY_AFTER_S} s.", retry_after=UNAVAILABLE_RETRY_AFTER_S,
            ) from None
        if retry_after is not None:
            wait = f"{retry_after} s" if retry_after < 120 else f"{-(-retry_after // 60)} minutes"
            raise RateLimited(f"Too many {what}: at most {rate.replace('/', ' per ')}. Try again in {wait}.",
                              retry_after=retry_after)
