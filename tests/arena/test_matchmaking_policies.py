"""Matchmaking policies on plain arrays: seeded simulations against the distributions they promise.

Every statistical check uses a fixed seed (so it is reproducible) and a threshold a wrong policy
would fail: a biased sampler is shown to fail the same check.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from itertools import combinations, permutations
from math import prod
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from arena.matchmaking import (
    POLICIES,
    ContenderStats,
    NotEnoughContenders,
    RandomPolicy,
    WeightedPolicy,
    policy_from_name,
)

P_MIN = 1e-3  # the goodness-of-fit p-value below which a check fails
N_DRAWS = 6_000


def make_stats(m: int, *, votes=None, weight=None, available=None) -> ContenderStats:
    return ContenderStats(
        votes=np.full(m, 1000) if votes is None else votes,
        weight=np.ones(m) if weight is None else weight,
        available=np.ones(m, dtype=bool) if available is None else available,
    )


def draws(policy, stats: ContenderStats, k: int, n: int = N_DRAWS, seed: int = 12345) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([policy.choose(stats, k, rng) for _ in range(n)])


def subset_counts(chosen: np.ndarray, subsets: list[tuple[int, ...]]) -> np.ndarray:
    tally = Counter(tuple(sorted(row)) for row in chosen.tolist())
    assert set(tally) <= set(subsets)
    return np.array([tally[s] for s in subsets])


def successive_sampling_probability(weights: np.ndarray, subset: tuple[int, ...]) -> float:
    """Exact chance that draws without replacement, each proportional to weight, give ``subset``."""
    total = weights.sum()
    chance = 0.0
    for order in permutations(subset):
        taken = np.cumsum([0.0, *weights[list(order)]])[:-1]
        chance += prod(weights[i] / (total - t) for i, t in zip(order, taken, strict=True))
    return chance


def fits(observed: np.ndarray, expected_p: np.ndarray) -> float:
    return scipy_stats.chisquare(observed, observed.sum() * expected_p / expected_p.sum()).pvalue


# --- the stats container ----------------------------------------------------------------------------

def test_stats_fill_unknown_ratings_with_nan_and_freeze_copies():
    votes = np.array([1, 2, 3])
    stats = make_stats(3, votes=votes)
    assert np.isnan(stats.rating).all() and np.isnan(stats.ci_low).all() and np.isnan(stats.ci_high).all()
    assert stats.size == 3 and stats.available.dtype == bool
    votes[0] = 99  # the caller's array stays the caller's
    assert stats.votes[0] == 1
    with pytest.raises(ValueError):
        stats.votes[0] = 5


@pytest.mark.parametrize("bad", [
    {"weight": np.ones(4)},
    {"available": np.ones(2, dtype=bool)},
    {"weight": np.array([1.0, -1.0, 1.0])},
    {"weight": np.array([1.0, np.inf, 1.0])},
    {"votes": np.array([1, -1, 0])},
    {"votes": np.ones((3, 1), dtype=int)},
])
def test_stats_refuse_mismatched_or_negative_arrays(bad):
    with pytest.raises(ValueError):
        make_stats(3, **bad)


def test_stats_refuse_a_rating_array_of_another_length():
    with pytest.raises(ValueError, match="one length"):
        ContenderStats(votes=[0, 0], weight=[1, 1], available=[True, True], rating=[1500.0])


# --- the random policy --------------------------------------------------------------------------------

def test_random_policy_is_uniform_over_available_subsets():
    available = np.array([True, True, False, True, True, True])  # index 2 may never appear
    chosen = draws(RandomPolicy(), make_stats(6, available=available, weight=[5, 1, 1, 1, 1, 0.1]), k=2)
    subsets = list(combinations(np.flatnonzero(available).tolist(), 2))
    observed = subset_counts(chosen, subsets)
    assert fits(observed, np.ones(len(subsets))) > P_MIN


def test_the_uniformity_check_can_fail():
    """A sampler with a mild bias (one contender 30% heavier) fails the check that RandomPolicy passes."""
    chosen = draws(WeightedPolicy(new_boost=1.0), make_stats(5, weight=[1.3, 1, 1, 1, 1]), k=2)
    subsets = list(combinations(range(5), 2))
    assert fits(subset_counts(chosen, subsets), np.ones(len(subsets))) < P_MIN


@pytest.mark.parametrize("policy", [RandomPolicy(), WeightedPolicy()], ids=["random", "weighted"])
def test_every_slot_is_equally_likely_for_every_contender(policy):
    # Very unequal weights: successive draws pick the heavy one first, the shuffle must hide it.
    stats = make_stats(4, weight=[20.0, 1.0, 1.0, 1.0], votes=[0, 1000, 1000, 0])
    k = 3
    chosen = draws(policy, stats, k=k)
    table = np.zeros((4, k), dtype=int)
    for position in range(k):
        table[:, position] = np.bincount(chosen[:, position], minlength=4)
    # Independence of contender and position (each contender's row has the same shape as the total).
    assert scipy_stats.chi2_contingency(table).pvalue > P_MIN
    # And plainly: the heavy contender is in slot A a third of the times it appears, not more.
    share_a = table[0, 0] / table[0].sum()
    assert share_a == pytest.approx(1 / k, abs=0.02)


def test_the_slot_check_can_fail():
    """Without the shuffle (successive-draw order), the heavy contender sits in slot A far too often."""
    stats = make_stats(4, weight=[20.0, 1.0, 1.0, 1.0])
    rng = np.random.default_rng(12345)
    weights = WeightedPolicy(new_boost=1.0).effective_weights(stats)
    table = np.zeros((4, 3), dtype=int)
    for _ in range(2000):
        w = weights.copy()
        for position in range(3):
            pick = rng.choice(4, p=w / w.sum())
            table[pick, position] += 1
            w[pick] = 0
    assert scipy_stats.chi2_contingency(table).pvalue < P_MIN


# --- the weighted policy ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("votes", "boost", "until"),
    [
        ([1000, 1000, 1000, 1000, 1000], 3.0, 300),  # nobody new: the weights alone
        ([0, 500, 10, 300, 299], 3.0, 300),  # 0, 10 and 299 votes are new; 300 is not
    ],
    ids=["no-boost", "boost"],
)
def test_weighted_policy_follows_the_boosted_weights(votes, boost, until):
    weight = np.array([1.0, 1.0, 2.0, 1.0, 0.5])
    votes_a = np.array(votes)
    effective = weight * np.where(votes_a < until, boost, 1.0)
    policy = WeightedPolicy(new_boost=boost, new_until_votes=until)
    stats = make_stats(5, votes=votes_a, weight=weight)
    np.testing.assert_allclose(policy.effective_weights(stats), effective)

    # k = 1: frequencies proportional to the effective weights.
    single = draws(policy, stats, k=1)[:, 0]
    share = np.bincount(single, minlength=5) / len(single)
    np.testing.assert_allclose(share, effective / effective.sum(), atol=0.015)
    assert fits(np.bincount(single, minlength=5), effective) > P_MIN

    # k = 2: the exact chances of successive draws without replacement.
    subsets = list(combinations(range(5), 2))
    expected = np.array([successive_sampling_probability(effective, s) for s in subsets])
    assert expected.sum() == pytest.approx(1.0)
    observed = subset_counts(draws(policy, stats, k=2), subsets)
    assert fits(observed, expected) > P_MIN


def test_the_boost_makes_a_new_contender_appear_more_often():
    stats = make_stats(4, votes=[0, 1000, 1000, 1000])
    boosted = draws(WeightedPolicy(new_boost=3.0, new_until_votes=300), stats, k=2, n=3000)
    plain = draws(WeightedPolicy(new_boost=3.0, new_until_votes=0), stats, k=2, n=3000)
    in_boosted = (boosted == 0).any(axis=1).mean()
    in_plain = (plain == 0).any(axis=1).mean()
    assert in_plain == pytest.approx(0.5, abs=0.03)
    assert in_boosted == pytest.approx(successive_sampling_probability_any(np.array([3.0, 1, 1, 1]), 0, 2), abs=0.03)
    assert in_boosted > in_plain + 0.2


def successive_sampling_probability_any(weights: np.ndarray, item: int, k: int) -> float:
    return sum(successive_sampling_probability(weights, s) for s in combinations(range(len(weights)), k)
               if item in s)


@pytest.mark.parametrize("policy", [RandomPolicy(), WeightedPolicy()], ids=["random", "weighted"])
def test_unavailable_contenders_are_never_chosen(policy):
    available = np.array([True, False, True, False, True, True])
    chosen = draws(policy, make_stats(6, available=available, weight=[1, 100, 1, 100, 1, 1]), k=3, n=2000)
    assert set(np.unique(chosen)) == {0, 2, 4, 5}


def test_zero_weight_contenders_are_never_chosen_even_when_new():
    stats = make_stats(5, weight=[0.0, 1.0, 0.0, 1.0, 1.0], votes=[0, 1000, 0, 1000, 1000])
    chosen = draws(WeightedPolicy(new_boost=100.0), stats, k=3, n=2000)
    assert set(np.unique(chosen)) == {1, 3, 4}


@pytest.mark.parametrize("policy", [RandomPolicy(), WeightedPolicy()], ids=["random", "weighted"])
@pytest.mark.parametrize("k", [1, 2, 4, 6])
def test_choices_are_k_distinct_indices(policy, k):
    chosen = draws(policy, make_stats(6, weight=[1, 2, 3, 4, 5, 6]), k=k, n=300)
    assert chosen.shape == (300, k) and chosen.dtype == np.int64
    assert all(len(set(row)) == k for row in chosen.tolist())


@pytest.mark.parametrize("policy", [RandomPolicy(), WeightedPolicy()], ids=["random", "weighted"])
def test_the_same_seed_gives_the_same_choice(policy):
    stats = make_stats(6, weight=[1, 2, 3, 4, 5, 6], votes=[0, 0, 400, 400, 0, 400])
    first = [policy.choose(stats, 3, np.random.default_rng(seed)).tolist() for seed in range(20)]
    second = [policy.choose(stats, 3, np.random.default_rng(seed)).tolist() for seed in range(20)]
    assert first == second
    assert len({tuple(c) for c in first}) > 1  # and the seed matters


def test_not_enough_contenders_names_the_counts():
    stats = make_stats(4, available=[True, False, True, True], weight=[1.0, 1.0, 0.0, 1.0])
    with pytest.raises(NotEnoughContenders) as random_error:
        RandomPolicy().choose(stats, 4, np.random.default_rng(0))
    assert (random_error.value.available, random_error.value.k) == (3, 4)
    # The weighted policy cannot use the zero-weight one either.
    with pytest.raises(NotEnoughContenders) as weighted_error:
        WeightedPolicy().choose(stats, 3, np.random.default_rng(0))
    assert (weighted_error.value.available, weighted_error.value.k) == (2, 3)
    assert RandomPolicy().choose(stats, 3, np.random.default_rng(0)).size == 3


@pytest.mark.parametrize("k", [0, -1, 2.0, True])
def test_k_must_be_a_positive_integer(k):
    with pytest.raises(ValueError):
        RandomPolicy().choose(make_stats(3), k, np.random.default_rng(0))


def test_policies_never_touch_the_global_rng():
    np.random.seed(7)
    before = np.random.get_state()[1].copy()
    for policy in (RandomPolicy(), WeightedPolicy()):
        policy.choose(make_stats(5), 2, np.random.default_rng(0))
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_stats_can_be_updated_with_replace_for_a_simulation():
    stats = make_stats(3, votes=[0, 0, 0])
    later = replace(stats, votes=stats.votes + 1)
    assert later.votes.tolist() == [1, 1, 1] and stats.votes.tolist() == [0, 0, 0]


# --- the registry -------------------------------------------------------------------------------------

def test_policies_are_built_by_name():
    assert set(POLICIES) == {"random", "weighted", "active"}
    assert policy_from_name("random") == RandomPolicy()
    weighted = policy_from_name("weighted", new_boost=2.0, new_until_votes=50)
    assert weighted == WeightedPolicy(new_boost=2.0, new_until_votes=50)
    assert (weighted.name, RandomPolicy().name) == ("weighted", "random")
    assert not weighted.uses_ratings


@pytest.mark.parametrize(("name", "params"), [
    ("active-learning", {}), ("", {}), ("random", {"new_boost": 2.0}), ("weighted", {"new_boost": 0.0}),
    ("weighted", {"new_until_votes": -1}),
])
def test_an_unknown_policy_or_bad_parameter_is_a_value_error(name, params):
    with pytest.raises(ValueError):
        policy_from_name(name, **params)


def test_the_policies_import_without_django():
    """The vote-budget simulator runs these policies with no settings and no database."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = ("import sys, arena.matchmaking as m; m.WeightedPolicy(); "
            "assert not any(n.split('.')[0] == 'django' for n in sys.modules), 'django was imported'")
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], env=env, check=True)
