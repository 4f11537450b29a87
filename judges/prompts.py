"""Judge prompt templates (versioned), rendering, and verdict parsing that fails closed. No Django here.

A template's name carries its version (``arena-pair-v1``): a changed wording is a new template, so cached
judgments made with the old wording are never mistaken for answers to the new one, and an audit can say
which version a bias was measured under.

Parsing fails closed: an answer is ``unparsed`` unless it holds exactly one verdict tag (repeats of the same
tag are fine; two different tags are not), and a ranking is ``unparsed`` unless it names every shown
answer exactly once. The raw text is always kept by the caller, so a parser fix can be re-applied later.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

LABELS = "ABCDEF"

ShownVerdict = Literal["first", "second", "tie", "unparsed"]


@dataclass(frozen=True)
class Template:
    name: str           # includes the version: a new wording gets a new name
    kind: Literal["pairwise", "kwise"]
    system: str
    kwise: str = ""     # pairwise templates: the K-wise template used for battles with more than two answers


@dataclass(frozen=True)
class Exchange:
    """One conversation as a judge sees it: the user's turns and one answer's turns, in order."""

    user_turns: tuple[str, ...]
    answer_turns: tuple[str, ...]


PAIR_V1 = Template(
    name="arena-pair-v1",
    kind="pairwise",
    kwise="arena-rank-v1",
    system=(
        "You are an impartial judge. Compare the two AI assistants' answers to the user below and decide which "
        "one answers better. Weigh helpfulness, correctness, depth, relevance and clarity. Judge the content, "
        "not the order in which the answers appear, not their length, and not the assistants' names. First "
        "explain your comparison briefly. Then give your verdict on its own last line in exactly this format: "
        "\"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is better, \"[[C]]\" for a tie."
    ),
)

RANK_V1 = Template(
    name="arena-rank-v1",
    kind="kwise",
    system=(
        "You are an impartial judge. Several AI assistants, labelled with letters, answered the user below. "
        "Rank the answers from best to worst by helpfulness, correctness, depth, relevance and clarity. Judge "
        "the content, not the order in which the answers appear, not their length, and not the assistants' "
        "names. First explain your comparison briefly. Then give the ranking on its own last line in exactly "
        "this format, using every letter once, '>' for better and '=' for equally good: "
        "\"[[RANKING: B > A = C]]\"."
    ),
)

TEMPLATES: dict[str, Template] = {t.name: t for t in (PAIR_V1, RANK_V1)}
DEFAULT_TEMPLATE = PAIR_V1.name


def template_get(name: str) -> Template:
    """The template called ``name``; KeyError names the known ones."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise KeyError(f"unknown judge template {name!r}; known: {', '.join(sorted(TEMPLATES))}") from None


def template_for_k(name: str, k: int) -> Template:
    """The template a judge with template ``name`` uses on a battle with ``k`` answers."""
    template = template_get(name)
    return template if k == 2 or template.kind == "kwise" else template_get(template.kwise)


def render_messages(template: Template, exchanges: Sequence[Exchange], *, note: str = "") -> list[dict[str, str]]:
    """The chat messages that ask the judge about ``exchanges``, shown in the given order as A, B, ....

    ``note`` is text appended after the answers (a perturbation such as "most people prefer ...").
    """
    if not 2 <= len(exchanges) <= len(LABELS):
        raise ValueError(f"a judge compares 2 to {len(LABELS)} answers, got {len(exchanges)}")
    if template.kind == "pairwise" and len(exchanges) != 2:
        raise ValueError(f"template {template.name} compares two answers")
    user_turns = exchanges[0].user_turns
    parts: list[str] = []
    if len(user_turns) == 1:
        parts.append(f"[User Question]\n{user_turns[0]}\n")
        for label, exchange in zip(LABELS, exchanges, strict=False):
            parts.append(f"[The Start of Assistant {label}'s Answer]\n{exchange.answer_turns[-1]}\n"
                         f"[The End of Assistant {label}'s Answer]\n")
    else:
        for label, exchange in zip(LABELS, exchanges, strict=False):
            turns = []
            for user, answer in zip(exchange.user_turns, exchange.answer_turns, strict=False):
                turns.append(f"### User:\n{user}\n\n### Assistant {label}:\n{answer}\n")
            parts.append(f"[The Start of Assistant {label}'s Conversation with User]\n" + "\n".join(turns)
                         + f"[The End of Assistant {label}'s Conversation with User]\n")
    if note:
        parts.append(note + "\n")
    return [{"role": "system", "content": template.system}, {"role": "user", "content": "\n".join(parts)}]


_PAIR_TAG = re.compile(r"\[\[\s*(A|B|C|TIE)\s*\]\]", re.IGNORECASE)
_RANK_TAG = re.compile(r"\[\[\s*RANKING\s*:\s*([^\]]*)\]\]", re.IGNORECASE)


def parse_pairwise(text: str) -> ShownVerdict:
    """``first`` / ``second`` / ``tie`` from the answer's verdict tags, or ``unparsed``.

    >>> parse_pairwise("B is clearer. [[B]]")
    'second'
    >>> parse_pairwise("[[A]] ... no, actually [[B]]")
    'unparsed'
    """
    tags = {m.upper() for m in _PAIR_TAG.findall(text)}
    tags = {"C" if t == "TIE" else t for t in tags}
    if len(tags) != 1:
        return "unparsed"
    return {"A": "first", "B": "second", "C": "tie"}[tags.pop()]


def parse_ranking(text: str, k: int) -> list[list[int]] | None:
    """Shown positions (0 = the first shown) as ordered groups, best first; None when it does not parse.

    >>> parse_ranking("... [[RANKING: C > A = B]]", 3)
    [[2], [0, 1]]
    """
    found = {re.sub(r"\s+", "", m.upper()) for m in _RANK_TAG.findall(text)}
    if len(found) != 1:
        return None
    spec = found.pop()
    if not re.fullmatch(r"[A-F](?:[>=][A-F])*", spec):
        return None
    groups: list[list[int]] = [[]]
    for token in re.findall(r"[A-F]|[>=]", spec):
        if token == ">":
            groups.append([])
        elif token != "=":
            groups[-1].append(LABELS.index(token))
    seen = [i for group in groups for i in group]
    if sorted(seen) != list(range(k)):
        return None
    return [sorted(group) for group in groups]
