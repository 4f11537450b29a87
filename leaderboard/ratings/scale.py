"""The rating scale: ``rating = 400 * theta / ln 10 + 1000``.

A rating difference of 400 points means odds of 10:1, as in Elo. Strengths ``theta`` are only
identified up to a constant per connected component, so ratings are centred so that the mean
model of each component is 1000, or shifted so that a named anchor model is exactly 1000 -- in
the anchor's own component only: the other components never met the anchor, so they stay centred
on their own mean. The same function is applied to the point estimate and to every bootstrap round.
"""
from __future__ import annotations

import math

import numpy as np

from .estimation import centre_theta

__all__ = ["RATING_CENTER", "RATING_SCALE", "rating_jacobian", "rating_to_theta", "theta_to_rating"]

RATING_SCALE = 400.0 / math.log(10.0)
RATING_CENTER = 1000.0


def theta_to_rating(theta: np.ndarray, components: np.ndarray, anchor: int | None = None) -> np.ndarray:
    """Map strengths (natural scale, shape (..., M)) to ratings.

    Parameters
    ----------
    theta : ndarray, shape (..., M)
    components : ndarray of int, shape (M,)
        Component labels; each component is centred separately.
    anchor : int, optional
        Model index that gets exactly ``RATING_CENTER`` (its component is shifted with it; the
        other components keep their own mean at ``RATING_CENTER``).

    Returns
    -------
    ndarray, same shape as ``theta``
    """
    return RATING_SCALE * centre_theta(theta, components, anchor) + RATING_CENTER


def rating_to_theta(rating: np.ndarray) -> np.ndarray:
    """Inverse of the affine part of :func:`theta_to_rating` (the centring is not undone)."""
    return (np.asarray(rating, dtype=np.float64) - RATING_CENTER) / RATING_SCALE


def rating_jacobian(components: np.ndarray, anchor: int | None = None) -> np.ndarray:
    """Matrix ``T`` with ``rating - 1000 = T @ theta``, to push covariances to the rating scale."""
    m = components.size
    eye = np.eye(m)
    same = (components[:, None] == components[None, :]).astype(np.float64)
    t = eye - same / same.sum(axis=1, keepdims=True)
    if anchor is not None:
        members = np.flatnonzero(components == components[anchor])
        t[members] = eye[members]
        t[members, anchor] -= 1.0
    return RATING_SCALE * t
