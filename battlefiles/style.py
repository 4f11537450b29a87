"""Style counts of an answer: the one place they are computed, from text or from LMArena's metadata.

Four counts per answer, in :data:`STYLE_FEATURES` order: length in tokens, markdown headers, list
items and bold spans. They are what FastChat's style control reads (``sum_assistant_*_tokens``,
``header_count_*``, ``list_count_*``, ``bold_count_*`` of a battle's ``conv_metadata``), counted the
way FastChat's ``add_markdown_info.py`` counts them:

- fenced code blocks (```...```) are removed first, so a ``# comment`` in code is not a header;
- a header is a line starting with one to six ``#`` and a whitespace (h1-h6, summed);
- a list item is a line starting with optional indentation, then ``-``, ``*`` or ``+`` (unordered) or
  digits and ``.`` (ordered), then a whitespace (both summed);
- "whitespace" in those two rules is ASCII whitespace: LMArena's own counts treat ``1.`` followed by an
  EM SPACE as no list item (one answer of its 100 complete rows shows it), so we do the same;
- a bold span is ``**...**`` or ``__...__`` on one line (both summed).

Tokens differ on purpose: LMArena counts them with an OpenAI tokenizer (tiktoken), whose vocabulary
would have to be downloaded; we count whitespace-separated words. Style control only uses the ratio
``(a - b) / (a + b + 1)``, on which a tokenizer that is roughly proportional to words has little effect
(``tests/battlefiles`` measures the difference on LMArena's 100 complete rows). When a file carries
``conv_metadata``, its counts are used as they are.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = ["STYLE_FEATURES", "StyleCounts", "conversation_style_counts", "metadata_style_counts", "text_style_counts"]

#: Feature names, in column order.
STYLE_FEATURES: tuple[str, ...] = ("length", "headers", "lists", "bold")

#: Raw counts of one answer (or the sum over a conversation's answers), in STYLE_FEATURES order.
StyleCounts = tuple[int, int, int, int]

_CODE_BLOCK = re.compile(r"```[^`]*```")
_HEADER = re.compile(r"^#{1,6}\s", re.MULTILINE | re.ASCII)
_LIST_ITEM = re.compile(r"^\s*(?:\d+\.|[-*+])\s", re.MULTILINE | re.ASCII)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")


def text_style_counts(text: str) -> StyleCounts:
    """Style counts of one markdown answer.

    Parameters
    ----------
    text : str

    Returns
    -------
    tuple of 4 int
        ``(tokens, headers, list items, bold spans)``.
    """
    prose = _CODE_BLOCK.sub("", text)
    return (len(text.split()), len(_HEADER.findall(prose)), len(_LIST_ITEM.findall(prose)),
            len(_BOLD.findall(prose)))


def content_text(content: object) -> str:
    """The text of a turn's content: a string, or the ``text`` of a list of typed parts (others skipped)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part["text"] for part in content
                         if isinstance(part, Mapping) and isinstance(part.get("text"), str))
    return ""


def conversation_style_counts(conversation: Iterable[Mapping[str, object]]) -> StyleCounts:
    """Style counts of a conversation's assistant turns, joined as FastChat joins them (one newline).

    Parameters
    ----------
    conversation : iterable of mapping
        Turns ``{"role": "user" | "assistant", "content": str | list of parts}``.
    """
    answers = "\n".join(content_text(turn.get("content")) for turn in conversation if turn.get("role") == "assistant")
    return text_style_counts(answers)


def _count(value: object, name: str) -> int:
    """A count, or a dict of counts to sum (h1..h6, ordered/unordered, ** / __), as FastChat sums them."""
    if isinstance(value, bool):
        raise ValueError(f"conv_metadata.{name} must be a count, got {value!r}")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, Mapping) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                          for v in value.values()):
        return sum(value.values())
    raise ValueError(f"conv_metadata.{name} must be a count or a dict of counts, got {value!r}")


def metadata_style_counts(conv_metadata: Mapping[str, object], side: str) -> StyleCounts | None:
    """Style counts of side ``"a"`` or ``"b"`` from LMArena's ``conv_metadata``; None if it lacks them.

    Raises
    ------
    ValueError
        A count that is not a non-negative integer (or a dict of them), naming the key.
    """
    keys = (f"sum_assistant_{side}_tokens", f"header_count_{side}", f"list_count_{side}", f"bold_count_{side}")
    if not all(key in conv_metadata for key in keys):
        return None
    tokens, headers, lists, bold = (_count(conv_metadata[key], key) for key in keys)
    return tokens, headers, lists, bold
