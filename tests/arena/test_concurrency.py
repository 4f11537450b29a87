"""Many simultaneous votes on one battle: exactly one is stored."""
from __future__ import annotations

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from arena.models import Vote

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_twenty_threads_voting_at_once_store_exactly_one_vote(voter_api, make_battle):
    battle = make_battle(voter_api)
    user = voter_api.user
    start = threading.Barrier(20)
    results: list[tuple[int, dict, str]] = []
    lock = threading.Lock()

    def cast(i: int) -> None:
        client = APIClient()
        client.force_login(user)
        # Half the threads retry one request (same key); the rest are different votes.
        key = "shared-key" if i % 2 == 0 else f"key-{i}"
        outcome = "a" if i % 2 == 0 else "b"
        start.wait()
        try:
            response = client.post(f"/api/v1/battles/{battle.id}/vote", {"outcome": outcome}, format="json",
                                   HTTP_IDEMPOTENCY_KEY=key)
            with lock:
                results.append((response.status_code, response.json(), key))
        finally:
            connection.close()

    threads = [threading.Thread(target=cast, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(results) == 20
    assert Vote.objects.filter(battle=battle).count() == 1
    stored = Vote.objects.get(battle=battle)
    winners = [r for r in results if r[0] == 201]
    assert len(winners) == 1 and winners[0][2] == stored.idempotency_key
    for status, body, key in results:
        if key == stored.idempotency_key:
            assert status in (200, 201) and body == winners[0][1]
        else:
            assert status == 409 and body["error"]["code"] in ("battle_already_voted", "idempotency_key_reused")
