"""Style covariates for style control (contextual Bradley-Terry).

For each battle and each style count (answer length in whitespace tokens, markdown headers, list
items, bold spans) the covariate is ``(a - b) / (a + b + 1)``: antisymmetric in the two sides,
bounded in (-1, 1), and 0 when both answers have the same style. Columns are then z-scored across
battles so that the coefficients are comparable ("effect of one standard deviation of style
difference"). The model ``P(A wins) = sigmoid(theta_a - theta_b + beta . x)`` is fitted by
:class:`~leaderboard.ratings.bradley_terry.PairwiseObjective` with ``style=True``; ``theta`` is then
the strength with style held equal. The raw counts come from :mod:`battlefiles.style`, the one place
they are computed (from answers, or from LMArena's ``conv_metadata``).
"""
from __future__ import annotations

import numpy as np

from battlefiles.style import STYLE_FEATURES

__all__ = ["STYLE_FEATURES", "style_features"]


def style_features(counts_a: np.ndarray, counts_b: np.ndarray, *, center: bool = True) -> np.ndarray:
    """Turn per-side raw counts into z-scored covariates ``(a - b) / (a + b + 1)``.

    Parameters
    ----------
    counts_a, counts_b : ndarray, shape (n, F)
        Non-negative raw counts of the answers in position A and B.
    center : bool
        Subtract the column means (a z-score). With positions randomised the means are ~0; set
        False to keep the covariate exactly antisymmetric under swapping A and B.

    Returns
    -------
    ndarray of float64, shape (n, F)
        Columns with unit standard deviation (a constant column is left at 0).
    """
    a = np.asarray(counts_a, dtype=np.float64)
    b = np.asarray(counts_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"counts_a {a.shape} and counts_b {b.shape} must have the same (n, F) shape")
    if (a < 0).any() or (b < 0).any():
        raise ValueError("style counts must be >= 0")
    x = (a - b) / (a + b + 1.0)
    if center:
        x = x - x.mean(axis=0)
    sd = x.std(axis=0)
    return np.where(sd > 0, x / np.where(sd > 0, sd, 1.0), 0.0)
