"""Validation and aggregation of the boundary containers; matrices."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from leaderboard.ratings import (
    EloBattles,
    PairCounts,
    RankingCounts,
    align_models,
    battle_count_matrix,
    leaderboard_fit,
    predicted_win_matrix,
    win_rate_matrix,
)

MODELS = ("A", "B", "C")


def test_from_arrays_aggregates_like_a_group_by(rng):
    a = rng.integers(0, 3, 500)
    b = (a + rng.integers(1, 3, 500)) % 3
    out = rng.integers(0, 4, 500)
    pairs = PairCounts.from_arrays(MODELS, a, b, out)
    expected = Counter(zip(a.tolist(), b.tolist(), out.tolist(), strict=True))
    got = {(int(x), int(y), int(o)): w for x, y, o, w in zip(pairs.a, pairs.b, pairs.outcome, pairs.weight,
                                                             strict=True)}
    assert got == expected
    assert pairs.total == 500
    np.testing.assert_array_equal(pairs.model_votes(), np.bincount(a, minlength=3) + np.bincount(b, minlength=3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"a": [0, 1], "b": [1]}, "b has length 1, expected 2"),
        ({"a": [0, 3], "b": [1, 0]}, r"a\[1\] = 3 is not a model index"),
        ({"a": [0, 1], "b": [1, 1]}, "row 1: model 'B' cannot battle itself"),
        ({"a": [0, 1], "b": [1, 0], "outcome": [0, 5]}, r"outcome\[1\] = 5"),
        ({"a": [0, 1], "b": [1, 0], "weight": [1.0, -2.0]}, r"weight\[1\] = -2.0"),
        ({"a": [0.0, 1.0], "b": [1, 0]}, "a must hold integers"),
    ],
)
def test_pair_counts_validation_names_the_problem(kwargs, message):
    args = {"a": [0, 1], "b": [1, 0], "outcome": [0, 1], "weight": None} | kwargs
    with pytest.raises(ValueError, match=message):
        PairCounts.from_arrays(MODELS, args["a"], args["b"], args["outcome"], args["weight"])


def test_direct_construction_is_validated_and_frozen():
    with pytest.raises(ValueError, match="duplicate model name 'A'"):
        PairCounts(("A", "A"), [0], [1], [0], [1.0])
    pairs = PairCounts(MODELS, [0], [1], [0], [2.0])
    with pytest.raises(ValueError):
        pairs.weight[0] = 5.0  # read-only arrays


def test_from_records_and_select_outcomes():
    pairs = PairCounts.from_records([("A", "B", "model_a", 3), ("B", "A", 2, 2), ("A", "B", "tie (bothbad)", 1)])
    assert pairs.models == ("A", "B") and pairs.total == 6
    assert pairs.select_outcomes().total == 6
    assert pairs.select_outcomes(both_bad_as_tie=False).total == 5
    assert pairs.select_outcomes(exclude_ties=True).total == 3
    assert set(pairs.select_outcomes().outcome.tolist()) <= {0, 1, 2}
    with pytest.raises(ValueError, match="unknown outcome 'draw'"):
        PairCounts.from_records([("A", "B", "draw", 1)])


@pytest.mark.parametrize(
    ("items", "group", "message"),
    [
        ([[0, -1, 1]], [[0, -1, 1]], "padding"),
        ([[0, 1]], [[0, 0]], "single tie group"),
        ([[0, 0]], [[0, 1]], "listed twice"),
        ([[0, 1]], [[1, 2]], "first group"),
        ([[0, 1, 2]], [[0, 2, 2]], "steps of 0 or 1"),
        ([[0, 7]], [[0, 1]], "not a model index"),
        ([[0, -1]], [[0, -1]], "fewer than 2 items"),
    ],
)
def test_ranking_counts_validation(items, group, message):
    with pytest.raises(ValueError, match=message):
        RankingCounts(MODELS, np.array(items), np.array(group), np.ones(len(items)))


def test_ranking_constructors():
    r = RankingCounts.from_rankings(MODELS, [[2, [1, 0]], [2, [0, 1]], [0, 1, 2]], [1.0, 2.0, 1.0])
    assert r.items.shape == (2, 3)  # the two tied-group rankings are the same ranking
    assert sorted(r.weight.tolist()) == [1.0, 3.0]
    best = RankingCounts.from_best_of(MODELS, [1, 2], np.array([[0, 1, 2], [2, 0, -1]]))
    np.testing.assert_array_equal(best.items, [[1, 0, 2], [2, 0, -1]])
    np.testing.assert_array_equal(best.group, [[0, 1, 1], [0, 1, -1]])
    np.testing.assert_array_equal(best.model_votes(), [2, 1, 2])
    with pytest.raises(ValueError, match="exactly once"):
        RankingCounts.from_best_of(MODELS, [1], np.array([[0, 2, -1]]))


def test_align_models_reindexes_both():
    pairs = PairCounts.from_records([("B", "C", 0, 1)])
    rankings = RankingCounts.from_rankings(("A", "B"), [[0, 1]])
    p2, r2 = align_models(pairs, rankings)
    assert p2.models == r2.models == ("A", "B", "C")
    assert (p2.a[0], p2.b[0]) == (1, 2)
    np.testing.assert_array_equal(r2.items, [[0, 1]])


def test_elo_battles_sorted_by_time_and_aggregated():
    battles = EloBattles.from_arrays(MODELS, [0, 1, 2], [1, 2, 0], [0, 1, 2], tstamp=[3.0, 1.0, 2.0])
    assert battles.a.tolist() == [1, 2, 0]
    assert battles.to_pair_counts().total == 3


def test_matrices():
    pairs = PairCounts.from_records([("A", "B", 0, 3), ("B", "A", 0, 1), ("A", "B", 2, 2), ("A", "C", 1, 4),
                                     ("C", "A", 1, 1)])
    counts = battle_count_matrix(pairs)
    np.testing.assert_array_equal(counts, [[0, 6, 5], [6, 0, 0], [5, 0, 0]])
    wr = win_rate_matrix(pairs)
    assert wr[0, 1] == pytest.approx((3 + 1) / 6) and wr[1, 0] == pytest.approx((1 + 1) / 6)
    assert wr[0, 2] == pytest.approx(0.2) and wr[2, 0] == pytest.approx(0.8)
    assert np.isnan(wr[1, 2]) and np.isnan(wr[0, 0])
    assert win_rate_matrix(pairs, exclude_ties=True)[0, 1] == pytest.approx(0.75)
    fit = leaderboard_fit(pairs, ci="sandwich")
    pred = predicted_win_matrix(fit)
    np.testing.assert_allclose(pred + pred.T, 1.0)
    d = fit.theta[0] - fit.theta[1]
    assert pred[0, 1] == pytest.approx(1 / (1 + np.exp(-d)))
    dav = leaderboard_fit(pairs, ties="davidson", ci="sandwich")
    pred_d = predicted_win_matrix(dav)
    np.testing.assert_allclose(pred_d + pred_d.T, 1.0)
    assert dav.params["tie_parameter"] > 0
