"""LMArena's category tags, from release rows and from the site's own battles."""
from __future__ import annotations

import pytest

from battlefiles import category_label, language_tag, release_tags, site_tags

CRITERIA = ("complexity", "creativity", "domain_knowledge", "problem_solving", "real_world", "specificity",
            "technical_accuracy")


def _tag(true_criteria: int, **flags: bool) -> dict:
    return {"criteria_v0.1": {c: i < true_criteria for i, c in enumerate(CRITERIA)},
            "math_v0.1": {"math": flags.get("math", False)}, "if_v0.1": {"if": flags.get("if_", False), "score": 3},
            "creative_writing_v0.1": {"creative_writing": flags.get("cw", False), "score": "no"}}


def _tags(**kwargs: object) -> frozenset[str]:
    args = {"category_tag": None, "is_code": None, "language": "", "user_turns": None, "user_tokens": None,
            "dedup_tag": None} | kwargs
    return release_tags(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(("true_criteria", "hard"), [(5, False), (6, True), (7, True)])
def test_hard_6_needs_six_of_seven_criteria(true_criteria, hard):
    assert ("hard_6" in _tags(category_tag=_tag(true_criteria))) is hard


def test_every_release_tag_and_its_threshold():
    tags = _tags(category_tag=_tag(0, math=True, if_=True, cw=True), is_code=True, language="zh", user_turns=2,
                 user_tokens=500, dedup_tag={"high_freq": False, "sampled": True})
    assert tags == {"math", "if", "creative_writing", "coding", "chinese", "multiturn", "long_user", "dedup"}
    assert _tags(user_turns=1, user_tokens=499, is_code=False, language="und") == frozenset()
    # dedup: a high-frequency prompt counts only where it was sampled.
    assert "dedup" not in _tags(dedup_tag={"high_freq": True, "sampled": False})
    assert "dedup" in _tags(dedup_tag={"high_freq": True, "sampled": True})


def test_languages_and_labels():
    assert [language_tag(x) for x in ("en", "English", "zh-Hant", "pt-BR", "und", "")] == [
        "english", "english", "chinese", "portuguese", "", ""]
    assert category_label("hard_6") == "Hard Prompts" and category_label("if") == "Instruction Following"
    assert category_label("my-own") == "my-own"


def test_site_battles_get_what_their_own_data_supports():
    tags = site_tags(language="en", user_turns=["hi", "and " * 600], answers=["```py\nx\n```"], category="writing")
    assert tags == {"english", "multiturn", "long_user", "coding", "writing"}
    assert site_tags(language="", user_turns=["hi"], answers=["hello"]) == frozenset()
