"""Position bias: consistency across the two presentation orders, first-position rate, conflicts."""
from __future__ import annotations

import numpy as np

from .data import UNPARSED, A, B
from .view import JudgeView, est_wilson

__all__ = ["position_audit"]


def position_audit(view: JudgeView) -> dict:
    """The ``position`` block.

    * ``consistency`` -- pairs (plain judgments of one battle and replicate in both orders) whose two
      verdicts are the same parsed verdict (a/a, b/b, tie/tie); an unparsed verdict is never
      consistent (in the MT-Bench file both rows of an inconsistent battle are "unparsed"). Wilson.
    * ``first_position_rate`` -- among decisive (a/b) plain judgments, the share that chose the
      response shown first; Wilson interval, exact two-sided binomial test against 1/2. Under no
      position bias and order-balanced data it is 1/2 whatever the merit of the responses. Wilson and
      the binomial test treat judgments as independent; when a battle is judged in both orders the
      merit of its responses pushes the two orders' first-choices in opposite directions, so the
      dependence makes both conservative (the simulation tests check the coverage).
    * ``conflict_rate`` -- pairs whose orders gave opposite decisive verdicts (a then b, or b then a). Wilson.
    """
    both = (view.u_ab >= 0) & (view.u_ba >= 0)
    ab, ba = view.u_ab[both], view.u_ba[both]
    n_pairs = int(both.sum())
    consistent = int(np.count_nonzero((ab == ba) & (ab != UNPARSED)))
    conflict = int(np.count_nonzero(((ab == A) & (ba == B)) | ((ab == B) & (ba == A))))
    decisive = view.plain & (view.r_verdict <= B)
    chose_first = (view.r_verdict[decisive] == A) == view.r_order_ab[decisive]
    level = view.level
    return {
        "consistency": est_wilson(consistent, n_pairs, level),
        "first_position_rate": est_wilson(int(chose_first.sum()), int(decisive.sum()), level, test_against=0.5),
        "conflict_rate": est_wilson(conflict, n_pairs, level),
    }
