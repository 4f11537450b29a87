"""The entry point: scale, anchor, ranks, votes, params, argument checks."""
from __future__ import annotations

import numpy as np
import pytest

from leaderboard.ratings import PairCounts, leaderboard_fit


def test_rows_scale_and_ranks(small_pairs):
    pairs, theta = small_pairs
    fit = leaderboard_fit(pairs, bootstrap=50, seed=3)
    ratings = [r.rating for r in fit.rows]
    assert ratings == sorted(ratings, reverse=True)
    assert np.mean(ratings) == pytest.approx(1000.0, abs=1e-9)
    assert [r.rank for r in fit.rows] == list(range(1, 7))
    assert all(1 <= r.rank_ub <= r.rank for r in fit.rows)
    assert [r.model for r in fit.rows] == [f"m{i:02d}" for i in np.argsort(-theta)]
    votes = dict(zip(pairs.models, pairs.model_votes(), strict=True))
    assert {r.model: r.votes for r in fit.rows} == votes
    # rating = 400 theta / ln 10 + 1000
    np.testing.assert_allclose(sorted(ratings), sorted(400 / np.log(10) * fit.theta + 1000))
    assert fit.params["method"] == "bt" and fit.params["bootstrap"] == 50 and fit.params["seed"] == 3


def test_anchor_is_exactly_1000_in_every_round(small_pairs):
    pairs, _ = small_pairs
    plain = {r.model: r for r in leaderboard_fit(pairs, bootstrap=40).rows}
    fit = leaderboard_fit(pairs, bootstrap=40, anchor="m03")
    rows = {r.model: r for r in fit.rows}
    assert rows["m03"].rating == 1000.0 and rows["m03"].ci_low == 1000.0 == rows["m03"].ci_high
    shift = 1000.0 - plain["m03"].rating
    for name, row in rows.items():
        assert row.rating == pytest.approx(plain[name].rating + shift)
    with pytest.raises(ValueError, match="anchor model 'zzz'"):
        leaderboard_fit(pairs, anchor="zzz")


def test_seed_makes_bootstrap_reproducible(small_pairs):
    pairs, _ = small_pairs
    one = leaderboard_fit(pairs, bootstrap=30, seed=9).to_records()
    two = leaderboard_fit(pairs, bootstrap=30, seed=9).to_records()
    other = leaderboard_fit(pairs, bootstrap=30, seed=10).to_records()
    assert one == two
    assert one != other


def test_unrated_models_are_left_out():
    pairs = PairCounts.from_arrays(("A", "B", "new"), [0, 1, 0], [1, 0, 1], [0, 0, 0])
    fit = leaderboard_fit(pairs, ci="sandwich")
    assert [r.model for r in fit.rows] == ["A", "B"]
    assert fit.params["unrated_models"] == ["new"]


@pytest.mark.parametrize("ties", ["davidson", "rao-kupper"])
def test_tie_models_report_their_parameter(small_pairs, ties):
    pairs, _ = small_pairs
    fit = leaderboard_fit(pairs, ties=ties, bootstrap=30)
    low, high = fit.params["tie_parameter_ci"]
    assert low < fit.params["tie_parameter"] < high
    assert fit.params["tie_parameter"] == pytest.approx(np.exp(fit.params["log_tie_parameter"]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "glicko"}, "method must be"),
        ({"ties": "draw"}, "ties must be"),
        ({"ci": "jackknife"}, "ci must be"),
        ({"bootstrap": 0}, "bootstrap must be"),
        ({"method": "elo"}, "needs battles"),
    ],
)
def test_argument_errors(small_pairs, kwargs, message):
    pairs, _ = small_pairs
    with pytest.raises(ValueError, match=message):
        leaderboard_fit(pairs, **kwargs)


def test_json_records_have_the_cli_keys(small_pairs):
    pairs, _ = small_pairs
    rec = leaderboard_fit(pairs, ci="sandwich").to_records()[0]
    assert list(rec) == ["model", "rating", "ci_low", "ci_high", "rank", "rank_ub", "votes", "component",
                         "provisional", "ci_degenerate_share"]
    bayes = leaderboard_fit(pairs, method="bayes").to_records()[0]
    assert list(bayes)[-3:] == ["mu", "sigma", "p_best"]
