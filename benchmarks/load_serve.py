"""Load on the production server (`make serve`) over loopback: votes/s, latency percentiles, errors, and a check
that the database holds exactly the votes that were acknowledged.

    .venv/bin/python benchmarks/load_serve.py [--clients 50] [--votes 10000] [--seconds 120]
        [--leaderboard-rps 20 50 500] [--leaderboard-seconds 10] [--seed 0] [--workers N]
        [--env DB_CONN_MAX_AGE=0 ...] [--json FILE]
    .venv/bin/python benchmarks/load_serve.py --profile 300      # no server: where one request spends its time

What it does, in order:

1. Drops and creates the Postgres database ``--database`` (default ``arena_load``), migrates it and loads the demo
   arena (``manage.py seed_demo``: four contenders answering 24 prompts from the pre-generated pool, and the 2,060
   GenAI-Arena votes; DEBUG is off, so no admin user). Every contender answers from the pool, so no battle calls a
   model over the network; the script checks that no active contender has a live source. Redis database 6
   (``--redis``) is flushed.
2. Starts ``python -m config.serve --bind 127.0.0.1:PORT`` (what ``make serve`` runs: gunicorn with uvicorn workers,
   2 x CPUs + 1 of them unless ``--workers``, WhiteNoise, and ``manage.py db_worker`` beside it) in its own process
   group, with an environment built from scratch: DEBUG=0, a random 64-character SECRET_KEY, DATABASE_URL,
   REDIS_URL, ALLOWED_HOSTS=127.0.0.1,localhost, STATIC_ROOT in a temporary folder (the checkout is not written),
   and the per-address limits raised (ARENA_BATTLE_IP_RATE_LIMIT, ARENA_VOTE_IP_RATE_LIMIT, LEADERBOARD_RATE_LIMIT:
   all load comes from 127.0.0.1). The per-voter limits keep their defaults (20 battles, 30 votes a minute): the
   load is spread over many voters instead, each simulated voter getting a fresh anonymous identity (its own
   signed ``arena_voter`` cookie, set by the server on its first battle, and its own CSRF cookie + X-CSRFToken
   header, as a browser sends them) every ``--battles-per-voter`` battles.
   HTTPS: with DEBUG off the site redirects plain HTTP to HTTPS (SECURE_SSL_REDIRECT) and sets Secure cookies.
   By default the script plays the TLS-terminating proxy of README "Running in production": the server gets
   TRUST_X_FORWARDED_PROTO=1 and every request carries ``X-Forwarded-Proto: https`` (and, on writes, an
   ``Origin: https://127.0.0.1:PORT`` for Django's HTTPS CSRF check), so the production HTTPS settings stay on.
   ``--plain-http`` instead serves plain HTTP with SECURE_COOKIES=0 (no redirect, no HSTS, no Secure cookies).
3. Vote phase (closed loop): ``--clients`` concurrent voters, each repeating: POST /api/v1/battles {k: 2}, GET the
   battle, POST /api/v1/battles/<id>/vote with a unique Idempotency-Key (a vote whose request fails in transport
   or times out is retried once with the same key, as a real client would) until ``--votes`` votes were accepted
   or ``--seconds`` passed. ``--warmup`` rounds first (counted in the database check, not in the figures).
   Read phase (open loop): after the task queue has drained and ``manage.py refit_leaderboard`` has stored a fresh
   snapshot, GET /api/v1/leaderboard at each ``--leaderboard-rps`` for ``--leaderboard-seconds``; each request is
   scheduled at a fixed time and its latency counted from that time (no coordinated omission); one not answered
   within ``--leaderboard-timeout`` of it fails and counts as infinite in the percentiles. Rates run lowest first,
   each after the server is idle again (an overloaded phase leaves the workers requests whose clients gave up).
4. Prints accepted votes/s, p50/p95/p99 of each request kind, errors by status, leaderboard achieved rps and
   percentiles, CPU milliseconds per vote / per read (load generator, web workers, tasks worker, Postgres — the
   whole cluster, so other databases' work on a shared machine too —, Redis, the whole machine), the peak number
   of Postgres backends on the database and the sessions opened per request, and the load averages. After the
   server stopped it compares the votes in the database with the acknowledged ones (by battle id and
   Idempotency-Key; the response carries no vote id, and a battle holds at most one vote): exit status 1 if one
   is lost or duplicated, if any response was a 5xx, or if the server exited during the run.
5. Stops the server (SIGTERM to its process group; serve stops gunicorn and the worker gracefully) in ``finally``.

``--env NAME=VALUE`` adds to the server's environment, e.g. ``--env DB_CONN_MAX_AGE=0``: under ASGI each request
runs in a fresh thread, so the default persistent connections (60 s) are not reused but pile up to Postgres's
max_connections.

The load generator is a small HTTP/1.1 keep-alive client on asyncio streams (uvloop when installed): httpx is not in
requirements.txt, and on a 2-core machine the generator's own CPU time comes out of the server's. The client side is
seeded (``--seed``: outcomes, keys, identities); the server's own draws (matchmaking, slot order) are not.

``--profile N`` starts no server: it sets up the database the same way, then runs N battle rounds (create, read,
vote, and a leaderboard read) through Django's full middleware stack in this process (django.test.Client, CSRF
enforced), and prints per request kind the median wall time split into SQL (statements and their time, timed
around the driver), Redis and Python; then it runs them again under cProfile and prints the top functions.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUTCOMES = ("a", "b", "tie", "both_bad")
HIGH_RATE = "1000000/minute"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------------- set-up


def database_recreate(pg: str, database: str) -> None:
    import psycopg

    if not re.fullmatch(r"arena_load\w*", database):
        raise SystemExit(f"--database must start with arena_load (got {database!r})")
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {database}")


def redis_flush(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def server_env(args: argparse.Namespace, static_root: str) -> dict[str, str]:
    """The production environment, from scratch: nothing of this shell's (a DEBUG=1 there) leaks in."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "LANG": os.environ.get("LANG", "C.UTF-8"), "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "0",
           "SECRET_KEY": secrets.token_urlsafe(48),  # 64 characters
           "DATABASE_URL": f"{args.pg}/{args.database}", "REDIS_URL": args.redis,
           "ALLOWED_HOSTS": "127.0.0.1,localhost", "STATIC_ROOT": static_root,
           "ARENA_BATTLE_IP_RATE_LIMIT": HIGH_RATE, "ARENA_VOTE_IP_RATE_LIMIT": HIGH_RATE,
           "LEADERBOARD_RATE_LIMIT": HIGH_RATE}
    if args.plain_http:
        env["SECURE_COOKIES"] = "0"
    else:
        env["TRUST_X_FORWARDED_PROTO"] = "1"
    return env


