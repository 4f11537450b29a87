"""Pairwise votes aggregated by (model A, model B, outcome): what Bradley-Terry fits."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .checks import (
    _DENSE_CELL_LIMIT,
    BOTH_BAD,
    N_OUTCOMES,
    OUTCOME_CODES,
    TIE,
    _check_distinct,
    _first_bad,
    _frozen,
    _model_index_array,
    _models_tuple,
    _outcome_array,
    _remap,
    _weight_array,
    union_models,
)


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


