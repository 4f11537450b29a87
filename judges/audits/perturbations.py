"""Perturbation robustness against the judge's own noise floor (replicate consistency)."""
from __future__ import annotations

import numpy as np

from .data import UNPARSED, B
from .stats import bootstrap_ratio
from .view import JudgeView, est_bootstrap, est_null, est_wilson

__all__ = ["perturbation_audit"]


def _unit_key(view: JudgeView, rows: np.ndarray, replicate: np.ndarray) -> np.ndarray:
    """Integer key of (battle, order, replicate) for the given rows."""
    span = int(view.r_replicate.max()) + 1 if view.n_rows else 1
    return (view.r_battle[rows] * 2 + view.r_order_ab[rows]) * span + replicate


def _plain_lookup(view: JudgeView, keys: np.ndarray) -> np.ndarray:
    """Plain verdict of each (battle, order, replicate) key; -1 where there is none."""
    plain = np.flatnonzero(view.plain)
    plain_keys = _unit_key(view, plain, view.r_replicate[plain])
    order = np.argsort(plain_keys, kind="stable")
    sorted_keys = plain_keys[order]
    pos = np.minimum(np.searchsorted(sorted_keys, keys), max(sorted_keys.size - 1, 0))
    if sorted_keys.size == 0:
        return np.full(keys.size, -1, dtype=np.int64)
    found = sorted_keys[pos] == keys
    return np.where(found, view.r_verdict[plain[order[pos]]], -1).astype(np.int64)


def _toward(verdict: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Score of a verdict for the perturbed side: 1 chose it, 1/2 tie, 0 chose the other."""
    return np.where(verdict == side, 1.0, np.where(verdict <= B, 0.0, 0.5))


def perturbation_audit(view: JudgeView) -> dict:
    """The ``perturbations`` block, one entry per perturbation name the judge has rows for.

    * ``robustness`` -- (battle, order, replicate) units whose perturbed verdict equals the plain verdict
      of the same unit, among units where both are parsed. Wilson.
    * ``replicate_consistency`` -- the noise floor: plain replicate r > 0 verdicts equal to replicate 0
      of the same (battle, order), both parsed, over all of the judge's battles; null without replicates.
      Wilson.
    * ``difference`` -- robustness minus replicate_consistency; percentile interval and a two-sided
      p-value (normal approximation with the SE) from the battle bootstrap, both figures resampled
      on the same battles.
    * ``toward_perturbed`` -- among changed verdicts whose perturbed side is known, the share that moved
      toward the perturbed response (its score 1 / 1/2 / 0 went up). Wilson, plus an exact binomial
      test against 1/2 (``p_value``, an addition to the schema).
    """
    level, w = view.level, view.weights
    reps = np.flatnonzero(view.plain & (view.r_replicate > 0))
    rep_base = _plain_lookup(view, _unit_key(view, reps, np.zeros(reps.size, dtype=np.int64)))
    rep_ok = (rep_base >= 0) & (rep_base != UNPARSED) & (view.r_verdict[reps] != UNPARSED)
    rep_same = (view.r_verdict[reps] == rep_base) & rep_ok
    rep_num = view.battle_sum(rep_same[rep_ok], reps[rep_ok])
    rep_den = view.battle_sum(np.ones(int(rep_ok.sum())), reps[rep_ok])
    n_rep = int(rep_ok.sum())
    rep_est = est_wilson(int(rep_same.sum()), n_rep, level)
    out = {}
    for code in np.unique(view.r_perturbation[view.r_perturbation >= 0]):
        rows = np.flatnonzero(view.r_perturbation == code)
        base = _plain_lookup(view, _unit_key(view, rows, view.r_replicate[rows]))
        verdict = view.r_verdict[rows]
        ok = (base >= 0) & (base != UNPARSED) & (verdict != UNPARSED)
        same = (verdict == base) & ok
        n = int(ok.sum())
        num = view.battle_sum(same[ok], rows[ok])
        den = view.battle_sum(np.ones(n), rows[ok])
        if n and n_rep:
            value = same.sum() / n - rep_same.sum() / n_rep
            samples = None if w is None else bootstrap_ratio(w, num, den) - bootstrap_ratio(w, rep_num, rep_den)
            difference = est_bootstrap(value, samples, n, level, test=True)
        else:
            difference = est_null(n, test=True)
        changed = ok & ~same & (view.r_perturbed[rows] >= 0)
        side = view.r_perturbed[rows][changed]
        moved = _toward(verdict[changed], side) > _toward(base[changed], side)
        out[view.table.perturbations[code]] = {
            "robustness": est_wilson(int(same.sum()), n, level),
            "replicate_consistency": rep_est,
            "difference": difference,
            "toward_perturbed": est_wilson(int(moved.sum()), int(changed.sum()), level, test_against=0.5),
        }
    return out
