"""LMArena's category tags of a battle, as its leaderboard defines them (FastChat's monitor).

A battle carries any number of tags; a category leaderboard counts the battles that carry its tag.
From a release row (``category_tag``, ``conv_metadata``, ``is_code``, ``language``, ``dedup_tag``):

============================ ============================================================================
tag                          when
============================ ============================================================================
``hard_6``                   at least 6 of the 7 ``criteria_v0.1`` flags are true ("Hard Prompts")
``math``                     ``math_v0.1.math``
``if``                       ``if_v0.1.if`` ("Instruction Following")
``creative_writing``         ``creative_writing_v0.1.creative_writing``
``coding``                   ``is_code``
``multiturn``                two or more user turns
``long_user``                at least 500 user tokens (``conv_metadata.sum_user_tokens``)
``english``, ``chinese``, …  the language, one tag per language (:data:`LANGUAGE_TAGS`)
``dedup``                    FastChat's ``dedup_tag``: not ``high_freq``, or ``sampled`` among them
============================ ============================================================================

Battles voted on this site get the tags their own data supports (:func:`site_tags`): the prompt's
language when known, ``multiturn``, ``long_user`` (whitespace tokens of the user turns: no hub
tokenizer here) and ``coding`` (a fenced code block in the prompt or an answer, or a prompt category
that says so). The classifier tags (``hard_6``, ``math``, ``if``, ``creative_writing``) need LMArena's
LLM labeller and are never guessed.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = [
    "CATEGORY_NAMES",
    "HARD_CRITERIA",
    "LANGUAGE_TAGS",
    "LONG_USER_TOKENS",
    "category_label",
    "language_tag",
    "release_tags",
    "site_tags",
]

#: The seven criteria of ``criteria_v0.1``; ``hard_6`` needs at least six of them.
HARD_CRITERIA = ("complexity", "creativity", "domain_knowledge", "problem_solving", "real_world", "specificity",
                 "technical_accuracy")
LONG_USER_TOKENS = 500

#: ISO 639-1 codes (as in the release's ``language``) and FastChat's English names -> tag.
LANGUAGE_TAGS: dict[str, str] = {
    "en": "english", "zh": "chinese", "zh-hant": "chinese", "zh-hans": "chinese", "ru": "russian", "de": "german",
    "fr": "french", "es": "spanish", "ja": "japanese", "ko": "korean", "pt": "portuguese", "it": "italian",
    "pl": "polish", "tr": "turkish", "vi": "vietnamese", "ar": "arabic", "fa": "persian", "uk": "ukrainian",
    "nl": "dutch", "id": "indonesian", "hi": "hindi", "he": "hebrew", "cs": "czech", "sv": "swedish",
    "da": "danish", "fi": "finnish", "no": "norwegian", "hu": "hungarian", "el": "greek", "ro": "romanian",
    "th": "thai", "bn": "bengali", "eu": "basque", "ca": "catalan", "bg": "bulgarian", "sr": "serbian",
    "hr": "croatian", "sk": "slovak", "lt": "lithuanian", "lv": "latvian", "et": "estonian", "ms": "malay",
}
_NAMED_LANGUAGES = {name: name for name in LANGUAGE_TAGS.values()}

#: Display names of the tags, as LMArena's leaderboard names its categories.
CATEGORY_NAMES: dict[str, str] = {
    "hard_6": "Hard Prompts", "coding": "Coding", "math": "Math", "if": "Instruction Following",
    "creative_writing": "Creative Writing", "multiturn": "Multi-Turn", "long_user": "Longer Query",
    "dedup": "Exclude Repeated Prompts",
    **{tag: tag.capitalize() for tag in _NAMED_LANGUAGES},
}


def category_label(tag: str) -> str:
    """The display name of a tag; a free-form category is shown as it is."""
    return CATEGORY_NAMES.get(tag, tag)


def language_tag(language: str) -> str:
    """``"en"`` / ``"English"`` -> ``"english"``; ``""`` for an unknown or undetermined language."""
    key = language.strip().lower()
    if key in _NAMED_LANGUAGES:
        return key
    return LANGUAGE_TAGS.get(key, LANGUAGE_TAGS.get(key.split("-")[0], ""))


def _flag(tags: Mapping[str, object], group: str, name: str) -> bool:
    block = tags.get(group)
    return isinstance(block, Mapping) and block.get(name) is True


def release_tags(
    *, category_tag: Mapping[str, object] | None, is_code: bool | None, language: str, user_turns: int | None,
    user_tokens: int | None, dedup_tag: Mapping[str, object] | None,
) -> frozenset[str]:
    """Tags of one release row (fields absent from the row are None and give no tag)."""
    tags: set[str] = set()
    if category_tag:
        criteria = category_tag.get("criteria_v0.1")
        if isinstance(criteria, Mapping) and sum(criteria.get(c) is True for c in HARD_CRITERIA) >= 6:
            tags.add("hard_6")
        for group, name, tag in (("math_v0.1", "math", "math"), ("if_v0.1", "if", "if"),
                                 ("creative_writing_v0.1", "creative_writing", "creative_writing")):
            if _flag(category_tag, group, name):
                tags.add(tag)
    if is_code:
        tags.add("coding")
    if user_turns is not None and user_turns >= 2:
        tags.add("multiturn")
    if user_tokens is not None and user_tokens >= LONG_USER_TOKENS:
        tags.add("long_user")
    if lang := language_tag(language):
        tags.add(lang)
    if dedup_tag is not None and (dedup_tag.get("high_freq") is not True or dedup_tag.get("sampled") is True):
        tags.add("dedup")
    return frozenset(tags)


def site_tags(
    *, language: str, user_turns: Iterable[str], answers: Iterable[str], category: str = "",
) -> frozenset[str]:
    """Tags a battle voted on this site supports from its own data (see the module docstring)."""
    user = list(user_turns)
    tags: set[str] = {category} if category else set()
    if len(user) >= 2:
        tags.add("multiturn")
    if sum(len(turn.split()) for turn in user) >= LONG_USER_TOKENS:
        tags.add("long_user")
    if any("```" in text for text in [*user, *answers]) or category.lower() in {"code", "coding", "programming"}:
        tags.add("coding")
    if lang := language_tag(language):
        tags.add(lang)
    return frozenset(tags)
