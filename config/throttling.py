"""A per-client request limit for read endpoints that costs one cache round trip, whatever the rate.

DRF's ``ScopedRateThrottle`` keeps, per client, the list of its request times in the window and reads and writes
that whole list on every request: at a raised limit (an operator's 100,000/minute, or a busy proxy's address) each
request moved tens of thousands of timestamps through Redis. Here a client's window is one counter, as the vote
limits in ``arena.ratelimit`` are: fixed windows, so a client may send up to twice the rate across a window's edge.
"""
from __future__ import annotations

import math
from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import ScopedRateThrottle


class FixedWindowScopedThrottle(ScopedRateThrottle):
    """``ScopedRateThrottle``'s scopes, rates (``DEFAULT_THROTTLE_RATES``) and client identity, counted per window.

    When the cache cannot count (Redis down) the request is let through: what this guards is a read, and reads stay
    up without Redis (the vote limits instead fail closed).
    """

    def allow_request(self, request: Request, view: Any) -> bool:
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        start = int(self.now // self.duration) * self.duration
        self.window_end = start + self.duration
        bucket = f"{self.key}:{start}"
        try:
            count = self.cache.incr(bucket)
        except ValueError:  # the first request of this window (or the bucket just expired)
            added = self.cache.add(bucket, 1, self.duration + 1)
            count = None if added is None else 1 if added else self.cache.incr(bucket)
        return count is None or count <= self.num_requests

    def wait(self) -> float:
        return max(1, math.ceil(self.window_end - self.now))
