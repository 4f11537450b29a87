"""Battle files: FastChat ``clean_battle`` JSON, the arena's own JSONL, and CSV.

Every reader yields ``BattleRecord``s or raises ``RowError`` naming where the row is in the file
(``row N``: 0-based index in a JSON list; ``line N``: 1-based line of a JSONL or CSV file).
"""
from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.errors import ValidationFailed

from ..choices import VoteChoice
from ..models import MAX_K, MIN_K, Outcome, VoteKind

FORMATS = ("fastchat", "jsonl", "csv")

WINNER_TO_OUTCOME = {"model_a": Outcome.A, "model_b": Outcome.B, "tie": Outcome.TIE, "tie (bothbad)": Outcome.BOTH_BAD}
OUTCOME_TO_WINNER = {v: k for k, v in WINNER_TO_OUTCOME.items()}
# A FastChat file repeats four verdicts a million times: build each VoteChoice once.
PAIRWISE_CHOICES = {w: VoteChoice(VoteKind.PAIRWISE, outcome=o) for w, o in WINNER_TO_OUTCOME.items()}
UNKNOWN_JUDGE = "unknown"


class RowError(ValueError):
    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where, self.reason = where, reason


@dataclass(frozen=True, slots=True)
class BattleRecord:
    """One voted battle as files carry it: models by position, the verdict, who and when."""

    models: tuple[str, ...]
    choice: VoteChoice
    voter_key: str
    created: datetime
    anonymous: bool = True
    prompt_text: str = ""
    category: str = ""
    language: str = ""
    responses: tuple[str, ...] | None = None
    conversations: tuple[list[dict[str, Any]] | None, ...] | None = None


def _text(row: Mapping[str, Any], name: str, *, required: bool = False, default: str = "") -> str:
    value = row.get(name)
    if value is None or value == "":
        if required:
            raise ValueError(f"missing {name}")
        return default
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def _timestamp(row: Mapping[str, Any]) -> datetime:
    value = row.get("tstamp")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError("tstamp must be a number of seconds since the epoch") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("missing or non-numeric tstamp (needed so that re-imports are idempotent)")
    if not 0 <= value < 32503680000:  # year 3000: anything later is a unit mistake (ms for s)
        raise ValueError(f"tstamp {value} is out of range")
    # Whole microseconds, the database's precision, so that an exported time hashes the same.
    return datetime.fromtimestamp(round(value * 1_000_000) / 1_000_000, tz=UTC)


def _anony(row: Mapping[str, Any]) -> bool:
    value = row.get("anony", True)
    if isinstance(value, str):
        if value.lower() not in {"true", "false", "1", "0", ""}:
            raise ValueError("anony must be true or false")
        return value.lower() in {"true", "1", ""}
    if not isinstance(value, bool):
        raise ValueError("anony must be true or false")
    return value


def _conversation(row: Mapping[str, Any], name: str) -> list[dict[str, Any]] | None:
    value = row.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(turn, dict) and isinstance(turn.get("role"), str) and isinstance(turn.get("content"), str)
        for turn in value
    ):
        raise ValueError(f"{name} must be a list of {{role, content}} turns")
    return value


def _first(conversation: list[dict[str, Any]] | None, role: str) -> str:
    return next((t["content"] for t in conversation or [] if t["role"] == role), "")


def fastchat_record(row: Any) -> BattleRecord:
    """One FastChat ``clean_battle`` object -> BattleRecord; ValueError says what is wrong."""
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")
    model_a, model_b = _text(row, "model_a", required=True), _text(row, "model_b", required=True)
    anonymous = _anony(row)
    if model_a == model_b and anonymous:
        raise ValueError("an anonymous battle cannot pit a model against itself")
    winner = row.get("winner")
    if winner not in PAIRWISE_CHOICES:
        raise ValueError(f"winner {winner!r} is not one of {', '.join(PAIRWISE_CHOICES)}")
    conv_a, conv_b = _conversation(row, "conversation_a"), _conversation(row, "conversation_b")
    category = row.get("category_tag")
    return BattleRecord(
        models=(model_a, model_b),
        choice=PAIRWISE_CHOICES[winner],
        voter_key=_text(row, "judge", default=UNKNOWN_JUDGE),
        created=_timestamp(row),
        anonymous=anonymous,
        prompt_text=_first(conv_a, "user"),
        category=category if isinstance(category, str) else "",
        language=_text(row, "language"),
        responses=(_first(conv_a, "assistant"), _first(conv_b, "assistant")) if conv_a and conv_b else None,
        conversations=(conv_a, conv_b) if conv_a and conv_b else None,
    )


