"""Numerical core of the arena leaderboard (numpy only at import time; no Django).

Entry point
-----------
::

    leaderboard_fit(
        pairs: PairCounts | None = None,
        rankings: RankingCounts | None = None,
        *,
        method: "elo" | "bt" | "pl" | "bayes" = "bt",
        ties: "half" | "davidson" | "rao-kupper" = "half",
        exclude_ties: bool = False,          # drop outcomes 2 and 3
        both_bad_as_tie: bool = True,        # False: drop only outcome 3
        ci: "bootstrap" | "sandwich" = "bootstrap",
        bootstrap: int = 100,
        level: float = 0.95,
        style_control: bool = False,         # needs pairs.features
        anchor: str | None = None,           # model pinned at 1000
        l2: float = 0.0,                     # optional ridge for BT / PL
        prior_sd: float = 2.0,               # bayes prior sd (natural scale)
        elo_k: float = 4.0,
        seed: int = 0,
        battles: EloBattles | None = None,   # per-battle, time-ordered (required for Elo)
        workers: int = 2,
    ) -> LeaderboardFit

``LeaderboardFit.rows`` is a list of :class:`LeaderboardRow` ``(model, rating, ci_low, ci_high,
rank, rank_ub, votes, component, provisional, ci_degenerate_share[, mu, sigma, p_best])`` by component,
then by rating (descending); ``.params`` holds the
settings and fitted scalars (tie parameter, number of components, ...); ``.theta`` the strengths on
the natural scale; ``.style_coefficients`` the style effects. ``.to_records()`` gives the CLI's JSON.

Data (built by the Django side from ``GROUP BY`` queries, validated on construction):

* :class:`PairCounts` -- ``(models, a, b, outcome, weight[, features, feature_names])``, one row per
  unique ``(a, b, outcome)``; ``PairCounts.from_arrays`` aggregates raw per-battle arrays,
  ``PairCounts.from_records`` takes ``(model_a, model_b, outcome, count)`` tuples.
* :class:`RankingCounts` -- ``(models, items, group, weight)`` K-wise votes; ``from_rankings`` and
  ``from_best_of`` build them. :func:`align_models` puts pairs and rankings on one model list.
* :class:`EloBattles` -- ``(models, a, b, outcome)`` in time order; ``from_arrays(..., tstamp=)`` sorts.

Matrices: :func:`battle_count_matrix(pairs)`, :func:`win_rate_matrix(pairs)` and
:func:`predicted_win_matrix(fit)`, each (M, M) over ``models``.

Scale: ``rating = 400 * theta / ln 10 + 1000``, the mean model of each connected component at 1000
(or the anchor at exactly 1000). Lower-level pieces (objectives, batched Newton, bootstrap,
sandwich, Laplace posterior, Elo) live in the submodules and are re-exported below.

CLI: ``python -m leaderboard.ratings FILE [--format fastchat|csv] [--method ...] ...`` (see
:mod:`leaderboard.ratings.__main__`).
"""
from __future__ import annotations

from .bayes import Posterior, laplace_posterior, probability_best
from .bradley_terry import PairwiseObjective, expected_score, pair_probabilities
from .data import OUTCOME_CODES, EloBattles, PairCounts, RankingCounts, align_models, union_models
from .elo import elo_battles, elo_permutations
from .errors import ConvergenceError
from .estimation import Estimate, fit_objective
from .fit import (
    CI_METHODS,
    METHODS,
    TIE_MODES,
    FitOptionError,
    LeaderboardFit,
    LeaderboardRow,
    StyleCoefficient,
    check_fit_options,
    leaderboard_fit,
)
from .intervals import (
    BootstrapResult,
    bootstrap_estimate,
    multinomial_reweight,
    percentile_interval,
    rank_from_ratings,
    rank_upper_bound,
    sandwich_covariance,
)
from .matrices import battle_count_matrix, predicted_win_matrix, win_rate_matrix
from .newton import newton_batched
from .plackett_luce import MixedObjective, RankingObjective
from .scale import RATING_CENTER, RATING_SCALE, rating_to_theta, theta_to_rating
from .style import STYLE_FEATURES, style_features

__all__ = [
    "CI_METHODS",
    "METHODS",
    "OUTCOME_CODES",
    "RATING_CENTER",
    "RATING_SCALE",
    "STYLE_FEATURES",
    "TIE_MODES",
    "BootstrapResult",
    "ConvergenceError",
    "EloBattles",
    "Estimate",
    "FitOptionError",
    "LeaderboardFit",
    "LeaderboardRow",
    "MixedObjective",
    "PairCounts",
    "PairwiseObjective",
    "Posterior",
    "RankingCounts",
    "RankingObjective",
    "StyleCoefficient",
    "align_models",
    "battle_count_matrix",
    "bootstrap_estimate",
    "check_fit_options",
    "elo_battles",
    "elo_permutations",
    "expected_score",
    "fit_objective",
    "laplace_posterior",
    "leaderboard_fit",
    "multinomial_reweight",
    "newton_batched",
    "pair_probabilities",
    "percentile_interval",
    "predicted_win_matrix",
    "probability_best",
    "rank_from_ratings",
    "rank_upper_bound",
    "rating_to_theta",
    "sandwich_covariance",
    "style_features",
    "theta_to_rating",
    "union_models",
    "win_rate_matrix",
]
