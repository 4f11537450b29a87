"""One pairwise battle as a file carries it, and the parser of one row (FastChat, LMArena, CSV).

One permissive row parser serves every pairwise format, so that the database import and the rating
CLI read the same battles from the same file:

- ``winner``: ``model_a``, ``model_b``, ``tie``, and "both bad" as LMArena writes it (``both_bad``) or
  as FastChat does (``tie (bothbad)``); anything else is an error naming the value.
- ``anony`` missing means anonymous: LMArena's releases carry only anonymous battles and omit it.
- time: ``timestamp`` (ISO 8601; no zone means UTC; or a datetime from Parquet) or ``tstamp`` (seconds
  since the epoch); a row with neither has no time (:attr:`FileBattle.time` is None).
- conversations: ``content`` a string, or a list of typed parts; text parts are joined by newlines and
  any other part (an image, a file) becomes a marker such as ``[image: image/png]``, never dropped.
- style counts: from ``conv_metadata`` when the row has it, else from the conversations.
- tags: LMArena's categories (:mod:`battlefiles.categories`) plus a free-form ``category`` string.

A row that pits a model against itself is parsed like any other; the readers skip it and count it
(:class:`battlefiles.readers.BattleRows`), since it says nothing about ratings.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .categories import release_tags
from .style import StyleCounts, conversation_style_counts, metadata_style_counts

__all__ = ["OUTCOME_CODES", "WINNERS", "FileBattle", "Turn", "pairwise_row"]

#: Canonical winners and their outcome codes (the rating core's codes).
OUTCOME_CODES: dict[str, int] = {"model_a": 0, "model_b": 1, "tie": 2, "both_bad": 3}
#: Every spelling accepted in a file -> the canonical winner.
WINNERS: dict[str, str] = {"model_a": "model_a", "model_b": "model_b", "tie": "tie", "both_bad": "both_bad",
                           "tie (bothbad)": "both_bad"}
#: Release fields kept with the battle as they are (``Battle.source_metadata`` in the database).
KEPT_FIELDS = ("category_tag", "conv_metadata", "dedup_tag", "is_code", "evaluation_session_id", "evaluation_order",
               "question_id", "full_conversation")
_LATEST_EPOCH = 32503680000  # year 3000: a larger tstamp is a unit mistake (milliseconds for seconds)

Turn = dict[str, str]


@dataclass(frozen=True, slots=True)
class FileBattle:
    """One pairwise battle read from a file."""

    model_a: str
    model_b: str
    winner: str  # a key of OUTCOME_CODES
    anonymous: bool = True
    time: datetime | None = None
    voter: str = ""  # FastChat's ``judge``; "" when the file does not say
    battle_id: str = ""  # the release's ``id``: the battle's identity when present
    language: str = ""
    category: str = ""  # a free-form category given by the file (also one of ``tags``)
    tags: frozenset[str] = frozenset()
    prompt_text: str = ""
    conversations: tuple[list[Turn], list[Turn]] | None = None
    style: tuple[StyleCounts, StyleCounts] | None = None
    turns: int = 1
    metadata: Mapping[str, Any] | None = None
    where: str = ""  # the row's place in its file ("row 3", "line 7"), for messages about it later

    @property
    def outcome(self) -> int:
        return OUTCOME_CODES[self.winner]

    @property
    def self_battle(self) -> bool:
        return self.model_a == self.model_b


def _name(row: Mapping[str, Any], key: str) -> str:
    if key not in row or row[key] is None:
        raise ValueError(f"missing {key!r}")
    value = row[key]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key!r} must be a non-empty string, got {value!r}")
    return value


def _optional_text(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string, got {value!r}")
    return value


def _winner(row: Mapping[str, Any]) -> str:
    value = row.get("winner")
    if not isinstance(value, str) or value not in WINNERS:
        raise ValueError(f"winner {value!r} is not one of {', '.join(WINNERS)}")
    return WINNERS[value]


def parse_bool(value: Any, key: str, *, default: bool) -> bool:
    """``true``/``false`` (also as the strings ``true``, ``false``, ``1``, ``0``); ``default`` when absent."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false", "1", "0"}:
        return value.lower() in {"true", "1"}
    raise ValueError(f"{key!r} must be true or false, got {value!r}")


def parse_time(row: Mapping[str, Any]) -> datetime | None:
    """The row's ``timestamp`` (ISO 8601, UTC when no zone) or ``tstamp`` (epoch seconds); None if neither."""
    stamp = row.get("timestamp")
    if stamp is not None and stamp != "":
        if isinstance(stamp, str):
            try:
                stamp = datetime.fromisoformat(stamp)
            except ValueError:
                raise ValueError(f"timestamp {stamp!r} is not an ISO 8601 date and time") from None
        if not isinstance(stamp, datetime):
            raise ValueError(f"timestamp must be an ISO 8601 string, got {stamp!r}")
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    value = row.get("tstamp")
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"'tstamp' must be a number of seconds since the epoch, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"'tstamp' must be a number of seconds since the epoch, got {value!r}")
    if not 0 <= value < _LATEST_EPOCH:
        raise ValueError(f"tstamp {value} is out of range (seconds since 1970, before the year 3000)")
    # Whole microseconds, the database's precision, so that an exported time reads back the same.
    return datetime.fromtimestamp(round(value * 1_000_000) / 1_000_000, tz=UTC)


