"""K-wise votes as unique rankings with counts: what Plackett-Luce fits."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from .checks import (
    _first_bad,
    _frozen,
    _int_array,
    _models_tuple,
    _remap,
    _weight_array,
)


@dataclass(frozen=True, eq=False)
class RankingCounts:
    """Aggregated K-wise votes: one row per unique ranking.

    Parameters
    ----------
    models : tuple of str
        Model names.
    items : ndarray of int64, shape (n, K)
        Model indices in ranked order, best first; ``-1`` pads rows shorter than K (at the end).
    group : ndarray of int64, shape (n, K)
        Tie-group number of each item: 0 for the best group, non-decreasing along the row in steps
        of 0 or 1; equal numbers are tied; ``-1`` on padding.
    weight : ndarray of float64, shape (n,)
        Number of votes with that ranking.

    Notes
    -----
    The last group of a row is *not ordered internally*: a best-of-K vote is the two groups
    ``[winner], [all others]`` and says nothing about how the others compare, and a top-k partial
    ranking ends with the unranked rest. See :mod:`leaderboard.ratings.plackett_luce` for the
    likelihood. Each row needs at least two groups (a row whose items are all tied carries no
    ranking information under that rule, so it is rejected rather than silently ignored).
    """

    models: tuple[str, ...]
    items: np.ndarray
    group: np.ndarray
    weight: np.ndarray

    def __post_init__(self) -> None:
        models = _models_tuple(self.models)
        items, group = _check_rankings(np.asarray(self.items), np.asarray(self.group), len(models))
        weight = _weight_array(self.weight, items.shape[0])
        set_ = object.__setattr__
        set_(self, "models", models)
        set_(self, "items", _frozen(items))
        set_(self, "group", _frozen(group))
        set_(self, "weight", _frozen(weight))

    @classmethod
    def from_rankings(
        cls,
        models: Sequence[str],
        rankings: Sequence[Sequence[int | Sequence[int]]],
        weights: Sequence[float] | None = None,
    ) -> RankingCounts:
        """Build from rankings given as lists of groups, aggregating identical rankings.

        Parameters
        ----------
        models : sequence of str
            Model names.
        rankings : sequence of rankings
            Each ranking is a sequence of groups, best first; a group is a model index or a
            sequence of tied model indices, e.g. ``[2, [0, 3], 1]`` means 2 > (0 = 3) > 1.
        weights : sequence of float, optional
            Votes per ranking, default 1.

        Returns
        -------
        RankingCounts
        """
        models_t = _models_tuple(models)
        w = _weight_array(weights, len(rankings))
        total: dict[tuple[tuple[int, ...], ...], float] = {}
        for i, ranking in enumerate(rankings):
            groups = tuple(tuple(sorted(int(x) for x in g)) if isinstance(g, Sequence) else (int(g),)
                           for g in ranking)
            if any(len(g) == 0 for g in groups):
                raise ValueError(f"ranking {i} has an empty group")
            total[groups] = total.get(groups, 0.0) + float(w[i])
        k = max((sum(len(g) for g in r) for r in total), default=2)
        items = np.full((len(total), k), -1, dtype=np.int64)
        group = np.full((len(total), k), -1, dtype=np.int64)
        for row, groups in enumerate(total):
            flat = [(x, gi) for gi, g in enumerate(groups) for x in g]
            items[row, : len(flat)] = [x for x, _ in flat]
            group[row, : len(flat)] = [gi for _, gi in flat]
        return cls(models_t, items, group, np.fromiter(total.values(), dtype=np.float64, count=len(total)))

    @classmethod
    def from_best_of(
        cls, models: Sequence[str], winners: np.ndarray, candidates: np.ndarray, weights: np.ndarray | None = None
    ) -> RankingCounts:
        """Best-of-K votes: ``winners[i]`` was picked among ``candidates[i]`` (``-1`` pads).

        Parameters
        ----------
        models : sequence of str
            Model names.
        winners : array_like of int, shape (n,)
            Chosen model per vote; must be one of that row's candidates.
        candidates : array_like of int, shape (n, K)
            Models shown in the vote, ``-1``-padded.
        weights : array_like of float, shape (n,), optional
            Votes per row, default 1.

        Returns
        -------
        RankingCounts
            Rows ``[winner], [other candidates]`` (top-1 of K).
        """
        cand = np.asarray(candidates, dtype=np.int64)
        win = np.asarray(winners, dtype=np.int64)
        if cand.ndim != 2 or win.shape != (cand.shape[0],):
            raise ValueError(f"winners {win.shape} / candidates {cand.shape} shapes do not match")
        is_winner = cand == win[:, None]
        bad = is_winner.sum(axis=1) != 1
        if bad.any():
            raise ValueError(f"row {_first_bad(bad)}: the winner must appear exactly once among the candidates")
        # Stable sort puts the winner first, then the other candidates, then the padding.
        key = np.where(is_winner, 0, np.where(cand >= 0, 1, 2))
        order = np.argsort(key, axis=1, kind="stable")
        items = np.take_along_axis(cand, order, axis=1)
        group = np.where(items >= 0, np.minimum(np.arange(cand.shape[1]), 1)[None, :], -1)
        return cls(tuple(models), items, group, _weight_array(weights, cand.shape[0]))

    @property
    def n_models(self) -> int:
        """Number of models."""
        return len(self.models)

    @property
    def total(self) -> float:
        """Total number of votes."""
        return float(self.weight.sum())

    def model_votes(self) -> np.ndarray:
        """Votes each model appeared in, shape (M,)."""
        valid = self.items >= 0
        rows = np.broadcast_to(self.weight[:, None], self.items.shape)
        return np.bincount(self.items[valid], rows[valid], self.n_models)

    def reindex(self, models: Sequence[str]) -> RankingCounts:
        """Same data with indices referring to ``models`` (a superset of ``self.models``)."""
        new = _models_tuple(models)
        index = _remap(self.models, new)
        items = np.where(self.items >= 0, index[np.maximum(self.items, 0)], -1)
        return RankingCounts(new, items, self.group, self.weight)


def _check_rankings(items: np.ndarray, group: np.ndarray, n_models: int) -> tuple[np.ndarray, np.ndarray]:
    if items.ndim != 2 or items.shape[1] < 2:
        raise ValueError(f"items must have shape (n, K) with K >= 2, got {items.shape}")
    if group.shape != items.shape:
        raise ValueError(f"group has shape {group.shape}, expected {items.shape}")
    # cast: for a shape of unknown length numpy's stubs pick reshape's 0-d overload; this is (n, K)
    items = cast(np.ndarray, _int_array(items.ravel(), "items").reshape(items.shape))
    group = _int_array(group.ravel(), "group").reshape(group.shape)
    pad = items == -1
    checks = [
        ((items < -1) | (items >= n_models), f"an item that is not a model index in [0, {n_models}) or -1"),
        (pad[:, :-1] & ~pad[:, 1:], "padding (-1) before a real item"),
        ((group == -1) != pad, "group -1 exactly where items are -1"),
        ((items >= 0).sum(axis=1) < 2, "fewer than 2 items"),
        (~pad[:, 0] & (group[:, 0] != 0), "a first group different from 0"),
    ]
    step = np.diff(group, axis=1)
    real_step = ~pad[:, 1:]
    checks.append((real_step & ((step < 0) | (step > 1)), "group numbers that do not increase in steps of 0 or 1"))
    n_groups = np.where(pad, -1, group).max(axis=1) + 1
    checks.append((n_groups < 2, "a single tie group (no ranking information)"))
    sorted_items = np.sort(np.where(pad, -1 - np.arange(items.shape[1])[None, :], items), axis=1)
    checks.append((sorted_items[:, 1:] == sorted_items[:, :-1], "a model listed twice"))
    for mask, what in checks:
        bad = mask if mask.ndim == 1 else mask.any(axis=1)
        if bad.any():
            raise ValueError(f"rankings row {_first_bad(bad)} has {what}")
    return items, group


