"""Shared fixtures for the ratings tests: seeded synthetic data (no Django)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from leaderboard.ratings import PairCounts

REAL_FILE = Path(__file__).resolve().parents[4] / "shared" / "data" / "genai_arena_clean_battle_20240220.json"


def simulate_pairs(
    theta: np.ndarray, n: int, rng: np.random.Generator, *, nu: float = 0.0, both_bad: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random pairings with Davidson outcomes (nu = 0: plain BT, no ties)."""
    m = theta.size
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    half = 0.5 * (theta[a] - theta[b])
    denom = np.exp(half) + np.exp(-half) + nu
    p_a, p_t = np.exp(half) / denom, nu / denom
    u = rng.random(n)
    out = np.where(u < p_a, 0, np.where(u < p_a + p_t, 2, 1))
    out = np.where((out == 2) & (rng.random(n) < both_bad), 3, out)
    return a, b, out


def names(m: int) -> list[str]:
    return [f"m{i:02d}" for i in range(m)]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def small_pairs(rng: np.random.Generator) -> tuple[PairCounts, np.ndarray]:
    """6 models, 3000 battles with Davidson ties (nu = 0.6) and some both-bad."""
    theta = np.array([1.2, 0.6, 0.1, -0.2, -0.6, -1.1])
    a, b, out = simulate_pairs(theta, 3000, rng, nu=0.6, both_bad=0.4)
    return PairCounts.from_arrays(names(6), a, b, out), theta


def standard_errors(est) -> np.ndarray:
    """Sandwich standard errors of the centred strengths of an Estimate."""
    from leaderboard.ratings import sandwich_covariance

    return np.sqrt(np.diag(sandwich_covariance(est)))[: est.objective.n_models]
