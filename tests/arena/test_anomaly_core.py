"""The anomalous-voter core (arena.anomaly): golden p-values, validity by simulation, Fisher, checkpoints."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from arena.anomaly import (
    DRAW,
    LOSS,
    WIN,
    fisher_combine,
    kwise_comparison,
    kwise_comparisons,
    pairwise_comparison,
    validate_checkpoints,
    vote_pvalue,
    voter_anomaly_test,
    voter_pvalues,
)
from benchmarks.anomaly_simulation import detect, simulate_arena

# ------------------------------------------------------------------------------ comparisons


def test_a_pairwise_vote_is_seen_from_position_a_and_ties_merge_with_both_bad():
    assert pairwise_comparison(7, 3, "a") == (7, 3, WIN)
    assert pairwise_comparison(7, 3, "b") == (7, 3, LOSS)
    assert pairwise_comparison(7, 3, "tie") == pairwise_comparison(7, 3, "both_bad") == (7, 3, DRAW)
    with pytest.raises(ValueError, match="unknown pairwise outcome"):
        pairwise_comparison(7, 3, "c")


def test_a_ranking_implies_every_pair_of_positions_in_position_order():
    # positions 0..3 show contenders 40, 10, 30, 20; ranking: 2 best, then 0 and 3 tied, then 1
    got = kwise_comparisons([40, 10, 30, 20], ranking=[[2], [0, 3], [1]])
    assert got == [(40, 10, WIN), (40, 30, LOSS), (40, 20, DRAW), (10, 30, LOSS), (10, 20, LOSS), (30, 20, WIN)]


def test_best_of_k_beats_every_other_and_the_others_draw():
    assert kwise_comparisons([5, 6, 7], best_position=1) == [(5, 6, LOSS), (5, 7, DRAW), (6, 7, WIN)]


@pytest.mark.parametrize("kwargs", [{}, {"best_position": 0, "ranking": [[0], [1], [2]]}, {"best_position": 3},
                                    {"ranking": [[0], [1]]}, {"ranking": [[0, 1], [1, 2]]}])
def test_malformed_kwise_votes_are_refused(kwargs):
    with pytest.raises(ValueError):
        kwise_comparisons([1, 2, 3], **kwargs)


def test_the_tested_kwise_pair_is_uniform_over_pairs_of_positions():
    rng = np.random.default_rng(1)
    draws = [kwise_comparison([0, 1, 2, 3], ranking=[[0], [1], [2], [3]], rng=rng)[:2] for _ in range(6000)]
    pairs, counts = np.unique(np.array(draws), axis=0, return_counts=True)
    assert [tuple(p) for p in pairs] == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert stats.chisquare(counts).pvalue > 0.001
    # the verdict follows the drawn positions: position order 0 < 1 < 2 < 3 is the ranking, so always a win
    assert all(kwise_comparison([0, 1, 2, 3], ranking=[[0], [1], [2], [3]], rng=rng)[2] == WIN for _ in range(50))


# ------------------------------------------------------------------------------ golden p-values


@pytest.mark.parametrize(("history", "outcome", "expected"), [
    ((8, 1, 1), LOSS, 2 / 11),    # bag (8, 2, 1): ratios 10/16, 10/4, 1 -> the loss is the most extreme
    ((8, 1, 1), DRAW, 3 / 11),    # bag (8, 1, 2): only the single loss is more extreme
    ((8, 1, 1), WIN, 11 / 11),    # the favourite winning is the least extreme outcome
    ((10, 0, 0), DRAW, 1 / 11),   # never seen: the smallest possible value, not 0
    ((0, 0, 0), WIN, 1.0),        # no history: no evidence
    ((5, 5, 2), WIN, 1.0),        # even pair, first vote: wins, losses and draws are all equally extreme
])
def test_golden_pvalues_with_neutral_draws(history, outcome, expected):
    assert vote_pvalue(np.array(history), outcome) == pytest.approx(expected)


@pytest.mark.parametrize(("history", "outcome", "habit", "expected"), [
    # A voter who chose position A nine times out of nine: another A on an even pair is the extreme outcome.
    ((5, 5, 0), WIN, (9, 0, 0), 6 / 11),
    ((5, 5, 0), LOSS, (9, 0, 0), 11 / 11),
    ((5, 5, 0), WIN, (0, 0, 0), 11 / 11),  # the same vote from a first-time voter is unremarkable
])
def test_golden_pvalues_follow_the_voters_earlier_habit(history, outcome, habit, expected):
    assert vote_pvalue(np.array(history), outcome, habit=habit) == pytest.approx(expected)


@pytest.mark.parametrize(("history", "outcome", "expected"), [
    ((8, 1, 1), LOSS, 3 / 11),    # draw_habit, first vote: the rarer, the more extreme; draw (1) then losses (2)
    ((8, 1, 1), DRAW, 3 / 11),
    ((8, 1, 1), WIN, 11 / 11),
    ((6, 2, 1), DRAW, 4 / 10),    # bag (6, 2, 2): draws and losses equally rare, 4 of the 10
])
def test_golden_pvalues_with_the_draw_habit(history, outcome, expected):
    assert vote_pvalue(np.array(history), outcome, draw_habit=True) == pytest.approx(expected)


def test_the_randomized_pvalue_spreads_the_tied_mass_with_the_rng():
    # (8, 1, 1) and a loss: nothing more extreme, 2 equally extreme (the old loss and this vote)
    u = 1.0 - np.random.default_rng(7).random()
    assert vote_pvalue(np.array([8, 1, 1]), LOSS, rng=np.random.default_rng(7)) == pytest.approx(2 * u / 11)
    # a win: 2 more extreme (loss, draw), 9 as extreme
    u = 1.0 - np.random.default_rng(8).random()
    assert vote_pvalue(np.array([8, 1, 1]), WIN, rng=np.random.default_rng(8)) == pytest.approx((2 + 9 * u) / 11)


@pytest.mark.parametrize("bad", [{"history_counts": np.array([1, 2])}, {"history_counts": np.array([1, -1, 0])},
                                 {"outcome": 3}, {"habit": (0, 0)}, {"habit": (0, -1, 0)}])
def test_malformed_pvalue_inputs_are_refused(bad):
    args = {"history_counts": np.array([1, 2, 3]), "outcome": WIN} | bad
    with pytest.raises(ValueError):
        vote_pvalue(args.pop("history_counts"), args.pop("outcome"), **args)


# ------------------------------------------------------------------------------ validity by simulation

NULLS = [((0.45, 0.45, 0.10), 30, (0, 0, 0)), ((0.80, 0.05, 0.15), 20, (3, 9, 1)), ((0.3, 0.3, 0.4), 6, (5, 0, 0)),
         ((0.9, 0.1, 0.0), 50, (0, 4, 0))]


def _null_pvalues(pi, n, habit, *, draw_habit, randomized, rng, reps=8000):
    histories = rng.multinomial(n, pi, size=reps)
    outcomes = rng.choice(3, size=reps, p=pi)
    return np.array([vote_pvalue(h, int(o), habit=habit, draw_habit=draw_habit, rng=rng if randomized else None)
                     for h, o in zip(histories, outcomes, strict=True)])


@pytest.mark.parametrize("draw_habit", [False, True])
@pytest.mark.parametrize(("pi", "n", "habit"), NULLS)
def test_the_pvalue_is_super_uniform_under_the_null(pi, n, habit, draw_habit):
    rng = np.random.default_rng(abs(hash((pi, n, habit, draw_habit))) % 2**32)
    deterministic = _null_pvalues(pi, n, habit, draw_habit=draw_habit, randomized=False, rng=rng)
    randomized = _null_pvalues(pi, n, habit, draw_habit=draw_habit, randomized=True, rng=rng)
    for a in (0.01, 0.05, 0.1):
        se = np.sqrt(a * (1 - a) / deterministic.size)
        assert (deterministic <= a).mean() <= a + 3 * se + 1e-12
        assert abs((randomized <= a).mean() - a) <= 4 * se   # exactly uniform, up to Monte-Carlo error
    assert ((randomized > 0) & (randomized <= 1)).all()


# ------------------------------------------------------------------------------ Fisher and checkpoints


def test_fisher_agrees_with_scipy():
    p = np.random.default_rng(3).random(37)
    statistic, combined = fisher_combine(p)
    reference = stats.combine_pvalues(p, method="fisher")
    assert statistic == pytest.approx(reference.statistic)
    assert combined == pytest.approx(reference.pvalue)


@pytest.mark.parametrize("bad", [np.array([]), np.array([0.0, 0.5]), np.array([1.2])])
def test_fisher_refuses_values_outside_zero_one(bad):
    with pytest.raises(ValueError):
        fisher_combine(bad)


def test_a_voter_is_flagged_at_the_first_checkpoint_that_rejects_at_the_bonferroni_level():
    p = np.concatenate([np.full(5, 0.5), np.full(5, 1e-3)])
    result = voter_anomaly_test(p, checkpoints=(5, 10, 20), alpha=0.03)
    assert result.flagged and result.checkpoint == 10 and result.level == pytest.approx(0.01)
    statistic, combined = fisher_combine(p)
    assert (result.statistic, result.p_combined) == pytest.approx((statistic, combined))


def test_a_combined_p_between_the_level_and_alpha_does_not_flag():
    p = np.full(5, 0.14)                        # combined p = 0.033: below alpha = 0.05, above 0.05 / 3
    assert 0.05 / 3 < fisher_combine(p)[1] < 0.05
    result = voter_anomaly_test(p, checkpoints=(5, 10, 20), alpha=0.05)
    assert not result.flagged and result.checkpoint is None
    assert result.p_combined == pytest.approx(fisher_combine(p)[1])   # the deciding (only reached) checkpoint


def test_checkpoints_beyond_the_voters_votes_are_not_reached():
    result = voter_anomaly_test(np.full(4, 1e-6), checkpoints=(5, 10))
    assert not result.flagged and np.isnan(result.p_combined) and result.n_pvalues == 4


@pytest.mark.parametrize("checkpoints", [(), (0, 5), (10, 5), (5, 5), (5.5,), (True, 3)])
def test_bad_checkpoints_are_refused(checkpoints):
    with pytest.raises(ValueError, match="checkpoint"):
        validate_checkpoints(checkpoints)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1])
def test_alpha_must_be_a_probability(alpha):
    with pytest.raises(ValueError, match="alpha"):
        voter_anomaly_test(np.full(5, 0.5), alpha=alpha)


# ------------------------------------------------------------------------------ one voter's p-values


def test_a_voter_is_judged_without_its_own_votes_and_short_histories_are_skipped():
    history = {"ab": np.array([30, 10, 5]), "cd": np.array([3, 1, 0])}
    own = {"ab": np.array([2, 0, 1]), "cd": np.array([1, 0, 0])}
    tested = [("ab", WIN), ("cd", WIN), ("ab", DRAW)]
    got = voter_pvalues(tested, history, own, min_pair_history=10, rng=None)
    # "cd" has 3 other votes: skipped, but its WIN still counts towards the habit of the third vote
    assert got == pytest.approx([vote_pvalue(np.array([28, 10, 4]), WIN),
                                 vote_pvalue(np.array([28, 10, 4]), DRAW, habit=(2, 0, 0))])


def test_own_votes_beyond_the_history_are_an_error():
    with pytest.raises(ValueError, match="left out twice"):
        voter_pvalues([("ab", WIN)], {"ab": np.array([1, 0, 0])}, {"ab": np.array([2, 0, 0])},
                      min_pair_history=0, rng=None)


# ------------------------------------------------------------------------------ honest and planted voters


@pytest.mark.parametrize("draw_habit", [False, True])
@pytest.mark.parametrize(("honest", "votes", "models", "min_pair_history"), [(400, 100, 6, 20), (120, 40, 8, 10)])
def test_honest_voters_are_flagged_at_most_alpha_of_the_time(honest, votes, models, min_pair_history, draw_habit):
    """Many honest voters (long histories), and few (histories of ~40 votes per ordered pair)."""
    rng = np.random.default_rng(11)
    theta = np.linspace(-1.5, 1.5, models)
    alpha, flagged, total = 0.05, 0, 0
    while total < 400:
        voters = simulate_arena({"honest": honest}, votes, theta, rng)
        results = detect(voters, rng, alpha=alpha, min_pair_history=min_pair_history, draw_habit=draw_habit)
        flagged += sum(r.flagged for r in results)
        total += len(results)
    assert flagged / total <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / total)


@pytest.mark.parametrize("draw_habit", [False, True])
def test_random_and_always_a_voters_stand_out_when_the_models_differ(draw_habit):
    rng = np.random.default_rng(12)
    voters = simulate_arena({"honest": 200, "random": 20, "always_a": 20}, 60, np.linspace(-3, 3, 8), rng)
    results = detect(voters, rng, draw_habit=draw_habit)
    rate = {kind: np.mean([r.flagged for v, r in zip(voters, results, strict=True) if v.kind == kind])
            for kind in ("honest", "random", "always_a")}
    assert rate["random"] >= 0.8 and rate["always_a"] >= 0.9 and rate["honest"] <= 0.03


def test_checkpoints_decided_by_an_earlier_run_are_not_tested_again():
    from arena.anomaly import voter_anomaly_test

    # Tiny p-values early, ordinary ones later: checkpoint 5 rejects, later ones do not.
    pvalues = np.array([1e-4] * 5 + [0.6] * 45)
    assert voter_anomaly_test(pvalues, checkpoints=(5, 10, 20, 50), alpha=0.01).checkpoint == 5
    later = voter_anomaly_test(pvalues, checkpoints=(5, 10, 20, 50), alpha=0.01, decided_through=5)
    assert later.checkpoint == 10  # checkpoint 5 is not looked at again; 10 still carries the early votes
    assert not voter_anomaly_test(pvalues, checkpoints=(5, 10, 20, 50), alpha=0.01, decided_through=50).flagged
