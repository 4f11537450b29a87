"""Online Elo over battles in time order, and its permutation bootstrap.

Update for a battle between A (rating r_a) and B (r_b) with score s (1 A wins, 0 B wins, 1/2 tie;
"both bad" is a tie unless excluded)::

    e   = 1 / (1 + base ** ((r_b - r_a) / scale))
    r_a += k (s - e);  r_b -= k (s - e)

Updates are zero-sum, so with every model starting at ``initial`` the mean rating stays ``initial``.
Online Elo depends on the order of the battles; the "bootstrap over orderings" replays them in
random permutations and measures that order sensitivity (it is not a sampling-error interval).
"""
from __future__ import annotations

import numpy as np

from .data import B_WINS, BOTH_BAD, TIE, EloBattles

__all__ = ["elo_battles", "elo_permutations"]


def _scores(battles: EloBattles, exclude_ties: bool, both_bad_as_tie: bool) -> tuple[np.ndarray, ...]:
    out = battles.outcome
    keep = out < TIE if exclude_ties else (out != BOTH_BAD) | both_bad_as_tie
    score = np.where(out == 0, 1.0, np.where(out == B_WINS, 0.0, 0.5))
    return battles.a[keep], battles.b[keep], score[keep]


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

    Rounds advance together, one battle index per step, so the Python loop runs N times per block
    of rounds (not R x N) and each step is a few vectorised operations over the block. Blocks are
    sized so that their permutation table stays under ``max_bytes`` (the whole (R, N) table would
    take 800 MB for 2M battles and 100 rounds).

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
        Memory cap for one block's permutation table.

    Returns
    -------
    ndarray, shape (R, M)
        Final ratings of each replay.
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
