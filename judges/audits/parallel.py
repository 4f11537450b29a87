"""Run independent per-judge audits on several cores by forking (POSIX), with a serial fallback.

The judges of a report are independent and each draws from its own random stream, so the result
does not depend on how they are split. A forked child inherits the parsed table (no copy, no
pickling of inputs), computes its share and sends the report blocks back through a pipe as a pickle.

Forking is for command-line use: a web or task worker holding database connections, threads or
locks should keep ``workers=1`` (the default of :func:`judges.audits.audit_judgments`).
"""
from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["map_forked"]

T = TypeVar("T")
R = TypeVar("R")


def _split(costs: Sequence[float], parts: int) -> list[list[int]]:
    """Indices split into ``parts`` groups of similar total cost (greedy, largest first)."""
    groups: list[list[int]] = [[] for _ in range(parts)]
    load = [0.0] * parts
    for i in sorted(range(len(costs)), key=lambda k: -costs[k]):
        g = load.index(min(load))
        groups[g].append(i)
        load[g] += costs[i]
    return [sorted(g) for g in groups if g]


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def map_forked(fn: Callable[[T], R], items: Sequence[T], *, costs: Sequence[float] | None = None,
               workers: int = 1) -> list[R]:
    """``[fn(x) for x in items]``, the items shared among ``workers`` processes (this one included).

    Parameters
    ----------
    fn : callable
        Must be deterministic given its item (it runs in a forked copy of this process).
    items : sequence
    costs : sequence of float, optional
        Relative cost of each item, for balancing (default: equal).
    workers : int
        Processes in all; 1 (or a platform without ``os.fork``) runs serially here.

    Returns
    -------
    list, in the order of ``items``.

    Notes
    -----
    A child that fails for any reason has its share recomputed in this process, so an exception in
    ``fn`` surfaces here with its own traceback.
    """
    workers = min(workers, len(items))
    if workers <= 1 or not hasattr(os, "fork"):
        return [fn(x) for x in items]
    groups = _split(costs if costs is not None else [1.0] * len(items), workers)
    children = []
    for group in groups[1:]:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: compute, send, leave without running the parent's cleanup
            os.close(read_fd)
            status = 0
            try:
                payload = pickle.dumps([fn(items[i]) for i in group], protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(write_fd, "wb") as out:
                    out.write(payload)
            except BaseException:
                status = 1
            finally:
                os._exit(status)
        os.close(write_fd)
        children.append((pid, read_fd, group))
    results: dict[int, R] = {i: fn(items[i]) for i in groups[0]}
    for pid, read_fd, group in children:
        payload = _read_all(read_fd)
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) == 0 and payload:
            results.update(zip(group, pickle.loads(payload), strict=True))
        else:
            results.update((i, fn(items[i])) for i in group)
    return [results[i] for i in range(len(items))]
