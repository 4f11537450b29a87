"""What the leaderboard offers the arena through :mod:`arena.hooks` (registered in ``apps.py``)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .config import LeaderboardConfig
from .models import SnapshotRow
from .selectors import snapshot_latest


def latest_default_ratings(contender_ids: Sequence[int]) -> dict[int, tuple[float, float, float]]:
    """(rating, ci_low, ci_high) per contender from the latest snapshot of the default leaderboard.

    NaN stands for an unknown bound; contenders not in the snapshot (or no snapshot at all) are absent.
    """
    snapshot = snapshot_latest(LeaderboardConfig())
    if snapshot is None:
        return {}
    rows = SnapshotRow.objects.filter(snapshot=snapshot, contender_id__in=contender_ids).values_list(
        "contender_id", "rating", "ci_low", "ci_high")
    return {cid: (rating, _nan_if_none(low), _nan_if_none(high)) for cid, rating, low, high in rows}


def _nan_if_none(value: float | None) -> float:
    return np.nan if value is None else float(value)