def native_record(row: Any, *, allowed_aspects: list[str]) -> BattleRecord:
    """One line of the arena's JSONL export -> BattleRecord (FastChat-shaped lines are accepted too)."""
    if isinstance(row, dict) and "model_a" in row:
        return fastchat_record(row)
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")
    models = row.get("models")
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise ValueError("models must be a list of model names by position")
    anonymous = _anony(row)
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
    return BattleRecord(
        models=tuple(models), choice=choice, voter_key=_text(row, "voter", default=UNKNOWN_JUDGE),
        created=_timestamp(row), anonymous=anonymous, prompt_text=_text(prompt, "text"),
        category=_text(prompt, "category"), language=_text(prompt, "language"),
        responses=tuple(responses) if responses is not None else None,
    )


def csv_record(row: Mapping[str, str]) -> BattleRecord:
    """A CSV row with model_a, model_b, winner, tstamp (+ judge, anony, language, category)."""
    return fastchat_record({
        "model_a": row.get("model_a"), "model_b": row.get("model_b"), "winner": row.get("winner"),
        "judge": row.get("judge") or None, "tstamp": row.get("tstamp") or None, "anony": row.get("anony", ""),
        "language": row.get("language") or None, "category_tag": row.get("category") or None,
    })


def read_records(path: Path, fmt: str, *, allowed_aspects: list[str]) -> Iterator[BattleRecord]:
    """Yield records of a battle file in order; raise RowError at the first malformed row."""
    if fmt == "fastchat":
        try:
            rows = json.loads(path.read_bytes())
        except json.JSONDecodeError as exc:
            raise RowError(f"byte {exc.pos}", f"not valid JSON ({exc.msg})") from None
        if not isinstance(rows, list):
            raise RowError("file", "a FastChat file is a JSON list of battle objects")
        for index, row in enumerate(rows):
            try:
                yield fastchat_record(row)
            except ValueError as exc:
                raise RowError(f"row {index}", str(exc)) from None
    elif fmt == "jsonl":
        with path.open("rb") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield native_record(json.loads(line), allowed_aspects=allowed_aspects)
                except json.JSONDecodeError as exc:
                    raise RowError(f"line {line_no}", f"not valid JSON ({exc.msg})") from None
                except ValueError as exc:
                    raise RowError(f"line {line_no}", str(exc)) from None
    elif fmt == "csv":
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = {"model_a", "model_b", "winner", "tstamp"} - set(reader.fieldnames or [])
            if missing:
                raise RowError("line 1", f"header lacks column(s): {', '.join(sorted(missing))}")
            for row in reader:
                try:
                    yield csv_record(row)
                except ValueError as exc:
                    raise RowError(f"line {reader.line_num}", str(exc)) from None
    else:
        raise RowError("file", f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def fastchat_row(record: BattleRecord) -> dict[str, Any] | None:
    """BattleRecord -> FastChat object, or None for votes FastChat cannot express (K > 2)."""
    if record.choice.kind != VoteKind.PAIRWISE:
        return None
    row: dict[str, Any] = {
        "model_a": record.models[0], "model_b": record.models[1],
        "winner": OUTCOME_TO_WINNER[record.choice.outcome], "judge": record.voter_key,
        "anony": record.anonymous, "tstamp": record.created.timestamp(),
    }
    if record.language:
        row["language"] = record.language
    if record.category:
        row["category_tag"] = record.category
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
                           "anony": record.anonymous, "tstamp": record.created.timestamp()}
    if record.prompt_text:
        row["prompt"] = {"text": record.prompt_text, "category": record.category, "language": record.language}
    if record.responses is not None:
        row["responses"] = list(record.responses)
    return row


def dumps_line(row: Mapping[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))
