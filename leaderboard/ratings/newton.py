"""Batched damped Newton minimiser: many independent fits (bootstrap rounds) in one vectorised loop.

Every objective in this package is a convex negative log-likelihood with an analytic gradient
and Hessian, so Newton with a backtracking line search converges quadratically; solving all
bootstrap rounds as one ``(R, P)`` problem replaces R Python-level fits by a handful of numpy calls
per iteration (a batched ``np.linalg.solve`` on ``(R, P, P)``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ._blas import single_threaded_blas
from .errors import ConvergenceError

__all__ = ["NewtonResult", "Objective", "Weights", "newton_batched", "newton_step_size", "take_weights"]

#: Per-round data weights: a tuple of arrays whose first axis is the round.
Weights = tuple[np.ndarray, ...]


class Objective(Protocol):
    """A batched negative log-likelihood over parameters ``x`` of shape (R, P)."""

    n_models: int
    n_params: int

    def derivatives(self, x: np.ndarray, weights: Weights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return value (R,), gradient (R, P) and Hessian (R, P, P) of the negative log-likelihood."""
        ...

    def feasible(self, x: np.ndarray) -> np.ndarray:
        """Boolean (R,): whether each parameter vector is inside the domain."""
        ...


@dataclass(frozen=True, eq=False)
class NewtonResult:
    """Output of :func:`newton_batched`.

    Attributes
    ----------
    x : ndarray, shape (R, P)
        Minimisers.
    value : ndarray, shape (R,)
        Penalised objective at ``x``.
    hessian : ndarray, shape (R, P, P)
        Penalised Hessian at ``x``.
    n_iter : int
        Newton iterations of the slowest round.
    """

    x: np.ndarray
    value: np.ndarray
    hessian: np.ndarray
    n_iter: int


def take_weights(weights: Weights, index: np.ndarray) -> Weights:
    """Select rounds ``index`` from every array in ``weights``."""
    return tuple(w[index] for w in weights)


