"""Compiled loops behind :mod:`leaderboard.ratings.elo` (numba; imported lazily, only for Elo).

Online Elo is a sequential update, so the loop over battles stays a loop; numba compiles it. The
permutation bootstrap replays the battles in ``R`` random orders that must be *the same orders*
that ``rng.permutation(n)`` would give, round after round, so that a seed keeps its results.
numpy's ``Generator.permutation(n)`` shuffles ``arange(n)`` by Fisher-Yates: for ``i = n-1 .. 1``
it swaps positions ``i`` and ``j``, where ``j`` is drawn by rejection, ``j = w & mask`` for the
next 32-bit word ``w`` of the bit generator until ``j <= i`` (``mask``: the smallest ``2^b - 1 >= i``).
Here the words come from ``rng.integers(0, 2**32, dtype=np.uint32)``, which hands out exactly that
stream of 32-bit words; a compiled scan turns them into the swap targets. Each position takes at
least one word, so asking for as many words as positions remain never draws past what numpy's own
shuffle would use: the generator ends in the state ``rng.permutation`` would leave it in.
:func:`draws_match_numpy` checks the equivalence once per process (the caller falls back to the
numpy path if a future numpy changes its shuffle).

Drawing the swaps is the only sequential part across rounds (~8 ms per 2M battles); applying them
to the packed battles and replaying (~15 ms) runs without the GIL in ``workers`` threads, one round
per task, so rounds overlap.

Caching: functions are compiled with ``cache=True``. numba writes the cache next to this file
(``__pycache__``), else in the user-wide cache directory, or wherever ``NUMBA_CACHE_DIR`` points;
when none of those is writable (read-only checkout and home), they are compiled once per process.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

import numba
import numpy as np

if TYPE_CHECKING:
    from numba.core.dispatcher import Dispatcher

__all__ = ["draws_match_numpy", "permutation_replays", "replay"]

_F = TypeVar("_F", bound=Callable[..., Any])

#: Score of the first model for each packed outcome code (A wins, B wins, tie).
_SCORE = np.array([1.0, 0.0, 0.5])


def _jit(fn: _F) -> Dispatcher[_F]:
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available": nowhere writable
        return numba.njit(nogil=True)(fn)


@_jit
def _replay_pow(a: np.ndarray, b: np.ndarray, s: np.ndarray, rating: np.ndarray, k: float, base: float,
                inv_scale: float) -> None:  # pragma: no cover - compiled
    # The update of the reference loop, in the same floating-point order (pow, not exp).
    for t in range(a.size):
        ia = a[t]
        ib = b[t]
        ra = rating[ia]
        rb = rating[ib]
        delta = k * (s[t] - 1.0 / (1.0 + base ** ((rb - ra) * inv_scale)))
        rating[ia] = ra + delta
        rating[ib] = rb - delta


@_jit
def _scan_swaps(words: np.ndarray, swaps: np.ndarray, i: int) -> int:  # pragma: no cover - compiled
    # numpy's random_interval(i) over a block of 32-bit words: candidate j = w & mask, accepted when
    # j <= i; then the next position i - 1. Written without a data-dependent branch (the ~28 %
    # rejections would mispredict). Returns the first position still without a target (0: done).
    mask = np.uint32(i)
    mask |= mask >> 1
    mask |= mask >> 2
    mask |= mask >> 4
    mask |= mask >> 8
    mask |= mask >> 16
    for w in range(words.size):
        if i == 0:
            break
        v = words[w] & mask
        swaps[i] = v
        i -= v <= np.uint32(i)
        if (mask >> 1) >= np.uint32(i):
            mask = mask >> 1
    return i


@_jit
def _apply_swaps(x: np.ndarray, swaps: np.ndarray) -> None:  # pragma: no cover - compiled
    # The Fisher-Yates pass: position i (from the end) trades places with swaps[i] <= i.
    for i in range(x.size - 1, 0, -1):
        j = swaps[i]
        c = x[i]
        x[i] = x[j]
        x[j] = c


@_jit
def _shuffle_replay(codes: np.ndarray, swaps: np.ndarray, work: np.ndarray, rating: np.ndarray, shift: int,
                    b_mask: int, k: float, log_base: float, score: np.ndarray) -> None:  # pragma: no cover
    # Apply the Fisher-Yates swaps to a copy of the packed battles, then replay them in that order
    # with the update of the reference permutation path (exp of a pre-scaled log base).
    n = codes.size
    work[:] = codes
    _apply_swaps(work, swaps)
    for t in range(n):
        c = work[t]
        ia = c >> shift
        ib = (c >> 2) & b_mask
        ra = rating[ia]
        rb = rating[ib]
        delta = k * (score[c & 3] - 1.0 / (1.0 + math.exp((rb - ra) * log_base)))
        rating[ia] = ra + delta
        rating[ib] = rb - delta


def replay(a: np.ndarray, b: np.ndarray, s: np.ndarray, n_models: int, *, k: float, base: float, scale: float,
           initial: float) -> np.ndarray:
    """Final ratings after the battles ``(a[t], b[t], s[t])`` in order; see :func:`~.elo.elo_battles`."""
    rating = np.full(n_models, float(initial))
    _replay_pow(np.ascontiguousarray(a, dtype=np.int64), np.ascontiguousarray(b, dtype=np.int64),
                np.ascontiguousarray(s, dtype=np.float64), rating, float(k), float(base), 1.0 / scale)
    return rating


def draw_swaps(rng: np.random.Generator, n: int, swaps: np.ndarray) -> None:
    """Fill ``swaps[i]`` (i = n-1 .. 1) with the targets of ``rng.permutation(n)``'s shuffle, drawing the same words."""
    i = n - 1
    while i > 0:
        # Each of the i positions left takes at least one word: never more words than numpy would draw.
        i = int(_scan_swaps(rng.integers(0, 1 << 32, size=i, dtype=np.uint32), swaps, i))