def manage(env: dict[str, str], *argv: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *argv], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout.strip()


def arena_prepare(args: argparse.Namespace, env: dict[str, str]) -> None:
    started = time.perf_counter()
    database_recreate(args.pg, args.database)
    manage(env, "migrate", "--noinput", "-v0")
    print(f"setup: {manage(env, 'seed_demo')}", flush=True)
    live = sql_one(args, "SELECT count(*) FROM arena_contender WHERE active AND source_kind NOT IN ('pool', 'none')")
    if live:
        raise SystemExit(f"setup: {live} active contender(s) with a live source: battles would call models")
    redis_flush(args.redis)
    print(f"setup: database {args.database} ready, redis {args.redis} flushed "
          f"({time.perf_counter() - started:.1f} s)", flush=True)


def sql_rows(args: argparse.Namespace, query: str, params: tuple[Any, ...] = (), *,
             database: str | None = None) -> list[tuple[Any, ...]]:
    """Rows of one query; retried for 30 s while Postgres refuses connections (all slots taken)."""
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(f"{args.pg}/{database or args.database}") as conn:
                return list(conn.execute(query, params).fetchall())
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def sql_one(args: argparse.Namespace, query: str, params: tuple[Any, ...] = ()) -> Any:
    return sql_rows(args, query, params)[0][0]


# ---------------------------------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    log: Path
    port: int

    def alive(self) -> bool:
        return self.proc.poll() is None

    def children(self) -> dict[str, int]:
        """serve's two children (each the leader of its own process group): {'web': pid, 'tasks': pid}."""
        found = {}
        for pid, (ppid, *_rest) in proc_stats():
            if ppid == self.proc.pid:
                cmd = proc_cmdline(pid)
                found["web" if "gunicorn" in cmd else "tasks" if "db_worker" in cmd else f"other:{pid}"] = pid
        return found


def server_start(args: argparse.Namespace, env: dict[str, str], port: int) -> Server:
    log = Path(tempfile.gettempdir()) / f"{args.database}_serve_{port}.log"
    argv = [sys.executable, "-m", "config.serve", "--bind", f"127.0.0.1:{port}"]
    if args.workers is not None:
        argv += ["--workers", str(args.workers)]
    if args.no_access_log:
        argv.append("--no-access-log")
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    print(f"server: {' '.join(argv[1:])} (pid {proc.pid}, log {log})", flush=True)
    return Server(proc=proc, log=log, port=port)


def server_stop(server: Server) -> None:
    """SIGTERM to serve's process group (serve then stops gunicorn and db_worker gracefully); SIGKILL after 60 s."""
    groups = list(server.children().values())
    if server.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.proc.pid, signal.SIGTERM)
        try:
            server.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait()
    for pgid in groups:  # serve kills its children when it is killed itself; this only sweeps what is left
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    print(f"server: stopped (serve exit status {server.proc.returncode})", flush=True)


async def server_wait_ready(server: Server, headers: dict[str, str], timeout: float) -> None:
    await wait_answering(server.proc, server.log, server.port, "/api/v1/contenders", headers, 200, timeout)


async def wait_answering(proc: subprocess.Popen[bytes], log: Path, port: int, path: str, headers: dict[str, str],
                         status: int, timeout: float) -> None:
    """Poll ``GET path`` until it answers ``status``; exit with the server's log if it dies or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with status {proc.returncode}:\n{log_tail(log)}")
        conn = Connection("127.0.0.1", port, timeout=5)
        try:
            if (await conn.request("GET", path, headers)).status == status:
                return
        except (TimeoutError, OSError, ConnectionError):
            pass
        finally:
            conn.close()
        await asyncio.sleep(0.5)
    raise SystemExit(f"server not ready after {timeout:.0f} s:\n{log_tail(log)}")


def log_tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# ---------------------------------------------------------------------------------------------------- CPU


def proc_stats() -> Iterator[tuple[int, tuple[int, int, int, int]]]:
    """(pid, (ppid, pgrp, utime + stime, cutime + cstime)) of every process readable now, in clock ticks."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        rest = [int(x) for x in raw[raw.rindex(")") + 4:].split()[:15]]  # from ppid on (state skipped)
        yield int(entry.name), (rest[0], rest[1], rest[10] + rest[11], rest[12] + rest[13])


