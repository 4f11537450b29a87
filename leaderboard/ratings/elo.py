"""Online Elo over battles in time order, and its permutation bootstrap.

Update for a battle between A (rating r_a) and B (r_b) with score s (1 A wins, 0 B wins, 1/2 tie;
"both bad" is a tie unless excluded)::

    e   = 1 / (1 + base ** ((r_b - r_a) / scale))
    r_a += k (s - e);  r_b -= k (s - e)

Updates are zero-sum, so with every model starting at ``initial`` the mean rating stays ``initial``.
Online Elo depends on the order of the battles; the "bootstrap over orderings" replays them in
random permutations and measures that order sensitivity (it is not a sampling-error interval).

The loops run compiled (numba, :mod:`._elo_kernel`, imported on first use) when numba is installed:
2M battles x 100 permutations in ~1.4 s instead of ~70-80 s on 2 cores. Without numba, or for a random generator
other than a :class:`numpy.random.Generator`, the pure numpy/Python reference below runs instead,
with the same results (to rounding: ~1e-12 rating points) and the same permutations for a seed.
"""
from __future__ import annotations

import os
import warnings
from functools import cache
from types import ModuleType

import numpy as np

from .data import B_WINS, BOTH_BAD, TIE, EloBattles

__all__ = ["elo_battles", "elo_permutations"]

# Replay threads for the compiled bootstrap: drawing each round's permutation is sequential
# (a third of the work), so more than 3 threads gain nothing.
_MAX_WORKERS = 3
# The compiled bootstrap stores swap targets as int32.
_MAX_COMPILED_BATTLES = 1 << 31


def _scores(battles: EloBattles, exclude_ties: bool, both_bad_as_tie: bool) -> tuple[np.ndarray, ...]:
    out = battles.outcome
    keep = out < TIE if exclude_ties else (out != BOTH_BAD) | both_bad_as_tie
    score = np.where(out == 0, 1.0, np.where(out == B_WINS, 0.0, 0.5))
    return battles.a[keep], battles.b[keep], score[keep]


@cache
def _kernel() -> ModuleType | None:
    """The compiled kernels, or None when numba is not installed."""
    try:
        from . import _elo_kernel
    except (ImportError, OSError):  # no numba, or a numba/llvmlite that does not load here
        return None
    return _elo_kernel


@cache
def _kernel_draws_ok(kernel: ModuleType) -> bool:
    if kernel.draws_match_numpy():
        return True
    warnings.warn("this numpy's Generator.permutation no longer matches the compiled Elo bootstrap's draws; "
                  "using the (slow) numpy path", RuntimeWarning, stacklevel=3)
    return False


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def elo_battles(
    battles: EloBattles,
    *,
    k: float = 4.0,
    base: float = 10.0,
    scale: float = 400.0,
    initial: float = 1000.0,
    exclude_ties: bool = False,
    both_bad_as_tie: bool = True,
) -> np.ndarray:
    """Online Elo ratings after replaying ``battles`` in their (time) order.

    Parameters
    ----------
    battles : EloBattles
        Battles in time order.
    k, base, scale, initial : float
        Elo constants (defaults: K = 4, base 10, scale 400, start at 1000).
    exclude_ties : bool
        Skip ties and both-bad ties.
    both_bad_as_tie : bool
        Count "both bad" as a tie (True) or skip it (False).

    Returns
    -------
    ndarray, shape (M,)
        Final ratings.
    """
    kernel = _kernel()
    if kernel is None:
        return _elo_battles_reference(battles, k=k, base=base, scale=scale, initial=initial,
                                      exclude_ties=exclude_ties, both_bad_as_tie=both_bad_as_tie)
    a, b, s = _scores(battles, exclude_ties, both_bad_as_tie)
    return kernel.replay(a, b, s, battles.n_models, k=k, base=base, scale=scale, initial=initial)