def _penalised(
    objective: Objective, x: np.ndarray, weights: Weights, penalty: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f, g, h = objective.derivatives(x, weights)
    if penalty is not None:
        qx = x @ penalty
        f = f + 0.5 * np.einsum("rp,rp->r", x, qx)
        g = g + qx
        h = h + penalty
    return f, g, h


def _newton_step(h: np.ndarray, g: np.ndarray) -> np.ndarray:
    # A tiny Levenberg ridge keeps the solve finite when a bootstrap round leaves a model (or a
    # group of models) without battles: the gradient is exactly zero along such directions, so the
    # ridge just leaves them where the warm start put them, and it never moves the fixed point.
    diag = np.einsum("rpp->rp", h)
    ridge = 1e-9 * np.maximum(np.abs(diag).mean(axis=1), 1e-300)
    damped = h + ridge[:, None, None] * np.eye(h.shape[1])
    try:
        return -np.linalg.solve(damped, g[..., None])[..., 0]
    except np.linalg.LinAlgError as exc:  # only for exactly singular, i.e. unidentified, problems
        raise ConvergenceError(f"singular Hessian: the parameters are not identified ({exc})") from exc


def newton_step_size(objective: Objective, weights: Weights, x: np.ndarray,
                     penalty: np.ndarray | None = None) -> np.ndarray:
    """Per-coordinate distance to the optimum still to go: ``|H^-1 g|`` at ``x``, shape (R, P).

    This is the convergence criterion of :func:`newton_batched`: each coordinate's gradient scaled
    by the information about it (the inverse Hessian, which also accounts for how the coordinates
    are coupled), in the parameters' own units (logits for strengths). Unlike a relative change of
    the total loss, it does not let a model with two votes stop early just because its share of a
    loss summed over 100,000 battles is tiny.

    Parameters
    ----------
    objective : Objective
    weights : tuple of ndarray
        Per-round data weights, first axis R.
    x : ndarray, shape (R, P)
    penalty : ndarray, shape (P, P), optional

    Returns
    -------
    ndarray, shape (R, P)
    """
    with single_threaded_blas():
        _, g, h = _penalised(objective, np.atleast_2d(x), weights, penalty)
        return np.abs(_newton_step(h, g))


def newton_batched(
    objective: Objective,
    weights: Weights,
    x0: np.ndarray,
    penalty: np.ndarray | None = None,
    *,
    max_iter: int = 100,
    xtol: float = 1e-6,
    stop_on_flat: bool = True,
) -> NewtonResult:
    """Minimise ``objective(x, weights[r]) + x' Q x / 2`` for every round r at once.

    Parameters
    ----------
    objective : Objective
        Batched convex objective.
    weights : tuple of ndarray
        Per-round data weights, first axis R.
    x0 : ndarray, shape (R, P) or (P,)
        Starting points (broadcast to all rounds when 1-D); a warm start from the full-data fit
        makes bootstrap rounds converge in 2-4 iterations.
    penalty : ndarray, shape (P, P), optional
        Quadratic penalty ``Q`` (identification and/or L2 prior).
    max_iter : int
        Newton iterations before giving up.
    xtol : float
        A round whose Newton step is below ``xtol`` in every coordinate takes that step without a
        line search and stops: with quadratic convergence its remaining error is of order
        ``xtol ** 2`` (~1e-12), and skipping the evaluation at the final point saves a full
        gradient/Hessian pass per solve. The criterion is per coordinate (see
        :func:`newton_step_size`), so every model's strength is converged, however few its votes.
    stop_on_flat : bool
        Stop a round whose Newton decrement vanishes while its step does not (a direction with no
        finite optimum, as in a separated bootstrap resample) instead of iterating to ``max_iter``.
        The point fit turns this off: it must converge in every coordinate or raise.

    Returns
    -------
    NewtonResult
        ``value`` and ``hessian`` are those of the last evaluated point (at most ``xtol`` away).

    Raises
    ------
    ConvergenceError
        If a round has not converged after ``max_iter`` iterations or its line search fails.
    """
    with single_threaded_blas():
        return _newton(objective, weights, x0, penalty, max_iter, xtol, stop_on_flat)


def _newton(
    objective: Objective, weights: Weights, x0: np.ndarray, penalty: np.ndarray | None, max_iter: int, xtol: float,
    stop_on_flat: bool,
) -> NewtonResult:
    n_rounds = weights[0].shape[0]
    x = np.array(np.broadcast_to(x0, (n_rounds, np.shape(x0)[-1])), dtype=np.float64)
    f, g, h = _penalised(objective, x, weights, penalty)
    active = np.arange(n_rounds)
    n_iter = 0
    while active.size:
        if n_iter == max_iter:
            raise ConvergenceError(f"Newton did not converge in {max_iter} iterations for {active.size} of "
                                   f"{n_rounds} problem(s)")
        n_iter += 1
        step = _newton_step(h[active], g[active])
        small = np.abs(step).max(axis=1) <= xtol
        x[active[small]] += step[small]
        active, step = active[~small], step[~small]
        if not active.size:
            break
        decrement = -np.einsum("rp,rp->r", g[active], step)
        _line_search(objective, weights, penalty, x, f, g, h, active, step, decrement)
        # A vanishing decrement with a sizeable step means a flat direction (no finite optimum):
        # stop there rather than spin until max_iter (bootstrap rounds only; see stop_on_flat).
        if stop_on_flat:
            active = active[decrement > 1e-20]
    return NewtonResult(x, f, h, n_iter)


def _line_search(
    objective: Objective,
    weights: Weights,
    penalty: np.ndarray | None,
    x: np.ndarray,
    f: np.ndarray,
    g: np.ndarray,
    h: np.ndarray,
    active: np.ndarray,
    step: np.ndarray,
    decrement: np.ndarray,
) -> np.ndarray:
    """Backtracking (Armijo) line search; updates ``x, f, g, h`` in place; returns the step sizes."""
    t = np.ones(active.size)
    pending = np.arange(active.size)
    for _ in range(60):
        rounds = active[pending]
        trial = x[rounds] + t[pending, None] * step[pending]
        feasible = objective.feasible(trial)
        ft, gt, ht = _penalised(objective, trial, take_weights(weights, rounds), penalty)
        # Near the optimum f changes by less than its own rounding error; accept such steps.
        slack = 1e-12 * (np.abs(f[rounds]) + 1.0)
        ok = feasible & (ft <= f[rounds] - 1e-4 * t[pending] * decrement[pending] + slack)
        acc = rounds[ok]
        x[acc], f[acc], g[acc], h[acc] = trial[ok], ft[ok], gt[ok], ht[ok]
        pending = pending[~ok]
        if not pending.size:
            return t
        t[pending] *= 0.5
    raise ConvergenceError(f"line search failed for {pending.size} problem(s)")
