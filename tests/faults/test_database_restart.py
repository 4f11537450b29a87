"""Drill: Postgres restarted in the middle of a vote load (issue 11, Faults).

Voter threads open battles and vote through the HTTP API of the site served as in production, retrying a 503 with
the same ``Idempotency-Key`` as a client should. Meanwhile the site's private Postgres is stopped for a while and
started again. While it is down every request must fail cleanly (503, ``Retry-After``, the API's JSON error body;
pages a 503 page; never a 500); once it is back the same web processes must serve again within seconds; and
afterwards the database must hold exactly the votes that got a 2xx: none lost, none twice.

The load runs against web workers without the tasks worker that `make serve` starts beside them; the last test
runs `make serve` as shipped, tasks worker included, through a restart.
"""
from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.faults.conftest import postgres_bin, redis_binary
from tests.support.served_site import CONTENDERS, Answer, ServedSite, site_on_private_servers

OUTCOMES = ("a", "b", "tie", "both_bad")
SEED = 11
VOTERS = 4
OUTAGE_S = 2.0           # how long the database stays down (at least)
RECOVERY_LIMIT_S = 5.0   # from the database accepting connections again to the next accepted vote
RETRY_DEADLINE_S = 30.0  # a client gives up on one request after this long
PAGES = ("/", "/leaderboard")
API_READS = ("/api/v1/leaderboard", "/api/v1/contenders")


@dataclass(frozen=True)
class Accepted:
    battle_id: str
    key: str
    outcome: str
    answer: Answer


