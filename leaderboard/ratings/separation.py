"""How many more votes until the top of a leaderboard is separated: a rough planning figure.

Pure numpy, no Django. The assumption is stated so it can be judged: an interval's half-width
shrinks as 1 / sqrt(votes), and future votes fall on each adjacent pair in proportion to the votes
it has now. With that, the interval half-widths ``h_i`` and ``h_j`` of two neighbours with rating
gap ``g`` stop overlapping once both have ``s = ((h_i + h_j) / g) ** 2`` times their votes. The
figure is the sum over the adjacent pairs among the top ``top`` of the extra votes each pair needs,
halved because a pairwise vote counts for two models, and divided by ``k - 1`` for K-wise votes (each
shows a model against ``k - 1`` others). Two models with the same rating are never separated: None.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise


def votes_to_separate_top(
    ratings: Sequence[float], ci_low: Sequence[float | None], ci_high: Sequence[float | None],
    votes: Sequence[float], *, top: int = 10, k: int = 2,
) -> float | None:
    """Expected further votes until no two neighbours among the ``top`` highest ratings have overlapping intervals.

    Parameters
    ----------
    ratings, ci_low, ci_high, votes : sequences of equal length
        One entry per model, in any order; a missing bound (None) makes the figure unknown.
    top : int
        How many of the highest-rated models must be separated.
    k : int
        Answers per vote (2 = pairwise).

    Returns
    -------
    float or None
        0.0 when already separated; None when it cannot be estimated (an open interval, a model
        without votes, or two tied ratings).
    """
    if not len(ratings) == len(ci_low) == len(ci_high) == len(votes):
        raise ValueError("ratings, ci_low, ci_high and votes must have one entry per model")
    if k < 2 or top < 2:
        raise ValueError("k and top must be at least 2")
    order = sorted(range(len(ratings)), key=lambda i: -ratings[i])[:top]
    total = 0.0
    for i, j in pairwise(order):
        low_i, high_i, low_j, high_j = ci_low[i], ci_high[i], ci_low[j], ci_high[j]
        if low_i is None or high_i is None or low_j is None or high_j is None:
            return None
        if votes[i] <= 0 or votes[j] <= 0:
            return None
        gap = ratings[i] - ratings[j]
        if gap <= 0:
            return None
        half_i, half_j = (high_i - low_i) / 2, (high_j - low_j) / 2
        scale = ((half_i + half_j) / gap) ** 2
        if scale > 1:
            total += (scale - 1) * (votes[i] + votes[j]) / 2
    return math.ceil(total / (k - 1)) * 1.0 if total else 0.0
