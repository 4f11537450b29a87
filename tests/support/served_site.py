"""The site as production serves it (``python -m config.serve``: gunicorn + uvicorn workers + the tasks worker),
on a private Postgres cluster, for drills that break what it runs on. Plain ``http.client`` as the client."""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .private_servers import PrivatePostgres, PrivateRedis, free_port

ROOT = Path(__file__).resolve().parents[2]
CONTENDERS = ("alpha-7b", "beta-13b", "gamma-70b")

# Run in a subprocess with the site's environment: the schema, a staff user with an API token (staff may open a
# battle with given responses, so battles need no model), and the contenders those battles show. (Their
# organization must not appear in the drills' prompts and answers: the identity filter would flag every vote.)
_SEED = f"""
import json
import django
django.setup()
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from arena.models import Contender
user = get_user_model().objects.create_user("drill-staff", is_staff=True)
for name in {CONTENDERS!r}:
    Contender.objects.create(name=name, organization="Example Labs", family=name.split("-")[0])
print(json.dumps({{"token": Token.objects.create(user=user).key}}))
"""


@dataclass(frozen=True)
class Answer:
    status: int  # 0: no HTTP answer at all (connection refused, reset or timed out)
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)
    error: str = ""

    def json(self) -> Any:
        return json.loads(self.body)