def _pack(a: np.ndarray, b: np.ndarray, s: np.ndarray, n_models: int) -> tuple[np.ndarray, int, int]:
    # One integer per battle, (a << shift) | (b << 2) | outcome: the shuffle then moves one word,
    # and 4 bytes per battle when 2 * bits + 2 <= 31 (up to 16,384 models).
    bits = max(1, int(n_models - 1).bit_length())
    shift = bits + 2
    dtype = np.int32 if shift + bits <= 31 else np.int64
    if shift + bits > 63:
        raise ValueError(f"too many models to pack: {n_models}")
    outcome = np.where(s == 1.0, 0, np.where(s == 0.0, 1, 2))
    codes = (a.astype(np.int64) << shift) | (b.astype(np.int64) << 2) | outcome
    return codes.astype(dtype), shift, (1 << bits) - 1


def permutation_replays(a: np.ndarray, b: np.ndarray, s: np.ndarray, n_models: int, rounds: int,
                        rng: np.random.Generator, *, k: float, log_base: float, initial: float,
                        workers: int = 2) -> np.ndarray:
    """Final ratings of ``rounds`` replays, round ``r`` in the order of the ``r``-th ``rng.permutation(n)``.

    Parameters
    ----------
    a, b : ndarray of int, shape (N,)
        Model indices of the kept battles.
    s : ndarray of float, shape (N,)
        Score of ``a`` (1, 0 or 1/2).
    n_models : int
        M.
    rounds : int
        R.
    rng : numpy.random.Generator
        Advanced exactly as ``rounds`` calls of ``rng.permutation(N)`` would advance it.
    k, log_base, initial : float
        K, ``log(base) / scale`` and the starting rating.
    workers : int
        Threads replaying rounds concurrently (results do not depend on it). Each holds two
        ``N``-long integer arrays.

    Returns
    -------
    ndarray, shape (R, M)
    """
    n = a.size
    out = np.full((rounds, n_models), float(initial))
    if rounds == 0 or n == 0:
        return out
    if n >= 1 << 31:
        raise ValueError(f"too many battles for 32-bit swap targets: {n}")
    codes, shift, b_mask = _pack(a, b, s, n_models)
    lock = threading.Lock()
    claimed = [0]

    def work() -> None:
        swaps = np.zeros(n, dtype=np.int32)
        buffer = np.empty_like(codes)
        while True:
            with lock:  # rounds take their words from the generator one after the other, in order
                r = claimed[0]
                if r == rounds:
                    return
                claimed[0] = r + 1
                draw_swaps(rng, n, swaps)
            _shuffle_replay(codes, swaps, buffer, out[r], shift, b_mask, float(k), float(log_base), _SCORE)

    workers = max(1, min(workers, rounds))
    if workers == 1:
        work()
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="elo-replay") as pool:
            futures = [pool.submit(work) for _ in range(workers)]
            try:
                for future in futures:
                    future.result()
            except BaseException:  # an error or Ctrl-C: the other threads stop after their current round
                with lock:
                    claimed[0] = rounds
                raise
    return out


@cache
def draws_match_numpy() -> bool:
    """Whether :func:`draw_swaps` reproduces this numpy's ``Generator.permutation`` (checked once)."""
    ours, theirs = np.random.default_rng(20240220), np.random.default_rng(20240220)
    for n in (0, 1, 2, 3, 1000, 70_001, 1000):
        swaps = np.zeros(max(n, 1), dtype=np.int32)
        draw_swaps(ours, n, swaps)
        perm = np.arange(n, dtype=np.int32)
        _apply_swaps(perm, swaps)
        if not np.array_equal(perm, theirs.permutation(n)):
            return False
    return bool(ours.integers(0, 1 << 62) == theirs.integers(0, 1 << 62))
