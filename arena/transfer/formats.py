"""Battle files: FastChat ``clean_battle`` JSON, LMArena releases, the arena's own JSONL, and CSV.

Pairwise formats (``fastchat``, ``lmarena``, ``csv``) are read by :mod:`battlefiles`, the reader the
rating CLI uses too; this module turns its rows into ``BattleRecord``s and reads the arena's own JSONL
export (K-wise votes, aspects), whose FastChat-shaped lines go through the same row parser.
:func:`read_records` returns the records and what was skipped, or raises ``RowError`` naming where the
row is (``row N``: 1-based index in a JSON list or Parquet file; ``line N``: a JSONL line; ``row N (line
M)``: a CSV row).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from battlefiles import (
    BattleFileError,
    FileBattle,
    detect_format,
    language_tag,
    pairwise_row,
    raw_rows,
    read_battle_file,
)
from battlefiles.records import parse_bool, parse_time
from battlefiles.style import StyleCounts
from config.errors import ValidationFailed

from ..models import MAX_K, MIN_K, Outcome, VoteKind
from ..verdicts import VoteChoice

FORMATS = ("fastchat", "lmarena", "jsonl", "csv")

WINNER_TO_OUTCOME = {"model_a": Outcome.A, "model_b": Outcome.B, "tie": Outcome.TIE, "both_bad": Outcome.BOTH_BAD}
# FastChat writes "both bad" this way; LMArena writes both_bad.
OUTCOME_TO_WINNER = {Outcome.A: "model_a", Outcome.B: "model_b", Outcome.TIE: "tie", Outcome.BOTH_BAD: "tie (bothbad)"}
# A file repeats four verdicts a million times: build each VoteChoice once.
PAIRWISE_CHOICES = {w: VoteChoice(VoteKind.PAIRWISE, outcome=o) for w, o in WINNER_TO_OUTCOME.items()}
UNKNOWN_JUDGE = "unknown"


class RowError(ValueError):
    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where, self.reason = where, reason


@dataclass(frozen=True, slots=True)
class BattleRecord:
    """One voted battle as files carry it: models by position, the verdict, who and when, what it was about."""

    models: tuple[str, ...]
    choice: VoteChoice
    voter_key: str
    created: datetime | None  # None: the file gave no time (the import stamps it)
    anonymous: bool = True
    prompt_text: str = ""
    category: str = ""
    language: str = ""
    responses: tuple[str, ...] | None = None
    conversations: tuple[list[dict[str, Any]] | None, ...] | None = None
    external_id: str = ""  # the release's battle id: the battle's identity when present
    tags: frozenset[str] = frozenset()
    style: tuple[StyleCounts, ...] | None = None  # per position, from the file's metadata or text
    metadata: Mapping[str, Any] | None = None
    turns: int = 1


@dataclass
class RecordFile:
    """The records of a file and what was skipped."""

    format: str
    records: list[BattleRecord] = field(default_factory=list)
    skipped_self: int = 0


def _text(row: Mapping[str, Any], name: str, *, required: bool = False, default: str = "") -> str:
    value = row.get(name)
    if value is None or value == "":
        if required:
            raise ValueError(f"missing {name}")
        return default
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def _last(conversation: list[dict[str, Any]] | None, role: str) -> str:
    return next((t["content"] for t in reversed(conversation or []) if t["role"] == role), "")


def pairwise_record(battle: FileBattle) -> BattleRecord:
    """A row of a pairwise file -> BattleRecord."""
    conversations = battle.conversations
    responses = (_last(conversations[0], "assistant"), _last(conversations[1], "assistant")) if conversations else None
    return BattleRecord(
        models=(battle.model_a, battle.model_b), choice=PAIRWISE_CHOICES[battle.winner],
        voter_key=battle.voter or UNKNOWN_JUDGE, created=battle.time, anonymous=battle.anonymous,
        prompt_text=battle.prompt_text, category=battle.category, language=battle.language,
        responses=responses,
        conversations=conversations, external_id=battle.battle_id, tags=battle.tags, style=battle.style,
        metadata=battle.metadata, turns=battle.turns,
    )


def native_record(row: Any, *, allowed_aspects: list[str]) -> BattleRecord:
    """One line of the arena's JSONL export -> BattleRecord (FastChat-shaped lines are accepted too)."""
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")
    models = row.get("models")
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise ValueError("models must be a list of model names by position")
    anonymous = parse_bool(row.get("anony"), "anony", default=True)
    if not MIN_K <= len(models) <= MAX_K:
        raise ValueError(f"models must name {MIN_K} to {MAX_K} models")
    if len(set(models)) != len(models) and anonymous:
        raise ValueError("an anonymous battle shows each model once")
    vote = row.get("vote")
    if not isinstance(vote, dict):
        raise ValueError("vote must be an object with outcome, best or ranking")
    try:
        choice = VoteChoice.from_input(vote, allowed_aspects=allowed_aspects)
        choice.validate_for(k=len(models))
    except ValidationFailed as exc:
        raise ValueError(f"vote.{exc.field}: {exc.message}") from None
    prompt = row.get("prompt") or {}
    if not isinstance(prompt, dict):
        raise ValueError("prompt must be an object with text, category, language")
    responses = row.get("responses")
    if responses is not None and (not isinstance(responses, list) or len(responses) != len(models)
                                  or not all(isinstance(r, str) for r in responses)):
        raise ValueError("responses must be a list of strings, one per model")
    tags = row.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise ValueError("tags must be a list of non-empty strings")
    category, language = _text(prompt, "category"), _text(prompt, "language")
    return BattleRecord(
        models=tuple(models), choice=choice, voter_key=_text(row, "voter", default=UNKNOWN_JUDGE),
        created=parse_time(row), anonymous=anonymous, prompt_text=_text(prompt, "text"),
        category=category, language=language,
        responses=tuple(responses) if responses is not None else None,
        external_id=_text(row, "id"), tags=frozenset(tags) | {t for t in (category, language_tag(language)) if t},
    )


