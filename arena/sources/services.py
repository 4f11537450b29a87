"""Writes behind ``load_contenders`` and ``import_responses``: contenders with their sources, pooled answers.

Both are all or nothing: every entry is checked before anything is written, every problem is reported
(naming the TOML table or JSONL line), and the writes run in one transaction.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from arena.fingerprints import prompt_sha256
from arena.models import Contender, PoolResponse, Prompt
from arena.services import prompt_get_or_create
from config.errors import ValidationFailed

from .config import KINDS, validate_source_config

MAX_REPORTED_ERRORS = 20

# Contender fields a [[contender]] table may set; every other key (but ``source``) belongs to the source config.
_TEXT_FIELDS = {"organization": 200, "family": 100, "license": 100}
_CONTENDER_KEYS = frozenset({"name", "source", "active", "sampling_weight", "identity_words", *_TEXT_FIELDS})


class SpecsInvalid(ValidationFailed):
    """Some entries of a contenders or responses file are invalid; ``errors`` has one line per problem."""

    code = "invalid_entries"

    def __init__(self, errors: Sequence[str], *, what: str) -> None:
        shown = list(errors[:MAX_REPORTED_ERRORS])
        if len(errors) > len(shown):
            shown.append(f"... and {len(errors) - len(shown)} more")
        super().__init__(f"{len(errors)} invalid {what}:\n" + "\n".join(shown))
        self.errors = list(errors)


# --- contenders ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContenderSpec:
    """One checked [[contender]] table; ``fields`` holds only the keys the table gave (others stay as they are)."""

    name: str
    fields: dict[str, Any]


@dataclass
class ContendersLoadReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def contender_spec_from_table(table: Any) -> ContenderSpec:
    """Check one table and split it into contender fields and source config.

    Raises
    ------
    ValidationFailed
        With ``field`` naming the key (``source_config.<key>`` for source keys).
    """
    if not isinstance(table, Mapping):
        raise ValidationFailed("must be a table", field="contender")
    name = table.get("name")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 200:
        raise ValidationFailed("required: a non-empty string of at most 200 characters", field="name")
    kind = table.get("source")
    if kind not in KINDS:
        raise ValidationFailed(f"required: one of {', '.join(KINDS)}", field="source")
    fields: dict[str, Any] = {"source_kind": kind}
    for key, limit in _TEXT_FIELDS.items():
        if key in table:
            if not isinstance(table[key], str) or len(table[key]) > limit:
                raise ValidationFailed(f"must be a string of at most {limit} characters", field=key)
            fields[key] = table[key].strip()
    if "active" in table:
        if not isinstance(table["active"], bool):
            raise ValidationFailed("must be true or false", field="active")
        fields["active"] = table["active"]
    if "sampling_weight" in table:
        weight = table["sampling_weight"]
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight) or weight < 0:
            raise ValidationFailed("must be a number of at least 0", field="sampling_weight")
        fields["sampling_weight"] = float(weight)
    if "identity_words" in table:
        words = table["identity_words"]
        if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words):
            raise ValidationFailed("must be a list of non-empty strings", field="identity_words")
        fields["identity_words"] = [w.strip() for w in words]
    source_keys = {k: v for k, v in table.items() if k not in _CONTENDER_KEYS}
    fields["source_config"] = validate_source_config(kind, source_keys)
    return ContenderSpec(name=name.strip(), fields=fields)


def _table_label(index: int, table: Any) -> str:
    name = table.get("name") if isinstance(table, Mapping) else None
    return f"contender #{index}" + (f" (name {name!r})" if isinstance(name, str) and name else "")


def contender_specs_check(*, tables: Sequence[Any]) -> list[ContenderSpec]:
    """Every table checked; raises :class:`SpecsInvalid` listing each bad one as ``contender #N (name 'x'): ...``."""
    specs: list[ContenderSpec] = []
    errors: list[str] = []
    first_table: dict[str, int] = {}
    for index, table in enumerate(tables, start=1):
        try:
            spec = contender_spec_from_table(table)
        except ValidationFailed as exc:
            where = f"{exc.field}: " if exc.field else ""
            errors.append(f"{_table_label(index, table)}: {where}{exc.message}")
            continue
        if spec.name in first_table:
            errors.append(f"{_table_label(index, table)}: name: already used by contender #{first_table[spec.name]}")
            continue
        first_table[spec.name] = index
        specs.append(spec)
    if not tables:
        errors.append("no [[contender]] tables")
    if errors:
        raise SpecsInvalid(errors, what="contender table(s)")
    return specs