def http_request(port: int, method: str, path: str, *, body: Any = None, headers: dict[str, str] | None = None,
                 timeout: float = 10.0) -> Answer:
    """One request on a fresh connection; a failure to get any answer is an ``Answer`` with status 0."""
    data = None if body is None else json.dumps(body).encode()
    sent = {"Host": "127.0.0.1", **({"Content-Type": "application/json"} if data is not None else {}),
            **(headers or {})}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    except OSError as exc:  # refused, reset, timed out
        return Answer(0, {}, b"", error=f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def children_of(pid: int) -> set[int]:
    """Live child processes of ``pid`` (from /proc; zombies left out)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(") ", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(stat.parent.name))
    return found


class ServedSite:
    """``python -m config.serve`` on ``postgres`` (and ``redis`` if given, else one web worker and its own cache),
    with the tasks worker beside the web workers unless ``tasks_worker`` is False (a web host of a larger
    deployment, whose tasks run elsewhere)."""

    def __init__(self, postgres: PrivatePostgres, redis: PrivateRedis | None, workdir: Path, *,
                 tasks_worker: bool = True) -> None:
        self.postgres = postgres
        self.database_url = postgres.create_database("arena")
        self.port = free_port()
        self.log = workdir / "serve.log"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
               "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50),
               "ALLOWED_HOSTS": "127.0.0.1", "DATABASE_URL": self.database_url, "SECURE_COOKIES": "0",
               "STATIC_ROOT": str(workdir / "static"), "TRAINER_OUTPUT_ROOT": str(workdir / "runs"),
               "LOG_LEVEL": "WARNING", "LEADERBOARD_RATE_LIMIT": "100000/minute"}
        for name in ("ARENA_BATTLE_RATE_LIMIT", "ARENA_BATTLE_IP_RATE_LIMIT", "ARENA_VOTE_RATE_LIMIT",
                     "ARENA_VOTE_IP_RATE_LIMIT"):
            env[name] = "100000/minute"  # the drills vote fast from one address; rate limits are not under test
        if redis is not None:
            env["REDIS_URL"] = redis.url()
        self.env = env
        seeded = subprocess.run([sys.executable, "-c", _SEED], cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=120)
        if seeded.returncode != 0:
            raise RuntimeError(f"seeding the site's database failed:\n{seeded.stderr}")
        self.token = json.loads(seeded.stdout.strip().splitlines()[-1])["token"]
        workers = "2" if redis is not None else "1"
        with self.log.open("wb") as out:
            self.serve = subprocess.Popen(
                [sys.executable, "-m", "config.serve", "--bind", f"127.0.0.1:{self.port}", "--workers", workers,
                 "--no-migrate", "--no-access-log", *([] if tasks_worker else ["--no-tasks-worker"])],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, process_group=0)
        self._children: set[int] = set()
        self._expected_children = 2 if tasks_worker else 1
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.serve.poll() is not None:
                raise RuntimeError(f"config.serve exited with {self.serve.returncode}:\n{self.log_text()}")
            self._children |= {int(p) for p in re.findall(r"^serve: \w+ pid (\d+)", self.log_text(), re.MULTILINE)}
            started = len(self._children) == self._expected_children
            if started and self.request("GET", "/api/v1/contenders", timeout=2).status == 200:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the site did not answer on port {self.port}:\n{self.log_text()}")
            time.sleep(0.3)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def web_pid(self) -> int:
        return int(re.findall(r"^serve: web pid (\d+)", self.log_text(), re.MULTILINE)[0])

    @property
    def tasks_pid(self) -> int:
        """The tasks worker serve started last (it starts another when one exits)."""
        return int(re.findall(r"^serve: tasks pid (\d+)", self.log_text(), re.MULTILINE)[-1])

    def enqueue_moderation_run(self) -> str:
        """Queue a moderation run to start at once (what votes queue is deferred) for the tasks worker; its id."""
        code = ("import django; django.setup(); from arena.tasks import moderation_run_task; "
                "print(moderation_run_task.enqueue().id)")
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"enqueueing a task failed:\n{done.stderr}")
        return done.stdout.strip().splitlines()[-1]

    def web_processes(self) -> set[int]:
        """gunicorn's master and its workers: a worker that died and was replaced shows as a new pid."""
        return {self.web_pid, *children_of(self.web_pid)}

    def request(self, method: str, path: str, *, body: Any = None, staff: bool = False,
                headers: dict[str, str] | None = None, timeout: float = 10.0) -> Answer:
        auth = {"Authorization": f"Token {self.token}"} if staff else {}
        return http_request(self.port, method, path, body=body, headers={**auth, **(headers or {})}, timeout=timeout)

    def open_battle(self, prompt: str, *, contenders: tuple[str, str] = CONTENDERS[:2]) -> Answer:
        """POST /api/v1/battles as staff with given responses (the battle needs no model to answer)."""
        body = {"prompt": prompt, "category": "drill", "language": "en",
                "slots": [{"contender": name, "response": f"Answer {i} to: {prompt}"}
                          for i, name in enumerate(contenders)]}
        return self.request("POST", "/api/v1/battles", body=body, staff=True)

    def vote(self, battle_id: str, outcome: str, key: str, *, timeout: float = 10.0) -> Answer:
        return self.request("POST", f"/api/v1/battles/{battle_id}/vote", body={"outcome": outcome}, staff=True,
                            headers={"Idempotency-Key": key}, timeout=timeout)

    def close(self) -> None:
        """Ctrl-C as a terminal sends it; SIGKILL for whatever has not stopped 30 s later."""
        if self.serve.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.serve.pid, signal.SIGINT)
            try:
                self.serve.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.serve.pid, signal.SIGKILL)
                self.serve.wait()
        for pid in self._children:  # normally gone with config.serve; never leave a server or worker behind
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


@contextlib.contextmanager
def site_on_private_servers(postgres_bin: Path, redis_binary: str | None, *,
                            tasks_worker: bool) -> Iterator[ServedSite]:
    """A private Postgres (and Redis, when its binary is given) and the site served on them; all gone afterwards."""
    postgres = PrivatePostgres(postgres_bin)
    redis = PrivateRedis(redis_binary) if redis_binary else None
    workdir = Path(tempfile.mkdtemp(prefix="arena-faults-site-"))
    site = None
    try:
        postgres.start()
        if redis is not None:
            redis.start()
        site = ServedSite(postgres, redis, workdir, tasks_worker=tasks_worker)
        yield site
    finally:
        if site is not None:
            site.close()
        if redis is not None:
            redis.close()
        postgres.close()
        shutil.rmtree(workdir, ignore_errors=True)
