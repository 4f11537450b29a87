"""Loaded as a pytest plugin (pyproject addopts) so that it runs before Django reads its settings."""
from __future__ import annotations

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
os.environ.setdefault("ARENA_VOTE_ASPECTS", "correctness,helpfulness,style")
os.environ.setdefault("SECURE_COOKIES", "0")  # the browser tests' live server speaks plain HTTP
os.environ.setdefault("LEADERBOARD_RATE_LIMIT", "100000/minute")  # one test sets a low limit itself
