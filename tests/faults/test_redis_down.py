"""Drill: Redis down (issue 11). The cache of the site is a private redis-server, killed mid-test.

Documented behaviour (README, "Running in production"; arena/ratelimit.py): the vote and new-battle rate limits
fail closed -- 503, Retry-After, the JSON error body, nothing written -- and everything else stays up, since the
cache ignores connection errors (config.settings.REDIS_CACHE_OPTIONS). Once Redis is back, votes are accepted
again without a restart. Through the front door: the API, the pages and the vote form.
"""
from __future__ import annotations

import time

import pytest

from arena.models import Battle, Contender, Vote
from config.settings import REDIS_CACHE_OPTIONS
from tests.leaderboard.conftest import vote_many
from tests.support.arena_data import pool_contenders
from tests.support.private_servers import PrivateRedis

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_cache(settings, private_redis: PrivateRedis) -> PrivateRedis:
    """The site's cache on the private server, configured as production configures Redis."""
    settings.CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": private_redis.url(),
                                   "OPTIONS": REDIS_CACHE_OPTIONS}}
    return private_redis


@pytest.fixture
def pool(db) -> list[Contender]:
    """Two contenders with prepared answers: a public battle opens without any model."""
    return pool_contenders(3)


def assert_refused_for_now(response, *, what: str) -> None:
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "5"
    error = response.json()["error"]
    assert error["code"] == "rate_limit_unavailable", error
    assert error["message"].startswith(f"{what} are paused for a moment") and "Try again in 5 s" in error["message"]


def test_with_redis_down_votes_fail_closed_and_the_rest_of_the_site_stays_up(
        redis_cache, client, voter_api, other_api, make_battle, pool):
    vote_many(voter_api, make_battle, [{"outcome": "a"}, {"outcome": "b"}, {"outcome": "tie"}])
    vote_many(other_api, make_battle, [{"outcome": "a"}] * 2, prompt="Another prompt")
    waiting = make_battle(voter_api)
    assert client.get("/api/v1/leaderboard").status_code == 200
    votes, battles = Vote.objects.count(), Battle.objects.count()

    redis_cache.kill()
    started = time.monotonic()
    # Fail closed: a vote is refused, for now, and nothing is written.
    refused = voter_api.post(f"/api/v1/battles/{waiting.id}/vote", {"outcome": "b"}, format="json",
                             HTTP_IDEMPOTENCY_KEY="while-redis-is-down")
    assert_refused_for_now(refused, what="Votes")
    assert Vote.objects.count() == votes and Battle.objects.get(pk=waiting.pk).status == "open"
    # So is a new public battle (it would cost model calls), through the API and through the page's form.
    assert_refused_for_now(voter_api.post("/api/v1/battles", {"k": 2}, format="json"), what="New battles")
    form = client.post("/battles/new", {"k": "2", "action": "sample"})
    assert form.status_code == 503 and form["Retry-After"] == "5"
    assert "New battles are paused for a moment" in form.content.decode()
    assert Battle.objects.count() == battles

    # Everything else answers as usual.
    home = client.get("/")
    assert home.status_code == 200 and "<h1>Model arena</h1>" in home.content.decode()
    page = client.get("/leaderboard")
    assert page.status_code == 200 and "alpha-7b" in page.content.decode()
    board = client.get("/api/v1/leaderboard")
    assert board.status_code == 200 and {r["model"] for r in board.json()["rows"]} == {"alpha-7b", "beta-13b"}
    assert client.get("/api/v1/leaderboard/matrix").status_code == 200
    mine = voter_api.get(f"/api/v1/battles/{waiting.id}")
    assert mine.status_code == 200 and mine.json()["status"] == "open"
    assert [c["name"] for c in client.get("/api/v1/contenders").json()][:2] == ["alpha-7b", "beta-13b"]
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"requests with Redis down took {elapsed:.1f} s"  # refused at once, no timeout waited

    # Redis back (empty, as after a crash without persistence): the same vote goes through, no restart needed.
    redis_cache.start()
    accepted = voter_api.post(f"/api/v1/battles/{waiting.id}/vote", {"outcome": "b"}, format="json",
                              HTTP_IDEMPOTENCY_KEY="while-redis-is-down")
    assert accepted.status_code == 201 and accepted.json()["vote"]["outcome"] == "b"
    assert Vote.objects.count() == votes + 1
    print(f"\nRedis down: 9 requests answered in {elapsed:.2f} s")
