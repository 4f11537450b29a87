"""Does an answer say which model wrote it? Pure text checks, no Django.

A model that writes "As Llama, made by Meta, ..." breaks the anonymity of its battle: the vote that
follows is a vote on a name. Such votes are stored (votes are append-only) but flagged, so that
ratings leave them out; staff see the reason.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

MIN_TERM_LENGTH = 3  # shorter words ("AI", "lm") match too much ordinary text


def identity_terms(*, name: str, organization: str = "", family: str = "", words: Iterable[str] = ()) -> list[str]:
    """The words that would identify a contender: its name, the name's leading word, organization, family, extras.

    ``llama-3-8b-instruct`` also yields ``llama`` (a model rarely writes its full identifier but often its
    family's name).
    """
    candidates = [name, re.split(r"[-_/:\s.]", name, maxsplit=1)[0], organization, family, *words]
    seen: dict[str, None] = {}
    for term in candidates:
        term = term.strip()
        if len(term) >= MIN_TERM_LENGTH:
            seen.setdefault(term.casefold(), None)
    return list(seen)


def find_identity_leak(text: str, terms: Iterable[str]) -> str | None:
    """The first identity term that ``text`` contains as a whole word (case-insensitive), else None."""
    folded = text.casefold()
    for term in terms:
        # Word boundaries that also work for terms with punctuation (gpt-4o, claude-3.5).
        if re.search(rf"(?<![\w]){re.escape(term.casefold())}(?![\w])", folded):
            return term
    return None
