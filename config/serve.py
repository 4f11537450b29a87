"""`make serve`: the site as production runs it, with the background-task worker beside it.

    python -m config.serve [--bind 127.0.0.1:8000] [--workers N] [--queues default] [--no-tasks-worker]
                           [--no-migrate] [--no-access-log] [-- GUNICORN OPTIONS...]

Before anything listens it refuses a start that would be unsafe or broken, saying why: DEBUG on, no SECRET_KEY or
a weak one, no DATABASE_URL, several web workers without a shared cache (REDIS_URL). Then it applies migrations
(unless --no-migrate), collects static files into STATIC_ROOT (served by WhiteNoise), prints Django's deploy checks,
and starts two children:

- web: gunicorn serving ``config.asgi`` with uvicorn workers (ASGI, so that the answer streams, server-sent events,
  hold no thread), as many as WEB_CONCURRENCY or 2 x CPUs + 1;
- tasks: ``manage.py db_worker`` on the given queues (leaderboard refits, moderation, judge runs).

Ctrl-C or SIGTERM stops both gracefully (gunicorn finishes open requests, the worker its current task); a second
Ctrl-C, or STOP_TIMEOUT_S later, kills them. When the web server exits on its own the worker is stopped too, and
this process exits with its status, so a supervisor (systemd, a container runtime) restarts the pair. A tasks
worker that exits (db_worker does when Postgres is unreachable) is started again after a backoff of 1 s, 2 s,
5 s, 10 s, then every 30 s, while the site keeps serving.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from types import FrameType

from uvicorn_worker import UvicornWorker

from config.processes import die_with_parent

BASE_DIR = Path(__file__).resolve().parent.parent
# gunicorn's own graceful timeout is 30 s: give it that, and the tasks worker as long to finish a short task.
STOP_TIMEOUT_S = 40
# Longer than the idle timeout of common load balancers (60 s): a balancer must never reuse a connection the
# server has just closed (that shows up as sporadic 502s). An idle connection costs uvicorn next to nothing.
KEEP_ALIVE_S = 75
# Postgres connections per process (DB_POOL_MAX_SIZE): 5 web workers + the tasks worker hold at most 24, well below
# Postgres's default max_connections of 100, and 4 at a time is more than one process's CPU can keep busy.
DEFAULT_POOL_SIZE = 4
_TRUE = {"1", "true", "yes", "on"}


class ArenaUvicornWorker(UvicornWorker):
    """uvicorn's gunicorn worker, with uvicorn's own reading of X-Forwarded-For / -Proto switched off.

    The site decides which proxy headers to trust (ARENA_TRUSTED_PROXIES for the client address,
    TRUST_X_FORWARDED_PROTO for HTTPS); uvicorn would otherwise rewrite both first for any proxy on loopback,
    and a proxy hop would be counted twice. Django has no ASGI lifespan events: not asking for them saves a line
    of log per worker.
    """

    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "proxy_headers": False, "lifespan": "off"}


def default_workers() -> int:
    """WEB_CONCURRENCY if set (gunicorn's convention), else gunicorn's rule of thumb: 2 x usable CPUs + 1.

    Django runs synchronous views one at a time per process under ASGI, and most requests wait on Postgres,
    so more processes than cores keep the CPUs busy.
    """
    if raw := os.environ.get("WEB_CONCURRENCY"):
        return int(raw)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 2 * cpus + 1


def refusals(env: Mapping[str, str], *, workers: int) -> list[str]:
    """What in the environment forbids a production start (empty: nothing)."""
    problems = []
    if env.get("DEBUG", "").lower() in _TRUE:
        problems.append("DEBUG is on: production serves with DEBUG off (unset it; `make demo` is the DEBUG site)")
    if not env.get("SECRET_KEY"):
        problems.append('SECRET_KEY is not set: generate one with python -c "import secrets; '
                        'print(secrets.token_urlsafe(50))" and give every web host the same one')
    if not env.get("DATABASE_URL"):
        problems.append("DATABASE_URL is not set: production keeps votes in Postgres, "
                        "e.g. DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/arena")
    if workers > 1 and not env.get("REDIS_URL"):
        problems.append(f"REDIS_URL is not set but {workers} web workers would each keep their own cache: rate "
                        "limits and streamed answers must be shared (set REDIS_URL, or --workers 1)")
    return problems


def refuse(problems: list[str]) -> None:
    print("serve: refusing to start:", *(f"  - {p}" for p in problems), sep="\n", file=sys.stderr)
    raise SystemExit(2)


def prepare(*, migrate: bool) -> None:
    """Validate the settings, migrate, collect static files and print the deploy checks, in this process."""
    import django
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import call_command
    from django.db import OperationalError, connections

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    try:
        django.setup()
    except ImproperlyConfigured as exc:  # a malformed variable: say which, not a traceback
        refuse([str(exc)])
    from django.conf import settings

    from config.settings import secret_key_weakness

    if why := secret_key_weakness(settings.SECRET_KEY):
        refuse([f"SECRET_KEY is too weak: {why}; generate one with "
                'python -c "import secrets; print(secrets.token_urlsafe(50))"'])
    if migrate:
        try:
            call_command("migrate", interactive=False, verbosity=1)
        except OperationalError as exc:
            refuse([f"cannot reach the database: {str(exc).strip().splitlines()[0]}"])
    call_command("collectstatic", interactive=False, verbosity=0)
    print(f"serve: static files collected in {settings.STATIC_ROOT}", flush=True)
    call_command("check", deploy=True, fail_level="ERROR")  # warnings printed, errors stop the start
    connections.close_all()  # the children open their own


def start(argv: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    # Its own process group: the terminal's Ctrl-C reaches only this process, which then signals each child
    # once (a second SIGINT makes db_worker abandon the task it is running).
    return subprocess.Popen(argv, cwd=BASE_DIR, env=env, process_group=0, preexec_fn=die_with_parent)


def catch_stop_signals() -> list[int]:
    """From now on SIGINT and SIGTERM are only recorded (in the list returned), for supervise() to act on."""
    signals: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signals.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return signals


# Seconds before restarting a tasks worker that exited, by how many times in a row it exited soon after starting.
RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
# A worker that ran this long before exiting starts its backoff afresh.
RESTART_RESET_S = 60.0


def supervise(children: dict[str, subprocess.Popen[bytes]], signals: list[int],
              restart: Mapping[str, Callable[[], subprocess.Popen[bytes]]] | None = None) -> int:
    """Wait until a stop signal or a child's exit, stop the others, and return the exit status.

    A child named in ``restart`` is started again instead, after a backoff: django-tasks' db_worker exits when
    the database is unreachable (a Postgres restart), and the site must not go down with it -- the web
    workers answer 503 meanwhile and recover by themselves (config/middleware.py).
    """
    restart = restart or {}
    started = {name: time.monotonic() for name in children}
    quick_exits = dict.fromkeys(restart, 0)
    while not signals:
        ended = next((n for n, p in children.items() if p.poll() is not None), None)
        if ended is None:
            time.sleep(0.2)
            continue
        if ended not in restart:
            break
        if time.monotonic() - started[ended] >= RESTART_RESET_S:
            quick_exits[ended] = 0
        wait = RESTART_BACKOFF_S[min(quick_exits[ended], len(RESTART_BACKOFF_S) - 1)]
        quick_exits[ended] += 1
        print(f"serve: {ended} exited with status {children[ended].returncode}: restarting it in {wait:g} s",
              file=sys.stderr, flush=True)
        deadline = time.monotonic() + wait
        while not signals and time.monotonic() < deadline:
            time.sleep(0.1)
        if signals:
            break
        children[ended], started[ended] = restart[ended](), time.monotonic()
        print(f"serve: {ended} pid {children[ended].pid}", flush=True)
    if signals:
        status = 0
        print(f"serve: {signal.strsignal(signals[0])}: stopping (Ctrl-C again to kill)", file=sys.stderr, flush=True)
    else:
        name, ended = next((n, p) for n, p in children.items() if p.poll() is not None)
        status = ended.returncode or 1
        print(f"serve: {name} exited with status {ended.returncode}: stopping the rest", file=sys.stderr, flush=True)
    for p in children.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)  # graceful for both gunicorn and db_worker
    deadline = time.monotonic() + STOP_TIMEOUT_S
    handled = len(signals)
    while any(p.poll() is None for p in children.values()):
        if len(signals) > handled or time.monotonic() > deadline:
            for p in children.values():
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)  # the group: gunicorn's workers, a task's subprocesses
                    p.wait()
            print("serve: killed what had not stopped", file=sys.stderr, flush=True)
            return status or 1
        time.sleep(0.1)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m config.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bind", default="127.0.0.1:8000",
                        help="HOST:PORT to listen on (0.0.0.0:8000 behind a load balancer); default %(default)s")
    parser.add_argument("--workers", type=int, default=None,
                        help="web processes; default WEB_CONCURRENCY or 2 x CPUs + 1")
    parser.add_argument("--queues", default="default",
                        help="task queues of the worker beside the site (comma-separated; add gpu on a single "
                             "machine that also trains); default %(default)s")
    parser.add_argument("--no-tasks-worker", action="store_true",
                        help="serve only (the tasks run on other hosts)")
    parser.add_argument("--no-migrate", action="store_true",
                        help="do not apply migrations (every host but one, when several start together)")
    parser.add_argument("--no-access-log", action="store_true", help="no line per request on stdout")
    parser.add_argument("gunicorn_args", nargs="*", help="after --: passed to gunicorn as they are, last")
    args = parser.parse_args(argv)
    workers = args.workers if args.workers is not None else default_workers()
    if problems := refusals(os.environ, workers=workers):
        refuse(problems)
    os.environ["DEBUG"] = "0"  # set, so that no child falls back to another default
    # Under ASGI each request runs in a thread of its own, so a persistent connection (DB_CONN_MAX_AGE > 0) is
    # never reused and stays open: a load test at 8 clients reached Postgres's 100 connections within a minute,
    # then answered 503 "too many clients". A connection per request costs ~7 ms: each process keeps a pool of
    # DB_POOL_MAX_SIZE connections instead (config/settings.py), workers x 4 + the tasks worker's by default.
    os.environ.setdefault("DB_CONN_MAX_AGE", "0")
    os.environ.setdefault("DB_POOL_MAX_SIZE", str(DEFAULT_POOL_SIZE))
    prepare(migrate=not args.no_migrate)

    env = dict(os.environ)
    web = [sys.executable, "-m", "gunicorn", "config.asgi:application",
           "--worker-class", "config.serve.ArenaUvicornWorker",
           "--workers", str(workers), "--bind", args.bind, "--keep-alive", str(KEEP_ALIVE_S),
           # gunicorn's control socket has one path per user (~/.gunicorn): two servers on a host would share it.
           "--no-control-socket",
           *([] if args.no_access_log else ["--access-logfile", "-"]), *args.gunicorn_args]
    signals = catch_stop_signals()  # before the first child: a Ctrl-C from here on stops them in order
    children = {"web": start(web, env)}
    print(f"serve: web pid {children['web'].pid}: gunicorn, {workers} uvicorn worker(s) on http://{args.bind}",
          flush=True)
    restart: dict[str, Callable[[], subprocess.Popen[bytes]]] = {}
    if not args.no_tasks_worker:
        restart["tasks"] = partial(start, [sys.executable, "manage.py", "db_worker", "--queue-name", args.queues], env)
        children["tasks"] = restart["tasks"]()
        print(f"serve: tasks pid {children['tasks'].pid}: manage.py db_worker --queue-name {args.queues}",
              flush=True)
    return supervise(children, signals, restart)


if __name__ == "__main__":
    sys.exit(main())