def _pairwise_self_battle(row: Any) -> bool:
    models = row.get("models") if isinstance(row, dict) else None
    return isinstance(models, list) and len(models) == 2 and models[0] == models[1]


def read_records(path: Path, fmt: str | None, *, allowed_aspects: list[str]) -> RecordFile:
    """Every record of a battle file in file order (format from the name when ``fmt`` is None).

    Raises RowError at the first malformed row, naming it.
    """
    try:
        if (fmt or detect_format(path)) != "jsonl":  # a pairwise file: read once, by the shared reader
            read = read_battle_file(path, fmt)
            return RecordFile(read.format, [pairwise_record(b) for b in read.battles], read.skipped_self)
        _, rows = raw_rows(path, "jsonl")
        result = RecordFile("jsonl")
        for where, row in rows:
            try:
                if isinstance(row, dict) and "model_a" in row:  # a FastChat-shaped line
                    battle = pairwise_row(row)
                    if battle.self_battle:
                        result.skipped_self += 1
                        continue
                    result.records.append(pairwise_record(battle))
                elif _pairwise_self_battle(row):
                    result.skipped_self += 1
                else:
                    result.records.append(native_record(row, allowed_aspects=allowed_aspects))
            except ValueError as exc:
                raise RowError(where, str(exc)) from None
        return result
    except BattleFileError as exc:
        raise RowError(exc.where, exc.reason) from None


#: Set in ``Battle.source_metadata`` when the file gave no time and the import stamped the battle.
TIME_FROM_IMPORT = {"time": "stamped at import"}


def _tstamp(record: BattleRecord) -> float | None:
    return None if record.created is None else record.created.timestamp()


def fastchat_row(record: BattleRecord) -> dict[str, Any] | None:
    """BattleRecord -> FastChat object, or None for votes FastChat cannot express (K > 2)."""
    if record.choice.kind != VoteKind.PAIRWISE:
        return None
    row: dict[str, Any] = {
        "model_a": record.models[0], "model_b": record.models[1],
        "winner": OUTCOME_TO_WINNER[record.choice.outcome], "judge": record.voter_key,
        "anony": record.anonymous, "tstamp": _tstamp(record),
    }
    if record.created is None:  # the source gave no time: say so again rather than invent one
        del row["tstamp"]
    if record.external_id:
        row["id"] = record.external_id
    if record.language:
        row["language"] = record.language
    if record.category:
        row["category_tag"] = record.category
    # The release's own fields as they came in (a category_tag dict, conv_metadata, is_code, ...).
    row.update({k: v for k, v in (record.metadata or {}).items() if k not in row and k not in TIME_FROM_IMPORT})
    conversations = record.conversations or (None, None)
    for side, position in (("a", 0), ("b", 1)):
        conversation = conversations[position]
        if conversation is None and record.responses is not None and record.prompt_text:
            conversation = [{"role": "user", "content": record.prompt_text},
                            {"role": "assistant", "content": record.responses[position]}]
        if conversation is not None:
            row[f"conversation_{side}"] = conversation
    return row


def native_row(record: BattleRecord) -> dict[str, Any]:
    vote: dict[str, Any] = {}
    fields = record.choice.as_fields()
    if record.choice.kind == VoteKind.PAIRWISE:
        vote["outcome"] = fields["outcome"]
    elif record.choice.kind == VoteKind.BEST_OF_K:
        vote["best"] = fields["best_position"]
    else:
        vote["ranking"] = fields["ranking"]
    if fields["aspects"]:
        vote["aspects"] = fields["aspects"]
    if fields["rationale"]:
        vote["rationale"] = fields["rationale"]
    row: dict[str, Any] = {"models": list(record.models), "vote": vote, "voter": record.voter_key,
                           "anony": record.anonymous, "tstamp": _tstamp(record)}
    if record.created is None:
        del row["tstamp"]
    if record.external_id:
        row["id"] = record.external_id
    if record.prompt_text or record.category or record.language:
        row["prompt"] = {"text": record.prompt_text, "category": record.category, "language": record.language}
    if record.tags:
        row["tags"] = sorted(record.tags)
    if record.responses is not None:
        row["responses"] = list(record.responses)
    return row


def dumps_line(row: Mapping[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))