def proc_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def proc_comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def postmaster_pid(args: argparse.Namespace) -> int:
    """The Postgres server process: the parent of a backend of ours."""
    import psycopg

    with psycopg.connect(f"{args.pg}/{args.database}") as conn:
        raw = Path(f"/proc/{conn.info.backend_pid}/stat").read_text()
        return int(raw[raw.rindex(")") + 2:].split()[1])


def cpu_sample(server: Server, postmaster: int) -> dict[str, float]:
    """CPU seconds used so far, by part: web workers, tasks worker, Postgres (every backend, for every database,
    ended ones included through the postmaster's children time), Redis, this process (the load generator), and
    the whole machine's busy time (from /proc/stat)."""
    groups = {pgid: name for name, pgid in server.children().items()}
    out: Counter[str] = Counter()
    for pid, (ppid, pgrp, ticks, child_ticks) in proc_stats():
        if pgrp in groups:
            out[groups[pgrp]] += ticks
        elif pid == server.proc.pid:
            out["serve"] += ticks
        elif pid == postmaster:
            out["postgres"] += ticks + child_ticks
        elif ppid == postmaster:
            out["postgres"] += ticks
        elif proc_comm(pid) == "redis-server":
            out["redis"] += ticks
    sample = {k: v / CLK_TCK for k, v in out.items()}
    usage = os.times()
    sample["loadgen"] = usage.user + usage.system
    fields_ = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields_[3] + fields_[4]  # idle + iowait
    sample["machine"] = (sum(fields_[:8]) - idle) / CLK_TCK
    return sample


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in sorted(set(before) | set(after))}


class PostgresWatch:
    """Backends connected to the database (sampled every 0.5 s, peak kept) and sessions opened (pg_stat_database)."""

    def __init__(self, args: argparse.Namespace) -> None:
        import psycopg

        self.database = args.database
        self.conn = psycopg.connect(f"{args.pg}/postgres", autocommit=True)  # not counted: another database
        self.peak = 0
        self.running = False
        self.thread: threading.Thread | None = None

    def backends(self) -> int:
        row = self.conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.database,)).fetchone()
        return int(row[0]) if row else 0

    def sessions(self) -> int:
        self.conn.execute("SELECT pg_stat_clear_snapshot()")
        row = self.conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (self.database,)).fetchone()
        return int(row[0]) if row else 0

    def start(self) -> None:
        self.peak, self.running = 0, True

        def loop() -> None:
            while self.running:
                self.peak = max(self.peak, self.backends())
                time.sleep(0.5)

        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()

    def stop(self) -> int:
        self.running = False
        if self.thread is not None:
            self.thread.join()
        return self.peak

    def close(self) -> None:
        self.conn.close()


# ---------------------------------------------------------------------------------------------------- HTTP


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """One HTTP/1.1 keep-alive connection; reconnects after a close. Content-Length and chunked bodies."""

    def __init__(self, host: str, port: int, *, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> Reply:
        try:
            return await asyncio.wait_for(self._exchange(method, path, headers, body), self.timeout)
        except BaseException:
            self.close()
            raise

    async def _exchange(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                 *(f"{k}: {v}" for k, v in headers.items())]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed before a response")
        status = int(status_line.split(b" ", 2)[1])
        reply_headers = []
        while (line := await self.reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            reply_headers.append((name.strip().lower(), value.strip()))
        reply = Reply(status, reply_headers, b"")
        if "chunked" in ",".join(reply.header("transfer-encoding")).lower():
            parts = []
            while size := int((await self.reader.readline()).split(b";")[0], 16):
                parts.append(await self.reader.readexactly(size))
                await self.reader.readline()
            while (await self.reader.readline()) not in (b"\r\n", b"\n", b""):  # trailers
                pass
            reply.body = b"".join(parts)
        elif length := reply.header("content-length"):
            reply.body = await self.reader.readexactly(int(length[0]))
        elif status not in (204, 304) and method != "HEAD":
            reply.body = await self.reader.read()
            self.close()
        if "close" in ",".join(reply.header("connection")).lower():
            self.close()
        return reply


# ---------------------------------------------------------------------------------------------------- vote phase


@dataclass
class Identity:
    """One anonymous visitor: a CSRF cookie of its own, and the voter cookie the server gives it."""

    csrf: str
    voter_cookie: str = ""
    battles: int = 0

    @classmethod
    def new(cls, rng: random.Random) -> Identity:
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        return cls(csrf="".join(rng.choice(alphabet) for _ in range(32)))

    def headers(self, base: dict[str, str], *, write: bool) -> dict[str, str]:
        cookies = f"csrftoken={self.csrf}" + (f"; arena_voter={self.voter_cookie}" if self.voter_cookie else "")
        extra = {"Cookie": cookies}
        if write:
            extra |= {"X-CSRFToken": self.csrf, "Content-Type": "application/json"}
        return base | extra

    def remember(self, reply: Reply) -> None:
        for value in reply.header("set-cookie"):
            name, _, rest = value.partition("=")
            if name.strip() == "arena_voter":
                self.voter_cookie = rest.split(";", 1)[0]


@dataclass
class VotePhase:
    target: int
    deadline: float
    record: bool
    alive: Callable[[], bool]
    reserved: int = 0
    accepted: int = 0
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"create": [], "read": [], "vote": []})
    errors: Counter[str] = field(default_factory=Counter)
    started: float = 0.0
    ended: float = 0.0

    def reserve(self) -> bool:
        if self.reserved >= self.target or time.monotonic() >= self.deadline or not self.alive():
            return False
        self.reserved += 1
        return True


