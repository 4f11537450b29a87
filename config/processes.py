"""Child processes that must not outlive the process that started them."""
from __future__ import annotations

import ctypes
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask the kernel to send this process SIGTERM when its parent dies, even by SIGKILL (Linux; elsewhere nothing).

    For ``subprocess.Popen(preexec_fn=...)``: it runs in the child between fork and exec. An orphan would keep a
    port (a web server), keep taking tasks (a worker) or keep writing checkpoints into a folder that a retried
    job then shares (a trainer). The signal comes when the *thread* that started the child ends, so start
    children from a thread that waits for them.
    """
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
