"""Self-preference: does the judge favour responses from its own model family more than humans do?"""
from __future__ import annotations

import numpy as np

from .data import UNPARSED, A, B
from .view import JudgeView, est_bootstrap, est_null

__all__ = ["self_preference_audit"]


def self_preference_audit(view: JudgeView) -> dict:
    """The ``self_preference`` block.

    Battles: exactly one side's family equals the judge's family, a human vote exists, and the judge
    gave at least one parsed plain verdict. Scores from the own-family side: win 1, tie (and human
    both_bad) 1/2, loss 0.

    * ``own_win_rate`` -- mean over battles of the judge's mean score on that battle (its orders and
      replicates averaged, so every battle weighs the same for judge and humans).
    * ``human_win_rate`` -- mean human score on the same battles.
    * ``self_preference`` -- their difference; percentile interval from the battle bootstrap and a
      two-sided p-value from the normal approximation with the bootstrap SE.

    Caveats: a judge that is noisier than the humans, or ties more often, or has a position bias,
    pulls its scores toward 1/2; when the own family is stronger (or weaker) than average that reads
    as negative (positive) self-preference. Compare with ``position`` and ``agreement``.
    """
    level = view.level
    if view.family_code < 0:
        return {"self_preference": est_null(0, test=True), "own_win_rate": est_null(0),
                "human_win_rate": est_null(0)}
    own_a = view.b_family_a == view.family_code
    own_b = view.b_family_b == view.family_code
    rows = view.plain & (view.r_verdict != UNPARSED)
    row_own_a = own_a[view.r_battle[rows]]
    verdict = view.r_verdict[rows]
    score = np.where(verdict == A, row_own_a * 1.0, np.where(verdict == B, (~row_own_a) * 1.0, 0.5))
    judge_sum = view.battle_sum(score, rows)
    judge_n = view.battle_sum(np.ones(score.size), rows)
    human = view.b_human
    battles = (own_a ^ own_b) & (human >= 0) & (judge_n > 0)
    n = int(battles.sum())
    if n == 0:
        return {"self_preference": est_null(0, test=True), "own_win_rate": est_null(0),
                "human_win_rate": est_null(0)}
    judge_mean = np.where(battles, judge_sum / np.maximum(judge_n, 1), 0.0)
    human_score = np.where(human == A, own_a * 1.0, np.where(human == B, own_b * 1.0, 0.5)) * battles
    m = battles.astype(np.float64)
    own, hum = judge_mean.sum() / n, human_score.sum() / n
    w = view.weights
    if w is None:
        s_own = s_hum = None
    else:
        size = w @ m
        with np.errstate(invalid="ignore", divide="ignore"):
            s_own = np.where(size > 0, (w @ judge_mean) / size, np.nan)
            s_hum = np.where(size > 0, (w @ human_score) / size, np.nan)
    return {
        "self_preference": est_bootstrap(own - hum, None if s_own is None or s_hum is None else s_own - s_hum, n, level,
                                         test=True),
        "own_win_rate": est_bootstrap(own, s_own, n, level),
        "human_win_rate": est_bootstrap(hum, s_hum, n, level),
    }