@dataclass
class Run:
    base_headers: dict[str, str]
    write_headers: dict[str, str]
    timeout: float
    battles_per_voter: int
    acked: dict[str, str] = field(default_factory=dict)  # battle id -> Idempotency-Key of its acknowledged vote
    acked_twice: int = 0
    retries: int = 0
    statuses: Counter[str] = field(default_factory=Counter)


async def timed(phase: VotePhase, kind: str, conn: Connection, method: str, path: str, headers: dict[str, str],
                body: bytes = b"") -> Reply | None:
    started = time.perf_counter()
    try:
        reply = await conn.request(method, path, headers, body)
    except TimeoutError:
        phase.errors[f"{kind} timeout"] += 1
        return None
    except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
        phase.errors[f"{kind} {type(exc).__name__}"] += 1
        return None
    if phase.record:
        phase.latencies[kind].append(time.perf_counter() - started)
    if not 200 <= reply.status < 300:
        phase.errors[f"{kind} {reply.status}"] += 1
    return reply


async def battle_round(run: Run, phase: VotePhase, conn: Connection, who: Identity, rng: random.Random,
                       client: int, n: int) -> bool:
    """One visitor round: open a battle, read it, vote. True if the vote was accepted."""
    who.battles += 1
    reply = await timed(phase, "create", conn, "POST", "/api/v1/battles", who.headers(run.write_headers, write=True),
                        b'{"k": 2}')
    if reply is None or reply.status != 201:
        if reply is not None and reply.status == 429:
            who.battles = run.battles_per_voter  # take a new identity
        return False
    who.remember(reply)
    battle = reply.json()
    path = f"/api/v1/battles/{battle['id']}"
    reply = await timed(phase, "read", conn, "GET", path, who.headers(run.base_headers, write=False))
    if reply is None or reply.status != 200:
        return False
    if reply.json().get("generation") != "done":
        phase.errors["read generation-not-done"] += 1
        return False
    key = f"load-{client}-{n}-{rng.getrandbits(64):016x}"
    body = json.dumps({"outcome": rng.choice(OUTCOMES)}).encode()
    headers = who.headers(run.write_headers, write=True) | {"Idempotency-Key": key}
    for attempt in range(2):  # a vote lost in transport is sent again with the same key: the server keeps one
        reply = await timed(phase, "vote", conn, "POST", f"{path}/vote", headers, body)
        if reply is not None:
            break
        run.retries += attempt == 0
    if reply is None or reply.status not in (200, 201):
        return False
    run.statuses[str(reply.status)] += 1
    voted = reply.json()
    if voted.get("id") != battle["id"] or voted.get("vote") is None:
        phase.errors["vote body-mismatch"] += 1
        return False
    if battle["id"] in run.acked:
        run.acked_twice += 1
    run.acked[battle["id"]] = key
    return True


async def voter_loop(run: Run, phase: VotePhase, client: int, port: int, rng: random.Random) -> None:
    conn = Connection("127.0.0.1", port, timeout=run.timeout)
    who = Identity.new(rng)
    n = 0
    try:
        while phase.reserve():
            if who.battles >= run.battles_per_voter:
                who = Identity.new(rng)
            n += 1
            ok = False
            try:
                ok = await battle_round(run, phase, conn, who, rng, client, n)
            finally:
                if ok:
                    phase.accepted += 1
                else:
                    phase.reserved -= 1
    finally:
        conn.close()


async def vote_phase(run: Run, *, clients: int, target: int, seconds: float, port: int, record: bool,
                     rngs: list[random.Random], alive: Callable[[], bool]) -> VotePhase:
    phase = VotePhase(target=target, deadline=time.monotonic() + seconds, record=record, alive=alive)
    phase.started = time.perf_counter()
    await asyncio.gather(*(voter_loop(run, phase, c, port, rngs[c]) for c in range(clients)))
    phase.ended = time.perf_counter()
    return phase


# ---------------------------------------------------------------------------------------------------- read phase


@dataclass
class ReadPhase:
    latencies: list[float] = field(default_factory=list)  # every scheduled request; inf: failed or not answered
    errors: Counter[str] = field(default_factory=Counter)
    ok: int = 0
    sent: int = 0
    started: float = 0.0
    last_done: float = 0.0
    lag_max: float = 0.0


