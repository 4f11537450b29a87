"""Assemble the audit JSON (the schema's dict) from the per-topic audits."""
from __future__ import annotations

import numpy as np

from .agreement import agreement_audit
from .data import UNPARSED, JudgmentTable
from .length import length_audit, style_audit
from .parallel import map_forked
from .perturbations import perturbation_audit
from .position import position_audit
from .ranking import covariate_bt, ranking_audit
from .self_preference import self_preference_audit
from .view import est_wilson, judge_view

__all__ = ["SCHEMA_VERSION", "audit_judge", "audit_judgments"]

SCHEMA_VERSION = 1


def audit_judge(table: JudgmentTable, judge: int, *, seed: int, bootstrap: int, level: float,
                length_threshold: int, human_ratings: dict[str, float] | None) -> dict:
    """The report block of one judge (judge code ``judge`` in ``table.judges``)."""
    view = judge_view(table, judge, seed=seed, bootstrap=bootstrap, level=level)
    fit = covariate_bt(view)   # one fit for the corrected ranking and the length-controlled win rates
    ranking, versus = ranking_audit(view, human_ratings=human_ratings, fit=fit)
    return {
        "judge_family": view.family,
        "n": view.n_rows,
        "n_battles": view.n_battles,
        "unparsed_rate": est_wilson(int(np.count_nonzero(view.r_verdict == UNPARSED)), view.n_rows, level),
        "position": position_audit(view),
        "length": length_audit(view, threshold=length_threshold, fit=fit),
        "style": style_audit(view),
        "self_preference": self_preference_audit(view),
        "agreement": agreement_audit(view),
        "perturbations": perturbation_audit(view),
        "corrected_ranking": ranking,
        "ranking_vs_human": versus,
    }


def audit_judgments(table: JudgmentTable, *, seed: int = 0, bootstrap: int = 200, level: float = 0.95,
                    length_threshold: int = 30, human_ratings: dict[str, float] | None = None,
                    workers: int = 1) -> dict:
    """Audit every judge in ``table``; returns the schema's JSON-able dict (no NaN or inf anywhere).

    Parameters
    ----------
    table : JudgmentTable
        From :func:`judgments_from_records`, :func:`read_judgments` or :func:`read_judgments_bytes`.
    seed : int
        Seeds the bootstrap. Each judge draws from its own stream, a function of ``seed`` and the
        judge's name, so a judge's figures do not depend on which other judges are in the table.
    bootstrap : int
        Rounds R of the battle-clustered bootstrap (0: bootstrap intervals are null).
    level : float
        Confidence level of every interval.
    length_threshold : int
        ``prefer_longer`` counts only judgments whose lengths differ by more than this many tokens.
    human_ratings : dict, optional
        model -> rating on the leaderboard scale; replaces the BT fitted from the table's own human
        votes in ``corrected_ranking`` and ``ranking_vs_human``.
    workers : int
        Processes to share the judges among (forked, see :mod:`.parallel`; the result is the same).
        Keep 1 inside a server process; the CLI uses 2.

    Raises
    ------
    ValueError
        On an out-of-range setting.
    """
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0, got {bootstrap}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if length_threshold < 0:
        raise ValueError(f"length_threshold must be >= 0, got {length_threshold}")
    present = [int(j) for j in np.unique(table.judge)]
    costs = np.bincount(table.judge, minlength=len(table.judges))[present]

    def one(judge: int) -> dict:
        return audit_judge(table, judge, seed=seed, bootstrap=bootstrap, level=level,
                           length_threshold=length_threshold, human_ratings=human_ratings)

    blocks = map_forked(one, present, costs=[float(c) for c in costs], workers=workers)
    judges = {table.judges[j]: block for j, block in zip(present, blocks, strict=True)}
    return {
        "meta": {"n_rows": table.n_rows, "judges": len(judges), "seed": int(seed), "bootstrap": int(bootstrap),
                 "level": float(level), "length_threshold": int(length_threshold), "version": SCHEMA_VERSION},
        "judges": judges,
    }
