"""Length and style (markdown) bias: preference rates, adjusted coefficients, LC win rates, the curve.

Length and markdown share the machinery: a "size" of each response (tokens, markdown elements),
the share of decisive verdicts that went to the larger one, the same share among the human votes
of the same battles, their paired difference, and a logistic coefficient that controls for what
else explains a choice.

Conventions
-----------
* Size differences enter regressions as ``tanh(d / s)`` with ``d = size_a - size_b`` and ``s`` the
  root mean square of ``d`` over the rows of the fit (= the sd of the differences pooled over both
  sides, A-B and B-A, which has mean zero by construction). The tanh bounds the influence of a
  few enormous differences, as in AlpacaEval's length-controlled win rate.
* ``shown_first`` is +1 when A was shown first, -1 otherwise.
* The human verdict enters as four indicator columns (human chose a / b / tie-or-both_bad /
  unknown; empty columns dropped), which together act as the intercept.
* Ties are outcomes of 1/2 in a quasi-likelihood (see :func:`.stats.logistic_objective`).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .data import BOTH_BAD, TIE, UNPARSED, A, B
from .stats import (
    ConvergenceError,
    bootstrap_ratio,
    logistic_fit,
    normal_quantile,
)
from .view import JudgeView, est, est_bootstrap, est_null, est_wald

if TYPE_CHECKING:   # ranking imports this module: the type only, never at run time
    from .ranking import CovariateBT

__all__ = ["choice_outcome", "lc_win_rates", "length_audit", "length_curve", "style_audit", "tanh_z"]

CURVE_EDGES = np.linspace(0.0, 1.0, 11)  # relative length difference |la - lb| / max(la, lb)


def choice_outcome(verdict: np.ndarray) -> np.ndarray:
    """1 for a, 0 for b, 1/2 for tie (parsed verdicts only)."""
    return np.where(verdict == A, 1.0, np.where(verdict == B, 0.0, 0.5))


def tanh_z(d: np.ndarray) -> tuple[np.ndarray, float]:
    """``(tanh(d / s), s)`` with ``s`` the RMS of ``d``; zeros (and s = 0) when every difference is 0."""
    d = np.asarray(d, dtype=np.float64)
    s = math.sqrt(float(np.mean(d * d))) if d.size else 0.0
    return (np.tanh(d / s) if s > 0 else np.zeros_like(d)), s


def _preference(view: JudgeView, rows_known: np.ndarray, ra: np.ndarray, rb: np.ndarray, battle_known: np.ndarray,
                ba: np.ndarray, bb: np.ndarray, threshold: float) -> tuple[dict, dict, dict]:
    """(judge prefers larger, humans prefer larger, judge minus human) on the judge's battles."""
    level, w = view.level, view.weights
    rows = view.plain & (view.r_verdict <= B) & rows_known & (np.abs(ra - rb) > threshold)
    chose_larger = (view.r_verdict[rows] == A) == (ra[rows] > rb[rows])
    num = view.battle_sum(chose_larger, rows)
    den = view.battle_sum(np.ones(int(rows.sum())), rows)
    n_judge = int(den.sum())
    judge = est_bootstrap(num.sum() / n_judge if n_judge else None, bootstrap_ratio(w, num, den), n_judge, level)
    human = view.b_human
    h_rows = (den > 0) & (human >= 0) & (human <= B) & battle_known & (np.abs(ba - bb) > threshold)
    h_choose = ((human == A) == (ba > bb)) & h_rows
    n_h = int(h_rows.sum())
    hum = est_bootstrap(h_choose.sum() / n_h if n_h else None, bootstrap_ratio(w, h_choose, h_rows), n_h, level)
    m = h_rows.astype(np.float64)
    if n_h:
        diff_value = (num @ m) / (den @ m) - h_choose.sum() / n_h
        samples = None if w is None else bootstrap_ratio(w, num * m, den * m) - bootstrap_ratio(w, h_choose, m)
    else:
        diff_value, samples = None, None
    diff = est_bootstrap(diff_value, samples, n_h, level, test=True)
    return judge, hum, diff


