"""Production serving: Django's deploy checks, the refusals, and `make serve`'s server itself, started for real."""
from __future__ import annotations

import contextlib
import gzip
import http.client
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from config.serve import ArenaUvicornWorker, refusals
from config.settings import secret_key_weakness

ROOT = Path(__file__).resolve().parents[1]
STRONG_KEY = secrets.token_urlsafe(50)


def production_env(**extra: str) -> dict[str, str]:
    """A production environment from scratch: not this process's, whose test defaults turn HTTPS off."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "0", "SECRET_KEY": STRONG_KEY,
           "ALLOWED_HOSTS": "arena.example", "DATABASE_URL": "postgres://arena@db.invalid:5432/arena"}
    return {**env, **extra}


def run(argv: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def show_settings(env: dict[str, str], *names: str) -> list[str]:
    code = ("import django; django.setup(); from django.conf import settings; "
            f"print(*(getattr(settings, n) for n in {names!r}))")
    result = run([sys.executable, "-c", code], env)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_check_deploy_with_production_settings_reports_no_issues():
    result = run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env())
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues (0 silenced)." in output
    assert not re.search(r"\b[WE]\d{3}\b", output), output


@pytest.mark.parametrize(("variable", "value", "warning"), [
    ("SECURE_SSL_REDIRECT", "0", "security.W008"),
    ("SECRET_KEY", "short-and-guessable", "security.W009"),
])
def test_check_deploy_names_a_protection_that_is_turned_off(variable, value, warning):
    result = run([sys.executable, "manage.py", "check", "--deploy"], production_env(**{variable: value}))
    assert warning in result.stderr


def test_https_protections_are_on_by_default_and_set_from_the_environment():
    names = ("SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD",
             "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE")
    assert show_settings(production_env(), *names) == ["True", "31536000", "True", "True", "True", "True"]
    tuned = production_env(SECURE_HSTS_SECONDS="3600", SECURE_HSTS_PRELOAD="0", SECURE_SSL_REDIRECT="0")
    assert show_settings(tuned, *names) == ["False", "3600", "True", "False", "True", "True"]
    # A plain-HTTP site (SECURE_COOKIES=0) neither redirects nor sends HSTS unless asked to.
    assert show_settings(production_env(SECURE_COOKIES="0"), *names[:2]) == ["False", "0"]


@pytest.mark.parametrize(("key", "reason"), [
    ("change-me", "it has 9 characters (at least 50 are needed)"),
    ("dev-only-insecure-secret-key", "it is a published development key"),
    ("django-insecure-" + "x" * 60, "it is a published development key"),
    ("ab" * 40, "it uses fewer than 5 different characters"),
])
def test_a_weak_secret_key_is_named_weak_and_says_why(key, reason):
    assert secret_key_weakness(key) == reason


def test_a_generated_secret_key_is_strong():
    assert secret_key_weakness(STRONG_KEY) is None


@pytest.mark.parametrize("module", ["config.asgi", "config.wsgi"])
def test_the_site_is_not_served_on_a_weak_secret_key_with_debug_off(module):
    # (With a strong key config.asgi loads: the real server below serves it.)
    refused = run([sys.executable, "-c", f"import {module}"], production_env(SECRET_KEY="change-me"))
    assert refused.returncode != 0
    assert "SECRET_KEY is too weak to serve the site with DEBUG off: it has 9 characters" in refused.stderr


def test_with_debug_on_the_demo_is_served_on_the_development_key():
    env = production_env(DEBUG="1")
    del env["SECRET_KEY"]
    assert run([sys.executable, "-c", "import config.asgi"], env).returncode == 0


def test_a_connection_pool_replaces_persistent_connections_when_sized():
    code = ("import django; django.setup(); from django.conf import settings; d = settings.DATABASES['default']; "
            "print(d['CONN_MAX_AGE'], sorted(d['OPTIONS'].get('pool', {}).items()))")
    pooled = run([sys.executable, "-c", code], production_env(DB_POOL_MAX_SIZE="4", DB_CONN_MAX_AGE="60"))
    assert pooled.returncode == 0, pooled.stderr
    age, options = pooled.stdout.split(" ", 1)
    assert age == "0"  # Django refuses a pool with persistent connections
    assert "('max_size', 4)" in options and "('min_size', 1)" in options and "('timeout', 3)" in options
    unpooled = run([sys.executable, "-c", code], production_env(DB_CONN_MAX_AGE="60"))
    assert unpooled.stdout.split() == ["60", "[]"], unpooled.stderr


def test_serve_refuses_without_secret_key_and_database_url_and_says_what_to_set():
    env = production_env()
    del env["SECRET_KEY"], env["DATABASE_URL"]
    result = run([sys.executable, "-m", "config.serve", "--workers", "1"], env, timeout=60)
    assert result.returncode == 2
    assert "serve: refusing to start:" in result.stderr
    assert "SECRET_KEY is not set: generate one with" in result.stderr
    assert "DATABASE_URL is not set" in result.stderr
    assert "gunicorn" not in result.stdout  # nothing was started


def test_serve_refuses_a_weak_secret_key_before_starting_anything():
    result = run([sys.executable, "-m", "config.serve", "--workers", "1"], production_env(SECRET_KEY="change-me"),
                 timeout=60)
    assert result.returncode == 2
    assert "SECRET_KEY is too weak: it has 9 characters (at least 50 are needed)" in result.stderr
    assert "serve: web pid" not in result.stdout


def test_serve_refuses_debug_and_several_workers_without_a_shared_cache():
    problems = refusals({"DEBUG": "1", "SECRET_KEY": STRONG_KEY, "DATABASE_URL": "postgres://x/y"}, workers=3)
    assert any(p.startswith("DEBUG is on") for p in problems)
    assert any(p.startswith("REDIS_URL is not set but 3 web workers") for p in problems)
    assert refusals({"SECRET_KEY": STRONG_KEY, "DATABASE_URL": "postgres://x/y"}, workers=1) == []


def test_the_site_not_uvicorn_decides_which_proxy_headers_to_trust():
    # TRUST_X_FORWARDED_PROTO and ARENA_TRUSTED_PROXIES are the only switches: uvicorn must not rewrite first.
    assert ArenaUvicornWorker.CONFIG_KWARGS["proxy_headers"] is False


# The real server ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def throwaway_database_url(tmp_path: Path) -> Iterator[str]:
    """A database of its own for the server (it migrates it): never the test database other tests roll back."""
    if connection.vendor != "postgresql":
        yield f"sqlite:///{tmp_path / 'serve.sqlite3'}"
        return
    params = connection.settings_dict
    name = f"{params['NAME']}_serve"  # test_<yours>_serve: one per developer database, like the test database
    admin = {"host": params["HOST"] or "127.0.0.1", "port": params["PORT"] or 5432, "user": params["USER"],
             "password": params["PASSWORD"] or None, "dbname": "postgres", "autocommit": True}
    with psycopg.connect(**admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    auth = params["USER"] + (f":{params['PASSWORD']}" if params["PASSWORD"] else "")
    try:
        yield f"postgres://{auth}@{admin['host']}:{admin['port']}/{name}"
    finally:
        with psycopg.connect(**admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def get(port: int, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Host": "127.0.0.1", **headers})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_make_serve_serves_pages_and_static_files_and_stops_on_ctrl_c(tmp_path, throwaway_database_url):
    port, log = free_port(), tmp_path / "serve.log"
    env = production_env(ALLOWED_HOSTS="127.0.0.1", DATABASE_URL=throwaway_database_url,
                         STATIC_ROOT=str(tmp_path / "static"), TRUST_X_FORWARDED_PROTO="1",
                         TRAINER_OUTPUT_ROOT=str(tmp_path / "runs"))
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    with log.open("wb") as out:
        # Its own process group, like a shell's foreground job: the Ctrl-C below reaches it as a terminal's would.
        serve = subprocess.Popen([sys.executable, "-m", "config.serve", "--bind", f"127.0.0.1:{port}", "--workers",
                                  "1"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, process_group=0)
    children: list[int] = []
    try:
        deadline = time.monotonic() + 150  # a fresh database is migrated first: ~20 s here, more on a busy machine
        while True:
            assert serve.poll() is None, f"make serve exited with {serve.returncode}:\n{log.read_text()}"
            children = [int(pid) for pid in re.findall(r"^serve: \w+ pid (\d+)", log.read_text(), re.MULTILINE)]
            try:
                if len(children) == 2:
                    status, _, _ = get(port, "/")
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"no answer on port {port}:\n{log.read_text()}"
            time.sleep(0.5)

        # Plain HTTP is redirected to HTTPS; through a TLS proxy (X-Forwarded-Proto, trusted here) the page is served.
        status, headers, _ = get(port, "/")
        assert (status, headers["location"]) == (301, "https://127.0.0.1/")
        status, headers, body = get(port, "/", **{"X-Forwarded-Proto": "https"})
        assert status == 200 and "<h1>Model arena</h1>" in body.decode()
        assert headers["server"] == "uvicorn"  # the ASGI worker, not gunicorn's sync one
        assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"
        assert "Secure" in headers["set-cookie"]

        # The static file comes from STATIC_ROOT through WhiteNoise, compressed by collectstatic.
        status, headers, body = get(port, "/static/arena/arena.css",
                                    **{"X-Forwarded-Proto": "https", "Accept-Encoding": "gzip"})
        assert status == 200 and headers["content-encoding"] == "gzip"
        assert gzip.decompress(body) == (ROOT / "arena" / "static" / "arena" / "arena.css").read_bytes()
        assert headers["cache-control"] == "max-age=60, public"
        assert (tmp_path / "static" / "arena" / "arena.css.gz").exists()

        # Requests borrow pooled Postgres connections: the same sessions serve them, none is opened per request.
        def sessions_opened() -> int:  # sessions ever opened on the database (ours below counts one each time)
            with psycopg.connect(throwaway_database_url, autocommit=True) as conn:
                return conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
                                    ).fetchone()[0]
        for _ in range(3):
            assert get(port, "/api/v1/contenders", **{"X-Forwarded-Proto": "https"})[0] == 200
        before = sessions_opened()
        for _ in range(20):
            assert get(port, "/api/v1/contenders", **{"X-Forwarded-Proto": "https"})[0] == 200
        assert sessions_opened() - before <= 2, "a session per request: the pool is not in use"

        # Ctrl-C stops the server and the tasks worker together, cleanly.
        assert all(alive(pid) for pid in children)
        os.killpg(serve.pid, signal.SIGINT)
        assert serve.wait(timeout=60) == 0, log.read_text()
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(pid) for pid in children), log.read_text()
        assert "Shutting down: Master" in log.read_text()
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
        for pid in children:  # normally gone already; never leave a server or worker behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
