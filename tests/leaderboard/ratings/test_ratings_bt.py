"""Bradley-Terry fits against independent implementations, golden cases and planted truth."""
from __future__ import annotations

import math

import numpy as np
import pytest
from ratings_support import names, simulate_pairs
from ratings_support import standard_errors as _se
from scipy.optimize import minimize

from leaderboard.ratings import ConvergenceError, PairCounts, PairwiseObjective, fit_objective, sandwich_covariance


def _expanded_loglik(theta_eta: np.ndarray, a, b, out, ties: str) -> float:
    """Explicit per-battle log-likelihood over expanded rows, written from the model definitions."""
    m = a.max(initial=0) + 1 if ties == "half" else theta_eta.size - 1
    theta = theta_eta[:m] if ties == "half" else theta_eta[:-1]
    d = theta[a] - theta[b]
    if ties == "half":
        p = 1 / (1 + np.exp(-d))
        ll = np.where(out == 0, np.log(p), np.where(out == 1, np.log(1 - p), 0.5 * np.log(p * (1 - p))))
        return float(ll.sum())
    nu = math.exp(theta_eta[-1])
    pa, pb = np.exp(theta[a]), np.exp(theta[b])
    if ties == "davidson":
        den = pa + pb + nu * np.sqrt(pa * pb)
        probs = [pa / den, pb / den, nu * np.sqrt(pa * pb) / den]
    else:  # Rao-Kupper with theta_RK = nu
        probs = [pa / (pa + nu * pb), pb / (pb + nu * pa),
                 (nu**2 - 1) * pa * pb / ((pa + nu * pb) * (pb + nu * pa))]
    return float(np.log(np.choose(out, probs)).sum())


def _independent_fit(a, b, out, m: int, ties: str) -> np.ndarray:
    n_par = m if ties == "half" else m + 1
    x0 = np.zeros(n_par)
    if ties == "rao-kupper":
        x0[-1] = 0.5
    # Pin the level by fitting theta_1..theta_{M-1} with theta_0 = 0, then centre afterwards.
    def nll(v: np.ndarray) -> float:
        return -_expanded_loglik(np.concatenate([[0.0], v]), a, b, out, ties)

    res = minimize(nll, x0[1:], method="BFGS", options={"gtol": 1e-10, "maxiter": 10_000})
    full = np.concatenate([[0.0], res.x])
    theta = full[:m]
    return np.concatenate([theta - theta.mean(), full[m:]])


@pytest.mark.parametrize("ties", ["half", "davidson", "rao-kupper"])
def test_bt_matches_independent_fit_on_expanded_rows(rng, ties):
    theta = np.array([0.8, 0.3, -0.1, -1.0])
    a, b, out = simulate_pairs(theta, 600, rng, nu=0.7)
    out = np.minimum(out, 2)
    pairs = PairCounts.from_arrays(names(4), a, b, out)
    est = fit_objective(PairwiseObjective(pairs, ties))
    ref = _independent_fit(a, b, out, 4, ties)
    np.testing.assert_allclose(est.theta, ref[:4], atol=1e-6)
    if ties != "half":
        assert est.extras["eta"] == pytest.approx(ref[4], abs=1e-6)


def test_two_model_golden_case():
    # A beat B 30 times and lost 10: theta_A - theta_B = log(30 / 10), centred: +-log(3) / 2.
    pairs = PairCounts.from_records([("A", "B", 0, 30), ("A", "B", 1, 6), ("B", "A", 0, 4)])
    est = fit_objective(PairwiseObjective(pairs))
    assert est.theta[0] - est.theta[1] == pytest.approx(math.log(3), abs=1e-10)
    assert est.theta.sum() == pytest.approx(0, abs=1e-12)


def test_ties_as_half_golden_case():
    # w = 12, l = 4, t = 8: a tie is half a win each, so theta diff = log((12 + 4) / (4 + 4)).
    pairs = PairCounts.from_records([("A", "B", 0, 12), ("A", "B", 1, 4), ("A", "B", 2, 5), ("B", "A", 3, 3)])
    est = fit_objective(PairwiseObjective(pairs))
    assert est.theta[0] - est.theta[1] == pytest.approx(math.log(2), abs=1e-10)
    no_both_bad = fit_objective(PairwiseObjective(pairs, both_bad_as_tie=False))  # t = 5
    assert no_both_bad.theta[0] - no_both_bad.theta[1] == pytest.approx(math.log(14.5 / 6.5), abs=1e-10)
    decisive = fit_objective(PairwiseObjective(pairs, exclude_ties=True))
    assert decisive.theta[0] - decisive.theta[1] == pytest.approx(math.log(3), abs=1e-10)


