"""Analytic gradients and Hessians against finite differences (scipy.optimize.check_grad)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import approx_fprime, check_grad

from leaderboard.ratings import (
    MixedObjective,
    PairCounts,
    PairwiseObjective,
    RankingCounts,
    RankingObjective,
    pair_probabilities,
)


def _check(objective, x: np.ndarray) -> None:
    weights = objective.base_weights()

    def value(v: np.ndarray) -> float:
        return float(objective.derivatives(v[None], weights)[0][0])

    def grad(v: np.ndarray) -> np.ndarray:
        return objective.derivatives(v[None], weights)[1][0]

    scale = max(1.0, float(np.abs(grad(x)).max()))
    assert check_grad(value, grad, x, epsilon=1e-6) / scale < 1e-5
    hess = objective.derivatives(x[None], weights)[2][0]
    fd = np.array([approx_fprime(x, lambda v, i=i: grad(v)[i], 1e-6) for i in range(x.size)])
    np.testing.assert_allclose(hess, fd, atol=1e-4 * max(1.0, np.abs(hess).max()))
    np.testing.assert_allclose(hess, hess.T, atol=1e-12)


def _point(objective, rng: np.random.Generator) -> np.ndarray:
    x = rng.normal(0, 0.7, objective.n_params)
    if "eta" in objective.extra_names:
        x[-1] = 0.4  # inside Rao-Kupper's domain eta > 0, a valid Davidson log(nu) too
    return x


@pytest.mark.parametrize("ties", ["half", "davidson", "rao-kupper"])
def test_bt_gradient_and_hessian(small_pairs, rng, ties):
    pairs, _ = small_pairs
    objective = PairwiseObjective(pairs, ties)
    _check(objective, _point(objective, rng))


@pytest.mark.parametrize("ties", ["half", "davidson", "rao-kupper"])
def test_style_gradient_and_hessian(rng, ties):
    n = 400
    a = rng.integers(0, 5, n)
    b = (a + rng.integers(1, 5, n)) % 5
    out = rng.integers(0, 4, n)
    x = rng.normal(size=(n, 2))
    pairs = PairCounts.from_arrays([f"m{i}" for i in range(5)], a, b, out, features=x,
                                   feature_names=("length", "bold"))
    objective = PairwiseObjective(pairs, ties, style=True)
    assert objective.extra_names[:2] == ("beta[length]", "beta[bold]")
    _check(objective, _point(objective, rng))


def _rankings(rng: np.random.Generator, m: int = 6, n: int = 60) -> RankingCounts:
    rows = []
    for _ in range(n):
        k = int(rng.integers(2, 5))
        items = rng.choice(m, size=k, replace=False).tolist()
        kind = rng.integers(0, 3)
        if kind == 0:  # full ranking
            rows.append(items)
        elif kind == 1:  # best-of-K
            rows.append([items[0], items[1:]])
        else:  # a tie among the top two, then the rest
            rows.append([items[:2], *items[2:]] if k > 2 else [items[0], items[1]])
    return RankingCounts.from_rankings([f"m{i:02d}" for i in range(m)], rows)


def test_pl_gradient_and_hessian(rng):
    objective = RankingObjective(_rankings(rng))
    _check(objective, _point(objective, rng))


def test_mixed_gradient_and_hessian(small_pairs, rng):
    pairs, _ = small_pairs
    objective = MixedObjective(PairwiseObjective(pairs), RankingObjective(_rankings(rng)))
    _check(objective, _point(objective, rng))


@pytest.mark.parametrize("ties", ["half", "davidson", "rao-kupper"])
def test_information_is_sum_of_per_battle_score_outer_products(rng, ties):
    # Independent brute force: each battle's log-likelihood written from pair_probabilities,
    # differentiated numerically, outer products summed with the battle counts.
    a = np.array([0, 1, 2, 0, 2, 1])
    b = np.array([1, 2, 0, 2, 1, 0])
    out = np.array([0, 1, 2, 0, 2, 1])
    weight = np.array([3.0, 2.0, 1.0, 4.0, 2.0, 1.0])
    pairs = PairCounts.from_arrays(["x", "y", "z"], a, b, out, weight)
    objective = PairwiseObjective(pairs, ties)
    x = _point(objective, rng)

    def loglik(v: np.ndarray, i: int) -> float:
        eta = v[-1] if ties != "half" else None
        p = pair_probabilities(np.array(v[a[i]] - v[b[i]]), ties, eta)
        if ties == "half" and out[i] == 2:
            return 0.5 * float(np.log(p[0]) + np.log(p[1]))
        return float(np.log(p[out[i]]))

    expected = np.zeros((x.size, x.size))
    for i in range(a.size):
        score = approx_fprime(x, lambda v, i=i: loglik(v, i), 1e-7)
        expected += weight[i] * np.outer(score, score)
    np.testing.assert_allclose(objective.information(x), expected, rtol=1e-5, atol=1e-7)


def test_pl_information_matches_brute_force(rng):
    rankings = _rankings(rng, m=4, n=12)
    objective = RankingObjective(rankings)
    x = _point(objective, rng)
    expected = np.zeros((4, 4))
    for row in range(rankings.items.shape[0]):
        one = RankingCounts(rankings.models, rankings.items[row:row + 1], rankings.group[row:row + 1], [1.0])
        single = RankingObjective(one)
        score = single.derivatives(x[None], single.base_weights())[1][0]
        expected += rankings.weight[row] * np.outer(score, score)
    np.testing.assert_allclose(objective.information(x), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("style", [False, True])
def test_rao_kupper_fast_path_equals_the_unit_derivatives(rng, style):
    """The bootstrap's fused Rao-Kupper derivatives give what the per-outcome units give, for a batch of rounds."""
    n, m = 300, 6
    a = rng.integers(0, m, n)
    b = (a + rng.integers(1, m, n)) % m
    features = rng.normal(size=(n, 2)) if style else None
    pairs = PairCounts.from_arrays([f"m{i}" for i in range(m)], a, b, rng.integers(0, 4, n), features=features,
                                   feature_names=("length", "bold") if style else ())
    objective = PairwiseObjective(pairs, "rao-kupper", style=style)
    rounds = 4
    x = np.stack([_point(objective, rng) for _ in range(rounds)])
    x[:, -1] = rng.uniform(0.05, 1.5, rounds)  # eta across its domain
    weights = tuple(rng.poisson(w, size=(rounds, w.shape[1])).astype(float) for w in objective.base_weights())
    fast = objective.derivatives(x, weights)
    reference = objective._derivatives_from_units(x, weights)
    for got, want in zip(fast, reference, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-10)
