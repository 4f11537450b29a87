"""Bootstrap resampling, batched refits, sandwich covariance, ranks and a small coverage check."""
from __future__ import annotations

import numpy as np
import pytest
from ratings_support import names, simulate_pairs

from leaderboard.ratings import (
    PairCounts,
    PairwiseObjective,
    bootstrap_estimate,
    fit_objective,
    leaderboard_fit,
    multinomial_reweight,
    percentile_interval,
    rank_from_ratings,
    rank_upper_bound,
    sandwich_covariance,
)


def test_multinomial_reweight_has_multinomial_moments():
    counts = np.array([50.0, 30.0, 15.0, 4.0, 1.0])
    n = counts.sum()
    draws = multinomial_reweight(counts, 20_000, np.random.default_rng(1))
    assert (draws.sum(axis=1) == n).all()
    assert (draws >= 0).all()
    p = counts / n
    np.testing.assert_allclose(draws.mean(axis=0), n * p, rtol=0.02, atol=0.05)
    np.testing.assert_allclose(draws.var(axis=0), n * p * (1 - p), rtol=0.06)
    # Multinomial cells are negatively correlated: cov = -n p_i p_j.
    cov = np.cov(draws[:, 0], draws[:, 1])[0, 1]
    assert cov == pytest.approx(-n * p[0] * p[1], rel=0.1)


def test_multinomial_reweight_threaded_is_deterministic():
    counts = np.random.default_rng(0).integers(1, 100, 5000).astype(float)
    one = multinomial_reweight(counts, 60, np.random.default_rng(5), workers=2)
    two = multinomial_reweight(counts, 60, np.random.default_rng(5), workers=2)
    np.testing.assert_array_equal(one, two)
    assert (one.sum(axis=1) == counts.sum()).all()


def test_batched_bootstrap_equals_separate_fits(small_pairs):
    pairs, _ = small_pairs
    for ties in ("half", "davidson"):
        objective = PairwiseObjective(pairs, ties)
        est = fit_objective(objective)
        boot = bootstrap_estimate(est, 5, np.random.default_rng(3))
        counts = multinomial_reweight(objective.cell_counts()[0], 5, np.random.default_rng(3))
        rows = objective._cell_rows  # the cell layout: A-win rows, B-win rows, tie rows
        for r in range(5):
            c = np.split(counts[r], np.cumsum([x.size for x in rows])[:-1])
            a = np.concatenate([objective.pa[x] for x in rows])
            b = np.concatenate([objective.pb[x] for x in rows])
            out = np.concatenate([np.full(x.size, k) for k, x in enumerate(rows)])
            single = fit_objective(PairwiseObjective(PairCounts(pairs.models, a, b, out, np.concatenate(c)), ties))
            np.testing.assert_allclose(boot.samples[r], single.x, atol=1e-8)


def test_sandwich_matches_inverse_fisher_when_model_is_right(rng):
    # Correctly specified BT, lots of data: J ~ H, so the sandwich ~ H^-1 (restricted to contrasts).
    theta = np.array([0.6, 0.1, -0.2, -0.5])
    a, b, out = simulate_pairs(theta, 50_000, rng)
    est = fit_objective(PairwiseObjective(PairCounts.from_arrays(names(4), a, b, out)))
    sandwich = np.sqrt(np.diag(sandwich_covariance(est)))
    centre = np.eye(4) - 1 / 4
    model_based = np.sqrt(np.diag(centre @ np.linalg.pinv(est.hessian - est.penalty) @ centre))
    np.testing.assert_allclose(sandwich, model_based, rtol=0.05)


def test_bootstrap_and_sandwich_intervals_agree(small_pairs):
    pairs, _ = small_pairs
    boot = leaderboard_fit(pairs, bootstrap=400, seed=1)
    sand = leaderboard_fit(pairs, ci="sandwich")
    width = {r.model: r.ci_high - r.ci_low for r in boot.rows}
    for row in sand.rows:
        assert row.ci_high - row.ci_low == pytest.approx(width[row.model], rel=0.2)
        assert row.ci_low < row.rating < row.ci_high


def test_rank_golden_case():
    ratings = np.array([1100.0, 1050.0, 1050.0, 990.0])
    assert rank_from_ratings(ratings).tolist() == [1, 2, 2, 4]


def test_rank_upper_bound_golden_case():
    # Intervals:          A [1080, 1120]  B [1040, 1090]  C [1000, 1075]  D [900, 1010]
    low = np.array([1080.0, 1040.0, 1000.0, 900.0])
    high = np.array([1120.0, 1090.0, 1075.0, 1010.0])
    # B: nobody's low exceeds 1090 -> 1. C: A's 1080 > 1075 -> 2. D: A, B > 1010 -> 3 (C's 1000 is not).
    assert rank_upper_bound(low, high).tolist() == [1, 1, 2, 3]


def test_separated_bootstrap_round_gives_unbounded_interval():
    # Z has one win in 7 battles: some resamples drop it, where Z's MLE is -inf. Those rounds must
    # not shift the other models (limit MLE without Z's battles) and Z's lower bound is unbounded.
    recs = [("X", "Y", 0, 40), ("Y", "X", 0, 30), ("X", "Z", 0, 3), ("Y", "Z", 0, 3), ("Z", "Y", 0, 1)]
    pairs = PairCounts.from_records(recs)
    fit = leaderboard_fit(pairs, bootstrap=200, seed=0)
    rows = {r.model: r for r in fit.rows}
    assert fit.params["bootstrap_divergent_rounds"] > 5
    assert rows["Z"].ci_low == -np.inf
    for model in ("X", "Y"):
        assert np.isfinite(rows[model].ci_low) and np.isfinite(rows[model].ci_high)
        assert rows[model].ci_high - rows[model].ci_low < 400


def _coverage(ci: str, reps: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    theta = np.array([0.8, 0.4, 0.0, -0.3, -0.9])
    truth = 400 / np.log(10) * (theta - theta.mean()) + 1000
    hits = []
    for _ in range(reps):
        a, b, out = simulate_pairs(theta, 1500, rng)
        fit = leaderboard_fit(PairCounts.from_arrays(names(5), a, b, out), ci=ci, bootstrap=200,
                              seed=int(rng.integers(1 << 31)))
        for row in fit.rows:
            hits.append(row.ci_low <= truth[int(row.model[1:])] <= row.ci_high)
    return float(np.mean(hits))


@pytest.mark.parametrize("ci", ["bootstrap", "sandwich"])
def test_small_coverage_simulation(ci):
    # 40 repetitions x 5 models: the nominal 95 % should land in a generous band (the full
    # simulation is benchmarks/ratings_coverage.py).
    assert 0.88 <= _coverage(ci, 40, seed=2024) <= 0.995


def test_percentile_interval_has_nominal_level_for_small_r():
    # With R = 100 replicates, the interval must hold a fresh draw from the same distribution 95 %
    # of the time on average (numpy's default quantile rule gives ~93 %).
    rng = np.random.default_rng(0)
    samples = rng.random((100, 20_000))
    fresh = rng.random(20_000)
    low, high = percentile_interval(samples, 0.95)
    assert np.mean((low <= fresh) & (fresh <= high)) == pytest.approx(0.95, abs=0.006)
    assert np.mean(high - low) == pytest.approx(0.95, abs=0.005)  # E[U_(k)] = k / (R + 1)
