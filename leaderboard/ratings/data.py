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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "A_WINS",
    "BOTH_BAD",
    "B_WINS",
    "OUTCOME_CODES",
    "TIE",
    "EloBattles",
    "PairCounts",
    "RankingCounts",
    "align_models",
    "union_models",
]

A_WINS, B_WINS, TIE, BOTH_BAD = 0, 1, 2, 3
N_OUTCOMES = 4
#: FastChat ``winner`` strings -> outcome codes.
OUTCOME_CODES: dict[str, int] = {"model_a": A_WINS, "model_b": B_WINS, "tie": TIE, "tie (bothbad)": BOTH_BAD}

# Above this many (a, b, outcome) cells a dense bincount table would cost more memory than sorting.
_DENSE_CELL_LIMIT = 1 << 22


# --------------------------------------------------------------------------------------------- helpers
def _models_tuple(models: Iterable[str]) -> tuple[str, ...]:
    names = tuple(models)
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise ValueError(f"models[{i}] must be a non-empty string, got {name!r}")
    if len(set(names)) != len(names):
        seen: set[str] = set()
        dup = next(n for n in names if n in seen or seen.add(n))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate model name {dup!r} in models")
    return names


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _int_array(x: object, name: str, n: int | None = None) -> np.ndarray:
    arr = np.asarray(x)
    if arr.size == 0:
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has length {arr.shape[0]}, expected {n}")
    return arr.astype(np.int64)


def _model_index_array(x: object, name: str, n_models: int, n: int | None = None) -> np.ndarray:
    arr = _int_array(x, name, n)
    bad = (arr < 0) | (arr >= n_models)
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"{name}[{i}] = {arr[i]} is not a model index in [0, {n_models})")
    return arr


def _outcome_array(x: object, n: int) -> np.ndarray:
    arr = _int_array(x, "outcome", n)
    bad = (arr < 0) | (arr >= N_OUTCOMES)
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"outcome[{i}] = {arr[i]} is not an outcome code in 0..3")
    return arr.astype(np.int8)


def _weight_array(x: object | None, n: int) -> np.ndarray:
    if x is None:
        return np.ones(n)
    arr = np.asarray(x, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"weight has shape {arr.shape}, expected ({n},)")
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(f"weight[{i}] = {arr[i]} must be finite and >= 0")
    return arr


def _check_distinct(a: np.ndarray, b: np.ndarray, models: tuple[str, ...]) -> None:
    same = a == b
    if same.any():
        i = _first_bad(same)
        raise ValueError(f"row {i}: model {models[a[i]]!r} cannot battle itself (a == b)")


def _frozen(arr: np.ndarray) -> np.ndarray:
    # Frozen dataclasses should not hand out mutable arrays: a caller editing `a` in place would
    # silently desynchronise it from `weight`.
    arr = np.array(arr, copy=True)
    arr.setflags(write=False)
    return arr


def union_models(*model_lists: Sequence[str]) -> tuple[str, ...]:
    """Sorted union of several model lists.

    Parameters
    ----------
    *model_lists : sequence of str
        Model name lists, e.g. ``pairs.models`` and ``rankings.models``.

    Returns
    -------
    tuple of str
        Every name that appears in any list, sorted, each once.
    """
    return tuple(sorted({name for names in model_lists for name in names}))


def _remap(old: tuple[str, ...], new: tuple[str, ...]) -> np.ndarray:
    position = {name: i for i, name in enumerate(new)}
    missing = [name for name in old if name not in position]
    if missing:
        raise ValueError(f"models {missing!r} are missing from the new model list")
    return np.array([position[name] for name in old], dtype=np.int64)


