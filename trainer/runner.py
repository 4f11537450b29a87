"""Launching ``python -m trainer.train JOB.json`` as a subprocess and following it. No Django here.

The worker process (``manage.py db_worker --queue-name gpu``) calls :func:`run_training`; it starts the
training as a child process (plain Python, ``torchrun`` or ``accelerate launch`` for several GPUs), reads
the ``progress.json`` and ``metrics.jsonl`` the trainer writes, reports them through ``on_progress`` about once
a second (which is also the job's heartbeat), and stops the child when ``should_cancel`` says so. A child
that ignores SIGTERM for ``grace_s`` is killed.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.processes import die_with_parent

LAUNCHERS = ("python", "torchrun", "accelerate")


def launch_command(launcher: str, nproc: int, job_file: Path) -> list[str]:
    """The command line that runs the training job in ``job_file`` on ``nproc`` processes."""
    if launcher == "python":
        if nproc != 1:
            raise ValueError("the plain launcher runs one process; use torchrun or accelerate for more")
        return [sys.executable, "-m", "trainer.train", str(job_file)]
    if launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                "-m", "trainer.train", str(job_file)]
    if launcher == "accelerate":
        return [sys.executable, "-m", "accelerate.commands.launch", f"--num_processes={nproc}", "-m",
                "trainer.train", str(job_file)]
    raise ValueError(f"unknown launcher {launcher!r}; expected one of {', '.join(LAUNCHERS)}")


@dataclass(frozen=True)
class Progress:
    progress: dict[str, Any]          # the trainer's progress.json (step, total_steps, loss, eta_s, ...)
    last_train: dict[str, Any] | None  # the latest train line of metrics.jsonl
    last_eval: dict[str, Any] | None   # the latest eval line


@dataclass(frozen=True)
class RunOutcome:
    returncode: int
    cancelled: bool
    log_tail: str                      # the end of the child's combined output, for the job's error


def read_progress(output_dir: Path) -> Progress:
    """What the trainer has reported so far (a half-written file reads as nothing new)."""
    progress: dict[str, Any] = {}
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        progress = json.loads((output_dir / "progress.json").read_text())
    last: dict[str, dict[str, Any] | None] = {"train": None, "eval": None}
    try:
        with open(output_dir / "metrics.jsonl", encoding="utf-8") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue   # the line being written
                if record.get("split") in last:
                    last[record["split"]] = record
    except FileNotFoundError:
        pass
    return Progress(progress=progress, last_train=last["train"], last_eval=last["eval"])


def run_training(*, command: list[str], output_dir: Path, on_progress: Callable[[Progress], None],
                 should_cancel: Callable[[], bool], poll_s: float = 1.0, grace_s: float = 10.0,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> RunOutcome:
    """Run ``command`` to completion (or cancellation), reporting progress every ``poll_s`` seconds."""
    output_dir.mkdir(parents=True, exist_ok=True)
    log_path = output_dir / "train.log"
    with open(log_path, "ab") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                 cwd=cwd, start_new_session=True,  # its own group: torchrun's workers stop too
                                 # A worker killed outright takes its trainer with it (SIGTERM: the trainer saves a
                                 # checkpoint and exits), so a retried job never shares the folder with an orphan.
                                 preexec_fn=die_with_parent)
        cancelled = False
        while child.poll() is None:
            time.sleep(poll_s)
            on_progress(read_progress(output_dir))
            if should_cancel():
                cancelled = True
                _stop(child, grace_s)
                break
        returncode = child.wait()
    on_progress(read_progress(output_dir))
    return RunOutcome(returncode=returncode, cancelled=cancelled, log_tail=_tail(log_path))


def _stop(child: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM to the child's process group, SIGKILL after ``grace_s``."""
    try:
        os.killpg(child.pid, signal.SIGTERM)
        child.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _tail(path: Path, limit: int = 4000) -> str:
    data = path.read_bytes()[-limit:]
    return data.decode("utf-8", errors="replace")
