"""Point estimation shared by Bradley-Terry, Plackett-Luce and the Laplace posterior.

:func:`fit_objective` runs the batched Newton solver on one round (the observed data) with a
quadratic penalty that does two jobs:

* identification: the likelihood is invariant to adding a constant to every ``theta`` of a
  connected component of the comparison graph, so ``sum_c (1_c' theta)^2 / 2`` is added per
  component. It makes the Hessian non-singular without changing the likelihood's optimum (the
  minimiser simply has mean 0 in each component) and, because both the Hessian and the score
  outer products annihilate ``1_c``, it leaves the sandwich covariance of the centred ``theta``
  exactly unchanged;
* an optional L2 prior ``l2 * |theta|^2 / 2`` (a Normal(0, 1/l2) prior on each strength).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, cast

import numpy as np

from ._numeric import comparison_components, strength_status
from .errors import ConvergenceError
from .newton import Weights, newton_batched, newton_step_size

__all__ = ["Estimate", "RatingObjective", "centre_theta", "fit_objective", "round_status"]


class RatingObjective(Protocol):
    """What :func:`fit_objective` and the interval code need from a likelihood."""

    models: tuple[str, ...]
    n_models: int
    n_params: int
    extra_names: tuple[str, ...]

    def derivatives(self, x: np.ndarray, weights: Weights) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
    def feasible(self, x: np.ndarray) -> np.ndarray: ...
    def base_weights(self) -> Weights: ...
    def cell_counts(self) -> list[np.ndarray]: ...
    def weights_from_cells(self, counts: list[np.ndarray]) -> Weights: ...
    def observed(self, weights: Weights) -> np.ndarray: ...
    def edge_cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...
    def mask_units(self, weights: Weights, keep: np.ndarray) -> Weights: ...
    def information(self, x: np.ndarray) -> np.ndarray: ...
    def x0(self) -> np.ndarray: ...


@dataclass(frozen=True, eq=False)
class Estimate:
    """A fitted rating model.

    Attributes
    ----------
    objective : RatingObjective
        The likelihood that was maximised (keeps the data for intervals).
    x : ndarray, shape (P,)
        Parameters ``[theta (M), extras]``; ``theta`` has mean 0 in each component.
    hessian : ndarray, shape (P, P)
        Hessian of the penalised negative log-likelihood at ``x``.
    penalty : ndarray, shape (P, P)
        The quadratic penalty used (identification and/or prior).
    components : ndarray of int64, shape (M,)
        Connected component of each model in the comparison graph.
    roots : ndarray of int64
        Most-voted model of each component (reference for the existence check).
    votes : ndarray, shape (M,)
        Battles / votes per model in the fitted data.
    l2 : float
        Ridge / prior precision on ``theta`` (0 for the plain MLE).
    n_iter : int
        Newton iterations.
    max_step : float
        The largest per-coordinate Newton step still to go at ``x`` (logit units): how far the
        least-converged parameter may be from the optimum (see :func:`~.newton.newton_step_size`).
    """

    objective: RatingObjective
    x: np.ndarray
    hessian: np.ndarray
    penalty: np.ndarray
    components: np.ndarray
    roots: np.ndarray
    votes: np.ndarray
    l2: float
    n_iter: int
    max_step: float = 0.0

    @property
    def theta(self) -> np.ndarray:
        """Strengths on the natural (logit) scale, shape (M,)."""
        return self.x[: self.objective.n_models]

    @property
    def extras(self) -> dict[str, float]:
        """Non-strength parameters by name (``beta[<feature>]``, ``eta``)."""
        m = self.objective.n_models
        return {name: float(v) for name, v in zip(self.objective.extra_names, self.x[m:], strict=True)}


def centre_theta(theta: np.ndarray, components: np.ndarray, anchor: int | None = None) -> np.ndarray:
    """Remove the unidentified level of each component: mean 0, or ``theta[anchor] = 0`` in the anchor's.

    Works on a batch ``(R, M)`` as well as one vector; NaN (model unobserved in a bootstrap
    round) and +-inf (diverged) entries are left out of the means so they do not poison the others.

    Parameters
    ----------
    theta : ndarray, shape (..., M)
    components : ndarray of int, shape (M,)
    anchor : int, optional
        Index of a model whose strength becomes exactly 0. Only the anchor's own component is
        shifted to it: the other components never met the anchor (even indirectly), so they keep
        their own mean 0 rather than an arbitrary offset from it.

    Returns
    -------
    ndarray, same shape as ``theta``
    """
    theta = np.asarray(theta, dtype=np.float64)
    out = theta.copy()
    finite = np.isfinite(theta)
    for comp in range(int(components.max()) + 1 if components.size else 0):
        members = components == comp
        if anchor is not None and components[anchor] == comp:
            out[..., members] = theta[..., members] - theta[..., anchor: anchor + 1]
            continue
        vals = np.where(finite[..., members], theta[..., members], 0.0)
        count = finite[..., members].sum(axis=-1, keepdims=True)
        mean = vals.sum(axis=-1, keepdims=True) / np.maximum(count, 1)
        out[..., members] = theta[..., members] - mean
    return out


def identification_penalty(components: np.ndarray, n_params: int) -> np.ndarray:
    """``sum_c 1_c 1_c'`` embedded in the ``theta`` block of a (P, P) matrix."""
    m = components.size
    q = np.zeros((n_params, n_params))
    q[:m, :m] = (components[:, None] == components[None, :]).astype(np.float64)
    return q


