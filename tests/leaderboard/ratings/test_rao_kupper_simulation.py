"""The Rao-Kupper battle simulator behind the coverage benchmark: the tie share it plants, and a fit recovering it."""
from __future__ import annotations

import numpy as np
import pytest

from leaderboard.ratings import PairCounts, leaderboard_fit
from leaderboard.ratings.simulate import rao_kupper_battles


def test_equal_models_tie_at_the_planted_rate_and_eta_zero_never_ties():
    rng = np.random.default_rng(0)
    n, eta = 200_000, 0.5
    _, _, outcome = rao_kupper_battles(np.zeros(4), n, rng, eta=eta)
    expected = 1 - 2 / (1 + np.exp(eta))  # 1 - 2 sigmoid(-eta)
    assert abs((outcome == 2).mean() - expected) < 4 * np.sqrt(expected * (1 - expected) / n)
    assert abs((outcome == 0).mean() - (outcome == 1).mean()) < 4 * np.sqrt(0.5 / n)
    assert not (rao_kupper_battles(np.zeros(4), 10_000, rng, eta=0.0)[2] == 2).any()
    with pytest.raises(ValueError, match="eta"):
        rao_kupper_battles(np.zeros(2), 5, rng, eta=-0.1)


def test_a_rao_kupper_fit_recovers_the_planted_strengths():
    theta = np.array([-0.8, -0.2, 0.3, 0.7])
    a, b, outcome = rao_kupper_battles(theta, 60_000, np.random.default_rng(1), eta=0.5)
    models = ["m0", "m1", "m2", "m3"]
    fit = leaderboard_fit(PairCounts.from_arrays(models, a, b, outcome), ties="rao-kupper", ci="sandwich")
    truth = 400 / np.log(10) * (theta - theta.mean()) + 1000
    rated = {r.model: r for r in fit.rows}
    assert all(rated[m].ci_low <= t <= rated[m].ci_high for m, t in zip(models, truth, strict=True))
