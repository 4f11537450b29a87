"""Drill: a client retries a vote with the same Idempotency-Key after its first request timed out (issue 11).

Over real HTTP against the site served as in production. The first request is held inside the vote service (the
test holds the battle's row lock, so the request waits where a slow database would make it wait); the client
times out and gives up; the request then completes and stores the vote, its answer lost. The retry with the same
key must get that vote back, and the database must hold it once. Also: duplicates sent at the same moment, and a
retry sent while the first request is still waiting.

In-process, tests/arena/test_vote_api.py::test_a_retry_with_the_same_key_returns_the_stored_vote covers a retry
after a completed request, and
tests/arena/test_concurrency.py::test_twenty_threads_voting_at_once_store_exactly_one_vote twenty simultaneous
requests (half with one key).
"""
from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from collections.abc import Iterator

import psycopg

from tests.support.served_site import Answer, ServedSite

CLIENT_TIMEOUT_S = 1.0


@contextlib.contextmanager
def battle_locked(site: ServedSite, battle_id: str) -> Iterator[None]:
    """Hold the battle's row lock (as a long transaction would) until the block ends."""
    with psycopg.connect(site.database_url) as conn:
        conn.execute("SELECT 1 FROM arena_battle WHERE id = %s FOR UPDATE", [battle_id])
        yield
        conn.commit()


def wait_for_lock_waiters(site: ServedSite, n: int, timeout: float = 10) -> None:
    """Until ``n`` sessions of the site wait on a lock: the requests have reached the vote service."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(site.database_url, autocommit=True) as conn:
        while True:
            (waiting,) = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                      "AND datname = current_database()").fetchone()  # type: ignore[misc]
            if waiting >= n:
                return
            assert time.monotonic() < deadline, f"{waiting} request(s) waiting on the lock, not {n}"
            time.sleep(0.02)


def stored_votes(site: ServedSite, battle_id: str) -> list[tuple[str, str]]:
    with psycopg.connect(site.database_url) as conn:
        return conn.execute("SELECT idempotency_key, outcome FROM arena_vote WHERE battle_id = %s",
                            [battle_id]).fetchall()


def wait_for_vote(site: ServedSite, battle_id: str, timeout: float = 10) -> list[tuple[str, str]]:
    deadline = time.monotonic() + timeout
    while not (votes := stored_votes(site, battle_id)):
        assert time.monotonic() < deadline, "the abandoned request never stored its vote"
        time.sleep(0.05)
    return votes


def send_and_give_up(site: ServedSite, battle_id: str, outcome: str, key: str) -> http.client.HTTPConnection:
    """Send the vote; the caller later waits CLIENT_TIMEOUT_S for the answer, gives up and closes the connection."""
    conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=CLIENT_TIMEOUT_S)
    conn.request("POST", f"/api/v1/battles/{battle_id}/vote", body=json.dumps({"outcome": outcome}),
                 headers={"Host": "127.0.0.1", "Content-Type": "application/json", "Idempotency-Key": key,
                          "Authorization": f"Token {site.token}"})
    return conn


def assert_timed_out(conn: http.client.HTTPConnection) -> None:
    try:
        response = conn.getresponse()
    except TimeoutError:
        return
    finally:
        conn.close()
    raise AssertionError(f"the held request answered {response.status} instead of timing out")


def test_a_retry_after_a_client_timeout_gets_the_vote_the_lost_answer_stored(site: ServedSite) -> None:
    battle_id = site.open_battle("Retry after a timeout").json()["id"]
    with battle_locked(site, battle_id):
        first = send_and_give_up(site, battle_id, "b", "retry-timeout")
        wait_for_lock_waiters(site, 1)
        assert_timed_out(first)
    # The abandoned request goes on once the lock is free: its vote is stored, its answer lost with the client.
    assert wait_for_vote(site, battle_id) == [("retry-timeout", "b")]

    retried = site.vote(battle_id, "b", "retry-timeout")
    assert retried.status == 200  # a replay: 201 would mean a second vote was made
    body = retried.json()
    assert body["id"] == battle_id and body["status"] == "voted" and body["vote"]["outcome"] == "b"
    assert stored_votes(site, battle_id) == [("retry-timeout", "b")]
    # The same key with another verdict is not a retry: refused, and the stored vote stands.
    changed = site.vote(battle_id, "a", "retry-timeout")
    assert changed.status == 409 and changed.json()["error"]["code"] == "idempotency_key_reused"
    assert stored_votes(site, battle_id) == [("retry-timeout", "b")]


def test_a_retry_sent_while_the_first_request_still_waits_gets_the_same_single_vote(site: ServedSite) -> None:
    battle_id = site.open_battle("Retry while the first waits").json()["id"]
    answers: list[Answer] = []
    with battle_locked(site, battle_id):
        first = send_and_give_up(site, battle_id, "tie", "retry-overlap")
        wait_for_lock_waiters(site, 1)
        assert_timed_out(first)
        # The client retries at once, while its first request is still inside the service.
        retry = threading.Thread(target=lambda: answers.append(site.vote(battle_id, "tie", "retry-overlap")))
        retry.start()
        time.sleep(0.3)
    retry.join(timeout=30)
    (answer,) = answers
    assert answer.status in (200, 201), answer
    assert answer.json()["status"] == "voted" and answer.json()["vote"]["outcome"] == "tie"
    assert wait_for_vote(site, battle_id) == [("retry-overlap", "tie")]


def test_duplicates_sent_at_the_same_moment_store_one_vote_and_all_get_it(site: ServedSite) -> None:
    battle_id = site.open_battle("Simultaneous duplicates").json()["id"]
    start, answers = threading.Barrier(8), []
    lock = threading.Lock()

    def send() -> None:
        start.wait()
        answer = site.vote(battle_id, "a", "retry-duplicates", timeout=30)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(a.status for a in answers) == [200] * 7 + [201]
    votes = {json.dumps(a.json()["vote"], sort_keys=True) for a in answers}
    assert len(votes) == 1  # every duplicate got the one stored vote, the same creation time included
    assert stored_votes(site, battle_id) == [("retry-duplicates", "a")]
