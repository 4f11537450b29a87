"""The vote-budget simulator (leaderboard.simulate): pure, seeded, small sizes only."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau

from arena.matchmaking.policies import ContenderStats
from leaderboard.ratings import EloBattles, elo_battles
from leaderboard.simulate import (
    KSortPolicy,
    SimConfig,
    kendall_tau,
    mallows_ranking,
    ranking_is_right,
    simulate,
    simulate_run,
    true_strengths,
    votes_to_converge,
    weng_lin_update,
)
from leaderboard.simulate.__main__ import main
from leaderboard.simulate.core import _Fitter

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------ convergence
@pytest.mark.parametrize(("right", "expected"), [
    ([False, True, False, True, True], 40),     # the last wrong checkpoint is at 30: converged from 40
    ([True, True, True, True, True], 10),
    ([False, False, False, False, True], 50),
    ([True, True, True, True, False], None),    # wrong at max_votes: never converged
    ([False] * 5, None),
])
def test_votes_to_converge_is_the_start_of_the_final_right_run(right, expected):
    assert votes_to_converge([10, 20, 30, 40, 50], right) == expected


def test_votes_to_converge_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        votes_to_converge([10, 20], [True])


def test_a_ranking_is_right_only_when_strictly_in_the_true_order():
    truth = np.array([0.5, 2.0, -1.0])
    assert ranking_is_right(truth, np.array([1.0, 3.0, 0.0]))
    assert not ranking_is_right(truth, np.array([1.0, 1.0, 0.0]))           # a tie is wrong
    assert not ranking_is_right(truth, np.array([3.0, 1.0, 0.0]))
    assert ranking_is_right(truth, np.array([3.0, 1.0, 0.0]), subset=np.array([1, 2]))


def test_kendall_tau_is_tau_b():
    rng = np.random.default_rng(1)
    truth, fitted = rng.normal(size=12), np.round(rng.normal(size=12), 1)
    assert kendall_tau(truth, fitted) == pytest.approx(kendalltau(truth, fitted).statistic)
    assert kendall_tau(truth, np.zeros(12)) == 0.0


# ------------------------------------------------------------------------------------------ truth, noise
def test_truths_are_strictly_decreasing_and_gaps_has_tiers():
    spread = true_strengths(50, "spread")
    gaps = true_strengths(25, "gaps")
    assert np.all(np.diff(spread) < 0) and spread[0] == 2.0 and spread[-1] == -2.0
    steps = -np.diff(gaps)
    assert np.all(steps > 0) and gaps.mean() == pytest.approx(0.0)
    assert steps[9] == pytest.approx(1.0) and steps[19] == pytest.approx(1.0) and steps[0] == pytest.approx(0.1)


def test_noise_free_vote_is_the_true_order():
    ordered = np.array([4, 1, 3, 0])
    assert np.array_equal(mallows_ranking(ordered, 0.0, np.random.default_rng(0)), ordered)


@pytest.mark.parametrize("k", [2, 4])
def test_each_adjacent_pair_flips_with_probability_p(k):
    p, draws = 0.1, 20_000
    rng = np.random.default_rng(7)
    ordered = np.arange(k)
    flips = np.zeros(k - 1)
    for _ in range(draws):
        position = np.argsort(mallows_ranking(ordered, p, rng))
        flips += position[:-1] > position[1:]
    tolerance = 4 * np.sqrt(p * (1 - p) / draws)
    assert np.all(np.abs(flips / draws - p) < tolerance)


# ------------------------------------------------------------------------------------------ fitting
def test_online_elo_matches_the_leaderboards_elo_on_the_implied_battles():
    config = SimConfig(models=5, k=3, method="elo", elo_k=16.0)
    fitter = _Fitter(5, 3, 10, config)
    rankings = [np.array(r) for r in ([0, 2, 4], [4, 1, 0], [3, 2, 1], [1, 3, 4])]
    for r in rankings:
        fitter.add(r)
    a = [r[i] for r in rankings for i in range(3) for j in range(i + 1, 3)]
    b = [r[j] for r in rankings for i in range(3) for j in range(i + 1, 3)]
    battles = EloBattles(fitter.models, np.array(a), np.array(b), np.zeros(len(a), dtype=np.int8))
    assert np.allclose(fitter.elo, elo_battles(battles, k=16.0))


@pytest.mark.parametrize(("method", "k"), [("pl", 3), ("bt", 2), ("bayes", 3), ("elo", 2)])
def test_noise_free_random_policy_converges_and_is_reproducible(method, k):
    config = SimConfig(models=5, k=k, method=method, max_votes=300, repeats=2, seed=11, checkpoint_every=5)
    first, _ = simulate(config)
    again, _ = simulate(config)
    assert first["converged_fraction"] == 1.0
    assert first["kendall_tau_final"] == 1.0
    assert first["votes_to_converge"] == again["votes_to_converge"]
    assert first["votes_to_converge"]["median"] % 5 == 0        # a checkpoint's vote count


# ------------------------------------------------------------------------------------------ ksort
def _stats(votes, available=None):
    votes = np.asarray(votes)
    return ContenderStats(votes, np.ones(votes.size), np.ones(votes.size, bool) if available is None else available)


def test_ksort_chooses_k_distinct_available_models_with_the_least_compared_pivot():
    policy = KSortPolicy()
    votes = np.array([9, 9, 2, 9, 9, 9, 9, 9])
    available = np.array([True] * 7 + [False])
    for seed in range(20):
        chosen = policy.choose(_stats(votes, available), 4, np.random.default_rng(seed))
        assert len(set(chosen.tolist())) == 4
        assert 2 in chosen and 7 not in chosen


def test_ksort_update_moves_winner_up_loser_down_and_shrinks_sigma():
    mu, sigma2 = np.full(3, 25.0), np.full(3, (25 / 3) ** 2)
    new_mu, new_sigma2 = weng_lin_update(mu, sigma2, beta=25 / 6)
    assert new_mu[0] > new_mu[1] > new_mu[2]
    assert new_mu.sum() == pytest.approx(mu.sum())              # equal variances: zero-sum means
    assert np.all(new_sigma2 < sigma2)


def test_ksort_prefers_unseen_pairs_and_close_scores():
    policy = KSortPolicy()
    policy.choose(_stats([0, 0, 0, 0]), 2, np.random.default_rng(0))   # sizes the state: 4 models at the prior
    policy.pair_counts[0, 1] = policy.pair_counts[1, 0] = 5
    policy.n_votes = 5
    policy.mu[2] += 20.0
    ucb = policy.ucb(0)
    assert ucb[3] > ucb[1]                                     # same score as 1, but never met the pivot
    assert ucb[3] > ucb[2]                                     # same pair count as 2, but a closer score
    assert ucb[0] == -np.inf


def test_ksort_simulation_reports_its_own_ranking():
    summary, _ = simulate(SimConfig(models=6, k=3, policy="ksort", method="pl", max_votes=200, repeats=1))
    assert summary["converged_fraction"] == 1.0
    assert set(summary["policy_ranking"]) == {"votes_to_converge", "converged_fraction", "score"}


# ------------------------------------------------------------------------------------------ new model
def test_new_model_counts_only_the_votes_that_show_it():
    config = SimConfig(models=6, k=2, method="pl", max_votes=400, checkpoint_every=5, new_model=True, seed=2)
    run = simulate_run(config, 0)
    assert not run.warmup_failed
    phase_votes = run.checkpoint_votes[-1] - run.warmup_votes
    assert 0 < run.counted_votes[-1] < phase_votes / 2            # random K=2 of 7 shows it ~2/7 of the time
    assert run.votes_to_converge is not None and run.votes_to_converge in run.counted_votes


def test_new_model_is_the_ksort_pivot_of_the_first_vote_after_it_arrives():
    config = SimConfig(models=6, k=3, policy="ksort", method="pl", max_votes=300, checkpoint_every=1,
                       new_model=True, seed=4)
    run = simulate_run(config, 0)
    assert run.counted_votes[0] == 1                           # 0 votes: the least-compared model
    assert run.counted_votes[-1] < run.checkpoint_votes[-1] - run.warmup_votes
    assert run.votes_to_converge is not None


# ------------------------------------------------------------------------------------------ CLI
def test_cli_prints_the_documented_json_and_the_curve(capsys, tmp_path):
    curve = tmp_path / "curve.csv"
    assert main(["--models", "5", "--k", "2", "--method", "elo", "--max-votes", "200", "--repeats", "2",
                 "--seed", "3", "--curve", str(curve)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"votes_to_converge", "converged_fraction", "kendall_tau_final", "checkpoint_every", "repeats",
            "config"} <= set(out)
    assert set(out["votes_to_converge"]) == {"median", "p10", "p90"}
    assert out["checkpoint_every"] == 1 and len(out["repeats"]) == 2
    rows = list(csv.DictReader(curve.open()))
    assert rows[0].keys() == {"repeat", "votes", "counted_votes", "kendall_tau", "right"}
    assert len(rows) == 2 * 200


def test_cli_new_model_with_a_failed_warm_up_still_prints_strict_json(capsys):
    assert main(["--models", "6", "--k", "2", "--method", "pl", "--max-votes", "3", "--repeats", "2",
                 "--new-model"]) == 0
    out = json.loads(capsys.readouterr().out)   # allow_nan=False on the way out: no NaN could get here
    assert out["warmup_failed"] == 2 and out["converged_fraction"] == 0.0
    assert out["votes_to_converge"] == {"median": None, "p10": None, "p90": None}
    assert out["kendall_tau_final"] is None and out["unit"] == "votes showing the new model"


@pytest.mark.parametrize(("argv", "message"), [
    (["--models", "5", "--k", "7"], "more than --models"),
    (["--k", "1"], "at least 2"),
    (["--noise", "0.7"], "probability in [0, 0.5)"),
    (["--policy", "ucb"], "invalid choice"),
    (["--method", "glicko"], "invalid choice"),
    (["--max-votes", "0"], "positive integer"),
    (["--l2", "-1"], "positive number"),
])
def test_bad_options_are_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_the_simulator_imports_no_django():
    code = "import leaderboard.simulate, sys; assert 'django' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
