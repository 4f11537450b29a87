"""The judge's leaderboard: Bradley-Terry with covariates (shown first, length), vs the human one.

Bradley-Terry as a logistic regression: ``logit P(A beats B) = theta_A - theta_B + covariates``,
ties as outcome 1/2 (quasi-likelihood), a ridge of ``1e-4`` on every coefficient. The ridge keeps
strengths finite for a model that never lost (or never won) -- its rating is then large but
finite, never inf/NaN -- and, because the likelihood only sees differences, it also makes the
optimum centred: theta has mean zero within each connected component of the comparison graph.
Ratings are on the leaderboard scale ``400 * theta / ln 10 + 1000``; intervals by the delta method
with the cluster-robust (battle) covariance, centred like the point estimate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .data import UNPARSED, A, B
from .length import choice_outcome, tanh_z
from .stats import ConvergenceError, cluster_robust_cov, kendall_tau_b, logistic_newton, normal_quantile, spearman
from .view import JudgeView

__all__ = ["RATING_CENTER", "RATING_SCALE", "CovariateBT", "bt_fit", "bt_ratings", "covariate_bt", "ranking_audit",
           "ratings_from_fit"]

RATING_SCALE = 400.0 / math.log(10.0)
RATING_CENTER = 1000.0
MAX_MOVERS = 5


def _components(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """Connected-component label of each of n models given comparison pairs (a, b)."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs = np.unique(np.asarray(a, np.int64) * n + b)
    for i, j in zip((pairs // n).tolist(), (pairs % n).tolist(), strict=True):
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[ri] = rj
    roots = [find(i) for i in range(n)]
    _, labels = np.unique(roots, return_inverse=True)
    return labels


def _design(a: np.ndarray, b: np.ndarray, n_models: int, covariates: np.ndarray | None) -> np.ndarray:
    """Rows ``+1`` at A's strength, ``-1`` at B's, then the covariate columns."""
    n = a.size
    X = np.zeros((n, n_models + (0 if covariates is None else covariates.shape[1])))
    rows = np.arange(n)
    X[rows, a] = 1.0
    X[rows, b] = -1.0
    if covariates is not None:
        X[:, n_models:] = covariates
    return X


def bt_fit(a: np.ndarray, b: np.ndarray, y: np.ndarray, n_models: int, clusters: np.ndarray, *,
           covariates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Coefficients (strengths, then covariates) and their cluster-robust covariance; None if not converged.

    Parameters as in :func:`bt_ratings`.
    """
    X = _design(a, b, n_models, covariates)
    try:
        if covariates is None:
            # Without covariates a row is determined by (a, b, y): fit on the few distinct cells,
            # weighted by their counts (same optimum and Hessian), then the sandwich on the rows.
            y_code = np.rint(y * 2).astype(np.int64)
            _, first, count = np.unique((a.astype(np.int64) * n_models + b) * 3 + y_code,
                                        return_index=True, return_counts=True)
            beta, hess, _ = logistic_newton(X[first], y[first], weights=count.astype(np.float64))
        else:
            beta, hess, _ = logistic_newton(X, y)
    except ConvergenceError:
        return None
    cov, _ = cluster_robust_cov(X, y, beta, clusters, hess)
    return beta, cov


def ratings_from_fit(beta: np.ndarray, cov: np.ndarray, a: np.ndarray, b: np.ndarray, n_models: int, *,
                     level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leaderboard-scale ratings and delta-method intervals, centred per connected component."""
    labels = _components(a, b, n_models)
    # Centring matrix per component: the reported theta (and its covariance) are mean zero per component.
    same = labels[:, None] == labels[None, :]
    centre = np.eye(n_models) - same / same.sum(axis=1, keepdims=True)
    theta = centre @ beta[:n_models]
    cov = centre @ cov[:n_models, :n_models] @ centre.T
    se = np.sqrt(np.maximum(np.diag(cov), 0.0))
    z = normal_quantile(0.5 + level / 2.0)
    rating = RATING_SCALE * theta + RATING_CENTER
    return rating, rating - z * RATING_SCALE * se, rating + z * RATING_SCALE * se


def bt_ratings(a: np.ndarray, b: np.ndarray, y: np.ndarray, n_models: int, clusters: np.ndarray, *,
               covariates: np.ndarray | None = None, level: float = 0.95
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Bradley-Terry ratings with delta-method intervals.

    Parameters
    ----------
    a, b : ndarray of int, shape (n,)
        Model indices (0..n_models-1) of sides A and B.
    y : ndarray, shape (n,)
        1 if A won, 0 if B won, 1/2 tie.
    n_models : int
    clusters : ndarray of int, shape (n,)
        Battle of each row (0..G-1), for the robust covariance.
    covariates : ndarray, shape (n, k), optional
        Extra columns (in favour of A) estimated jointly.
    level : float

    Returns
    -------
    (rating, ci_low, ci_high), each shape (n_models,), or None if the fit failed to converge.
    """
    fit = bt_fit(a, b, y, n_models, clusters, covariates=covariates)
    return None if fit is None else ratings_from_fit(*fit, a, b, n_models, level=level)


@dataclass(frozen=True, eq=False)
class CovariateBT:
    """The judge's BT with a shown-first and a length covariate: one fit, read by the corrected ranking and by
    the length-controlled win rates.

    Rows are the judge's parsed plain judgments; ``a`` / ``b`` index ``codes`` (model codes of the table);
    ``shown`` is +1 when A was shown first, else -1; ``length`` is ``tanh`` of the z-scored length difference.
    ``beta`` is (strengths..., shown, length) and ``cov`` its cluster-robust covariance, both None when the fit
    did not converge.
    """

    codes: np.ndarray
    a: np.ndarray
    b: np.ndarray
    y: np.ndarray
    shown: np.ndarray
    length: np.ndarray
    clusters: np.ndarray
    battles: np.ndarray
    beta: np.ndarray | None
    cov: np.ndarray | None


def covariate_bt(view: JudgeView) -> CovariateBT | None:
    """The fit on the judge's parsed plain judgments; None when there are none."""
    rows = view.plain & (view.r_verdict != UNPARSED)
    if not rows.any():
        return None
    codes, local = np.unique(np.concatenate((view.r_model_a[rows], view.r_model_b[rows])), return_inverse=True)
    n = int(rows.sum())
    a, b = local[:n], local[n:]
    y = choice_outcome(view.r_verdict[rows])
    shown = np.where(view.r_order_ab[rows], 1.0, -1.0)
    length, _ = tanh_z((view.r_len_a - view.r_len_b)[rows])
    clusters = view.r_cluster[rows]
    fit = bt_fit(a, b, y, codes.size, clusters, covariates=np.column_stack((shown, length)))
    return CovariateBT(codes=codes, a=a, b=b, y=y, shown=shown, length=length, clusters=clusters,
                       battles=view.r_battle[rows], beta=None if fit is None else fit[0],
                       cov=None if fit is None else fit[1])


def _ranks(values: np.ndarray) -> np.ndarray:
    """1 = largest; ordinal (stable by index) ranks."""
    order = np.argsort(-values, kind="stable")
    ranks = np.empty(values.size, dtype=np.int64)
    ranks[order] = np.arange(1, values.size + 1)
    return ranks


def ranking_audit(view: JudgeView, *, human_ratings: dict[str, float] | None = None,
                  fit: CovariateBT | None = None) -> tuple[list[dict], dict]:
    """The ``corrected_ranking`` list and the ``ranking_vs_human`` block.

    * ``rating`` (+ CI) -- BT on the judge's parsed plain verdicts with covariates shown_first
      (+1 if A shown first, else -1) and ``tanh(d / s)`` of the length difference; ``raw_rating`` -- the
      same verdicts without covariates; ``votes`` -- the judgments involving the model.
    * ``human_rating`` -- ``human_ratings[model]`` when that mapping is given (models it lacks get null),
      else BT on the human votes of the judge's battles (one per battle, both_bad as a tie); null for
      models with no human vote.
    * ``human_rank`` -- rank by human rating among the listed models that have one; ``rank_change`` --
      ``human_rank`` minus the judge's rank among those same models (positive: the judge places the
      model higher than the humans do).
    * ``ranking_vs_human`` -- Spearman and Kendall tau-b between judge (corrected) and human ratings
      over the models that have both; ``movers`` -- the largest nonzero ``|rank_change|`` (at most 5).
    """
    empty: dict[str, object] = {"spearman": None, "kendall": None, "n_models": 0, "movers": []}
    fit = fit if fit is not None else covariate_bt(view)
    if fit is None:
        return [], empty
    codes, a, b, y = fit.codes, fit.a, fit.b, fit.y
    M = codes.size
    corrected = (None if fit.beta is None or fit.cov is None
                 else ratings_from_fit(fit.beta, fit.cov, a, b, M, level=view.level))
    raw = bt_ratings(a, b, y, M, fit.clusters, level=view.level)
    if corrected is None or raw is None:
        return [], empty
    votes = np.bincount(a, minlength=M) + np.bincount(b, minlength=M)
    names = [view.table.models[c] for c in codes]
    human = _human_ratings(view, codes, names, human_ratings)
    has_human = np.isfinite(human)
    rank = _ranks(corrected[0])
    human_rank = np.zeros(M, dtype=np.int64)
    judge_rank_common = np.zeros(M, dtype=np.int64)
    if has_human.any():
        human_rank[has_human] = _ranks(human[has_human])
        judge_rank_common[has_human] = _ranks(corrected[0][has_human])
    rows_out = []
    for i in np.argsort(rank):
        h = bool(has_human[i])
        rows_out.append({
            "model": names[i], "rating": float(corrected[0][i]), "ci_low": _finite(corrected[1][i]),
            "ci_high": _finite(corrected[2][i]), "rank": int(rank[i]), "raw_rating": float(raw[0][i]),
            "human_rating": float(human[i]) if h else None, "human_rank": int(human_rank[i]) if h else None,
            "rank_change": int(human_rank[i] - judge_rank_common[i]) if h else None, "votes": int(votes[i]),
        })
    common = np.flatnonzero(has_human)
    movers = sorted((r for r in rows_out if r["rank_change"]), key=lambda r: (-abs(r["rank_change"]), r["rank"]))
    return rows_out, {
        "spearman": spearman(corrected[0][common], human[common]) if common.size >= 2 else None,
        "kendall": kendall_tau_b(corrected[0][common], human[common]) if common.size >= 2 else None,
        "n_models": int(common.size),
        "movers": [{"model": r["model"], "rank": r["rank"], "human_rank": r["human_rank"],
                    "rank_change": r["rank_change"]} for r in movers[:MAX_MOVERS]],
    }


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _human_ratings(view: JudgeView, codes: np.ndarray, names: list[str],
                   given: dict[str, float] | None) -> np.ndarray:
    """Human rating per listed model (NaN = none): the given mapping, or BT on the battles' human votes."""
    if given is not None:
        return np.array([float(given[m]) if given.get(m) is not None else np.nan for m in names])
    out = np.full(codes.size, np.nan)
    voted = view.b_human >= 0
    if not voted.any():
        return out
    ma, mb = view.b_model_a[voted], view.b_model_b[voted]
    human = view.b_human[voted]
    present, local = np.unique(np.concatenate((ma, mb)), return_inverse=True)
    k = ma.size
    y = np.where(human == A, 1.0, np.where(human == B, 0.0, 0.5))
    fit = bt_ratings(local[:k], local[k:], y, present.size, np.arange(k), level=view.level)
    if fit is None:
        return out
    where = {int(c): i for i, c in enumerate(present)}
    for j, c in enumerate(codes):
        if int(c) in where:
            out[j] = fit[0][where[int(c)]]
    return out
