"""Fixtures of the fault drills (issue 11): private Postgres and Redis servers a drill may stop, kill and restart,
and the site served on them as ``make serve`` serves it.

The shared servers on 127.0.0.1:5432 and :6379 are never touched. A drill whose server binary is missing is
skipped, saying which; with REQUIRE_POSTGRES=1 (CI) a missing initdb fails instead.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.private_servers import PrivateRedis, postgres_bin_dir
from tests.support.served_site import ServedSite, site_on_private_servers


def postgres_bin() -> Path:
    found = postgres_bin_dir()
    if found is None:
        why = "initdb and pg_ctl not found (apt-get install postgresql, or set PG_BIN to their folder)"
        if os.environ.get("REQUIRE_POSTGRES"):
            pytest.fail(f"REQUIRE_POSTGRES is set but {why}")
        pytest.skip(why)
    return found


def redis_binary() -> str | None:
    return shutil.which("redis-server")


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    binary = redis_binary()
    if binary is None:
        pytest.skip("redis-server not found (apt-get install redis-server)")
    server = PrivateRedis(binary)
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def _served_site() -> Iterator[ServedSite]:
    """One site for the session (starting it costs ~10 s): Postgres, Redis if installed, the web workers.

    Without the tasks worker: `make serve` stops the whole site when that worker exits, and it exits when the
    database is unreachable (see test_database_restart.py). This is the site as a web host of a larger
    deployment serves it, its tasks run elsewhere.
    """
    with site_on_private_servers(postgres_bin(), redis_binary(), tasks_worker=False) as site:
        yield site


@pytest.fixture
def site(_served_site: ServedSite) -> ServedSite:
    """The served site, its database up (a drill that failed half-way may have left it down)."""
    if not (_served_site.postgres.data / "postmaster.pid").exists():
        _served_site.postgres.start()
    assert _served_site.serve.poll() is None, f"config.serve has exited:\n{_served_site.log_text()}"
    return _served_site
