"""The vote-manipulation drill (issue 11), small and seeded: what the defences do against a targeted attacker.

The full sweep is ``python -m benchmarks.manipulation_drill``; figures in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.manipulation_drill import honest_voters, run_scenario


@pytest.fixture(scope="module")
def arena():
    """12 models 0.18 apart (~31 Elo a rank), 8,000 honest votes; the target is the 4th model."""
    theta = np.linspace(1.0, -1.0, 12)
    honest = honest_voters(theta, 8000, 10.0, np.random.default_rng(3))
    return theta, honest, [np.zeros(v.a.size, dtype=bool) for v in honest]


def _attack(arena, *, model_habit: bool):
    theta, honest, no_leaks = arena
    base, (outcome,) = run_scenario(
        "target_only", "few", theta=theta, target=3, honest=honest, honest_leaks=no_leaks, sizes=[300],
        accuracy=0.95, few=2, sybil_votes=4, leak_rate=0.0, seed=0, detect_kwargs={"model_habit": model_habit})
    return base, outcome


def test_a_planted_always_for_the_target_attacker_is_flagged_and_the_target_does_not_move(arena):
    """Two cookies, 150 votes each for what the 95 %-accurate classifier takes for the target."""
    base, outcome = _attack(arena, model_habit=True)
    assert base == {"off": 4, "on": 4}
    assert outcome.rank_off == 3                      # without the defences the 300 votes lift it one rank
    assert outcome.attackers_flagged == 2 and outcome.excluded_share == 1.0
    assert outcome.rank_on == 4                       # with them it stays where the honest votes put it
    assert outcome.honest_flagged <= 0.01


def test_the_position_habit_alone_misses_that_attacker(arena):
    """Why the detector learned the model habit: the attacker has no position pattern to find."""
    _, outcome = _attack(arena, model_habit=False)
    assert outcome.attackers_flagged == 0
    assert outcome.rank_on == 3
