"""Battles drawn from the model itself: the known truth that tests and benchmarks check fits against."""
from __future__ import annotations

import numpy as np

__all__ = ["davidson_battles", "rao_kupper_battles"]


def davidson_battles(
    theta: np.ndarray, n: int, rng: np.random.Generator, *, nu: float = 0.0, both_bad: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``n`` battles between uniformly random distinct pairs under the Davidson tie model.

    Parameters
    ----------
    theta : ndarray, shape (M,)
        True strengths on the natural (log) scale.
    n : int
        Number of battles.
    rng : numpy.random.Generator
        Source of randomness.
    nu : float
        Davidson tie parameter; 0 gives plain Bradley-Terry (no ties).
    both_bad : float
        Share of ties relabelled "both bad" (outcome 3). No extra draw is made when it is 0.

    Returns
    -------
    a, b, outcome : ndarray, shape (n,)
        Model indices in positions A and B, and outcome codes (0 A wins, 1 B wins, 2 tie, 3 both bad).
    """
    m = theta.size
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m                      # never a == b
    half = 0.5 * (theta[a] - theta[b])
    denom = np.exp(half) + np.exp(-half) + nu
    p_a, p_tie = np.exp(half) / denom, nu / denom
    u = rng.random(n)
    outcome = np.where(u < p_a, 0, np.where(u < p_a + p_tie, 2, 1))
    if both_bad > 0:
        outcome = np.where((outcome == 2) & (rng.random(n) < both_bad), 3, outcome)
    return a, b, outcome


def rao_kupper_battles(
    theta: np.ndarray, n: int, rng: np.random.Generator, *, eta: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``n`` battles between uniformly random distinct pairs under the Rao-Kupper tie model.

    ``P(A wins) = sigmoid(d - eta)``, ``P(B wins) = sigmoid(-d - eta)``, a tie otherwise, with
    ``d = theta_a - theta_b``: the tie share is largest between equals and falls with the gap.

    Parameters
    ----------
    theta : ndarray, shape (M,)
        True strengths on the natural (log) scale.
    n : int
        Number of battles.
    rng : numpy.random.Generator
    eta : float
        Tie threshold, >= 0 (0: plain Bradley-Terry, no ties).

    Returns
    -------
    a, b, outcome : ndarray, shape (n,)
        As :func:`davidson_battles` (0 A wins, 1 B wins, 2 tie).
    """
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    m = theta.size
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m                      # never a == b
    d = theta[a] - theta[b]
    p_a = 1.0 / (1.0 + np.exp(eta - d))
    p_b = 1.0 / (1.0 + np.exp(eta + d))
    u = rng.random(n)
    return a, b, np.where(u < p_a, 0, np.where(u < p_a + p_b, 1, 2))
