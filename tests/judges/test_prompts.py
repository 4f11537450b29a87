"""Judge templates: rendering both orders, and parsing that fails closed."""
from __future__ import annotations

import pytest

from judges.perturbations import PERTURBATIONS, perturbed_position
from judges.prompts import PAIR_V1, RANK_V1, Exchange, parse_pairwise, parse_ranking, render_messages, template_for_k


@pytest.mark.parametrize(("text", "verdict"), [
    ("Reasoning...\n[[A]]", "first"),
    ("[[B]]", "second"),
    ("It is a draw. [[C]]", "tie"),
    ("[[ tie ]]", "tie"),
    ("[[A]] as I said: [[A]]", "first"),          # a repeated tag is still one verdict
    ("[[A]] ... on reflection [[B]]", "unparsed"),  # two different verdicts: refuse to guess
    ("Assistant A is better.", "unparsed"),
    ("[A]", "unparsed"),
    ("", "unparsed"),
    ("[[D]]", "unparsed"),
])
def test_pairwise_verdicts_parse_or_fail_closed(text, verdict):
    assert parse_pairwise(text) == verdict


@pytest.mark.parametrize(("text", "k", "ranking"), [
    ("[[RANKING: B > A > C]]", 3, [[1], [0], [2]]),
    ("[[ranking: c = a > b]]", 3, [[0, 2], [1]]),
    ("[[RANKING: A>B>C>D>E>F]]", 6, [[0], [1], [2], [3], [4], [5]]),
    ("[[RANKING: A > B]]", 3, None),          # C is missing
    ("[[RANKING: A > B > B]]", 3, None),      # B twice
    ("[[RANKING: A > D > B]]", 3, None),      # D was not shown
    ("[[RANKING: A >> B > C]]", 3, None),
    ("[[RANKING: A > B > C]] [[RANKING: C > B > A]]", 3, None),
    ("A is best, then B, then C", 3, None),
])
def test_rankings_parse_only_when_every_answer_appears_once(text, k, ranking):
    assert parse_ranking(text, k) == ranking


def test_the_two_orders_show_the_same_answers_swapped():
    a = Exchange(("What is 2+2?",), ("4",))
    b = Exchange(("What is 2+2?",), ("Four, because two and two make four.",))
    ab = render_messages(PAIR_V1, [a, b])[1]["content"]
    ba = render_messages(PAIR_V1, [b, a])[1]["content"]
    assert ab.index("\n4\n") < ab.index("Four, because") and ba.index("Four, because") < ba.index("\n4\n")
    assert "[[A]]" in render_messages(PAIR_V1, [a, b])[0]["content"]


def test_multi_turn_conversations_are_shown_whole():
    a = Exchange(("Hi", "And then?"), ("Hello!", "Then this."))
    b = Exchange(("Hi", "And then?"), ("Hey.", "That."))
    text = render_messages(PAIR_V1, [a, b])[1]["content"]
    assert text.count("### User:") == 4 and "### Assistant A:\nThen this." in text and "### Assistant B:\nThat." in text


def test_k_wise_battles_use_the_ranking_template():
    assert template_for_k("arena-pair-v1", 2) is PAIR_V1
    assert template_for_k("arena-pair-v1", 4) is RANK_V1
    ex = [Exchange(("q",), (f"answer {i}",)) for i in range(4)]
    assert "Assistant D's Answer" in render_messages(RANK_V1, ex)[1]["content"]
    with pytest.raises(ValueError, match="two answers"):
        render_messages(PAIR_V1, ex)


def test_perturbations_change_only_form_and_pick_a_fixed_side():
    text = "The capital of France is Paris."
    for name, spec in PERTURBATIONS.items():
        changed = spec.answer(text)
        assert text in changed, name   # the original answer is all still there
        assert (changed != text) or spec.note is not None, name
    sides = [perturbed_position(f"battle-{i}", "authority", 2) for i in range(400)]
    assert sides == [perturbed_position(f"battle-{i}", "authority", 2) for i in range(400)]
    assert 150 < sum(sides) < 250   # spread over both sides (binomial(400, .5): ±5 sd)
