"""Pairwise battles one by one, in time order: what online Elo replays."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .checks import (
    _check_distinct,
    _first_bad,
    _frozen,
    _model_index_array,
    _models_tuple,
    _outcome_array,
)
from .pairs import PairCounts


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


