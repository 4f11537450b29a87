"""Loaded as a pytest plugin (pyproject addopts) so that it runs before Django reads its settings."""
from __future__ import annotations

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
os.environ.setdefault("ARENA_VOTE_ASPECTS", "correctness,helpfulness,style")
os.environ.setdefault("SECURE_COOKIES", "0")  # the browser tests' live server speaks plain HTTP
os.environ.setdefault("LEADERBOARD_RATE_LIMIT", "100000/minute")  # one test sets a low limit itself
# Rate limits on battles and votes: high by default, so tests that vote a lot are not throttled;
# the rate-limit tests set low limits themselves.
for _name in ("ARENA_BATTLE_RATE_LIMIT", "ARENA_BATTLE_IP_RATE_LIMIT", "ARENA_VOTE_RATE_LIMIT",
              "ARENA_VOTE_IP_RATE_LIMIT"):
    os.environ.setdefault(_name, "100000/minute")
# Streamed text is released every 10 ms in tests (50 ms in production): the same rules, faster tests.
os.environ.setdefault("ARENA_STREAM_TICK_MS", "10")
# Pooled answers stream at a model-like pace beside live models in production; at once in tests.
os.environ.setdefault("ARENA_POOL_STREAM_CHARS_PER_S", "0")
