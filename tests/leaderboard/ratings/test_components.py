"""A comparison graph in several pieces: components, ranks within them, anchors, unbounded intervals."""
from __future__ import annotations

import numpy as np
import pytest
from ratings_support import REAL_FILE

from leaderboard.ratings import EloBattles, PairCounts, leaderboard_fit
from leaderboard.ratings.io import read_battles
from leaderboard.ratings.simulate import davidson_battles


def planted(sizes: list[int], battles: list[int], seed: int = 5) -> tuple[PairCounts, dict[str, tuple[int, float]]]:
    """Components of the given sizes with ``battles`` battles each (none across); names say their group.

    Returns the data and, per model, (planted group, true strength). Strengths are spread widely so that
    the true order is what a fit on this many battles recovers.
    """
    rng = np.random.default_rng(seed)
    names, a_all, b_all, out_all, truth = [], [], [], [], {}
    for g, (size, n) in enumerate(zip(sizes, battles, strict=True)):
        theta = np.linspace(1.5, -1.5, size) + rng.normal(0, 0.05, size)
        a, b, out = davidson_battles(theta, n, rng, nu=0.5)
        offset = len(names)
        members = [f"g{g}_m{i}" for i in range(size)]
        names += members
        truth.update({name: (g, float(t)) for name, t in zip(members, theta, strict=True)})
        a_all.append(a + offset)
        b_all.append(b + offset)
        out_all.append(out)
    pairs = PairCounts.from_arrays(names, np.concatenate(a_all), np.concatenate(b_all), np.concatenate(out_all))
    return pairs, truth


def by_component(rows) -> dict[int, list]:
    out: dict[int, list] = {}
    for r in rows:
        out.setdefault(r.component, []).append(r)
    return out


@pytest.mark.parametrize(("sizes", "battles", "expected_order"), [
    ([4, 5], [1500, 4000], [1, 0]),              # the larger component by votes comes first
    ([3, 6, 4], [2000, 900, 5000], [2, 0, 1]),
])
@pytest.mark.parametrize("method", ["bt", "pl", "bayes"])
def test_planted_components_are_ranked_within_themselves(sizes, battles, expected_order, method):
    pairs, truth = planted(sizes, battles)
    fit = leaderboard_fit(pairs, method=method, bootstrap=40, seed=1)
    groups = by_component(fit.rows)
    assert sorted(groups) == list(range(1, len(sizes) + 1))
    assert fit.params["components"] == len(sizes)
    assert fit.params["component_votes"] == [float(battles[g]) for g in expected_order]
    assert fit.params["component_sizes"] == [sizes[g] for g in expected_order]
    # Rows come component by component, 1 first.
    assert [r.component for r in fit.rows] == sorted(r.component for r in fit.rows)
    for number, rows in groups.items():
        planted_group = expected_order[number - 1]
        assert {truth[r.model][0] for r in rows} == {planted_group}
        # Per-component ranks match the planted order: 1..n inside each component, nothing across.
        true_order = sorted((r.model for r in rows), key=lambda name: -truth[name][1])
        assert [r.model for r in sorted(rows, key=lambda r: r.rank)] == true_order
        assert [r.rank for r in rows] == list(range(1, len(rows) + 1))
        assert all(1 <= r.rank_ub <= r.rank for r in rows)
        if method != "bayes":  # bayes rates by mu - 3 sigma, centred on mu
            assert np.mean([r.rating for r in rows]) == pytest.approx(1000.0, abs=1e-6)


def test_ranks_and_rank_ub_never_look_across_components():
    # Group 1 is strong and precise, group 0 weak and thin: a global rank_ub would let group 1's
    # lower bounds push group 0's models down; within components each top model is 1.
    pairs, _ = planted([3, 3], [300, 6000])
    fit = leaderboard_fit(pairs, ci="sandwich")
    for rows in by_component(fit.rows).values():
        top = min(rows, key=lambda r: r.rank)
        assert top.rank == 1 and top.rank_ub == 1
        lows = np.array([r.ci_low for r in rows])
        for r in rows:
            assert r.rank_ub == 1 + int((lows > r.ci_high).sum())
    records = fit.to_records()
    assert {(r["component"], r["rank"]) for r in records} == {(c, k) for c in (1, 2) for k in (1, 2, 3)}