# --------------------------------------------------------------------------------------------- pairs
@dataclass(frozen=True, eq=False)
class PairCounts:
    """Aggregated pairwise outcomes: one row per unique ``(a, b, outcome)``.

    Parameters
    ----------
    models : tuple of str
        Model names; the indices in ``a`` and ``b`` refer to this tuple.
    a, b : ndarray of int64, shape (n,)
        Index of the model in position A / B (``a != b``).
    outcome : ndarray of int8, shape (n,)
        0 = A wins, 1 = B wins, 2 = tie, 3 = tie with both answers bad.
    weight : ndarray of float64, shape (n,)
        Number of battles in the row (``>= 0``).
    features : ndarray of float64, shape (n, F), optional
        Style covariates (see :mod:`leaderboard.ratings.style`). When present the rows are single
        battles (not aggregated), because covariates differ from battle to battle.
    feature_names : tuple of str
        One name per feature column.
    """

    models: tuple[str, ...]
    a: np.ndarray
    b: np.ndarray
    outcome: np.ndarray
    weight: np.ndarray
    features: np.ndarray | None = None
    feature_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        models = _models_tuple(self.models)
        m = len(models)
        a = _model_index_array(self.a, "a", m)
        n = a.shape[0]
        b = _model_index_array(self.b, "b", m, n)
        _check_distinct(a, b, models)
        outcome = _outcome_array(self.outcome, n)
        weight = _weight_array(self.weight, n)
        features, names = _check_features(self.features, tuple(self.feature_names), n)
        set_ = object.__setattr__
        set_(self, "models", models)
        set_(self, "a", _frozen(a))
        set_(self, "b", _frozen(b))
        set_(self, "outcome", _frozen(outcome))
        set_(self, "weight", _frozen(weight))
        set_(self, "features", None if features is None else _frozen(features))
        set_(self, "feature_names", names)

    # -- constructors
    @classmethod
    def from_arrays(
        cls,
        models: Sequence[str],
        a: np.ndarray,
        b: np.ndarray,
        outcome: np.ndarray,
        weight: np.ndarray | None = None,
        *,
        features: np.ndarray | None = None,
        feature_names: Sequence[str] = (),
    ) -> PairCounts:
        """Build from raw per-battle arrays, aggregating identical ``(a, b, outcome)`` rows.

        Parameters
        ----------
        models : sequence of str
            Model names.
        a, b, outcome : array_like of int, shape (n,)
            One entry per battle (see the class docstring for the codes).
        weight : array_like of float, shape (n,), optional
            Battle weights, default 1.
        features : array_like of float, shape (n, F), optional
            Per-battle style covariates. When given, rows are kept per battle (no aggregation).
        feature_names : sequence of str
            Names of the feature columns.

        Returns
        -------
        PairCounts

        Raises
        ------
        ValueError
            On mismatched lengths, indices out of range, ``a == b``, unknown outcomes or negative
            weights; the message names the first offending row.
        """
        models_t = _models_tuple(models)
        m = len(models_t)
        a_arr = _model_index_array(a, "a", m)
        n = a_arr.shape[0]
        b_arr = _model_index_array(b, "b", m, n)
        _check_distinct(a_arr, b_arr, models_t)
        out = _outcome_array(outcome, n)
        w = None if weight is None else _weight_array(weight, n)
        if features is not None:
            return cls(models_t, a_arr, b_arr, out, np.ones(n) if w is None else w, features, tuple(feature_names))
        if feature_names:
            raise ValueError("feature_names given without features")
        return cls._aggregate(models_t, a_arr, b_arr, out, w)

    @classmethod
    def _aggregate(
        cls, models: tuple[str, ...], a: np.ndarray, b: np.ndarray, outcome: np.ndarray, weight: np.ndarray | None
    ) -> PairCounts:
        m = len(models)
        # One integer code per (a, b, outcome) cell lets a single bincount do the GROUP BY.
        code = (a * m + b) * N_OUTCOMES + outcome
        n_cells = m * m * N_OUTCOMES
        if n_cells <= _DENSE_CELL_LIMIT:
            counts = np.bincount(code, weights=weight, minlength=n_cells).astype(np.float64)
            cells = np.flatnonzero(counts)
            counts = counts[cells]
        else:
            cells, inverse = np.unique(code, return_inverse=True)
            counts = np.bincount(inverse, weights=weight, minlength=cells.size).astype(np.float64)
            keep = counts > 0
            cells, counts = cells[keep], counts[keep]
        out = cells % N_OUTCOMES
        pair = cells // N_OUTCOMES
        return cls(models, pair // m, pair % m, out.astype(np.int8), counts)

    @classmethod
    def from_records(
        cls, records: Iterable[tuple[str, str, int | str, float]], models: Sequence[str] | None = None
    ) -> PairCounts:
        """Build from ``(model_a, model_b, outcome, count)`` records, e.g. a SQL ``GROUP BY`` result.

        Parameters
        ----------
        records : iterable of tuple
            ``outcome`` is an int code 0..3 or a FastChat winner string.
        models : sequence of str, optional
            Model list (may include models without battles); default: sorted names in the records.

        Returns
        -------
        PairCounts
        """
        rows = list(records)
        names = union_models([r[0] for r in rows], [r[1] for r in rows]) if models is None else tuple(models)
        position = {name: i for i, name in enumerate(names)}
        a = np.empty(len(rows), dtype=np.int64)
        b = np.empty(len(rows), dtype=np.int64)
        outcome = np.empty(len(rows), dtype=np.int64)
        weight = np.empty(len(rows), dtype=np.float64)
        for i, (ma, mb, out, count) in enumerate(rows):
            for name in (ma, mb):
                if name not in position:
                    raise ValueError(f"record {i}: model {name!r} is not in models")
            code = OUTCOME_CODES.get(out) if isinstance(out, str) else out
            if code is None:
                raise ValueError(f"record {i}: unknown outcome {out!r}")
            a[i], b[i], outcome[i], weight[i] = position[ma], position[mb], code, count
        return cls.from_arrays(names, a, b, outcome, weight)

    # -- views
    @property
    def n_models(self) -> int:
        """Number of models."""
        return len(self.models)

    @property
    def total(self) -> float:
        """Total number of battles (sum of weights)."""
        return float(self.weight.sum())

    def model_votes(self) -> np.ndarray:
        """Battles each model took part in (sum of weights of rows with it in A or B), shape (M,)."""
        m = self.n_models
        return np.bincount(self.a, self.weight, m) + np.bincount(self.b, self.weight, m)

    def select_outcomes(self, *, exclude_ties: bool = False, both_bad_as_tie: bool = True) -> PairCounts:
        """Apply the tie policy: relabel or drop outcomes 2 and 3.

        Parameters
        ----------
        exclude_ties : bool
            Drop ties and both-bad ties (outcomes 2 and 3).
        both_bad_as_tie : bool
            If True, "both bad" (3) counts as a tie (2); if False it is dropped.

        Returns
        -------
        PairCounts
            With outcome codes in ``{0, 1, 2}`` only.
        """
        keep = self.outcome < TIE if exclude_ties else (self.outcome != BOTH_BAD) | both_bad_as_tie
        outcome = np.minimum(self.outcome[keep], TIE).astype(np.int8)
        features = None if self.features is None else self.features[keep]
        if features is not None:
            return PairCounts(self.models, self.a[keep], self.b[keep], outcome, self.weight[keep],
                              features, self.feature_names)
        return PairCounts._aggregate(self.models, self.a[keep], self.b[keep], outcome, self.weight[keep])

    def reindex(self, models: Sequence[str]) -> PairCounts:
        """Same data with indices referring to ``models`` (a superset of ``self.models``)."""
        new = _models_tuple(models)
        index = _remap(self.models, new)
        return PairCounts(new, index[self.a], index[self.b], self.outcome, self.weight,
                          self.features, self.feature_names)


def _check_features(
    features: np.ndarray | None, names: tuple[str, ...], n: int
) -> tuple[np.ndarray | None, tuple[str, ...]]:
    if features is None:
        if names:
            raise ValueError("feature_names given without features")
        return None, ()
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != n:
        raise ValueError(f"features has shape {x.shape}, expected ({n}, F)")
    if len(names) != x.shape[1]:
        raise ValueError(f"feature_names has {len(names)} names for {x.shape[1]} feature columns")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate feature names in {names!r}")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(f"features row {_first_bad(bad)} is not finite")
    return x, tuple(str(s) for s in names)


# ------------------------------------------------------------------------------------------ rankings
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
    items = _int_array(items.ravel(), "items").reshape(items.shape)
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


# ---------------------------------------------------------------------------------------- battles
@dataclass(frozen=True, eq=False)
class EloBattles:
    """Per-battle outcomes in time order, for the online Elo method.

    Parameters
    ----------
    models : tuple of str
        Model names.
    a, b : ndarray of int64, shape (n,)
        Model in position A / B of each battle.
    outcome : ndarray of int8, shape (n,)
        Outcome codes as in :class:`PairCounts`.

    Notes
    -----
    Row order *is* the time order: online Elo depends on it. Use :meth:`from_arrays` with
    ``tstamp`` to sort.
    """

    models: tuple[str, ...]
    a: np.ndarray
    b: np.ndarray
    outcome: np.ndarray

    def __post_init__(self) -> None:
        models = _models_tuple(self.models)
        a = _model_index_array(self.a, "a", len(models))
        b = _model_index_array(self.b, "b", len(models), a.shape[0])
        _check_distinct(a, b, models)
        outcome = _outcome_array(self.outcome, a.shape[0])
        set_ = object.__setattr__
        set_(self, "models", models)
        set_(self, "a", _frozen(a))
        set_(self, "b", _frozen(b))
        set_(self, "outcome", _frozen(outcome))

    @classmethod
    def from_arrays(
        cls, models: Sequence[str], a: np.ndarray, b: np.ndarray, outcome: np.ndarray,
        tstamp: np.ndarray | None = None,
    ) -> EloBattles:
        """Build from per-battle arrays, stably sorted by ``tstamp`` when given.

        Parameters
        ----------
        models : sequence of str
            Model names.
        a, b, outcome : array_like of int, shape (n,)
            One entry per battle.
        tstamp : array_like of float, shape (n,), optional
            Battle times; ties in time keep their input order.

        Returns
        -------
        EloBattles
        """
        if tstamp is None:
            return cls(tuple(models), a, b, outcome)
        t = np.asarray(tstamp, dtype=np.float64)
        if t.shape != np.shape(a):
            raise ValueError(f"tstamp has shape {t.shape}, expected {np.shape(a)}")
        if np.isnan(t).any():
            raise ValueError(f"tstamp[{_first_bad(np.isnan(t))}] is NaN")
        order = np.argsort(t, kind="stable")
        return cls(tuple(models), np.asarray(a)[order], np.asarray(b)[order], np.asarray(outcome)[order])

    @property
    def n_models(self) -> int:
        """Number of models."""
        return len(self.models)

    def to_pair_counts(self, features: np.ndarray | None = None, feature_names: Sequence[str] = ()) -> PairCounts:
        """Aggregate into :class:`PairCounts` (kept per battle when ``features`` are given)."""
        if features is None:
            # Already validated on construction: go straight to the GROUP BY.
            return PairCounts._aggregate(self.models, self.a, self.b, self.outcome, None)
        return PairCounts.from_arrays(self.models, self.a, self.b, self.outcome,
                                      features=features, feature_names=feature_names)

    def model_votes(self) -> np.ndarray:
        """Battles per model, shape (M,)."""
        m = self.n_models
        return (np.bincount(self.a, minlength=m) + np.bincount(self.b, minlength=m)).astype(np.float64)


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