@transaction.atomic
def contenders_load(*, specs: Sequence[Any]) -> ContendersLoadReport:
    """Create or update contenders by name from ``[[contender]]`` tables (dicts), all or nothing.

    Keys a table leaves out keep their current value on an existing contender (the model's default on a new
    one), except the source: its kind and config are replaced by what the table says.

    Raises
    ------
    SpecsInvalid
        Before anything is written, listing every invalid table.
    """
    checked = contender_specs_check(tables=specs)
    existing = {c.name: c for c in Contender.objects.select_for_update().filter(name__in=[s.name for s in checked])}
    report = ContendersLoadReport()
    for spec in checked:
        contender = existing.get(spec.name)
        if contender is None:
            Contender.objects.create(name=spec.name, **spec.fields)
            report.created.append(spec.name)
            continue
        changed = [k for k, v in spec.fields.items() if getattr(contender, k) != v]
        if not changed:
            report.unchanged.append(spec.name)
            continue
        for key in changed:
            setattr(contender, key, spec.fields[key])
        contender.save(update_fields=changed)
        report.updated.append(spec.name)
    return report


# --- pooled responses ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolRecord:
    line: int
    prompt: str
    model: str
    response: str
    category: str = ""
    language: str = ""
    token_count: int | None = None


@dataclass
class PoolImportReport:
    records: int = 0
    prompts_created: int = 0
    responses_created: int = 0
    responses_updated: int = 0
    responses_unchanged: int = 0
    not_pool_contenders: list[str] = field(default_factory=list)   # answers stored, but their source is not 'pool'


def _text(data: Mapping[str, Any], key: str, *, required: bool) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{key}: {'missing' if value is None else 'must be a string'}")
    if required and not value.strip():
        raise ValueError(f"{key}: empty")
    return value


def pool_record_from_json(line: int, data: Any) -> PoolRecord:
    """One JSONL object as a :class:`PoolRecord`; raises ValueError saying what is wrong (without the line)."""
    if not isinstance(data, Mapping):
        raise ValueError("not a JSON object")
    token_count = data.get("token_count")
    if token_count is not None and (isinstance(token_count, bool) or not isinstance(token_count, int)
                                    or token_count < 0):
        raise ValueError("token_count: must be a whole number of at least 0")
    return PoolRecord(line=line, prompt=_text(data, "prompt", required=True), model=_text(data, "model", required=True),
                      response=_text(data, "response", required=True), category=_text(data, "category", required=False),
                      language=_text(data, "language", required=False), token_count=token_count)


def pool_records_from_jsonl(lines: Iterable[str]) -> list[PoolRecord]:
    """Parse ``{prompt, model, response[, category, language, token_count]}`` lines; blank lines are skipped.

    Raises
    ------
    SpecsInvalid
        Listing every bad line as ``line N: ...``.
    """
    records: list[PoolRecord] = []
    errors: list[str] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            records.append(pool_record_from_json(number, json.loads(raw)))
        except json.JSONDecodeError as exc:
            errors.append(f"line {number}: malformed JSON ({exc.msg} at column {exc.colno})")
        except ValueError as exc:
            errors.append(f"line {number}: {exc}")
    if errors:
        raise SpecsInvalid(errors, what="line(s)")
    return records


@transaction.atomic
def pool_responses_import(*, records: Sequence[PoolRecord]) -> PoolImportReport:
    """Store pre-generated answers: a Prompt per new text, a PoolResponse per (prompt, contender), all or nothing.

    An existing answer of the same contender to the same prompt gets the new text. Every contender must
    exist already (``load_contenders`` creates them).

    Raises
    ------
    SpecsInvalid
        Before anything is written: unknown models, or one file answering a (prompt, model) pair twice.
    """
    contenders = {c.name: c for c in Contender.objects.filter(name__in={r.model for r in records})}
    errors: list[str] = []
    first_line: dict[tuple[str, str], int] = {}
    for record in records:
        if record.model not in contenders:
            errors.append(f"line {record.line}: unknown model {record.model!r} (create it with load_contenders)")
            continue
        pair = (prompt_sha256(record.prompt), record.model)
        if pair in first_line:
            errors.append(f"line {record.line}: a second answer of {record.model!r} to the prompt of line "
                          f"{first_line[pair]}")
            continue
        first_line[pair] = record.line
    if errors:
        raise SpecsInvalid(errors, what="line(s)")
    shas = {prompt_sha256(r.prompt) for r in records}
    known = set(Prompt.objects.filter(sha256__in=shas).values_list("sha256", flat=True))
    report = PoolImportReport(records=len(records), prompts_created=len(shas - known))
    for record in records:
        prompt = prompt_get_or_create(text=record.prompt, category=record.category, language=record.language)
        answer, created = PoolResponse.objects.get_or_create(
            prompt=prompt, contender=contenders[record.model],
            defaults={"text": record.response, "token_count": record.token_count})
        if created:
            report.responses_created += 1
        elif (answer.text, answer.token_count) == (record.response, record.token_count):
            report.responses_unchanged += 1
        else:
            answer.text, answer.token_count = record.response, record.token_count
            answer.save(update_fields=["text", "token_count"])
            report.responses_updated += 1
    report.not_pool_contenders = sorted({c.name for c in contenders.values() if c.source_kind != "pool"})
    return report