def test_the_anchor_pins_only_its_own_component():
    pairs, _ = planted([4, 5], [1500, 4000])
    for ci in ("bootstrap", "sandwich"):
        plain = {r.model: r for r in leaderboard_fit(pairs, ci=ci, bootstrap=40, seed=3).rows}
        fit = leaderboard_fit(pairs, ci=ci, bootstrap=40, seed=3, anchor="g0_m2")
        rows = {r.model: r for r in fit.rows}
        assert rows["g0_m2"].rating == 1000.0
        if ci == "bootstrap":
            assert rows["g0_m2"].ci_low == 1000.0 == rows["g0_m2"].ci_high
        shift = 1000.0 - plain["g0_m2"].rating
        for name, row in rows.items():
            if name.startswith("g0_"):  # the anchor's component moves as one
                assert row.rating == pytest.approx(plain[name].rating + shift, abs=1e-9)
            else:  # the other component keeps its own centre and intervals
                assert row.rating == pytest.approx(plain[name].rating, abs=1e-9)
                assert row.ci_low == pytest.approx(plain[name].ci_low, abs=1e-9)
                assert row.ci_high == pytest.approx(plain[name].ci_high, abs=1e-9)
        others = [r.rating for r in fit.rows if r.model.startswith("g1_")]
        assert np.mean(others) == pytest.approx(1000.0, abs=1e-6)


def test_elo_reports_components_and_anchors_per_component():
    pairs, truth = planted([3, 4], [800, 2000])
    rng = np.random.default_rng(0)
    a = np.repeat(pairs.a, pairs.weight.astype(int))
    b = np.repeat(pairs.b, pairs.weight.astype(int))
    out = np.repeat(pairs.outcome, pairs.weight.astype(int))
    order = rng.permutation(a.size)
    battles = EloBattles(pairs.models, a[order], b[order], out[order])
    plain = {r.model: r for r in leaderboard_fit(method="elo", battles=battles, bootstrap=20).rows}
    fit = leaderboard_fit(method="elo", battles=battles, bootstrap=20, anchor="g1_m0")
    assert fit.params["component_sizes"] == [4, 3]
    for r in fit.rows:
        assert r.component == (1 if truth[r.model][0] == 1 else 2)
        assert r.ci_degenerate_share is None  # permutations never diverge
        if r.component == 2:
            assert r.rating == pytest.approx(plain[r.model].rating, abs=1e-9)
    assert {r.model: r.rating for r in fit.rows}["g1_m0"] == 1000.0
    assert sorted(r.rank for r in fit.rows if r.component == 2) == [1, 2, 3]


def test_the_real_genai_arena_file_has_two_components():
    loaded = read_battles(REAL_FILE)
    fit = leaderboard_fit(battles=loaded.battles, bootstrap=100, seed=0)
    groups = by_component(fit.rows)
    assert [r.model.endswith("_generation") for r in groups[1]] == [True] * 6
    assert [r.model.endswith("_edition") for r in groups[2]] == [True] * 7
    assert [r.rank for r in groups[1]] == list(range(1, 7)) and [r.rank for r in groups[2]] == list(range(1, 8))
    votes = fit.params["component_votes"]
    assert votes[0] > votes[1] and sum(votes) == 1515
    assert fit.params["component_sizes"] == [6, 7]
    # The edition models have 11-26 votes each: provisional, with at least their Fisher interval.
    assert all(r.provisional for r in groups[2]) and not any(r.provisional for r in groups[1])


def test_an_unbounded_end_says_how_many_resamples_were_degenerate():
    # D has one win (over C) in 31 battles: a resample without that battle leaves D never winning.
    records = [("A", "B", 0, 40), ("B", "A", 0, 30), ("A", "C", 0, 25), ("C", "A", 0, 15), ("B", "C", 0, 20),
               ("C", "B", 0, 20), ("D", "C", 0, 1), ("A", "D", 0, 10), ("B", "D", 0, 10), ("C", "D", 0, 10)]
    pairs = PairCounts.from_records(records)
    fit = leaderboard_fit(pairs, bootstrap=200, seed=11, provisional_votes=0)
    rows = {r.model: r for r in fit.rows}
    d = rows["D"]
    # P(the single win is left out of a resample) = (1 - 1/181)^181 ~ e^-1.
    assert d.ci_degenerate_share == pytest.approx(np.exp(-1), abs=0.08)
    assert d.ci_low == -np.inf and np.isfinite(d.ci_high)
    assert d.to_dict()["ci_low"] is None and d.to_dict()["ci_degenerate_share"] == d.ci_degenerate_share
    assert all(rows[m].ci_degenerate_share == 0.0 and np.isfinite(rows[m].ci_low) for m in "ABC")
    assert fit.params["bootstrap_divergent_rounds"] == round(d.ci_degenerate_share * 200)
    # rank_ub with an open interval: nothing is significantly worse than -inf... nor better than D's top.
    assert d.rank == 4 and d.rank_ub == 1 + sum(rows[m].ci_low > d.ci_high for m in "ABC")
    # The sandwich and bayes have no resamples: no share.
    assert leaderboard_fit(pairs, ci="sandwich").rows[0].ci_degenerate_share is None
    bayes = {r.model: r for r in leaderboard_fit(pairs, method="bayes").rows}
    assert bayes["D"].ci_degenerate_share is None and np.isfinite(bayes["D"].ci_low)
