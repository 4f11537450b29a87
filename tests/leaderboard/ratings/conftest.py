"""Fixtures for the ratings tests: seeded synthetic data (no Django)."""
from __future__ import annotations

import numpy as np
import pytest
from ratings_support import names, simulate_pairs

from leaderboard.ratings import PairCounts


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def small_pairs(rng: np.random.Generator) -> tuple[PairCounts, np.ndarray]:
    """6 models, 3000 battles with Davidson ties (nu = 0.6) and some both-bad."""
    theta = np.array([1.2, 0.6, 0.1, -0.2, -0.6, -1.1])
    a, b, out = simulate_pairs(theta, 3000, rng, nu=0.6, both_bad=0.4)
    return PairCounts.from_arrays(names(6), a, b, out), theta
