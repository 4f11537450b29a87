"""Private Postgres clusters and Redis servers that a fault drill may stop, kill and restart.

The shared servers on 127.0.0.1:5432 and :6379 serve everyone on the machine: a drill never touches them. Each
server here lives in a fresh temporary folder, listens on a free loopback port, and is killed by ``close()``
(which fixtures call in ``finally``) whatever state the test left it in.
"""
from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import psycopg


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: PG_BIN, else the newest Debian install, else the PATH; None if none."""
    candidates = [Path(os.environ["PG_BIN"])] if os.environ.get("PG_BIN") else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True)
    if found := shutil.which("initdb"):
        candidates.append(Path(found).resolve().parent)
    return next((d for d in candidates if (d / "initdb").exists() and (d / "pg_ctl").exists()), None)


def _unprivileged_user() -> tuple[int, int] | None:
    """(uid, gid) to run the cluster as when this process is root (initdb refuses root); None when not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    raise RuntimeError("running as root and no postgres or nobody user to run a private cluster as")


class PrivatePostgres:
    """A throwaway Postgres cluster: trust auth, fsync off (a drill needs no durability across a machine crash)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        # Not under pytest's tmp_path: its parents are private to root, and the cluster may run as another user.
        self.root = Path(tempfile.mkdtemp(prefix="arena-faults-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.user = _unprivileged_user()
        try:
            if self.user is not None:
                os.chown(self.root, *self.user)
            self._pg(["initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _pg(self, argv: list[str], *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        uid, gid = self.user if self.user is not None else (None, None)
        result = subprocess.run([str(self.bin_dir / argv[0]), *argv[1:]], capture_output=True, text=True,
                                timeout=timeout, user=uid, group=gid, cwd=self.root)
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stderr}\n{self.log_text()}")
        return result

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg(["pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "30", "start"])

    def stop(self, *, mode: str = "fast") -> None:
        """``fast``: sessions are cut and the server shuts down cleanly; ``immediate``: a crash (recovery on start)."""
        self._pg(["pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop"])

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def close(self) -> None:
        """Kill the postmaster if it runs (whatever the test did to it) and delete the cluster."""
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)  # immediate shutdown of the cluster
            deadline = time.monotonic() + 10
            while pid_file.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class PrivateRedis:
    """A throwaway redis-server with nothing persisted, on a free port."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port} (exit {self.process.poll()})")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: the server vanishes as in a crash, and nothing answers on its port afterwards."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def close(self) -> None:
        self.kill()

    def __enter__(self) -> PrivateRedis:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