def _choice_design(view: JudgeView, rows: np.ndarray, diffs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Design [human indicators..., shown_first, tanh_z(diff) for each diff] and outcome for ``rows``."""
    human = view.r_human[rows]
    indicators = [human == A, human == B, (human == TIE) | (human == BOTH_BAD), human < 0]
    cols = [c.astype(np.float64) for c in indicators if c.any()]
    cols.append(np.where(view.r_order_ab[rows], 1.0, -1.0))
    for d in diffs:
        cols.append(tanh_z(d)[0])
    return np.column_stack(cols), choice_outcome(view.r_verdict[rows])


def _coefficient(view: JudgeView, rows: np.ndarray, diffs: list[np.ndarray]) -> dict:
    """Wald Est of the last column's coefficient in the choice regression (null if not estimable)."""
    n = int(rows.sum())
    if n < 2 or tanh_z(diffs[-1])[1] == 0.0:
        return est_null(n, test=True)
    X, y = _choice_design(view, rows, diffs)
    try:
        fit = logistic_fit(X, y, view.r_cluster[rows])
    except ConvergenceError:
        return est_null(n, test=True)
    return est_wald(float(fit.coef[-1]), float(fit.se()[-1]), n, view.level)


def length_audit(view: JudgeView, *, threshold: int, fit: CovariateBT | None) -> dict:
    """The ``length`` block (see the module docstring and the schema)."""
    parsed = view.plain & (view.r_verdict != UNPARSED)
    everywhere = np.ones(view.n_rows, dtype=bool)
    battles = np.ones(view.n_battles, dtype=bool)
    judge, human, diff = _preference(view, everywhere, view.r_len_a, view.r_len_b, battles,
                                     view.b_len_a, view.b_len_b, threshold)
    d = (view.r_len_a - view.r_len_b)[parsed]
    return {
        "prefer_longer": judge,
        "prefer_longer_human": human,
        "prefer_longer_diff": diff,
        "length_coef": _coefficient(view, parsed, [d]),
        "lc_win_rate": lc_win_rates(view, fit),
        "curve": length_curve(view),
    }


def style_audit(view: JudgeView) -> dict:
    """The ``style`` block: the length machinery on markdown counts (a larger count = any difference).

    ``markdown_coef`` also controls for length. Every Est is null when no row carries md_a and md_b.
    """
    known = (view.r_md_a >= 0) & (view.r_md_b >= 0)
    b_known = (view.b_md_a >= 0) & (view.b_md_b >= 0)
    judge, human, diff = _preference(view, known, view.r_md_a, view.r_md_b, b_known, view.b_md_a, view.b_md_b, 0)
    rows = view.plain & (view.r_verdict != UNPARSED) & known
    d_len = (view.r_len_a - view.r_len_b)[rows]
    d_md = (view.r_md_a - view.r_md_b)[rows]
    return {
        "prefer_more_markdown": judge,
        "prefer_more_markdown_human": human,
        "prefer_more_markdown_diff": diff,
        "markdown_coef": _coefficient(view, rows, [d_len, d_md]),
    }


def lc_win_rates(view: JudgeView, fit: CovariateBT | None) -> dict:
    """Per-model win rate and length-controlled win rate (AlpacaEval-style, any opponent).

    One Bradley-Terry fit per judge on its parsed plain verdicts (ties 1/2) with two shared covariates,
    ``logit P(A wins) = theta_A - theta_B + gamma f + phi x``, where ``f`` = +1 if A was shown first else -1
    and ``x = tanh((len_A - len_B) / s)`` with ``s`` the pooled RMS length difference of this judge.

    * ``win_rate`` = the model's mean outcome (1 win / 0 loss / 1/2 tie) over its judgments; percentile
      interval from the battle bootstrap.
    * ``lc_win_rate`` = the mean, over the same judgments, of the predicted win probability against the same
      opponents with the length term set to zero: ``sigmoid(theta_m - theta_opp +- gamma f)``. Interval by
      the delta method on the logit of that mean, with the cluster-robust (battle) covariance of the fit.

    Why one shared length slope: a per-model slope (AlpacaEval fits one per model, then regularises it) is
    not identified for a model whose answers are longer (or shorter) than every opponent's -- its
    intercept is then an extrapolation to a length difference it never had, and came out anywhere between
    0 and 1. A slope shared by all of the judge's battles is identified by every pair, so each model's
    correction rests on how much this judge rewards length in general. Differences from AlpacaEval 2.0's
    published figure: no instruction-difficulty term, opponents are any models rather than one baseline,
    a shown-first term, and the shared slope.

    The shared slope still assumes one shape of the length effect for small and large differences. For a
    model whose length gaps are mostly larger than any seen in battles without it, the correction is an
    extrapolation of that shape; ``extrapolated`` is then true (more than half of its judgments have a
    length gap beyond the 95th percentile of the other battles' gaps), and the figure should be read as
    model-dependent, not measured.

    ``fit`` is the judge's :func:`judges.audits.ranking.covariate_bt` (the corrected ranking's fit: the same
    model), None when the judge has no parsed plain judgment.
    """
    if fit is None:
        return {}
    a, b, y, f, x, battle = fit.a, fit.b, fit.y, fit.shown, fit.length, fit.battles
    codes, beta, cov = fit.codes, fit.beta, fit.cov
    M = codes.size
    # Each judgment seen from both sides: model, opponent, outcome, shown-first sign.
    model = np.concatenate((a, b))
    opponent = np.concatenate((b, a))
    outcome = np.concatenate((y, 1.0 - y))
    sign = np.concatenate((f, -f))
    battle2 = np.concatenate((battle, battle))
    counts = np.bincount(model, minlength=M)
    wins = np.bincount(model, weights=outcome, minlength=M)
    w = view.weights
    if w is not None:
        cell = battle2 * M + model
        num = np.bincount(cell, weights=outcome, minlength=view.n_battles * M).reshape(view.n_battles, M)
        den = np.bincount(cell, minlength=view.n_battles * M).reshape(view.n_battles, M).astype(np.float64)
        boot = bootstrap_ratio(w, num, den)  # (R, M)
    z = normal_quantile(0.5 + view.level / 2.0)
    out = {}
    lc_values = np.full(M, np.nan)
    gap = np.abs(np.concatenate((x, x)))
    for m in range(M):
        count = int(counts[m])
        win = est_bootstrap(wins[m] / count, None if w is None else boot[:, m], count, view.level)
        lc = est_null(count)
        if beta is not None and cov is not None:
            mine = model == m
            opp, fm = opponent[mine], sign[mine]
            p0 = 1.0 / (1.0 + np.exp(-(beta[m] - beta[opp] + beta[M] * fm)))
            value = float(p0.mean())
            dp = p0 * (1.0 - p0) / count
            grad = np.zeros(M + 2)
            grad[m] = dp.sum()
            np.subtract.at(grad, opp, dp)
            grad[M] = (dp * fm).sum()
            se = math.sqrt(max(float(grad @ cov @ grad), 0.0))
            lc = est(value, _logit_interval(value, se, z), count)
            lc_values[m] = value
        out[view.table.models[codes[m]]] = {"win_rate": win, "lc_win_rate": lc, "n": count,
                                            "extrapolated": _beyond_others(gap, model == m, a, b, m)}
    order = np.argsort(-np.nan_to_num(lc_values, nan=-1.0), kind="stable")
    names = list(out)
    return {names[i]: out[names[i]] for i in order}


def _beyond_others(gap: np.ndarray, mine: np.ndarray, a: np.ndarray, b: np.ndarray, m: int) -> bool:
    """Whether most of model m's length gaps exceed the 95th percentile of the gaps of battles without m."""
    others = gap[: a.size][(a != m) & (b != m)]
    if others.size == 0:
        return True
    return bool(np.mean(gap[mine] > np.quantile(others, 0.95)) > 0.5)


def _logit_interval(value: float, se: float, z: float) -> tuple[float, float] | None:
    """Delta-method interval built on the logit scale: ``sigmoid(logit(v) +- z se / (v (1 - v)))``."""
    if not 0.0 < value < 1.0 or not math.isfinite(se):
        return None
    centre = math.log(value / (1.0 - value))
    half = z * se / (value * (1.0 - value))
    return 1.0 / (1.0 + math.exp(-(centre - half))), 1.0 / (1.0 + math.exp(-(centre + half)))


def length_curve(view: JudgeView) -> list[dict]:
    """P(choose the longer) by bins of relative length difference ``|la - lb| / max(la, lb)``.

    Judge: decisive plain judgments with unequal lengths (``n``). Humans: the judge's battles with a
    decisive human vote and unequal lengths (``n_human``, an addition to the schema's keys).
    """
    rows = view.plain & (view.r_verdict <= B) & (view.r_len_a != view.r_len_b)
    la, lb = view.r_len_a[rows], view.r_len_b[rows]
    bins = _bin(np.abs(la - lb) / np.maximum(np.maximum(la, lb), 1))
    longer = (view.r_verdict[rows] == A) == (la > lb)
    k = CURVE_EDGES.size - 1
    n_j = np.bincount(bins, minlength=k)
    hit_j = np.bincount(bins, weights=longer, minlength=k)
    hb = (view.b_human >= 0) & (view.b_human <= B) & (view.b_len_a != view.b_len_b)
    bla, blb = view.b_len_a[hb], view.b_len_b[hb]
    hbins = _bin(np.abs(bla - blb) / np.maximum(np.maximum(bla, blb), 1))
    n_h = np.bincount(hbins, minlength=k)
    hit_h = np.bincount(hbins, weights=(view.b_human[hb] == A) == (bla > blb), minlength=k)
    return [
        {"bin_low": float(CURVE_EDGES[i]), "bin_high": float(CURVE_EDGES[i + 1]), "n": int(n_j[i]),
         "judge_rate": float(hit_j[i] / n_j[i]) if n_j[i] else None,
         "human_rate": float(hit_h[i] / n_h[i]) if n_h[i] else None, "n_human": int(n_h[i])}
        for i in range(k)
    ]


def _bin(rel: np.ndarray) -> np.ndarray:
    return np.minimum((rel * (CURVE_EDGES.size - 1)).astype(np.int64), CURVE_EDGES.size - 2)
