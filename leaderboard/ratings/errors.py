"""Exceptions raised by the ratings package."""
from __future__ import annotations

__all__ = ["ConvergenceError"]


class ConvergenceError(RuntimeError):
    """The optimiser did not converge, or the maximum-likelihood estimate does not exist.

    Raised instead of returning a silently wrong answer: e.g. a model that never lost has an
    infinite Bradley-Terry MLE, which no iteration count can fix (use ``l2 > 0`` or the Bayesian
    method in that case).
    """
