"""Reads for matchmaking: the plain arrays a policy decides on, built from the database and the cache."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from django.core.cache import cache
from django.db.models import Count

from arena.hooks import contender_ratings
from arena.models import BattleSlot, BattleStatus, Contender

from .health import source_failing
from .policies import ContenderStats

# Vote counts only steer the new-contender boost (up to a few hundred votes), so a few seconds' lag costs nothing,
# while counting them is O(all votes): 10 ms of the 37 ms of opening a battle with 2,400 votes in the database,
# and growing. One process recounts every VOTE_COUNTS_TTL_S; the others read the shared cache.
VOTE_COUNTS_TTL_S = 10
VOTE_COUNTS_CACHE_KEY = "matchmaking:voted-battle-counts"


def _voted_battle_counts_all() -> dict[int, int]:
    rows = (BattleSlot.objects.filter(battle__status=BattleStatus.VOTED)
            .values("contender_id").annotate(n=Count("battle_id", distinct=True))
            .order_by()  # no default ordering in the GROUP BY
            .values_list("contender_id", "n"))
    return dict(rows)


def voted_battle_counts(contender_ids: Sequence[int]) -> dict[int, int]:
    """Voted battles each contender appeared in, at most ``VOTE_COUNTS_TTL_S`` old (contenders with none are absent).

    Battles rather than slots: a named battle may show one model twice, which is still one vote. One GROUP BY over
    every contender when the cached counts are missing or expired (or the cache is down), else no query at all.
    """
    counts = cache.get(VOTE_COUNTS_CACHE_KEY)
    if counts is None:
        counts = _voted_battle_counts_all()
        cache.set(VOTE_COUNTS_CACHE_KEY, counts, timeout=VOTE_COUNTS_TTL_S)
    return {i: counts[i] for i in contender_ids if i in counts}


def contender_stats(*, candidates: Sequence[Contender], with_snapshot: bool = False) -> ContenderStats:
    """The policy's view of ``candidates``, index ``i`` describing ``candidates[i]``.

    ``votes`` counts voted battles (:func:`voted_battle_counts`, seconds old); ``weight`` is the sampling
    weight; ``available`` means active and with a source that is not failing (the caller passes only
    contenders that can answer the prompt). With ``with_snapshot`` the latest default leaderboard fills
    ``rating`` and its interval (NaN where unknown); without, they are all NaN and no snapshot is read.
    """
    ids = [c.id for c in candidates]
    if len(set(ids)) != len(ids):
        raise ValueError("each candidate may appear once")  # a policy could otherwise pick one model twice
    counts = voted_battle_counts(ids)
    failing = source_failing(ids)
    ratings = contender_ratings(ids) if with_snapshot else {}
    unknown = (np.nan, np.nan, np.nan)
    rated = np.array([ratings.get(i, unknown) for i in ids], dtype=np.float64).reshape(len(ids), 3)
    return ContenderStats(
        votes=np.array([counts.get(i, 0) for i in ids], dtype=np.int64),
        weight=np.array([c.sampling_weight for c in candidates], dtype=np.float64),
        available=np.array([c.active and c.id not in failing for c in candidates], dtype=bool),
        rating=rated[:, 0], ci_low=rated[:, 1], ci_high=rated[:, 2],
    )