async def leaderboard_phase(*, port: int, headers: dict[str, str], rps: float, seconds: float, connections: int,
                            timeout: float) -> ReadPhase:
    """Open loop: request i is due at start + i / rps; its latency runs from then, queueing included.

    A request not answered within ``timeout`` of its due time (waiting for a free connection included) counts as
    failed, with an infinite latency in the percentiles: the phase ends at most ``timeout`` after the last one.
    """
    phase = ReadPhase()
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(Connection("127.0.0.1", port, timeout=timeout))
    total = int(rps * seconds)
    tasks = set()

    async def one(due: float) -> None:
        conn = await pool.get()
        latency = float("inf")
        try:
            if (left := due + timeout - time.perf_counter()) <= 0:
                phase.errors["expired waiting for a connection"] += 1
                return
            conn.timeout = left
            reply = await conn.request("GET", "/api/v1/leaderboard", headers)
            if reply.status == 200:
                done = time.perf_counter()
                latency = done - due
                phase.ok += 1
                phase.last_done = max(phase.last_done, done)
            else:
                phase.errors[str(reply.status)] += 1
        except TimeoutError:
            phase.errors["timeout"] += 1
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            phase.errors[type(exc).__name__] += 1
        finally:
            phase.latencies.append(latency)
            pool.put_nowait(conn)

    phase.started = start = time.perf_counter()
    for i in range(total):
        due = start + i / rps
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        else:
            phase.lag_max = max(phase.lag_max, -wait)
        task = asyncio.create_task(one(due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        phase.sent += 1
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait().close()
    return phase


async def leaderboard_warmup(port: int, headers: dict[str, str], n: int) -> None:
    conns = [Connection("127.0.0.1", port, timeout=30) for _ in range(8)]
    try:
        for _ in range(max(1, n // len(conns))):
            await asyncio.gather(*(c.request("GET", "/api/v1/leaderboard", headers) for c in conns),
                                 return_exceptions=True)
    finally:
        for c in conns:
            c.close()


async def server_wait_idle(port: int, headers: dict[str, str], *, timeout: float) -> None:
    """Until three leaderboard reads in a row take under 100 ms each: the previous phase's backlog is worked off."""
    conn = Connection("127.0.0.1", port, timeout=timeout)
    deadline, fast = time.monotonic() + timeout, 0
    try:
        while fast < 3 and time.monotonic() < deadline:
            started = time.perf_counter()
            with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError):
                await conn.request("GET", "/api/v1/leaderboard", headers)
            fast = fast + 1 if time.perf_counter() - started < 0.1 else 0
            await asyncio.sleep(0.2)
    finally:
        conn.close()


def tasks_wait_idle(args: argparse.Namespace, timeout: float) -> int:
    """Wait until the tasks worker has no task due (a refit or a moderation run queued by the votes)."""
    deadline = time.monotonic() + timeout
    query = ("SELECT count(*) FROM django_tasks_database_dbtaskresult WHERE status IN ('READY', 'RUNNING') "
             "AND (run_after <= now() OR run_after > now() + interval '100 years')")  # no run_after: the max date
    while (pending := sql_one(args, query)) and time.monotonic() < deadline:
        time.sleep(1)
    return int(pending)


# ---------------------------------------------------------------------------------------------------- report


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile, in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[max(0, min(len(ordered) - 1, int(-(-len(ordered) * p // 100)) - 1))]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": pct(values, 50), "p95_ms": pct(values, 95), "p99_ms": pct(values, 99),
            "max_ms": pct(values, 100), "mean_ms": 1000 * statistics.fmean(values) if values else float("nan")}


def line(name: str, s: dict[str, float]) -> str:
    return (f"  {name:<12} n={s['n']:<6} p50 {s['p50_ms']:7.1f} ms  p95 {s['p95_ms']:7.1f} ms  "
            f"p99 {s['p99_ms']:7.1f} ms  max {s['max_ms']:7.1f} ms")


def database_check(args: argparse.Namespace, run: Run, baseline_vote_id: int) -> dict[str, int]:
    rows = sql_rows(args, "SELECT battle_id::text, idempotency_key FROM arena_vote WHERE id > %s",
                    (baseline_vote_id,))
    stored = Counter(battle for battle, _ in rows)
    keys = Counter(key for _, key in rows)
    stored_pairs = {(b, k) for b, k in rows}
    acked_pairs = set(run.acked.items())
    return {
        "acknowledged": len(acked_pairs),
        "in_database": len(rows),
        "lost": len(acked_pairs - stored_pairs),
        "duplicated": sum(n - 1 for n in stored.values() if n > 1) + sum(n - 1 for n in keys.values() if n > 1)
        + run.acked_twice,
        "unacknowledged_in_database": len(stored_pairs - acked_pairs),
    }


# ---------------------------------------------------------------------------------------------------- main


@dataclass
class Outcome:
    run: Run
    baseline_vote_id: int
    result: dict[str, Any]


def per_unit(cpu: dict[str, float], n: int, elapsed: float) -> str:
    parts = ", ".join(f"{k} {1000 * v / max(1, n):.2f}" for k, v in cpu.items() if k != "machine")
    machine = cpu.get("machine", 0.0)
    return (f"{parts}; whole machine {1000 * machine / max(1, n):.2f} "
            f"(busy {100 * machine / elapsed / (os.cpu_count() or 1):.0f} % of {os.cpu_count()} CPUs)")


async def load(args: argparse.Namespace, server: Server, env: dict[str, str], outcome: Outcome) -> None:
    base = {"Accept": "application/json"}
    if not args.plain_http:
        base["X-Forwarded-Proto"] = "https"
    write = base | ({} if args.plain_http else {"Origin": f"https://127.0.0.1:{server.port}"})
    await server_wait_ready(server, base, args.startup_timeout)
    await asyncio.sleep(args.settle)  # every worker booted
    children = server.children()
    workers = sum(1 for _pid, (ppid, *_ticks) in proc_stats() if ppid == children.get("web"))
    print(f"server: ready on 127.0.0.1:{server.port}: {workers} web worker(s) under gunicorn pid "
          f"{children.get('web')}, tasks worker pid {children.get('tasks')}", flush=True)

    outcome.baseline_vote_id = int(sql_one(args, "SELECT coalesce(max(id), 0) FROM arena_vote"))
    postmaster = postmaster_pid(args)
    run = outcome.run
    run.base_headers, run.write_headers = base, write
    result = outcome.result
    rngs = [random.Random(f"{args.seed}:{c}") for c in range(args.clients)]
    if args.warmup:
        warm = await vote_phase(run, clients=args.clients, target=args.warmup * args.clients, seconds=60,
                                port=server.port, record=False, rngs=rngs, alive=server.alive)
        print(f"warm-up: {warm.accepted} votes, errors {dict(warm.errors) or 'none'}", flush=True)

    watch = PostgresWatch(args)
    try:
        load_before, cpu_before, sessions_before = os.getloadavg(), cpu_sample(server, postmaster), watch.sessions()
        watch.start()
        phase = await vote_phase(run, clients=args.clients, target=args.votes, seconds=args.seconds,
                                 port=server.port, record=True, rngs=rngs, alive=server.alive)
        peak = watch.stop()
        cpu = cpu_delta(cpu_before, cpu_sample(server, postmaster))
        load_after = os.getloadavg()
        await asyncio.sleep(1)  # backends report their sessions to the statistics with a delay
        sessions = watch.sessions() - sessions_before
        elapsed = phase.ended - phase.started
        rate = phase.accepted / elapsed if elapsed else 0.0
        result.update({
            "clients": args.clients, "workers": workers, "votes_target": args.votes, "seconds_limit": args.seconds,
            "accepted": phase.accepted, "elapsed_s": elapsed, "votes_per_s": rate,
            "latency": {k: summary(v) for k, v in phase.latencies.items()},
            "errors": dict(phase.errors), "vote_retries": run.retries, "vote_statuses": dict(run.statuses),
            "cpu_s": cpu, "loadavg_before": load_before, "loadavg_after": load_after,
            "postgres_backends_peak": peak, "postgres_sessions_opened": sessions,
        })
        requests = sum(len(v) for v in phase.latencies.values())
        print(f"\nvote phase: {args.clients} clients, {phase.accepted} votes accepted in {elapsed:.1f} s = "
              f"{rate:.0f} votes/s ({requests / elapsed if elapsed else 0:.0f} requests/s)")
        for kind, s in result["latency"].items():
            print(line(kind, s))
        print(f"  errors: {dict(phase.errors) or 'none'}; vote retries with the same key: {run.retries}; "
              f"vote statuses {dict(run.statuses)}")
        print(f"  CPU ms per accepted vote (3 requests): {per_unit(cpu, phase.accepted, elapsed)}")
        print(f"  Postgres: peak {peak} backends on {args.database}, {sessions} sessions opened "
              f"({sessions / max(1, requests):.2f} per request)")
        print(f"  load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)", flush=True)

        result["leaderboard"] = []
        if not server.alive():
            result["server_exited"] = server.proc.returncode
            print(f"\nSERVER EXITED during the vote phase with status {server.proc.returncode}; its log "
                  f"({server.log}) ends:\n{log_tail(server.log, 25)}", flush=True)
            return
        # Lowest rate first: an overloaded phase leaves the workers a backlog of requests whose clients gave up.
        rates = sorted(r for r in args.leaderboard_rps if r > 0) if args.leaderboard_seconds > 0 else []
        if rates:
            pending = tasks_wait_idle(args, timeout=120)
            print(f"\nleaderboard: task queue {'drained' if not pending else f'still {pending} due'}; "
                  f"{manage(env, 'refit_leaderboard')}", flush=True)
            await leaderboard_warmup(server.port, base, 200)
        for rps in rates:
            if not server.alive():
                result["server_exited"] = server.proc.returncode
                print(f"\nSERVER EXITED with status {server.proc.returncode}; its log ({server.log}) ends:\n"
                      f"{log_tail(server.log, 25)}", flush=True)
                return
            await server_wait_idle(server.port, base, timeout=60)
            lb_load_before, lb_cpu_before = os.getloadavg(), cpu_sample(server, postmaster)
            sessions_before = watch.sessions()
            watch.start()
            read = await leaderboard_phase(port=server.port, headers=base, rps=rps, seconds=args.leaderboard_seconds,
                                           connections=args.leaderboard_connections,
                                           timeout=args.leaderboard_timeout)
            peak = watch.stop()
            lb_cpu = cpu_delta(lb_cpu_before, cpu_sample(server, postmaster))
            lb_load_after = os.getloadavg()
            await asyncio.sleep(1)
            sessions = watch.sessions() - sessions_before
            span = read.last_done - read.started
            achieved = read.ok / span if span > 0 else 0.0
            figures = {
                "target_rps": rps, "seconds": args.leaderboard_seconds, "sent": read.sent, "ok": read.ok,
                "achieved_rps": achieved, "latency": summary(read.latencies), "errors": dict(read.errors),
                "scheduler_lag_max_ms": 1000 * read.lag_max, "cpu_s": lb_cpu, "loadavg_before": lb_load_before,
                "loadavg_after": lb_load_after, "postgres_backends_peak": peak, "postgres_sessions_opened": sessions}
            result["leaderboard"].append(figures)
            print(f"leaderboard phase: target {rps:.0f} rps for {args.leaderboard_seconds:.0f} s, {read.sent} sent, "
                  f"{read.ok} ok, achieved {achieved:.0f} rps (scheduler lag max {1000 * read.lag_max:.0f} ms; "
                  f"percentiles over every request sent, a failed one counting as infinite)")
            print(line("leaderboard", figures["latency"]))
            print(f"  errors: {dict(read.errors) or 'none'}")
            print(f"  CPU ms per answered request: {per_unit(lb_cpu, read.ok, span if span > 0 else 1.0)}")
            print(f"  Postgres: peak {peak} backends, {sessions} sessions opened "
                  f"({sessions / max(1, read.sent):.2f} per request)")
            print(f"  load average before {lb_load_before[0]:.2f}, after {lb_load_after[0]:.2f} (1 min)", flush=True)
    finally:
        watch.close()


def report(args: argparse.Namespace, outcome: Outcome) -> int:
    """The database check, the JSON file and the exit status: after the server stopped, so nothing is in flight."""
    result = outcome.result
    check = database_check(args, outcome.run, outcome.baseline_vote_id)
    result["database_check"] = check
    print(f"\ndatabase check: {check['acknowledged']} votes acknowledged (2xx), {check['in_database']} in the "
          f"database for this run; lost {check['lost']}, duplicated {check['duplicated']}, stored without a 2xx "
          f"{check['unacknowledged_in_database']}")
    errors = [*result.get("errors", {}).items(),
              *(item for lb in result.get("leaderboard", []) for item in lb["errors"].items())]
    fivexx = sum(n for k, n in errors if k.split()[-1].startswith("5"))
    result["five_xx"] = fivexx
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    failed = (check["lost"] or check["duplicated"] or fivexx or not result.get("accepted")
              or "server_exited" in result)
    exited = f", server exited with status {result['server_exited']}" if "server_exited" in result else ""
    print("RESULT: " + ("FAIL" if failed else "ok") + f" (5xx responses: {fivexx}{exited})", flush=True)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent simulated voters (default 50)")
    parser.add_argument("--votes", type=int, default=10_000, help="accepted votes to reach (default 10,000)")
    parser.add_argument("--seconds", type=float, default=120, help="bound on the vote phase (default 120 s)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up rounds per client, not timed (default 2)")
    parser.add_argument("--battles-per-voter", type=int, default=10,
                        help="battles before a client takes a new anonymous identity (default 10; the per-voter "
                             "limits are 20 battles and 30 votes a minute)")
    parser.add_argument("--leaderboard-rps", type=float, nargs="+", default=[500],
                        help="read phase rate(s), one phase each, lowest first (default 500); 0 skips it")
    parser.add_argument("--leaderboard-seconds", type=float, default=10, help="length of each read phase")
    parser.add_argument("--leaderboard-timeout", type=float, default=5,
                        help="a read not answered this long after its due time fails (default 5 s)")
    parser.add_argument("--leaderboard-connections", type=int, default=32,
                        help="keep-alive connections the read phase spreads its requests over")
    parser.add_argument("--workers", type=int, default=None, help="web workers (default: serve's, 2 x CPUs + 1)")
    parser.add_argument("--no-access-log", action="store_true", help="pass --no-access-log to serve")
    parser.add_argument("--plain-http", action="store_true",
                        help="SECURE_COOKIES=0 instead of playing the TLS proxy (X-Forwarded-Proto: https)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra server environment (e.g. DB_CONN_MAX_AGE=0), repeatable")
    parser.add_argument("--timeout", type=float, default=30, help="per-request time-out (default 30 s)")
    parser.add_argument("--startup-timeout", type=float, default=120)
    parser.add_argument("--settle", type=float, default=3, help="seconds to wait after the first 200 (boot)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--database", default="arena_load")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/6")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="no server: profile N create/read/vote rounds in this process")
    args = parser.parse_args()

    static_root = tempfile.mkdtemp(prefix="arena_load_static_")
    try:
        return run_all(args, static_root)
    finally:
        shutil.rmtree(static_root, ignore_errors=True)


def run_all(args: argparse.Namespace, static_root: str) -> int:
    env = server_env(args, static_root) | dict(item.split("=", 1) for item in args.env)
    arena_prepare(args, env)
    if args.profile:
        return profile(args, env)
    print(f"machine: {os.cpu_count()} CPUs; uptime: {uptime()}", flush=True)
    run = Run(base_headers={}, write_headers={}, timeout=args.timeout, battles_per_voter=args.battles_per_voter)
    outcome = Outcome(run=run, baseline_vote_id=0, result={"env": {k: v for k, v in env.items()
                                                                   if k not in ("SECRET_KEY", "PATH", "HOME")}})
    server = server_start(args, env, free_port())
    try:
        try:
            import uvloop
        except ImportError:
            asyncio.run(load(args, server, env, outcome))
        else:
            uvloop.run(load(args, server, env, outcome))
    finally:
        server_stop(server)
        print(f"uptime: {uptime()}", flush=True)
    return report(args, outcome)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# ---------------------------------------------------------------------------------------------------- profile


def profile(args: argparse.Namespace, env: dict[str, str]) -> int:
    """N rounds through Django's full stack in this process: timed plain first, then again under cProfile."""
    import cProfile
    import pstats

    os.environ.update(env)
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from redis.client import Redis

    manage(env, "refit_leaderboard")
    rng = random.Random(args.seed)
    extra = {} if args.plain_http else {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_ORIGIN": "https://127.0.0.1"}
    sql: list[tuple[float, str]] = []  # (seconds, statement) of the request being timed
    redis_time = [0.0]  # seconds in Redis commands, and their count below
    redis_count = [0]
    original = Redis.execute_command

    def timed_command(self: Redis, *a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return original(self, *a, **k)
        finally:
            redis_time[0] += time.perf_counter() - t
            redis_count[0] += 1

    def timed_sql(execute: Any, statement: str, params: Any, many: bool, context: Any) -> Any:
        t = time.perf_counter()
        try:
            return execute(statement, params, many, context)
        finally:
            sql.append((time.perf_counter() - t, statement))

    Redis.execute_command = timed_command  # type: ignore[method-assign]
    kinds = ("create", "read", "vote", "leaderboard")
    # per request: wall s, SQL statements, SQL s, Redis commands, Redis s, this process's CPU s
    costs: dict[str, list[tuple[float, int, float, int, float, float]]] = {k: [] for k in kinds}
    backend_ticks: Counter[str] = Counter()  # the Postgres backend's CPU, in clock ticks, summed per kind
    last: dict[str, list[tuple[float, str]]] = {}
    backend = Path(f"/proc/{connection.cursor().connection.info.backend_pid}/stat")

    def ticks() -> int:
        rest = backend.read_text().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])

    def call(kind: str, client: Client, method: str, path: str, status: int, **kw: Any) -> Any:
        sql.clear()
        redis_time[0], redis_count[0] = 0.0, 0
        before = ticks()
        t, cpu = time.perf_counter(), time.process_time()
        response = getattr(client, method)(path, HTTP_HOST="127.0.0.1", **extra, **kw)
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        backend_ticks[kind] += ticks() - before
        assert response.status_code == status, (path, response.status_code, response.content[:300])
        costs[kind].append((wall, len(sql), sum(d for d, _ in sql), redis_count[0], redis_time[0], cpu))
        last[kind] = list(sql)
        return response

    def rounds(n: int) -> None:
        client, token = Client(), ""
        reader = Client()
        for i in range(n):
            if i % args.battles_per_voter == 0:
                client, token = Client(enforce_csrf_checks=True), Identity.new(rng).csrf
                client.cookies["csrftoken"] = token
            bid = call("create", client, "post", "/api/v1/battles", 201, data={"k": 2},
                       content_type="application/json", HTTP_X_CSRFTOKEN=token).json()["id"]
            call("read", client, "get", f"/api/v1/battles/{bid}", 200)
            call("vote", client, "post", f"/api/v1/battles/{bid}/vote", 201, data={"outcome": rng.choice(OUTCOMES)},
                 content_type="application/json", HTTP_X_CSRFTOKEN=token,
                 HTTP_IDEMPOTENCY_KEY=f"profile-{i}-{rng.getrandbits(64):x}")
            call("leaderboard", reader, "get", "/api/v1/leaderboard", 200)

    with connection.execute_wrapper(timed_sql):
        rounds(20)  # warm: imports, the connection, caches
        for v in costs.values():
            v.clear()
        rounds(args.profile)
        print(f"\nprofile: {args.profile} rounds in one process (django.test.Client through the full middleware, "
              f"CSRF enforced); load average {os.getloadavg()[0]:.2f}; median per request:")
        for kind, rows in costs.items():
            wall, n_sql, t_sql, n_redis, t_redis, _cpu = (statistics.median(c[i] for c in rows) for i in range(6))
            python = wall - t_sql - t_redis
            cpu = 1000 * statistics.fmean(c[5] for c in rows)
            pg_cpu = 1000 * backend_ticks[kind] / CLK_TCK / len(rows)
            print(f"  {kind:<11} {1000 * wall:6.2f} ms = SQL {1000 * t_sql:5.2f} ms ({n_sql:.0f} statements) "
                  f"+ Redis {1000 * t_redis:4.2f} ms ({n_redis:.0f} commands) + Python {1000 * python:5.2f} ms; "
                  f"CPU (mean): Django process {cpu:5.2f} ms, Postgres backend {pg_cpu:5.2f} ms")
        for kind in ("create", "vote"):
            print(f"\n  the SQL statements of the last {kind} request (wall time each, from the client):")
            for d, statement in last[kind]:
                print(f"    {1000 * d:6.3f} ms  {statement[:140]}")
        profiler = cProfile.Profile()
        profiler.enable()
        rounds(max(20, args.profile // 2))
        profiler.disable()
    print("\n  under cProfile (its overhead inflates Python time), top functions by cumulative time:")
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(60)
    stats.sort_stats("tottime").print_stats(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
