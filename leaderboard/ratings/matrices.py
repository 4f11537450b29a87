"""Model-by-model matrices: battle counts, empirical win rates and predicted win probabilities."""
from __future__ import annotations

from typing import TYPE_CHECKING, cast

import numpy as np

from .bradley_terry import TieMode, expected_score
from .data import A_WINS, B_WINS, PairCounts

if TYPE_CHECKING:
    from .fit import LeaderboardFit

__all__ = ["battle_count_matrix", "predicted_win_matrix", "win_rate_matrix"]


def battle_count_matrix(pairs: PairCounts) -> np.ndarray:
    """Battles between each pair of models (both positions), shape (M, M), symmetric."""
    m = pairs.n_models
    counts = np.bincount(pairs.a * m + pairs.b, pairs.weight, m * m).reshape(m, m)
    return counts + counts.T


def win_rate_matrix(pairs: PairCounts, *, exclude_ties: bool = False) -> np.ndarray:
    """Empirical score of the row model against the column model (win 1, tie 1/2), shape (M, M).

    Parameters
    ----------
    pairs : PairCounts
    exclude_ties : bool
        Ignore ties (outcomes 2 and 3) instead of counting them as 1/2.

    Returns
    -------
    ndarray
        ``W[i, j] + W[j, i] = 1`` wherever the pair met; NaN where it never did (and on the diagonal).
    """
    m = pairs.n_models
    data = pairs.select_outcomes(exclude_ties=exclude_ties)
    score_a = np.where(data.outcome == A_WINS, 1.0, np.where(data.outcome == B_WINS, 0.0, 0.5))
    idx = data.a * m + data.b
    won = np.bincount(idx, data.weight * score_a, m * m).reshape(m, m)
    lost = np.bincount(idx, data.weight * (1.0 - score_a), m * m).reshape(m, m)
    points = won + lost.T
    games = battle_count_matrix(data)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(games > 0, points / games, np.nan)


def predicted_win_matrix(fit: LeaderboardFit) -> np.ndarray:
    """Model-predicted expected score of row vs column (win + tie / 2), shape (M, M).

    Uses the fitted strengths ``fit.theta`` (and the tie model/parameter for Davidson and
    Rao-Kupper); for Elo the ratings are converted with the same logistic curve. Style effects are
    held at zero (equal style). Rows/columns follow ``fit.models``.
    """
    theta = fit.theta
    d = theta[:, None] - theta[None, :]
    # params is leaderboard_fit's record: "ties" its TieMode argument, "log_tie_parameter" a float or None
    eta = cast("float | None", fit.params.get("log_tie_parameter"))
    ties = cast(TieMode, fit.params.get("ties", "half")) if eta is not None else "half"
    return expected_score(d, ties, eta)