class VoteLoad:
    """Voters in threads: open a battle, vote on it, and again until stopped. A 503 (or no answer at all) is sent
    again as it was, the vote with its key, sooner than Retry-After says: the drill measures how soon the site is
    back. Anything else that is not a 2xx makes the voter stop, and the test fail on it."""

    def __init__(self, site: ServedSite, *, voters: int, seed: int, tag: str) -> None:
        self.site = site
        self.tag = tag  # starts every Idempotency-Key of this load: the session's site keeps other drills' votes
        self.answers: list[tuple[str, Answer]] = []  # ("battle" | "vote", answer) of every request sent
        self.accepted: list[Accepted] = []
        self.gave_up: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._voter, args=(n, random.Random(seed * 100 + n)), daemon=True)
                         for n in range(voters)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """No new battles; a vote under way is still retried to its 2xx (or its deadline)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=RETRY_DEADLINE_S + 15)

    def wait(self, condition: Callable[[], bool], *, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, (f"no {what} within {timeout} s: {self.summary()}\n"
                                                 f"{self.site.log_text()[-4000:]}")
            assert not self.gave_up, f"a voter gave up: {self.gave_up}"
            time.sleep(0.05)

    def count(self, status: int, *, after: float = 0.0) -> int:
        with self._lock:
            return sum(1 for _, a in self.answers if a.status == status and a.at > after)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {"accepted": len(self.accepted), "statuses": Counter(a.status for _, a in self.answers)}

    def _send(self, what: str, send: Callable[..., Answer], *args: str) -> Answer | None:
        deadline = time.monotonic() + RETRY_DEADLINE_S
        while True:
            answer = send(*args)
            with self._lock:
                self.answers.append((what, answer))
            if 200 <= answer.status < 300:
                return answer
            if answer.status not in (0, 503) or time.monotonic() > deadline:
                with self._lock:
                    self.gave_up.append(f"{what} {args}: {answer.status} {answer.body[:300]!r} {answer.error}")
                return None
            time.sleep(0.05)

    def _voter(self, n: int, rng: random.Random) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            opened = self._send("battle", self.site.open_battle, f"Drill prompt {n}-{i} ({rng.random():.6f})")
            if opened is None:
                return
            battle_id, key, outcome = opened.json()["id"], f"{self.tag}-{n}-{i}", rng.choice(OUTCOMES)
            voted = self._send("vote", self.site.vote, battle_id, outcome, key)
            if voted is None:
                return
            with self._lock:
                self.accepted.append(Accepted(battle_id, key, outcome, voted))


def assert_unavailable_json(answer: Answer) -> None:
    assert answer.status == 503, answer
    assert int(answer.headers["retry-after"]) >= 1
    assert answer.headers["content-type"].startswith("application/json")
    error = answer.json()["error"]
    assert error["code"] == "service_unavailable" and "Try again in" in error["message"], error


# fast: sessions are cut and the server shuts down cleanly (pg_ctl restart); immediate: it crashes, and replays its
# write-ahead log on the next start.
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_postgres_restart_mid_load_fails_requests_cleanly_and_loses_no_vote(site: ServedSite, mode: str) -> None:
    web_before = site.web_processes()
    load = VoteLoad(site, voters=VOTERS, seed=SEED, tag=f"restart-{mode}")
    load.start()
    try:
        load.wait(lambda: len(load.accepted) >= 20, timeout=30, what="20 votes before the outage")
        down = time.monotonic()
        site.postgres.stop(mode=mode)
        during = {path: site.request("GET", path) for path in PAGES + API_READS}
        load.wait(lambda: load.count(503, after=down) >= 10, timeout=15, what="503s while the database is down")
        time.sleep(max(0.0, down + OUTAGE_S - time.monotonic()))
        site.postgres.start()
        up = time.monotonic()
        load.wait(lambda: any(a.answer.at > up for a in load.accepted), timeout=RECOVERY_LIMIT_S + 10,
                  what="vote accepted after the database came back")
        recovered_s = min(a.answer.at for a in load.accepted if a.answer.at > up) - up
        after = len(load.accepted)
        load.wait(lambda: len(load.accepted) >= after + 20, timeout=30, what="20 more votes after the outage")
    finally:
        load.stop()

    statuses = Counter(a.status for _, a in load.answers)
    unavailable = [a for _, a in load.answers if a.status == 503]
    first_503, last_503 = (min(a.at for a in unavailable) - down, max(a.at for a in unavailable) - down) \
        if unavailable else (float("nan"), float("nan"))
    before = sum(1 for a in load.accepted if a.answer.at < down)
    print(f"\n{mode} stop: database down {up - down:.2f} s; requests {sum(statuses.values())} by status "
          f"{dict(statuses)}; 503 from {first_503:+.2f} s to {last_503:+.2f} s after the stop; first vote accepted "
          f"{recovered_s:.2f} s after the start; votes accepted {len(load.accepted)} ({before} before the outage)")

    # Clean failures only: no 500, no dropped connection, and every 503 says when to retry, in the one error shape.
    assert not load.gave_up, load.gave_up
    assert set(statuses) <= {200, 201, 503}, statuses
    assert len(unavailable) >= 10
    for answer in unavailable:
        assert_unavailable_json(answer)
    for path in API_READS:
        assert_unavailable_json(during[path])
    for path in PAGES:
        page = during[path]
        assert page.status == 503 and int(page.headers["retry-after"]) >= 1, (path, page)
        assert page.headers["content-type"].startswith("text/html")
        assert b"Temporarily unavailable" in page.body and b"Try again in" in page.body

    # Back within seconds, on the same processes: nothing was restarted, and the pages answer again.
    assert recovered_s <= RECOVERY_LIMIT_S, recovered_s
    assert site.web_processes() == web_before
    assert site.serve.poll() is None, site.log_text()
    assert b"<h1>Model arena</h1>" in site.request("GET", "/").body
    assert [c["name"] for c in site.request("GET", "/api/v1/contenders").json()] == list(CONTENDERS)
    board = site.request("GET", "/api/v1/leaderboard")
    assert board.status == 200 and {r["model"] for r in board.json()["rows"]} == set(CONTENDERS[:2]), board
    page = site.request("GET", "/leaderboard")
    assert page.status == 200 and b"alpha-7b" in page.body

    # Every vote that got a 2xx is stored, once, as it was sent; and nothing else is.
    for accepted in load.accepted:
        body = accepted.answer.json()
        assert body["id"] == accepted.battle_id and body["status"] == "voted"
        assert body["vote"]["outcome"] == accepted.outcome
    with psycopg.connect(site.database_url) as conn:
        stored = conn.execute("SELECT battle_id::text, idempotency_key, outcome FROM arena_vote "
                              "WHERE idempotency_key LIKE %s", [f"{load.tag}-%"]).fetchall()
    assert len({battle for battle, _, _ in stored}) == len(stored)  # one vote per battle
    assert sorted(stored) == sorted((a.battle_id, a.key, a.outcome) for a in load.accepted)


def _wait_until_run(site: ServedSite, task_id: str, timeout: float = 30) -> None:
    """Until the tasks worker has started the task (a moderation run on the drill's few votes ends in moments)."""
    deadline = time.monotonic() + timeout
    while True:
        with psycopg.connect(site.database_url) as conn:
            status = conn.execute("SELECT status FROM django_tasks_database_dbtaskresult WHERE id = %s",
                                  [task_id]).fetchone()[0]
        if status != "READY":
            assert status in ("RUNNING", "SUCCESSFUL"), status
            return
        assert time.monotonic() < deadline, f"task {task_id} not started within {timeout} s:\n{site.log_text()[-1500:]}"
        time.sleep(0.5)


def test_make_serve_with_its_tasks_worker_stays_up_through_a_postgres_restart() -> None:
    """Through a Postgres restart make serve keeps serving and its tasks worker keeps running tasks: db_worker may
    wait the outage out on its pool (up to DB_POOL_TIMEOUT_S) or exit on it; a worker that exits (killed here) is
    started again by config.serve, which keeps serving meanwhile."""
    with site_on_private_servers(postgres_bin(), redis_binary(), tasks_worker=True) as site:
        battle = site.open_battle("Before the restart").json()["id"]
        worker = site.tasks_pid
        site.postgres.stop(mode="fast")
        time.sleep(OUTAGE_S)  # db_worker polls every second: it meets the outage
        site.postgres.start()
        time.sleep(2)
        assert site.serve.poll() is None, f"config.serve stopped:\n{site.log_text()[-2000:]}"
        voted = site.vote(battle, "a", "after-the-restart")
        assert voted.status == 201, voted
        _wait_until_run(site, site.enqueue_moderation_run())
        # The worker either waited the outage out or exited on it and was started again (which one depends on
        # where its loop was when Postgres stopped); either way the tasks run.
        if site.tasks_pid != worker:
            assert "restarting it in 1 s" in site.log_text(), site.log_text()[-2000:]

        worker = site.tasks_pid
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 15  # the first restart comes 1 s after the exit
        while site.tasks_pid == worker and time.monotonic() < deadline:
            time.sleep(0.5)
        log = site.log_text()
        assert "serve: tasks exited with status" in log and "restarting it in 1 s" in log, log[-2000:]
        assert site.serve.poll() is None, f"config.serve stopped:\n{log[-2000:]}"
        assert site.tasks_pid != worker
        battle = site.open_battle("After the worker's restart").json()["id"]
        assert site.vote(battle, "b", "after-the-worker-restart").status == 201
        _wait_until_run(site, site.enqueue_moderation_run())
