"""Run a block with single-threaded OpenBLAS (no new dependency: ctypes on numpy's own library).

The batched Newton solves hundreds of ~130x130 systems per call. Each is far too small for BLAS
threads to pay off, and on a busy 2-core machine OpenBLAS's spinning worker threads make them
10-100x slower (measured: 12 ms single-threaded vs 40 ms-1.9 s threaded). threadpoolctl would do
this, but it is not a dependency; this helper only touches the OpenBLAS bundled with numpy and is
a no-op when it cannot be found (other BLAS builds, other platforms).
"""
from __future__ import annotations

import ctypes
import glob
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache

import numpy as np

__all__ = ["single_threaded_blas"]

_SYMBOLS = (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
            ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
            ("openblas_get_num_threads", "openblas_set_num_threads"))


@cache
def _openblas() -> tuple[Callable[[], int], Callable[[int], object]] | None:
    root = os.path.dirname(os.path.dirname(np.__file__))
    candidates = glob.glob(os.path.join(root, "numpy.libs", "lib*openblas*"))
    candidates += glob.glob(os.path.join(os.path.dirname(np.__file__), ".dylibs", "lib*openblas*"))
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)  # already loaded by numpy: this returns the same handle
        except OSError:
            continue
        for get_name, set_name in _SYMBOLS:
            get, set_ = getattr(lib, get_name, None), getattr(lib, set_name, None)
            if get is not None and set_ is not None:
                get.restype = ctypes.c_int
                set_.argtypes = [ctypes.c_int]
                return get, set_
    return None


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit numpy's OpenBLAS to one thread inside the block, restoring the previous count."""
    funcs = _openblas()
    if funcs is None:
        yield
        return
    get, set_ = funcs
    previous = int(get())
    set_(1)
    try:
        yield
    finally:
        set_(previous)