def elo_permutations(
    battles: EloBattles,
    rounds: int,
    rng: np.random.Generator,
    *,
    k: float = 4.0,
    base: float = 10.0,
    scale: float = 400.0,
    initial: float = 1000.0,
    exclude_ties: bool = False,
    both_bad_as_tie: bool = True,
    max_bytes: int = 1 << 28,
) -> np.ndarray:
    """Online Elo replayed over ``rounds`` random permutations of the battles.

    Round ``r`` replays the kept battles in the order of the ``r``-th ``rng.permutation(N)``, and
    ``rng`` ends where ``rounds`` such calls leave it, on either path. Compiled path: each round's
    permutation is drawn in turn, then applied and replayed in up to 3 threads (two ``N``-long
    integer arrays each). Reference path (no numba): rounds advance together, one battle index
    per step, in blocks whose (N, block) permutation table stays under ``max_bytes``.

    Parameters
    ----------
    battles : EloBattles
        Battles (their order is irrelevant here).
    rounds : int
        Number of permutations R.
    rng : numpy.random.Generator
        Source of the permutations.
    k, base, scale, initial, exclude_ties, both_bad_as_tie
        As in :func:`elo_battles`.
    max_bytes : int
        Memory cap for the permutation tables (per block on the reference path; the compiled
        path uses fewer threads when they would need more).

    Returns
    -------
    ndarray, shape (R, M)
        Final ratings of each replay.
    """
    kernel = _kernel()
    a, b, s = _scores(battles, exclude_ties, both_bad_as_tie)
    if (kernel is None or not isinstance(rng, np.random.Generator) or a.size >= _MAX_COMPILED_BATTLES
            or not _kernel_draws_ok(kernel)):
        return _elo_permutations_reference(battles, rounds, rng, k=k, base=base, scale=scale, initial=initial,
                                           exclude_ties=exclude_ties, both_bad_as_tie=both_bad_as_tie,
                                           max_bytes=max_bytes)
    # Threads pay off from ~1M battle replays; each holds ~12 bytes per battle.
    workers = 1 if a.size * rounds < 1 << 20 else min(_MAX_WORKERS, _cpus(), max_bytes // max(1, 12 * a.size))
    return kernel.permutation_replays(a, b, s, battles.n_models, rounds, rng, k=k, log_base=np.log(base) / scale,
                                      initial=initial, workers=max(1, workers))


# ----------------------------------------------------------------------- reference implementations
def _elo_battles_reference(
    battles: EloBattles, *, k: float = 4.0, base: float = 10.0, scale: float = 400.0, initial: float = 1000.0,
    exclude_ties: bool = False, both_bad_as_tie: bool = True,
) -> np.ndarray:
    """:func:`elo_battles` in plain Python (no numba): the reference the compiled loop is tested against."""
    a, b, s = _scores(battles, exclude_ties, both_bad_as_tie)
    rating = [float(initial)] * battles.n_models
    inv_scale = 1.0 / scale
    # A plain Python loop over floats: each update depends on the previous one, and list/float
    # arithmetic is several times faster than numpy scalar indexing.
    for ia, ib, sa in zip(a.tolist(), b.tolist(), s.tolist(), strict=True):
        ra, rb = rating[ia], rating[ib]
        delta = k * (sa - 1.0 / (1.0 + base ** ((rb - ra) * inv_scale)))
        rating[ia] = ra + delta
        rating[ib] = rb - delta
    return np.array(rating)


def _elo_permutations_reference(
    battles: EloBattles, rounds: int, rng: np.random.Generator, *, k: float = 4.0, base: float = 10.0,
    scale: float = 400.0, initial: float = 1000.0, exclude_ties: bool = False, both_bad_as_tie: bool = True,
    max_bytes: int = 1 << 28,
) -> np.ndarray:
    """:func:`elo_permutations` with numpy only: the reference the compiled path is tested against.

    Rounds advance together, one battle index per step, so the Python loop runs N times per block
    of rounds (not R x N) and each step is a few vectorised operations over the block. Blocks are
    sized so that their permutation table stays under ``max_bytes`` (the whole (R, N) table would
    take 800 MB for 2M battles and 100 rounds).
    """
    a, b, s = _scores(battles, exclude_ties, both_bad_as_tie)
    n, m = a.size, battles.n_models
    block = int(max(1, min(rounds, max_bytes // max(1, 4 * n))))
    out = np.empty((rounds, m))
    for start in range(0, rounds, block):
        size = min(block, rounds - start)
        # (N, R) layout: the indices of step t for every round are contiguous.
        order = np.empty((n, size), dtype=np.int32)
        for j in range(size):
            order[:, j] = rng.permutation(n)
        out[start: start + size] = _replay(order, a, b, s, m, k, np.log(base) / scale, initial)
    return out


def _replay(
    order: np.ndarray, a: np.ndarray, b: np.ndarray, s: np.ndarray, m: int, k: float, log_base: float,
    initial: float,
) -> np.ndarray:
    size = order.shape[1]
    rating = np.full((size, m), float(initial))
    flat = rating.reshape(-1)
    offset = np.arange(size) * m
    for idx in order:
        ia = offset + a[idx]
        ib = offset + b[idx]
        ra, rb = flat[ia], flat[ib]
        delta = k * (s[idx] - 1.0 / (1.0 + np.exp((rb - ra) * log_base)))
        flat[ia] = ra + delta
        flat[ib] = rb - delta
    return rating
