"""Containers for the data that crosses the boundary between the database and the rating code.

The Django side builds these from ``GROUP BY`` queries; the CLI builds them from files. Everything
downstream (fits, intervals, matrices) takes only these containers, so they validate themselves on
construction and raise :class:`ValueError` naming the offending field and row.

Outcome codes (``PairCounts.outcome``, ``EloBattles.outcome``) follow FastChat's ``winner`` field:

==== ================= ==========================
code FastChat winner   meaning
==== ================= ==========================
0    ``model_a``       the model in position A won
1    ``model_b``       the model in position B won
2    ``tie``           tie
3    ``tie (bothbad)`` tie, both answers bad
==== ================= ==========================
"""
from __future__ import annotations

from .align import align_models
from .battles import EloBattles
from .checks import A_WINS, B_WINS, BOTH_BAD, N_OUTCOMES, OUTCOME_CODES, TIE, union_models
from .pairs import PairCounts
from .rankings import RankingCounts

__all__ = [
    "A_WINS",
    "BOTH_BAD",
    "B_WINS",
    "N_OUTCOMES",
    "OUTCOME_CODES",
    "TIE",
    "EloBattles",
    "PairCounts",
    "RankingCounts",
    "align_models",
    "union_models",
]