def test_davidson_two_model_closed_form():
    # Two models: MLE of Davidson matches the empirical outcome shares exactly.
    pairs = PairCounts.from_records([("A", "B", 0, 50), ("A", "B", 1, 20), ("A", "B", 2, 30)])
    est = fit_objective(PairwiseObjective(pairs, "davidson"))
    d, nu = est.theta[0] - est.theta[1], math.exp(est.extras["eta"])
    den = math.exp(d / 2) + math.exp(-d / 2) + nu
    assert [math.exp(d / 2) / den, math.exp(-d / 2) / den, nu / den] == pytest.approx([0.5, 0.2, 0.3], abs=1e-9)


def test_bt_recovers_planted_strengths():
    rng = np.random.default_rng(7)
    theta = rng.normal(0, 1, 10)
    theta -= theta.mean()
    a, b, out = simulate_pairs(theta, 40_000, rng)
    est = fit_objective(PairwiseObjective(PairCounts.from_arrays(names(10), a, b, out)))
    assert (np.abs(est.theta - theta) < 4 * _se(est)).all()
    assert np.abs(est.theta - theta).max() < 0.1


def test_davidson_recovers_planted_strengths_and_tie_parameter():
    rng = np.random.default_rng(8)
    theta = rng.normal(0, 1, 8)
    theta -= theta.mean()
    a, b, out = simulate_pairs(theta, 40_000, rng, nu=0.8)
    pairs = PairCounts.from_arrays(names(8), a, b, out)
    est = fit_objective(PairwiseObjective(pairs, "davidson"))
    assert (np.abs(est.theta - theta) < 4 * _se(est)).all()
    assert math.exp(est.extras["eta"]) == pytest.approx(0.8, rel=0.05)
    # Ties as 1/2 estimate a different, compressed scale on the same data.
    half = fit_objective(PairwiseObjective(pairs, "half"))
    slope = float(np.polyfit(theta, half.theta, 1)[0])
    assert 0.6 < slope < 0.95


def test_rao_kupper_recovers_planted_strengths():
    rng = np.random.default_rng(9)
    theta = np.array([1.0, 0.4, 0.0, -0.5, -0.9])
    eta = 0.4
    m, n = theta.size, 30_000
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    d = theta[a] - theta[b]
    p_a, p_b = 1 / (1 + np.exp(-(d - eta))), 1 / (1 + np.exp(-(-d - eta)))
    u = rng.random(n)
    out = np.where(u < p_a, 0, np.where(u < p_a + p_b, 1, 2))
    est = fit_objective(PairwiseObjective(PairCounts.from_arrays(names(m), a, b, out), "rao-kupper"))
    se = np.sqrt(np.diag(sandwich_covariance(est)))
    assert (np.abs(est.theta - (theta - theta.mean())) < 4 * se[:m]).all()
    assert abs(est.extras["eta"] - eta) < 4 * se[-1]


def test_undefeated_model_has_no_mle_but_l2_fixes_it():
    pairs = PairCounts.from_records([("A", "B", 0, 5), ("B", "C", 0, 3), ("C", "B", 0, 2), ("A", "C", 0, 1)])
    with pytest.raises(ConvergenceError, match="'A'"):
        fit_objective(PairwiseObjective(pairs))
    est = fit_objective(PairwiseObjective(pairs), l2=0.1)
    assert np.isfinite(est.theta).all() and est.theta[0] == est.theta.max()


def test_disconnected_components_are_centred_separately():
    pairs = PairCounts.from_records([("A", "B", 0, 3), ("B", "A", 0, 1), ("C", "D", 0, 1), ("D", "C", 0, 4)])
    est = fit_objective(PairwiseObjective(pairs))
    assert list(est.components) == [0, 0, 1, 1]
    assert est.theta[:2].sum() == pytest.approx(0, abs=1e-12)
    assert est.theta[2:].sum() == pytest.approx(0, abs=1e-12)
    assert est.theta[0] - est.theta[1] == pytest.approx(math.log(3), abs=1e-10)


def test_davidson_without_ties_is_rejected():
    pairs = PairCounts.from_records([("A", "B", 0, 3), ("B", "A", 0, 1)])
    with pytest.raises(ValueError, match="needs ties"):
        PairwiseObjective(pairs, "davidson")
