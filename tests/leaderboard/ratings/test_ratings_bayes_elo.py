"""Bayesian (Laplace) ratings and online Elo."""
from __future__ import annotations

import math

import numpy as np
import pytest
from ratings_support import names, simulate_pairs

from leaderboard.ratings import (
    EloBattles,
    PairCounts,
    PairwiseObjective,
    elo_battles,
    elo_permutations,
    fit_objective,
    laplace_posterior,
    leaderboard_fit,
    probability_best,
)


def test_bayes_p_best_sums_to_one_and_scores_are_conservative(small_pairs):
    pairs, _ = small_pairs
    fit = leaderboard_fit(pairs, method="bayes", seed=4)
    assert sum(r.p_best for r in fit.rows) == pytest.approx(1.0, abs=1e-12)
    for row in fit.rows:
        assert row.rating == pytest.approx(row.mu - 3 * row.sigma)
        assert row.ci_low == pytest.approx(row.mu - 1.959963984540054 * row.sigma)
    assert [r.rating for r in fit.rows] == sorted((r.rating for r in fit.rows), reverse=True)
    assert np.mean([r.mu for r in fit.rows]) == pytest.approx(1000.0, abs=1e-9)


def test_bayes_with_vague_prior_matches_mle_and_its_hessian(rng):
    theta = np.array([0.7, 0.2, -0.1, -0.8])
    a, b, out = simulate_pairs(theta, 20_000, rng)
    objective = PairwiseObjective(PairCounts.from_arrays(names(4), a, b, out))
    mle = fit_objective(objective)
    post = laplace_posterior(objective, prior_sd=100.0)
    np.testing.assert_allclose(post.estimate.theta, mle.theta, atol=1e-4)
    centre = np.eye(4) - 1 / 4
    fisher = centre @ np.linalg.pinv(mle.hessian - mle.penalty) @ centre
    np.testing.assert_allclose(centre @ post.covariance @ centre, fisher, rtol=1e-3, atol=1e-9)


def test_bayes_prior_shrinks_strengths():
    pairs = PairCounts.from_records([("A", "B", 0, 6), ("B", "A", 0, 2), ("B", "C", 0, 5), ("C", "B", 0, 1),
                                     ("A", "C", 0, 3), ("C", "A", 0, 1)])
    mle = fit_objective(PairwiseObjective(pairs)).theta
    tight = laplace_posterior(PairwiseObjective(pairs), prior_sd=0.5).estimate.theta
    assert (np.abs(tight) < np.abs(mle)).all()
    assert np.argsort(tight).tolist() == np.argsort(mle).tolist()


def test_bayes_handles_an_undefeated_model():
    # The MLE does not exist; the posterior does.
    pairs = PairCounts.from_records([("A", "B", 0, 5), ("B", "C", 0, 3), ("C", "B", 0, 2)])
    fit = leaderboard_fit(pairs, method="bayes")
    assert fit.rows[0].model == "A" and fit.rows[0].p_best > 0.8


def test_probability_best_monte_carlo():
    rng = np.random.default_rng(0)
    p = probability_best(np.array([0.0, 0.0, -5.0]), np.eye(3) * 0.01, rng)
    assert p.sum() == 1.0
    assert p[0] == pytest.approx(0.5, abs=0.02) and p[2] == 0.0


def test_elo_two_battles_by_hand():
    # A beats B, then B ties C. k = 4, all start at 1000.
    battles = EloBattles(("A", "B", "C"), np.array([0, 1]), np.array([1, 2]), np.array([0, 2]))
    r = elo_battles(battles)
    # Battle 1: expected 0.5 -> A +2, B -2.  Battle 2: B (998) vs C (1000), score 1/2.
    e_b = 1 / (1 + 10 ** ((1000 - 998) / 400))
    delta = 4 * (0.5 - e_b)
    np.testing.assert_allclose(r, [1002.0, 998.0 + delta, 1000.0 - delta], atol=1e-12)
    assert r.mean() == pytest.approx(1000.0)


def test_elo_order_matters_and_permutations_are_seeded():
    battles = EloBattles(("A", "B"), np.array([0, 0, 1]), np.array([1, 1, 0]), np.array([0, 0, 0]))
    forward = elo_battles(battles)
    backward = elo_battles(EloBattles(("A", "B"), battles.a[::-1], battles.b[::-1], battles.outcome[::-1]))
    assert forward[0] != pytest.approx(backward[0])
    reps = elo_permutations(battles, 50, np.random.default_rng(1))
    assert reps.shape == (50, 2)
    np.testing.assert_allclose(reps.sum(axis=1), 2000.0)
    np.testing.assert_array_equal(reps, elo_permutations(battles, 50, np.random.default_rng(1)))
    # The replays include both orders seen above.
    assert np.isclose(reps[:, 0], forward[0]).any() and np.isclose(reps[:, 0], backward[0]).any()


def test_elo_exclude_ties_and_both_bad():
    battles = EloBattles(("A", "B"), np.array([0, 0]), np.array([1, 1]), np.array([3, 3]))
    assert elo_battles(battles).tolist() == [1000.0, 1000.0]  # ties between equals move nothing
    tilted = EloBattles(("A", "B"), np.array([0, 0]), np.array([1, 1]), np.array([0, 3]))
    assert elo_battles(tilted, both_bad_as_tie=False)[0] == pytest.approx(1002.0)
    assert elo_battles(tilted, exclude_ties=True)[0] == pytest.approx(1002.0)
    assert elo_battles(tilted)[0] < 1002.0


def test_elo_through_leaderboard_fit_with_anchor():
    rng = np.random.default_rng(2)
    a, b, out = simulate_pairs(np.array([0.5, 0.0, -0.5]), 600, rng)
    battles = EloBattles.from_arrays(names(3), a, b, out, tstamp=rng.random(600))
    fit = leaderboard_fit(method="elo", battles=battles, anchor="m01", bootstrap=30)
    rows = {r.model: r for r in fit.rows}
    assert rows["m01"].rating == 1000.0 and rows["m01"].ci_low == rows["m01"].ci_high == 1000.0
    assert rows["m00"].rating > 1000.0 > rows["m02"].rating
    assert fit.params["method"] == "elo" and fit.params["ci"] == "permutation"
    assert math.isclose(sum(r.votes for r in fit.rows), 1200.0)