def _roots(components: np.ndarray, votes: np.ndarray) -> np.ndarray:
    order = np.lexsort((-votes, components))  # by component, most votes first
    first = np.r_[True, components[order][1:] != components[order][:-1]]
    return order[first]


def round_status(
    objective: RatingObjective, counts: list[np.ndarray], components: np.ndarray, roots: np.ndarray
) -> np.ndarray:
    """Finite / +inf / -inf / NaN status of every strength in each resampled round, shape (R, M).

    Parameters
    ----------
    objective : RatingObjective
    counts : list of ndarray, each (R, n_cells)
        Cell counts per stratum (as from :meth:`RatingObjective.cell_counts`, batched).
    components, roots : ndarray
        Full-data components and their reference models.

    Returns
    -------
    ndarray of float64, shape (R, M)
        See :func:`~._numeric.strength_status`.
    """
    src, dst, stratum, cell = objective.edge_cells()
    n_rounds = counts[0].shape[0]
    positive = [c > 0 for c in counts]
    always = np.empty(src.size, dtype=bool)
    for k, pos in enumerate(positive):
        sel = stratum == k
        # cast: numpy's stubs type a one-axis reduction as scalar or array; of (R, n) it is an (n,) array
        always[sel] = cast(np.ndarray, pos.all(axis=0))[cell[sel]]
    # Edges present in every round form a subgraph; if it already satisfies Zermelo's condition,
    # every round does, and the per-round search (the expensive part) is skipped.
    base = strength_status(src[always], dst[always], np.ones((1, int(always.sum())), dtype=bool),
                           components, roots)
    if (base == 0).all():
        return np.zeros((n_rounds, components.size))
    present = np.empty((n_rounds, src.size), dtype=bool)
    for k, pos in enumerate(positive):
        sel = stratum == k
        present[:, sel] = pos[:, cell[sel]]
    return strength_status(src, dst, present, components, roots)


def _existence_message(models: tuple[str, ...], status: np.ndarray, roots: np.ndarray) -> str:
    ref = ", ".join(repr(models[r]) for r in roots)
    parts = []
    for value, what in ((np.inf, "never lost to it (even indirectly): +inf"),
                        (-np.inf, "never beat or tied it (even indirectly): -inf")):
        names = [models[i] for i in np.flatnonzero(status == value)]
        if names:
            parts.append(f"{what}: {names}")
    return (f"the maximum-likelihood ratings do not exist: relative to the most-voted model(s) {ref}, models that "
            + "; models that ".join(parts) + ". Use l2 > 0, method='bayes', or more data.")


def fit_objective(
    objective: RatingObjective, *, l2: float = 0.0, identify: bool = True, max_iter: int = 100, xtol: float = 1e-6,
) -> Estimate:
    """Maximise the (penalised) likelihood of ``objective``.

    Parameters
    ----------
    objective : RatingObjective
        Likelihood with its data.
    l2 : float
        Ridge strength on ``theta`` (a Normal(0, 1/l2) prior); 0 for the plain MLE.
    identify : bool
        Add the per-component identification penalty (off for the Bayesian posterior, whose
        prior already identifies the level and whose covariance must not see the extra term).
    max_iter : int
        Newton iteration limit.
    xtol : float
        Convergence criterion, per coordinate: at the returned point the Newton step still to go
        (each gradient component scaled by the inverse information, :func:`~.newton.newton_step_size`)
        is at most ``xtol`` logits (1e-6 logit = 0.0002 rating points) for *every* parameter, a
        model with two votes as much as one with ten thousand. It is checked once more at the
        returned point, after the last step.

    Returns
    -------
    Estimate

    Raises
    ------
    ConvergenceError
        If ``l2 == 0`` and the MLE does not exist (checked up front with Zermelo's condition), or
        if Newton fails to converge in every coordinate.
    """
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    m = objective.n_models
    weights = objective.base_weights()
    votes = objective.observed(weights)[0]
    src, dst, _, _ = objective.edge_cells()
    components = comparison_components(m, src, dst)
    roots = _roots(components, votes)
    if l2 == 0:
        status = strength_status(src, dst, np.ones((1, src.size), dtype=bool), components, roots)[0]
        if not (status[votes > 0] == 0).all():
            raise ConvergenceError(_existence_message(objective.models, status, roots))
    penalty = identification_penalty(components, objective.n_params) if identify else np.zeros(
        (objective.n_params, objective.n_params))
    penalty[np.arange(m), np.arange(m)] += l2
    result = newton_batched(objective, weights, objective.x0(), penalty, max_iter=max_iter, xtol=xtol,
                            stop_on_flat=False)
    x = result.x[0].copy()
    x[:m] = centre_theta(x[:m], components)
    # Newton's last step is taken without evaluating where it lands; evaluate there once (cheap for one
    # round) to confirm that every coordinate has converged and to return the Hessian at x itself.
    _, _, hessian = objective.derivatives(x[None], weights)
    hessian = hessian[0] + penalty
    step = newton_step_size(objective, weights, x[None], penalty)[0]
    worst = int(np.argmax(step)) if step.size else 0
    max_step = float(step[worst]) if step.size else 0.0
    if not max_step <= xtol:
        name = objective.models[worst] if worst < m else objective.extra_names[worst - m]
        raise ConvergenceError(f"Newton stopped {max_step:.3g} (natural units) from the optimum of {name!r}; "
                               f"the criterion is {xtol:g} in every coordinate")
    return Estimate(objective, x, hessian, penalty, components, roots, votes, l2, result.n_iter, max_step)
