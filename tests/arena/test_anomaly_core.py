"""The anomalous-voter core (arena.anomaly): golden p-values, validity by simulation, Fisher, checkpoints,
the per-model test (Stouffer on directional p-values) and identities made of several voters (an address)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from arena.anomaly import (
    DRAW,
    LOSS,
    WIN,
    ScoredVotes,
    directional_pvalues,
    fisher_combine,
    identity_anomaly_test,
    kwise_comparison,
    kwise_comparisons,
    model_anomaly_test,
    model_drift_scan,
    model_drift_test,
    pairwise_comparison,
    reached_checkpoint,
    stouffer_combine,
    validate_checkpoints,
    vote_pvalue,
    voter_anomaly_test,
    voter_pvalues,
    voter_scored_votes,
)
from benchmarks.anomaly_simulation import detect, detect_identities, simulate_arena

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



# ------------------------------------------------------------------------------ the per-model test


@pytest.mark.parametrize(("outcome", "u", "expected"), [
    (WIN, 0.5, (4.5 / 11, 6.5 / 11)),     # bag (9, 1, 1): a win of the first is the most extreme "for the first"
    (DRAW, 0.5, (9 / 11, 2 / 11)),        # bag (8, 1, 2): above it 8 wins "for the first", 1 loss "for the second"
    (LOSS, 0.5, (10 / 11, 1 / 11)),       # bag (8, 2, 1)
    (WIN, None, (9 / 11, 11 / 11)),       # deterministic: ties count as extreme in both directions
    (LOSS, None, (11 / 11, 2 / 11)),
])
def test_golden_directional_pvalues(outcome, u, expected):
    assert directional_pvalues(np.array([8, 1, 1]), outcome, u=u) == pytest.approx(expected)


@pytest.mark.parametrize(("pi", "n", "habit"), NULLS)
def test_directional_pvalues_are_uniform_under_the_null_and_add_up_to_one(pi, n, habit):
    rng = np.random.default_rng(abs(hash((pi, n, "directional"))) % 2**32)
    histories = rng.multinomial(n, pi, size=8000)
    outcomes = rng.choice(3, size=8000, p=pi)
    pairs = np.array([directional_pvalues(h, int(o), u=1.0 - rng.random())
                      for h, o in zip(histories, outcomes, strict=True)])
    assert pairs.sum(axis=1) == pytest.approx(np.ones(8000))
    for a in (0.01, 0.05, 0.1):
        se = np.sqrt(a * (1 - a) / 8000)
        assert abs((pairs[:, 0] <= a).mean() - a) <= 4 * se
        assert abs((pairs[:, 1] <= a).mean() - a) <= 4 * se


def test_stouffer_agrees_with_scipy():
    p = np.array([0.2, 0.03, 0.6, 0.5])
    z, combined = stouffer_combine(p)
    expected = stats.combine_pvalues(p, method="stouffer")
    assert z == pytest.approx(expected.statistic) and combined == pytest.approx(expected.pvalue)
    with pytest.raises(ValueError):
        stouffer_combine(np.array([]))


def _scored(pairs, p_first, pvalues=None):
    """ScoredVotes from (first, second) pairs and p-values that the first did better (p_second = 1 - p, randomized)."""
    p_first = np.asarray(p_first, dtype=float)
    return ScoredVotes(np.full(p_first.size, 0.5) if pvalues is None else np.asarray(pvalues, dtype=float),
                       tuple(a for a, _ in pairs), tuple(b for _, b in pairs), p_first, 1.0 - p_first)


def test_votes_for_one_model_in_either_position_are_flagged_naming_that_model():
    # 40 votes: X against 4 others in alternating positions, always "X did better" at p = 0.3, cover votes
    # between the others at p = 0.5. Per-model Z for X = 40 * isf(0.3) / sqrt(40) = 3.32; Y, Z, W, V are near 0.
    others = ["Y", "Z", "W", "V"]
    pairs, p_first = [], []
    for i in range(40):
        o = others[i % 4]
        pairs.append(("X", o) if i % 2 else (o, "X"))
        p_first.append(0.3 if i % 2 else 0.7)                 # X first: p for the first small; X second: large
        pairs.append((others[i % 4], others[(i + 1) % 4]))
        p_first.append(0.5)
    scored = _scored(pairs, p_first)
    result = model_anomaly_test(scored, checkpoints=(80,), alpha=0.05, min_model_votes=10)
    # 5 models with >= 10 votes at 80: level 0.05 / (2 * 1 * 5) = 0.005; Z = 3.32 -> p = 4.5e-4
    assert result.flagged and result.model == "X" and result.checkpoint == 80
    assert result.level == pytest.approx(0.005)
    assert result.statistic == pytest.approx(40 * stats.norm.isf(0.3) / np.sqrt(40))
    # the same votes against X: the lower tail, Z negative
    against = model_anomaly_test(_scored(pairs, [1 - p if p != 0.5 else p for p in p_first]), checkpoints=(80,),
                                 alpha=0.05, min_model_votes=10)
    assert against.flagged and against.model == "X" and against.statistic < 0
    # too few votes on X for min_model_votes, a checkpoint not reached, or decided before: not tested
    assert not model_anomaly_test(scored, checkpoints=(80,), alpha=0.05, min_model_votes=41).flagged
    assert not model_anomaly_test(scored, checkpoints=(100,), alpha=0.05).flagged
    assert not model_anomaly_test(scored, checkpoints=(80,), alpha=0.05, decided_through=80).flagged


def test_the_model_test_level_is_split_over_models_checkpoints_and_directions():
    pairs = [("X", "Y")] * 30
    scored = _scored(pairs, [0.5] * 30)
    result = model_anomaly_test(scored, checkpoints=(10, 20, 30), alpha=0.06, min_model_votes=5)
    assert not result.flagged and result.level == pytest.approx(0.06 / (2 * 3 * 2))
    with pytest.raises(ValueError, match="alpha"):
        model_anomaly_test(scored, alpha=1.0)
    with pytest.raises(ValueError, match="min_model_votes"):
        model_anomaly_test(scored, min_model_votes=0)


def test_the_identity_test_reports_the_earlier_of_its_two_tests():
    pairs = [("X", "Y")] * 200
    # all-votes p-values ordinary, directional ones steadily for X: only the per-model test can see it
    scored = _scored(pairs, [0.3] * 200, pvalues=np.linspace(0.01, 1, 200)[::-1])
    result = identity_anomaly_test(scored, checkpoints=(5, 10, 20, 50, 100), alpha=0.01)
    assert result.flagged and result.model == "X" and result.checkpoint == 50
    assert not identity_anomaly_test(scored, checkpoints=(5, 10, 20, 50, 100), alpha=0.01,
                                     model_checkpoints=()).flagged
    early = _scored(pairs, [0.3] * 200, pvalues=[1e-4] * 200)
    assert identity_anomaly_test(early, checkpoints=(5, 100), alpha=0.01).model is None   # the all-votes test, at 5
    assert reached_checkpoint(120, (5, 100), (20, 50, 200)) == 100 and reached_checkpoint(3, (5,), (20,)) == 0


def test_scored_votes_carry_the_same_pvalues_as_voter_pvalues_and_the_contenders():
    history = {("k", 1, 2): np.array([30, 10, 5]), ("k", 2, 3): np.array([3, 1, 0])}
    tested = [(("k", 1, 2), WIN), (("k", 2, 3), WIN), (("k", 1, 2), LOSS)]
    scored = voter_scored_votes(tested, history, {}, min_pair_history=10, rng=np.random.default_rng(1))
    assert scored.pvalues == pytest.approx(voter_pvalues(tested, history, {}, min_pair_history=10,
                                                         rng=np.random.default_rng(1)))
    assert scored.first == (1, 1) and scored.second == (2, 2)      # the short history's vote is skipped
    assert scored.p_first + scored.p_second == pytest.approx([1.0, 1.0])


# ------------------------------------------------------------------------------ honest false flags, simulated


def test_the_per_model_test_flags_honest_voters_at_most_alpha_of_the_time():
    """Long-lived honest voters (300 votes each, 6 models): every checkpoint up to 200 and every model is looked at."""
    rng = np.random.default_rng(21)
    theta = np.linspace(-1.5, 1.5, 6)
    alpha, flagged, total = 0.1, 0, 0
    while total < 600:
        voters = simulate_arena({"honest": 200}, 300, theta, rng)
        results = detect(voters, rng, alpha=1e-9, model_alpha=alpha, model_checkpoints=(20, 50, 100, 200))
        flagged += sum(r.flagged for r in results)
        total += len(results)
    assert flagged / total <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / total)


def test_honest_voters_tested_together_by_address_are_flagged_at_most_at_the_level():
    """Honest voters five to an address, merged in time order: each address is one honest identity."""
    rng = np.random.default_rng(22)
    theta = np.linspace(-1.5, 1.5, 8)
    level, failed, total = 0.1, 0, 0
    while total < 300:
        voters = simulate_arena({"honest": 250}, 40, theta, rng)
        addresses = [f"a{i // 5}" for i in range(len(voters))]
        found = detect_identities(voters, rng, alpha=level / 2, model_alpha=level / 2, addresses=addresses,
                                  times=[rng.random(40) for _ in voters])
        assert len(found.addresses) == 50
        failed += sum(found.addresses.values())
        total += len(found.addresses)
    assert failed / total <= level + 3 * np.sqrt(level * (1 - level) / total)


def test_a_camouflaged_voter_is_found_by_the_per_model_test_and_missed_by_the_all_votes_test():
    """One voter of 1,000 votes: honest on battles without model 2, always for model 2 on the battles with it."""
    rng = np.random.default_rng(23)
    theta = np.linspace(1.0, -1.0, 10)
    voters = simulate_arena({"honest": 300}, 60, theta, rng)
    sly = simulate_arena({"honest": 1}, 1000, theta, rng)[0]
    shows = (sly.a == 2) | (sly.b == 2)
    sly.outcome[shows] = np.where(sly.a[shows] == 2, 0, 1)
    assert 150 <= shows.sum() <= 250
    voters.append(sly)
    assert detect(voters, rng)[-1].flagged and detect(voters, rng)[-1].model == 2
    assert not detect(voters, rng, model_checkpoints=())[-1].flagged



# ------------------------------------------------------------------------------ per-model drift


def test_golden_drift_of_one_pair():
    # Model 0 first against model 1: before 5 wins, 5 losses; the window 4 wins. Pooled N = 14, mean score
    # mu = 4/14, variance 1 - mu^2; the window's 4 votes drawn without replacement: variance 4 * 10/13 * (1 - mu^2).
    before = np.zeros((2, 2, 3))
    window = np.zeros((2, 2, 3))
    before[0, 1] = (5, 5, 0)
    window[0, 1] = (4, 0, 0)
    result = model_drift_test(before, window, alpha=0.1)
    mu = 4 / 14
    z = (4 - 4 * mu) / np.sqrt(4 * 10 / 13 * (1 - mu ** 2))
    assert result.z == pytest.approx([z, -z])
    assert result.p == pytest.approx([2 * stats.norm.sf(z)] * 2)
    assert list(result.n_window) == [4, 4] and result.level == pytest.approx(0.05) and not result.held.any()


def test_a_window_on_pairs_never_seen_before_is_not_evidence():
    before = np.zeros((3, 3, 3))
    window = np.zeros((3, 3, 3))
    window[0, 1] = (9, 0, 0)       # no earlier votes on (0, 1): nothing to drift from
    result = model_drift_test(before, window)
    assert (result.z == 0).all() and (result.p == 1).all() and not result.held.any()
    with pytest.raises(ValueError, match="shape"):
        model_drift_test(np.zeros((3, 3, 3)), np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="alpha"):
        model_drift_test(before, window, alpha=0)


def _daily_counts(theta, votes_per_day, days, rng):
    from leaderboard.ratings.simulate import davidson_battles

    m = theta.size
    daily = np.zeros((days, m, m, 3))
    for d in range(days):
        a, b, o = davidson_battles(theta, votes_per_day, rng, nu=0.5, both_bad=0.3)
        np.add.at(daily[d], (a, b, np.array([WIN, LOSS, DRAW, DRAW])[o]), 1)
    return daily


def test_the_drift_test_holds_a_model_in_an_unchanged_window_at_most_alpha_of_the_time():
    rng = np.random.default_rng(41)
    theta = np.linspace(1.0, -1.0, 8)
    alpha, reps = 0.1, 400
    held = sum(model_drift_test(*_daily_counts(theta, 1500, 2, rng), alpha=alpha).held.any() for _ in range(reps))
    assert held / reps <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / reps)


def _for_model(daily, day, model, n, rng):
    """``n`` extra votes for ``model`` on ``day`` against random others, in random positions."""
    m = daily.shape[1]
    for other in (model + rng.integers(1, m, n)) % m:
        if rng.random() < 0.5:
            daily[day, model, other, WIN] += 1
        else:
            daily[day, other, model, LOSS] += 1


def test_the_daily_scan_holds_a_burst_on_its_day_and_a_patient_attack_over_several_days():
    rng = np.random.default_rng(42)
    theta = np.linspace(1.0, -1.0, 10)
    honest = _daily_counts(theta, 3000, 10, rng)
    assert model_drift_scan(honest) == []                         # ten honest days: nothing held
    burst = honest.copy()
    _for_model(burst, 9, 4, 300, rng)
    holds = model_drift_scan(burst)
    assert [(h.first_day, h.day, h.model) for h in holds if h.z > 0] == [(9, 9, 4)]
    # A patient attack on noise-free honest counts (each day exactly the Davidson expectation): 60 votes a day
    # for model 4 on days 6..9 against its 600 honest ones. One day: Z = 2.4, below the one-day bar (3.3 at
    # alpha 0.01 over 10 models); the four days against days 0..5: Z = 3.9, above the four-window bar (3.7).
    steady = np.zeros((10, 10, 10, 3))
    for i in range(10):
        for j in range(10):
            if i != j:
                wi, wj = np.exp(theta[i]), np.exp(theta[j])
                tie = 0.5 * np.sqrt(wi * wj)
                steady[:, i, j] = 3000 / 90 * np.array([wi, wj, tie]) / (wi + wj + tie)
    for day in range(6, 10):
        for other in range(10):
            if other != 4:
                steady[day, 4, other, WIN] += 60 / 9 / 2
                steady[day, other, 4, LOSS] += 60 / 9 / 2
    assert model_drift_scan(steady, windows=(1,)) == []
    assert [(h.first_day, h.day, h.model) for h in model_drift_scan(steady)] == [(6, 9, 4)]
    with pytest.raises(ValueError, match="strictly increasing"):
        model_drift_scan(honest, windows=(4, 2))
