"""Agreement with the human votes of the same battles: accuracy, Cohen's kappa, confusion matrix."""
from __future__ import annotations

import numpy as np

from .data import TIE, UNPARSED
from .view import JudgeView, est_bootstrap

__all__ = ["agreement_audit", "cohen_kappa", "combined_verdicts"]

LABELS = ["a", "b", "tie"]                       # human votes (both_bad counted as tie)
ROW_LABELS = ["a", "b", "tie", "inconsistent"]   # the judge's combined verdict
INCONSISTENT = 3


def combined_verdicts(u_ab: np.ndarray, u_ba: np.ndarray) -> np.ndarray:
    """One verdict per unit (battle, replicate): 0 a, 1 b, 2 tie, 3 inconsistent.

    Both orders present: their common verdict if they agree, else inconsistent -- its own verdict, never
    a tie (a judge that flips with the order has not said the answers are equal). An unparsed side makes
    the unit inconsistent too: the judge gave no usable verdict. One order only: its verdict (inconsistent
    when unparsed).
    """
    both = (u_ab >= 0) & (u_ba >= 0)
    single = np.where(u_ab >= 0, u_ab, u_ba)
    combined = np.where(both, np.where(u_ab == u_ba, u_ab, INCONSISTENT), single)
    return np.where(combined == UNPARSED, INCONSISTENT, combined).astype(np.int64)


def cohen_kappa(counts: np.ndarray) -> np.ndarray:
    """Cohen's kappa of (..., R, 3) confusion counts, rows the judge (R >= 3), columns the human.

    Rows past the third (inconsistent) never agree with a human label: they count in the total and lower the
    observed agreement, and add nothing to the chance agreement. NaN where undefined (no data, or chance
    agreement 1).
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=(-2, -1))
    square = counts[..., :3, :3]
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = np.trace(square, axis1=-2, axis2=-1) / total
        expected = np.sum(counts.sum(axis=-1)[..., :3] * counts.sum(axis=-2), axis=-1) / total**2
        kappa = (observed - expected) / (1.0 - expected)
    return np.where((total > 0) & (expected < 1.0 - 1e-12), kappa, np.nan)


def _figures(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(accuracy without ties, accuracy with ties, kappa, inconsistent share) from (..., 12) cell counts
    (judge-major, 4 x 3)."""
    c = cells.reshape(*cells.shape[:-1], 4, 3)
    decisive = c[..., 0, 0] + c[..., 0, 1] + c[..., 1, 0] + c[..., 1, 1]
    total = c.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(decisive > 0, (c[..., 0, 0] + c[..., 1, 1]) / decisive, np.nan)
        acc_ties = np.where(total > 0, np.trace(c[..., :3, :3], axis1=-2, axis2=-1) / total, np.nan)
        inconsistent = np.where(total > 0, c[..., INCONSISTENT, :].sum(axis=-1) / total, np.nan)
    return acc, acc_ties, cohen_kappa(c), inconsistent


def _block(view: JudgeView, battle_cells: np.ndarray, battles: np.ndarray | None) -> dict:
    """accuracy / accuracy_with_ties / kappa Ests from per-battle cell counts (optionally a battle subset)."""
    w = view.weights
    if battles is not None:
        battle_cells = battle_cells[battles]
        w = None if w is None else w[:, battles]
    cells = battle_cells.sum(axis=0)
    acc, acc_ties, kappa, inconsistent = (float(x) for x in _figures(cells))
    boot = (None, None, None, None) if w is None else _figures(w @ battle_cells)
    c = cells.reshape(4, 3)
    n_dec, n_all = int(c[:2, :2].sum()), int(c.sum())
    level = view.level
    return {
        "accuracy": est_bootstrap(acc, boot[0], n_dec, level),
        "accuracy_with_ties": est_bootstrap(acc_ties, boot[1], n_all, level),
        "kappa": est_bootstrap(kappa, boot[2], n_all, level),
        "inconsistent_rate": est_bootstrap(inconsistent, boot[3], n_all, level),
        "_counts": c,
    }


def agreement_audit(view: JudgeView) -> dict:
    """The ``agreement`` block.

    Units are (battle, replicate) pairs of plain judgments, combined by :func:`combined_verdicts`;
    the battle's human vote (both_bad as tie) is the reference; units without a human vote are left
    out. ``accuracy`` counts units where both are decisive (a/b) -- MT-Bench's "agreement without ties";
    ``accuracy_with_ties`` and ``kappa`` (Cohen, judge a/b/tie/inconsistent against human a/b/tie) count
    all, an inconsistent unit as a disagreement (MT-Bench counted it as a tie, which credits a judge that
    flips with the order whenever the humans tied); ``inconsistent_rate`` is its share. Intervals:
    percentile, battle bootstrap. ``matrix.counts[i][j]`` = units with judge label ``row_labels[i]`` and
    human label ``labels[j]``.
    """
    judge_label = combined_verdicts(view.u_ab, view.u_ba)
    human = view.b_human[view.u_battle].astype(np.int64)
    keep = human >= 0
    human_label = np.minimum(human[keep], TIE)  # both_bad (3) -> tie
    cell = judge_label[keep] * 3 + human_label
    battle = view.u_battle[keep]
    battle_cells = np.bincount(battle * 12 + cell, minlength=view.n_battles * 12).reshape(view.n_battles, 12)
    battle_cells = battle_cells.astype(np.float64)
    overall = _block(view, battle_cells, None)
    by_category = {}
    categories = view.b_category
    has_units = battle_cells.sum(axis=1) > 0
    for code in np.unique(categories[has_units & (categories >= 0)]):
        block = _block(view, battle_cells, categories == code)
        by_category[view.table.categories[code]] = {
            "accuracy": block["accuracy"], "kappa": block["kappa"], "n": block["accuracy_with_ties"]["n"]}
    counts = overall.pop("_counts")
    return {
        **overall,
        "matrix": {"labels": list(LABELS), "row_labels": list(ROW_LABELS),
                   "counts": [[int(x) for x in row] for row in counts]},
        "by_category": by_category,
    }
