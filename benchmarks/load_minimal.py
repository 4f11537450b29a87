"""The peer of ``benchmarks/load_serve.py``: how many votes per second the smallest Django endpoint that writes a
battle and a vote with the ORM serves on this machine, served the way ``make serve`` serves the site.

    .venv/bin/python benchmarks/load_minimal.py [--clients 16] [--seconds 30] [--workers N] [--server asgi|wsgi]

The issue's yardstick for the vote target ("the smallest Django endpoint that writes a battle and a vote with the ORM
serves about 500/s here"), measured instead of assumed, so that the site's figure can be quoted as a ratio to it from
runs made one after the other on the same machine. ``benchmarks/minimal_site`` is that endpoint: ``POST
/minimal/vote`` inserts a voted battle, its two slots and its vote (with the arena's own schema, constraints and
triggers) in one transaction, with no middleware, validation, identity, rate limit, idempotency check, matchmaking,
tally or reveal.

What it does: recreates the Postgres database ``--database`` (default ``arena_load_minimal``), migrates it, adds two
contenders; starts gunicorn on the minimal site with ``--server asgi`` (default: uvicorn workers, the class
``make serve`` uses) or ``--server wsgi`` (gunicorn's gthread workers, 4 threads each), ``--workers`` of them (default
2 x CPUs + 1, as ``make serve``), each process with the same Postgres pool (DB_POOL_MAX_SIZE=4); then ``--clients``
closed-loop clients on keep-alive connections POST for ``--seconds``. Prints votes/s and latency percentiles, and
checks that the database holds exactly the acknowledged votes (exit status 1 if not, or on any error).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.load_serve import (  # noqa: E402  (after the path is set: run as a script)
    Connection,
    database_recreate,
    free_port,
    line,
    sql_one,
    summary,
    wait_answering,
)
from config.serve import default_workers  # noqa: E402


def server_env(args: argparse.Namespace) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": os.environ.get("LANG", "C.UTF-8"), "DJANGO_SETTINGS_MODULE": "benchmarks.minimal_site.settings",
            "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(48), "DATABASE_URL": f"{args.pg}/{args.database}",
            "ALLOWED_HOSTS": "127.0.0.1", "SECURE_COOKIES": "0", "DB_POOL_MAX_SIZE": "4",
            "PYTHONPATH": str(ROOT)}


def prepare(args: argparse.Namespace, env: dict[str, str]) -> None:
    database_recreate(args.pg, args.database)
    contenders = ("from arena.models import Contender; "
                  "Contender.objects.bulk_create([Contender(name='model-a'), Contender(name='model-b')])")
    for argv in (["migrate", "--noinput", "-v0"], ["shell", "-c", contenders]):
        done = subprocess.run([sys.executable, "manage.py", *argv], cwd=ROOT, capture_output=True, text=True,
                              env=env | {"DJANGO_SETTINGS_MODULE": "config.settings"})  # the site's schema
        if done.returncode != 0:
            raise SystemExit(f"manage.py {argv[0]} failed:\n{done.stdout}\n{done.stderr}")


def server_argv(args: argparse.Namespace, port: int) -> list[str]:
    common = ["--workers", str(args.workers), "--bind", f"127.0.0.1:{port}", "--no-control-socket"]
    if args.server == "asgi":
        return [sys.executable, "-m", "gunicorn", "benchmarks.minimal_site.asgi:application",
                "--worker-class", "config.serve.ArenaUvicornWorker", *common]
    return [sys.executable, "-m", "gunicorn", "benchmarks.minimal_site.wsgi:application",
            "--worker-class", "gthread", "--threads", "4", *common]


async def client_loop(port: int, deadline: float, latencies: list[float], acked: list[str], errors: Counter[str]
                      ) -> None:
    conn = Connection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json"}
    try:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                reply = await conn.request("POST", "/minimal/vote", headers, b"{}")
            except (TimeoutError, OSError, ConnectionError, asyncio.IncompleteReadError) as exc:
                errors[type(exc).__name__] += 1
                continue
            if reply.status != 201:
                errors[str(reply.status)] += 1
                continue
            latencies.append(time.perf_counter() - started)
            acked.append(reply.json()["key"])
    finally:
        conn.close()


async def load(args: argparse.Namespace, port: int) -> tuple[float, list[float], list[str], Counter[str]]:
    latencies: list[float] = []
    acked: list[str] = []
    errors: Counter[str] = Counter()
    warm: list[float] = []
    await asyncio.gather(*(client_loop(port, time.monotonic() + 2, warm, acked, errors)
                           for _ in range(args.clients)))  # warm-up: pools filled, code paths loaded
    started = time.perf_counter()
    await asyncio.gather(*(client_loop(port, time.monotonic() + args.seconds, latencies, acked, errors)
                           for _ in range(args.clients)))
    return time.perf_counter() - started, latencies, acked, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--server", choices=["asgi", "wsgi"], default="asgi")
    parser.add_argument("--database", default="arena_load_minimal")
    parser.add_argument("--pg", default=os.environ.get("LOAD_PG", "postgres://postgres@127.0.0.1:5432"))
    args = parser.parse_args()

    env = server_env(args)
    prepare(args, env)
    port = free_port()
    log = Path(tempfile.gettempdir()) / f"{args.database}_{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(server_argv(args, port), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    print(f"server: gunicorn, {args.workers} {args.server} worker(s), minimal site (pid {proc.pid}, log {log})",
          flush=True)
    try:
        # Up when it answers a GET with 405: that request writes nothing.
        asyncio.run(wait_answering(proc, log, port, "/minimal/vote", {}, 405, timeout=60))
        elapsed, latencies, acked, errors = asyncio.run(load(args, port))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    stored = sql_one(args, "SELECT count(*) FROM arena_vote")
    distinct = sql_one(args, "SELECT count(DISTINCT idempotency_key) FROM arena_vote")
    print(f"minimal site, {args.server}: {args.clients} clients, {len(latencies)} votes in {elapsed:.1f} s = "
          f"{len(latencies) / elapsed:.0f} votes/s (1 request each)")
    print(line("vote", summary(latencies)))
    print(f"  errors: {dict(errors) or 'none'}; database: {len(acked)} acknowledged (warm-up included), {stored} "
          f"stored, {distinct} distinct keys")
    return 0 if not errors and stored == len(acked) == distinct else 1


if __name__ == "__main__":
    sys.exit(main())
