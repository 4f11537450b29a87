"""The ``active`` matchmaking policy (arena.matchmaking.policies.ActivePolicy): pure, seeded, small sizes.

The 50-model vote budgets are benchmarks (``python -m benchmarks.vote_budget --active``), not tests.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from arena.matchmaking.policies import (
    POLICIES,
    ActivePolicy,
    ContenderStats,
    NotEnoughContenders,
    policy_from_name,
)
from leaderboard.simulate import SimConfig, simulate


def rated_stats(m: int, rng: np.random.Generator, *, available=None, nan_share: float = 0.0) -> ContenderStats:
    """Stats with ratings around 1000 and 95 % intervals, some NaN (unrated) when ``nan_share`` > 0."""
    rating = 1000 + 150 * rng.standard_normal(m)
    half = rng.uniform(10, 120, m)
    unrated = rng.random(m) < nan_share
    rating[unrated] = np.nan
    return ContenderStats(votes=rng.integers(0, 50, m), weight=np.ones(m),
                          available=np.ones(m, dtype=bool) if available is None else available,
                          rating=rating, ci_low=rating - half, ci_high=rating + half)


# ------------------------------------------------------------------------------------------ contract
def test_registered_as_active_and_built_by_name():
    assert POLICIES["active"] is ActivePolicy
    policy = policy_from_name("active", min_share=0.3, default_sd=200.0, draw_scale=0.0)
    assert policy == ActivePolicy(min_share=0.3, default_sd=200.0, draw_scale=0.0)
    assert policy.name == "active" and policy.uses_ratings


@pytest.mark.parametrize("params", [{"min_share": -0.1}, {"min_share": 1.5}, {"default_sd": 0.0},
                                   {"default_sd": float("inf")}, {"draw_scale": -1.0}])
def test_bad_parameters_are_refused(params):
    with pytest.raises(ValueError):
        ActivePolicy(**params)


@pytest.mark.parametrize("nan_share", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 6])
def test_chooses_k_distinct_available_contenders(k, nan_share):
    rng = np.random.default_rng([k, int(10 * nan_share)])
    policy = ActivePolicy()
    for _ in range(200):
        m = int(rng.integers(k, 30))
        available = rng.random(m) < 0.7
        available[rng.choice(m, k, replace=False)] = True  # at least k
        stats = rated_stats(m, rng, available=available, nan_share=nan_share)
        chosen = policy.choose(stats, k, rng)
        assert chosen.dtype == np.int64 and chosen.shape == (k,)
        assert len(set(chosen.tolist())) == k
        assert stats.available[chosen].all()


def test_never_chooses_an_unavailable_contender_even_the_most_ambiguous():
    rng = np.random.default_rng(3)
    rating = np.r_[1000.0, 1000.0, 1000.0, np.linspace(1200, 3000, 9)]  # 0-2 tied: the best window
    stats = ContenderStats(votes=np.zeros(12), weight=np.ones(12), available=np.r_[False, False, np.ones(10, bool)],
                           rating=rating, ci_low=rating - 300, ci_high=rating + 300)
    seen = np.zeros(12, dtype=np.int64)
    for _ in range(2000):
        seen[ActivePolicy(min_share=0.5).choose(stats, 3, rng)] += 1
    assert seen[:2].sum() == 0 and seen[2] > 0


def test_too_few_available_contenders_raise():
    rng = np.random.default_rng(0)
    stats = rated_stats(5, rng, available=np.array([True, True, False, False, False]))
    with pytest.raises(NotEnoughContenders):
        ActivePolicy().choose(stats, 3, rng)
    with pytest.raises(ValueError):
        ActivePolicy().choose(stats, 0, rng)


# ------------------------------------------------------------------------------------------ behaviour
def test_picks_the_most_ambiguous_window():
    # Ratings far apart except 7 and 3 (identical, wide intervals): with no exploration and no draw, K = 2
    # must show exactly that pair.
    rating = np.arange(10) * 1000.0
    rating[3] = rating[7] = 20_000.0
    stats = ContenderStats(votes=np.full(10, 5), weight=np.ones(10), available=np.ones(10, bool),
                           rating=rating, ci_low=rating - 50, ci_high=rating + 50)
    rng = np.random.default_rng(0)
    policy = ActivePolicy(min_share=0.0, draw_scale=0.0)
    assert all(sorted(policy.choose(stats, 2, rng).tolist()) == [3, 7] for _ in range(50))


def test_minimum_share_holds_for_a_contender_the_ratings_never_want():
    # Contender 0 is separated from everyone by 2000 points with tight intervals: no window with it is ever
    # ambiguous. Its chance per battle must still be >= min_share / M; without the floor it starves.
    m, k, draws, min_share = 20, 2, 20_000, 0.2
    rating = np.r_[3000.0, np.full(m - 1, 1000.0) + np.linspace(0, 40, m - 1)]
    half = np.r_[5.0, np.full(m - 1, 80.0)]
    stats = ContenderStats(votes=np.full(m, 100), weight=np.ones(m), available=np.ones(m, bool),
                           rating=rating, ci_low=rating - half, ci_high=rating + half)
    rng = np.random.default_rng(42)
    floor = draws * min_share / m   # 200 expected at least; binomial sd ~ 14
    shown = np.zeros(m, dtype=np.int64)
    for _ in range(draws):
        shown[ActivePolicy(min_share=min_share).choose(stats, k, rng)] += 1
    assert shown.min() >= 0.85 * floor, shown
    starved = sum(0 in ActivePolicy(min_share=0.0).choose(stats, k, rng).tolist() for _ in range(2000))
    assert starved == 0


def test_all_unrated_is_fewest_votes_first():
    votes = np.array([5, 0, 3, 0, 7, 1, 9, 0])
    stats = ContenderStats(votes=votes, weight=np.ones(8), available=np.ones(8, bool))  # ratings all NaN
    rng = np.random.default_rng(1)
    policy = ActivePolicy(min_share=0.0)
    for _ in range(100):
        assert sorted(policy.choose(stats, 3, rng).tolist()) == [1, 3, 7]
    assert sorted(policy.choose(stats, 4, rng).tolist()) == [1, 3, 5, 7]


def test_an_unrated_newcomer_is_shown_first():
    rng = np.random.default_rng(2)
    stats = rated_stats(15, rng)
    rating = stats.rating.copy()
    rating[9] = np.nan
    stats = ContenderStats(votes=stats.votes, weight=stats.weight, available=stats.available, rating=rating,
                           ci_low=stats.ci_low, ci_high=stats.ci_high)
    policy = ActivePolicy(min_share=0.0)
    assert all(9 in policy.choose(stats, 4, rng).tolist() for _ in range(200))


def test_missing_intervals_fall_back_to_vote_counts():
    rating = np.array([1000.0, 1010.0, 1500.0, np.nan])
    stats = ContenderStats(votes=np.array([0, 8, 3, 0]), weight=np.ones(4), available=np.ones(4, bool), rating=rating)
    mean, sd = ActivePolicy(default_sd=300.0).posterior(stats)
    assert np.allclose(sd, [300.0, 100.0, 150.0, 300.0])
    assert mean[3] == pytest.approx(np.mean(rating[:3])) and np.isfinite(mean).all()


def test_slot_order_is_uniform():
    rng = np.random.default_rng(5)
    stats = rated_stats(30, rng)
    first = np.zeros(4)
    for _ in range(4000):
        chosen = ActivePolicy().choose(stats, 4, rng)
        first[np.argmax(stats.rating[chosen])] += 1  # the slot of the best-rated chosen one
    assert np.all(np.abs(first / 4000 - 0.25) < 0.04), first


# ------------------------------------------------------------------------------------------ cost
def test_choice_takes_well_under_20_ms_for_200_contenders():
    rng = np.random.default_rng(7)
    stats = rated_stats(200, rng, nan_share=0.02)
    policy = ActivePolicy()
    policy.choose(stats, 4, rng)  # warm-up
    calls = 300
    start = time.perf_counter()
    for _ in range(calls):
        policy.choose(stats, 4, rng)
    mean_ms = (time.perf_counter() - start) / calls * 1000
    print(f"ActivePolicy.choose, 200 contenders, K = 4: {mean_ms:.3f} ms per call (mean of {calls})")
    assert mean_ms < 20.0


# ------------------------------------------------------------------------------------------ in the simulator
def test_active_needs_clearly_fewer_votes_than_random_with_the_same_fit():
    common = dict(models=12, k=4, method="pl", noise=0.0, seed=11, max_votes=150, repeats=4, checkpoint_every=5)
    active, _ = simulate(SimConfig(policy="active", **common))
    uniform, _ = simulate(SimConfig(policy="random", **common))
    assert active["converged_fraction"] == 1.0
    assert uniform["converged_fraction"] == 1.0
    a, r = active["votes_to_converge"]["median"], uniform["votes_to_converge"]["median"]
    print(f"12 models, K = 4, PL: active {a} votes, random {r} votes (median of 4)")
    assert a <= 0.7 * r


def test_active_places_a_new_model_quickly_in_the_simulator():
    summary, _ = simulate(SimConfig(models=12, k=4, policy="active", method="pl", seed=3, max_votes=120,
                                    repeats=3, checkpoint_every=2, new_model=True))
    assert summary["converged_fraction"] == 1.0
    assert summary["votes_to_converge"]["median"] <= 20


def test_cli_runs_the_active_policy(capsys):
    from leaderboard.simulate.__main__ import main

    assert main(["--models", "6", "--k", "3", "--policy", "active", "--max-votes", "30", "--repeats", "2",
                 "--policy-refit-every", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["policy"] == "active" and out["config"]["policy_refit_every"] == 3
    assert 0.0 <= out["converged_fraction"] <= 1.0


def test_the_policy_is_fed_posterior_ratings_nan_for_unvoted_models():
    from leaderboard.simulate.core import _Arena

    config = SimConfig(models=8, k=2, policy="active", max_votes=10)
    rng = np.random.default_rng(0)
    arena = _Arena(config, np.linspace(1, -1, 8), rng, capacity=10)
    assert np.isnan(arena.rating).all()
    shown = arena.vote()
    voted = np.zeros(8, dtype=bool)
    voted[shown] = True
    assert np.isfinite(arena.rating[voted]).all() and np.isnan(arena.rating[~voted]).all()
    assert (arena.ci_low[voted] < arena.rating[voted]).all() and (arena.rating[voted] < arena.ci_high[voted]).all()


def test_a_zero_weight_contender_is_never_drawn_by_the_active_policy():
    from arena.matchmaking.policies import ActivePolicy, ContenderStats

    stats = ContenderStats(votes=np.zeros(6, dtype=int), weight=np.array([1, 1, 0, 1, 1, 1.0]),
                           available=np.ones(6, dtype=bool))
    rng = np.random.default_rng(3)
    chosen = {int(i) for _ in range(300) for i in ActivePolicy(min_share=0.5).choose(stats, 4, rng)}
    assert 2 not in chosen and chosen == {0, 1, 3, 4, 5}
