"""Plackett-Luce: K = 2 equals Bradley-Terry, golden cases, tie rule, mixing, planted truth."""
from __future__ import annotations

import math

import numpy as np
import pytest
from ratings_support import names, simulate_pairs, standard_errors

from leaderboard.ratings import (
    MixedObjective,
    PairCounts,
    PairwiseObjective,
    RankingCounts,
    RankingObjective,
    fit_objective,
    leaderboard_fit,
)


def test_pl_on_pairs_equals_bradley_terry(rng):
    theta = np.array([0.9, 0.2, -0.3, -0.8, 0.0])
    a, b, out = simulate_pairs(theta, 3000, rng)
    pairs = PairCounts.from_arrays(names(5), a, b, out)
    winner, loser = np.where(out == 0, a, b), np.where(out == 0, b, a)
    rankings = RankingCounts.from_rankings(names(5), [[int(w), int(lo)] for w, lo in zip(winner, loser, strict=True)])
    bt = fit_objective(PairwiseObjective(pairs))
    pl = fit_objective(RankingObjective(rankings))
    np.testing.assert_allclose(pl.theta, bt.theta, atol=1e-8)
    # The same through the public entry point, ratings and all.
    rows_bt = {r.model: r.rating for r in leaderboard_fit(pairs, ci="sandwich").rows}
    rows_pl = {r.model: r.rating for r in leaderboard_fit(None, rankings, method="pl", ci="sandwich").rows}
    assert rows_pl == pytest.approx(rows_bt, abs=1e-6)


def test_best_of_three_golden_case():
    # Three symmetric-looking votes: A picked over {B, C} 2x, B over {A, C} 1x, C never.
    # Top-1 of K likelihood: 2 s_A + s_B - 3 log(e^A + e^B + e^C); with C never picked its
    # strength would be -inf, so add one vote where C wins against {A, B}: counts 2, 1, 1.
    rankings = RankingCounts.from_best_of(["A", "B", "C"], [0, 0, 1, 2],
                                          np.array([[0, 1, 2], [0, 1, 2], [0, 1, 2], [0, 1, 2]]))
    est = fit_objective(RankingObjective(rankings))
    # Multinomial choice among the same three: the MLE is the log of the choice shares.
    expected = np.log([2, 1, 1]) - np.log([2, 1, 1]).mean()
    np.testing.assert_allclose(est.theta, expected, atol=1e-10)


def test_tied_group_rule_by_hand():
    # Ranking (A = B) > C under the Breslow rule: each of A and B is chosen from {A, B, C}.
    rankings = RankingCounts.from_rankings(["A", "B", "C"], [[[0, 1], 2]])
    obj = RankingObjective(rankings)
    s = np.array([0.3, -0.1, 0.5])
    lse = math.log(np.exp(s).sum())
    expected = (s[0] - lse) + (s[1] - lse)
    value = obj.derivatives(s[None], obj.base_weights())[0][0]
    assert -value == pytest.approx(expected, abs=1e-12)
    # A strict ranking A > B > C is the usual PL product; the last item contributes nothing.
    strict = RankingObjective(RankingCounts.from_rankings(["A", "B", "C"], [[0, 1, 2]]))
    expected = (s[0] - lse) + (s[1] - math.log(np.exp(s[1:]).sum()))
    assert -strict.derivatives(s[None], strict.base_weights())[0][0] == pytest.approx(expected, abs=1e-12)


def test_partial_ranking_with_padding_by_hand():
    # Top-1 of 2 padded into K = 3 columns: the padding is ignored.
    rankings = RankingCounts(("A", "B", "C"), np.array([[2, 0, -1]]), np.array([[0, 1, -1]]), np.array([2.0]))
    obj = RankingObjective(rankings)
    s = np.array([0.3, -0.1, 0.5])
    expected = 2 * (s[2] - math.log(math.exp(s[0]) + math.exp(s[2])))
    assert -obj.derivatives(s[None], obj.base_weights())[0][0] == pytest.approx(expected, abs=1e-12)


