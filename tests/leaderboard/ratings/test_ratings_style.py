"""Style control: covariates and recovery of planted effects under confounding."""
from __future__ import annotations

import numpy as np
import pytest
from ratings_support import names, standard_errors

from leaderboard.ratings import (
    STYLE_FEATURES,
    PairCounts,
    PairwiseObjective,
    fit_objective,
    leaderboard_fit,
    style_features,
)


def test_style_features_formula_and_z_score():
    a = np.array([[10.0, 0.0], [0.0, 2.0], [5.0, 2.0]])
    b = np.array([[0.0, 0.0], [10.0, 0.0], [5.0, 2.0]])
    raw = (a - b) / (a + b + 1)
    x = style_features(a, b)
    expected = (raw - raw.mean(axis=0)) / raw.std(axis=0)
    np.testing.assert_allclose(x, expected)
    np.testing.assert_allclose(x.std(axis=0), 1.0)
    # A constant column carries no information and stays 0 instead of dividing by zero.
    assert (style_features(np.ones((3, 1)), np.ones((3, 1)))[:, 0] == 0).all()
    with pytest.raises(ValueError, match=">= 0"):
        style_features(-a, b)


def _confounded(rng: np.random.Generator, n: int = 30_000):
    theta = np.array([0.6, 0.3, 0.0, -0.3, -0.6])
    verbosity = np.array([1.0, 1.0, 1.0, 1.0, 4.0])  # the weakest model writes 4x longer answers
    m = theta.size
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    len_a = rng.poisson(200 * verbosity[a] * rng.lognormal(0, 0.3, n))
    len_b = rng.poisson(200 * verbosity[b] * rng.lognormal(0, 0.3, n))
    x = style_features(len_a[:, None], len_b[:, None])
    beta = 0.5
    p = 1 / (1 + np.exp(-(theta[a] - theta[b] + beta * x[:, 0])))
    out = (rng.random(n) > p).astype(np.int64)
    return theta, beta, PairCounts.from_arrays(names(m), a, b, out, features=x, feature_names=("length",))


def test_style_control_recovers_planted_theta_and_beta():
    theta, beta, pairs = _confounded(np.random.default_rng(11))
    est = fit_objective(PairwiseObjective(pairs, style=True))
    se = standard_errors(est)
    assert (np.abs(est.theta - theta) < 4 * se).all()
    assert est.extras["beta[length]"] == pytest.approx(beta, abs=0.05)
    # Without style control the verbose, weakest model is overrated by far more than its error.
    naive = fit_objective(PairwiseObjective(pairs))
    assert naive.theta[4] - theta[4] > 10 * se[4]


def test_leaderboard_reports_style_coefficients_by_name():
    _, beta, pairs = _confounded(np.random.default_rng(12), n=8000)
    for ci in ("sandwich", "bootstrap"):
        fit = leaderboard_fit(pairs, style_control=True, ci=ci, bootstrap=60)
        (coef,) = fit.style_coefficients
        assert coef.name == "length"
        assert coef.ci_low < coef.coef < coef.ci_high
        assert coef.ci_low < beta < coef.ci_high
        assert fit.params["style_control"] is True


def test_style_control_needs_features(small_pairs):
    pairs, _ = small_pairs
    with pytest.raises(ValueError, match="features"):
        leaderboard_fit(pairs, style_control=True)
    assert STYLE_FEATURES == ("length", "headers", "lists", "bold")


def test_constant_style_features_are_dropped_and_reported():
    _, _, pairs = _confounded(np.random.default_rng(13), n=3000)
    with_flat = PairCounts(pairs.models, pairs.a, pairs.b, pairs.outcome, pairs.weight,
                           np.c_[pairs.features, np.zeros(pairs.a.size)], ("length", "bold"))
    fit = leaderboard_fit(with_flat, style_control=True, ci="sandwich")
    assert [c.name for c in fit.style_coefficients] == ["length"]
    assert fit.params["style_features_dropped"] == ["bold"]
    with pytest.raises(ValueError, match="constant across battles"):
        PairwiseObjective(with_flat, style=True)
