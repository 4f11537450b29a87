"""The scripted judge's decision rule and the judgment simulator (pure: no database)."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from judges.audits import judgments_from_records
from judges.simulation import (
    JudgeCase,
    ScriptedJudgeParams,
    expected_first_position_rate,
    merit_tie_share,
    scripted_verdict,
    scripted_verdicts,
    simulate_judgments,
)

CASE = JudgeCase(first_model="x", second_model="y", first_family="fx", second_family="fy",
                 first_length=300, second_length=300, first_markdown=2, second_markdown=2)


def verdicts(params: ScriptedJudgeParams, case: JudgeCase, n: int, seed: int = 0) -> Counter:
    rng = np.random.default_rng(seed)
    return Counter(scripted_verdict(params, case, rng) for _ in range(n))


def test_a_verdict_is_one_of_the_four_literals_and_depends_only_on_the_rng():
    params = ScriptedJudgeParams(tie_rate=0.2, unparsed_rate=0.1, position_bias=0.1)
    a = [scripted_verdict(params, CASE, np.random.default_rng(s)) for s in range(50)]
    b = [scripted_verdict(params, CASE, np.random.default_rng(s)) for s in range(50)]
    assert a == b
    assert set(a) <= {"first", "second", "tie", "unparsed"}


def test_each_verdict_draws_exactly_five_uniforms_whatever_the_branch():
    branches = (ScriptedJudgeParams(), ScriptedJudgeParams(unparsed_rate=1.0), ScriptedJudgeParams(position_bias=1.0))
    for params in branches:
        rng, ref = np.random.default_rng(7), np.random.default_rng(7)
        scripted_verdict(params, CASE, rng)
        ref.random(5)
        assert rng.random() == ref.random()


def test_unparsed_rate_one_never_parses_and_position_bias_one_always_picks_first():
    assert verdicts(ScriptedJudgeParams(unparsed_rate=1.0), CASE, 50) == Counter({"unparsed": 50})
    assert verdicts(ScriptedJudgeParams(position_bias=1.0), CASE, 50) == Counter({"first": 50})
    assert verdicts(ScriptedJudgeParams(position_bias=-1.0), CASE, 50) == Counter({"second": 50})


def test_zero_noise_makes_the_stronger_model_win_and_an_exact_draw_a_coin():
    strong = ScriptedJudgeParams(noise=0.0, strengths={"y": 0.1})
    assert verdicts(strong, CASE, 40) == Counter({"second": 40})
    coin = verdicts(ScriptedJudgeParams(noise=0.0), CASE, 400)
    assert set(coin) == {"first", "second"}
    assert abs(coin["first"] - 200) < 4 * math.sqrt(100)  # Binomial(400, 1/2): sd 10


def test_merit_probability_is_the_logistic_of_the_documented_logit():
    # strengths 0.4 vs 0, length +100 tokens at scale 200, own family first: logit 0.4 + 0.7 tanh(0.5) + 0.5
    params = ScriptedJudgeParams(strengths={"x": 0.4}, length_bias=0.7, self_preference=0.5, noise=2.0)
    case = JudgeCase(first_model="x", second_model="y", first_family="me", second_family="fy",
                     first_length=400, second_length=300, judge_family="me")
    logit = 0.4 + 0.7 * math.tanh(0.5) + 0.5
    expected = 1.0 / (1.0 + math.exp(-logit / 2.0))
    n = 20_000
    share = verdicts(params, case, n)["first"] / n
    assert abs(share - expected) < 4 * math.sqrt(expected * (1 - expected) / n)


def test_human_agreement_one_copies_the_human_verdict():
    params = ScriptedJudgeParams(human_agreement=1.0, strengths={"x": 5.0})
    for human in ("first", "second", "tie"):
        case = JudgeCase(first_model="x", second_model="y", human=human)
        assert verdicts(params, case, 30) == Counter({human: 30})


def test_perturbation_effect_pushes_toward_the_perturbed_response():
    params = ScriptedJudgeParams(perturbation_effects={"authority": 3.0})
    to_second = JudgeCase(first_model="x", second_model="y", perturbation="authority", perturbed="second")
    counts = verdicts(params, to_second, 2000)
    assert counts["second"] / 2000 > 0.9  # sigmoid(3) = 0.953


def test_markdown_unknown_contributes_nothing():
    params = ScriptedJudgeParams(markdown_bias=50.0)
    case = JudgeCase(first_model="x", second_model="y", first_markdown=9, second_markdown=None)
    counts = verdicts(params, case, 2000)
    assert abs(counts["first"] / 2000 - 0.5) < 0.05


def test_invalid_parameters_are_refused():
    for bad in ({"position_bias": 1.5}, {"tie_rate": -0.1}, {"noise": -1.0}, {"length_scale": 0.0},
                {"human_agreement": 2.0}):
        with pytest.raises(ValueError):
            ScriptedJudgeParams(**bad)


def test_params_copy_their_mappings():
    strengths = {"x": 1.0}
    params = ScriptedJudgeParams(strengths=strengths)
    strengths["x"] = 2.0
    assert params.strengths["x"] == 1.0


def test_expected_first_position_rate_formula():
    assert expected_first_position_rate(ScriptedJudgeParams(position_bias=0.3)) == pytest.approx(0.65)
    assert expected_first_position_rate(ScriptedJudgeParams(position_bias=-0.3)) == pytest.approx(0.35)
    # With ties: p = 0.2, tau = 0.25: (0.2 + 0.8 * 0.75 / 2) / (0.2 + 0.8 * 0.75) = 0.5 / 0.8
    assert expected_first_position_rate(ScriptedJudgeParams(position_bias=0.2, tie_rate=0.25)) == pytest.approx(0.625)
    assert merit_tie_share(ScriptedJudgeParams(tie_rate=0.1, human_agreement=0.5), human_known=0.8,
                           human_tie=0.2) == pytest.approx(0.4 * 0.2 + 0.6 * 0.1)


def test_expected_first_position_rate_matches_a_monte_carlo_over_both_orders():
    params = ScriptedJudgeParams(position_bias=0.25, tie_rate=0.3, strengths={"x": 1.5}, length_bias=1.0)
    n = 40_000
    rng = np.random.default_rng(3)
    # Half the judgments show x (strong, 400 tokens) first, half show y (200 tokens) first: the merit
    # logit of one order is minus the other's, so merit alone splits decisive verdicts evenly.
    x_first = np.arange(n) % 2 == 0
    s_first = np.where(x_first, 1.5, 0.0)
    codes = scripted_verdicts(params, strength_first=s_first, strength_second=1.5 - s_first,
                              length_first=np.where(x_first, 400.0, 200.0),
                              length_second=np.where(x_first, 200.0, 400.0),
                              markdown_first=np.full(n, np.nan), markdown_second=np.full(n, np.nan),
                              own_first=np.zeros(n, bool), own_second=np.zeros(n, bool),
                              perturbation_push=np.zeros(n), human=np.full(n, -1), rng=rng)
    decisive = codes <= 1
    rate = np.mean(codes[decisive] == 0)
    expected = expected_first_position_rate(params)
    assert abs(rate - expected) < 4 * math.sqrt(0.25 / decisive.sum())


MODELS = ["m0", "m1", "m2", "m3"]
FAMILIES = {"m0": "fa", "m1": "fa", "m2": "fb", "m3": None}


def simulate(**kwargs) -> list[dict]:
    args = {"n_battles": 40, "models": MODELS, "families": FAMILIES,
            "judges": {"j1": ("fa", ScriptedJudgeParams()), "j2": (None, ScriptedJudgeParams(tie_rate=0.2))},
            "rng": np.random.default_rng(0)}
    args.update(kwargs)
    return simulate_judgments(**args)


def test_simulated_rows_are_valid_audit_input_with_both_orders_replicates_and_perturbations():
    rows = simulate(replicates=3, replicate_share=0.5, perturbations=("authority", "pad"), perturbation_share=0.25)
    # Per judge: 40 x 2 (replicate 0) + 2 replicates x 20 x 2 + 2 perturbations x 10 x 2 = 80 + 80 + 40.
    assert len(rows) == 2 * 200
    table = judgments_from_records(rows)
    assert table.n_rows == 400
    per_unit = Counter((r["judge"], r["battle_id"], r["replicate"], r["perturbation"]) for r in rows)
    assert set(per_unit.values()) == {2}
    assert {r["order"] for r in rows} == {"ab", "ba"}
    perturbed = [r for r in rows if r["perturbation"]]
    assert {r["perturbed"] for r in perturbed} == {"a", "b"}
    assert all(r["perturbed"] is None for r in rows if r["perturbation"] is None)
    assert all(r["model_a"] != r["model_b"] for r in rows)


def test_the_same_seed_gives_the_same_rows():
    assert simulate() == simulate()
    assert simulate() != simulate(rng=np.random.default_rng(1))


def test_lengths_follow_the_per_model_means_and_human_votes_the_strengths():
    rows = simulate(n_battles=3000, judges={"j": (None, ScriptedJudgeParams())},
                    length_mean={"m0": 100, "m1": 100, "m2": 800, "m3": 800}, strengths={"m0": 2.0},
                    human_tie_rate=0.2, human_share=0.5)
    plain = [r for r in rows if r["order"] == "ab"]
    short = [r["len_a"] for r in plain if r["model_a"] == "m0"]
    long = [r["len_a"] for r in plain if r["model_a"] == "m2"]
    assert np.median(long) / np.median(short) == pytest.approx(8.0, rel=0.15)
    humans = Counter(r["human"] for r in plain)
    assert abs(humans[None] / len(plain) - 0.5) < 0.05
    voted = len(plain) - humans[None]
    assert abs(humans["tie"] / voted - 0.2) < 0.04
    m0_a = [r["human"] for r in plain if r["model_a"] == "m0" and r["human"] in ("a", "b")]
    assert np.mean([h == "a" for h in m0_a]) > 0.75  # sigmoid(2) = 0.88 against strength-0 opponents


def test_a_verdict_in_ab_terms_follows_the_order():
    rows = simulate(judges={"j": (None, ScriptedJudgeParams(position_bias=1.0))})
    for r in rows:
        assert r["verdict"] == ("a" if r["order"] == "ab" else "b")


def test_the_backend_can_build_a_case_by_keyword():
    # judges/backends/scripted.py builds JudgeCase with these keywords: keep them stable.
    case = JudgeCase(first_model="a", first_family=None, first_length=3, first_markdown=0, second_model="b",
                     second_family="f", second_length=4, second_markdown=1, human="tie", perturbation="p",
                     perturbed="first", judge_family="f")
    assert scripted_verdict(ScriptedJudgeParams(), case, np.random.default_rng(0)) in {"first", "second", "tie"}
