"""Helpers shared by the ratings tests (imported by module name: pytest puts this folder on sys.path)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from leaderboard.ratings.simulate import davidson_battles

# The real GenAI-Arena file, shipped with the demo (a copy of shared/data's).
REAL_FILE = Path(__file__).resolve().parents[3] / "arena" / "demo" / "genai_arena_clean_battle_20240220.json"


def simulate_pairs(
    theta: np.ndarray, n: int, rng: np.random.Generator, *, nu: float = 0.0, both_bad: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random pairings with Davidson outcomes (nu = 0: plain BT, no ties)."""
    return davidson_battles(theta, n, rng, nu=nu, both_bad=both_bad)


def names(m: int) -> list[str]:
    """Model names m00, m01, ..."""
    return [f"m{i:02d}" for i in range(m)]


def standard_errors(est) -> np.ndarray:
    """Sandwich standard errors of the centred strengths of an Estimate."""
    from leaderboard.ratings import sandwich_covariance

    return np.sqrt(np.diag(sandwich_covariance(est)))[: est.objective.n_models]