def _part_marker(part: Mapping[str, Any]) -> str:
    kind = part.get("type") or "part"
    detail = part.get("mimeType") or part.get("mime_type") or ""
    return f"[{kind}: {detail}]" if detail else f"[{kind}]"


def _content(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        pieces = []
        for part in content:
            if isinstance(part, str):
                pieces.append(part)
            elif isinstance(part, Mapping) and part.get("type", "text") == "text" and isinstance(part.get("text"), str):
                pieces.append(part["text"])
            elif isinstance(part, Mapping):
                pieces.append(_part_marker(part))
            else:
                raise ValueError(f"{where}: a content part must be a string or an object, got {part!r}")
        return "\n".join(pieces)
    raise ValueError(f"{where}: content must be a string or a list of parts, got {type(content).__name__}")


def _conversation(row: Mapping[str, Any], key: str) -> list[Turn] | None:
    value = row.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ValueError(f"{key} must be a non-empty list of {{role, content}} turns")
    turns = []
    for i, turn in enumerate(value):
        if not isinstance(turn, Mapping) or not isinstance(turn.get("role"), str):
            raise ValueError(f"{key}[{i}] must be an object with a role and a content")
        turns.append({"role": turn["role"], "content": _content(turn.get("content"), f"{key}[{i}]")})
    return turns


def _mapping(row: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = row.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"{key} must be an object, got {type(value).__name__}")
    return value


def _count(value: Any, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
    return value


def _user_turns(conversation: list[Turn] | None) -> list[str]:
    return [t["content"] for t in conversation or [] if t["role"] == "user"]


def _style(meta: Mapping[str, Any] | None, conversations: tuple[list[Turn], list[Turn]] | None,
           ) -> tuple[StyleCounts, StyleCounts] | None:
    if meta is not None:
        a, b = metadata_style_counts(meta, "a"), metadata_style_counts(meta, "b")
        if a is not None and b is not None:
            return a, b
    if conversations is not None:
        return conversation_style_counts(conversations[0]), conversation_style_counts(conversations[1])
    return None


def pairwise_row(row: Any, *, where: str = "") -> FileBattle:
    """Parse one FastChat / LMArena object (or a CSV row turned into a dict); ValueError says what is wrong."""
    if not isinstance(row, Mapping):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    model_a, model_b, winner = _name(row, "model_a"), _name(row, "model_b"), _winner(row)
    conv_a, conv_b = _conversation(row, "conversation_a"), _conversation(row, "conversation_b")
    conversations = (conv_a, conv_b) if conv_a is not None and conv_b is not None else None
    meta = _mapping(row, "conv_metadata")
    category_tag = row.get("category_tag")
    category = ""
    if isinstance(category_tag, str):  # older FastChat files: one category string
        category, category_tag = category_tag, None
    elif category_tag is not None and not isinstance(category_tag, Mapping):
        raise ValueError(f"category_tag must be an object or a string, got {type(category_tag).__name__}")
    category = category or _optional_text(row, "category")
    language = _optional_text(row, "language")
    is_code = parse_bool(row.get("is_code"), "is_code", default=False) if row.get("is_code") is not None else None
    user_turns = _user_turns(conv_a)
    turns = _count(meta.get("turns"), "conv_metadata.turns") if meta else None
    turns = turns or _count(row.get("turn"), "turn") or (len(user_turns) if conv_a else None)
    user_tokens = _count(meta.get("sum_user_tokens"), "conv_metadata.sum_user_tokens") if meta else None
    if user_tokens is None and conv_a is not None:
        user_tokens = sum(len(text.split()) for text in user_turns)
    tags = release_tags(category_tag=category_tag, is_code=is_code, language=language, user_turns=turns,
                        user_tokens=user_tokens, dedup_tag=_mapping(row, "dedup_tag"))
    kept = {key: row[key] for key in KEPT_FIELDS if row.get(key) is not None}
    return FileBattle(
        model_a=model_a, model_b=model_b, winner=winner,
        anonymous=parse_bool(row.get("anony"), "anony", default=True),
        time=parse_time(row), voter=_optional_text(row, "judge"), battle_id=str(row.get("id") or ""),
        language=language, category=category, tags=tags | {category} if category else tags,
        prompt_text=user_turns[0] if user_turns else "", conversations=conversations, style=_style(meta, conversations),
        turns=turns or 1, metadata=kept or None, where=where,
    )

