"""One model list for pairwise and K-wise data fitted together."""
from __future__ import annotations

from typing import overload

from .checks import union_models
from .pairs import PairCounts
from .rankings import RankingCounts


@overload
def align_models(pairs: PairCounts, rankings: RankingCounts) -> tuple[PairCounts, RankingCounts]: ...
@overload
def align_models(
    pairs: PairCounts | None, rankings: RankingCounts | None
) -> tuple[PairCounts | None, RankingCounts | None]: ...
def align_models(
    pairs: PairCounts | None, rankings: RankingCounts | None
) -> tuple[PairCounts | None, RankingCounts | None]:
    """Re-index pairwise and K-wise data onto one shared (sorted union) model list.

    Parameters
    ----------
    pairs : PairCounts or None
    rankings : RankingCounts or None

    Returns
    -------
    tuple
        ``(pairs, rankings)`` sharing ``models``; unchanged when they already do or one is None.
    """
    if pairs is None or rankings is None or pairs.models == rankings.models:
        return pairs, rankings
    models = union_models(pairs.models, rankings.models)
    return pairs.reindex(models), rankings.reindex(models)