def test_mixed_fit_equals_bt_when_rankings_are_pairs(rng):
    theta = np.array([0.5, 0.0, -0.5, 0.2])
    a, b, out = simulate_pairs(theta, 2000, rng, nu=0.5)
    pairs = PairCounts.from_arrays(names(4), a[:1000], b[:1000], out[:1000])
    dec = out[1000:] < 2
    aa, bb, oo = a[1000:][dec], b[1000:][dec], out[1000:][dec]
    winner, loser = np.where(oo == 0, aa, bb), np.where(oo == 0, bb, aa)
    rankings = RankingCounts.from_rankings(names(4), [[int(w), int(lo)] for w, lo in zip(winner, loser, strict=True)])
    mixed = fit_objective(MixedObjective(PairwiseObjective(pairs), RankingObjective(rankings)))
    both = PairCounts.from_arrays(names(4), np.r_[a[:1000], aa], np.r_[b[:1000], bb], np.r_[out[:1000], oo])
    np.testing.assert_allclose(mixed.theta, fit_objective(PairwiseObjective(both)).theta, atol=1e-8)


def test_pl_recovers_planted_strengths_from_four_way_rankings():
    rng = np.random.default_rng(3)
    theta = rng.normal(0, 1, 8)
    theta -= theta.mean()
    rows = []
    for _ in range(5000):
        shown = rng.choice(8, 4, replace=False)
        # Sampling a PL ranking: Gumbel-perturbed strengths sorted descending.
        order = shown[np.argsort(-(theta[shown] + rng.gumbel(size=4)))]
        rows.append(order.tolist())
    est = fit_objective(RankingObjective(RankingCounts.from_rankings(names(8), rows)))
    assert (np.abs(est.theta - theta) < 4 * standard_errors(est)).all()


def test_rankings_and_pairs_share_models_after_alignment():
    pairs = PairCounts.from_records([("A", "B", 0, 3), ("B", "A", 0, 2)])
    rankings = RankingCounts.from_rankings(["B", "C", "A"], [[0, 1, 2], [1, 2, 0], [2, 0, 1]])
    fit = leaderboard_fit(pairs, rankings, method="pl", ci="sandwich")
    assert fit.models == ("A", "B", "C")
    assert {r.model for r in fit.rows} == {"A", "B", "C"}
    assert [r.votes for r in sorted(fit.rows, key=lambda r: r.model)] == [8.0, 8.0, 3.0]


def test_pl_rejects_non_half_ties_and_style():
    pairs = PairCounts.from_records([("A", "B", 0, 3), ("B", "A", 2, 2)])
    rankings = RankingCounts.from_rankings(["A", "B"], [[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="half"):
        leaderboard_fit(pairs, rankings, method="pl", ties="davidson")
    with pytest.raises(ValueError, match="method='pl'"):
        leaderboard_fit(pairs, rankings, method="bt")


def test_pl_bootstrap_and_sandwich_agree_on_mixed_data():
    rng = np.random.default_rng(21)
    theta = np.array([0.8, 0.3, 0.0, -0.4, -0.7])
    rows = []
    for _ in range(1500):
        shown = rng.choice(5, 3, replace=False)
        order = shown[np.argsort(-(theta[shown] + rng.gumbel(size=3)))]
        rows.append([int(order[0]), order[1:].tolist()] if rng.random() < 0.5 else order.tolist())
    rankings = RankingCounts.from_rankings(names(5), rows)
    a, b, out = simulate_pairs(theta, 1500, rng, nu=0.4)
    pairs = PairCounts.from_arrays(names(5), a, b, out)
    boot = {r.model: r for r in leaderboard_fit(pairs, rankings, method="pl", bootstrap=300, seed=2).rows}
    sand = {r.model: r for r in leaderboard_fit(pairs, rankings, method="pl", ci="sandwich").rows}
    for name, row in sand.items():
        assert boot[name].rating == pytest.approx(row.rating)
        assert boot[name].ci_low < row.rating < boot[name].ci_high
        assert boot[name].ci_high - boot[name].ci_low == pytest.approx(row.ci_high - row.ci_low, rel=0.2)
    bayes = leaderboard_fit(pairs, rankings, method="bayes")
    assert sum(r.p_best for r in bayes.rows) == pytest.approx(1.0)
