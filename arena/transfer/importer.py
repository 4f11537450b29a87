"""Bulk import of voted battles: all or nothing, idempotent, fast on Postgres.

Rows are checked before anything is written; the writes happen in one transaction, so a failure leaves
the database as it was. On Postgres the rows go in with COPY (a million battles are four million rows
across three tables, too many for ORM objects); elsewhere with bulk_create.
"""
from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from battlefiles import conversation_style_counts, text_style_counts
from battlefiles.style import StyleCounts

from ..db_copy import copy_rows
from ..fingerprints import prompt_sha256, vote_fingerprint, vote_fingerprint_base
from ..ids import uuid7
from ..models import (
    MAX_K,
    MIN_K,
    Battle,
    BattleSlot,
    BattleStatus,
    BattleTag,
    Contender,
    Prompt,
    Vote,
    VoteKind,
    Voter,
)
from ..tallies import TalliedVote, records_tallied, voters_flagged_locked
from .formats import TIME_FROM_IMPORT, BattleRecord

Progress = Callable[[int], None]
CHUNK = 50_000


@dataclass(frozen=True)
class ImportReport:
    rows: int
    added: int
    already_present: int
    contenders_created: int


def record_fingerprints(records: Sequence[BattleRecord]) -> list[str]:
    """Fingerprint every record; identical rows in one file get occurrence 0, 1, 2 ... in file order."""
    seen: Counter[str] = Counter()
    verdicts: dict[int, str] = {}
    fingerprints = []
    for record in records:
        verdict = verdicts.get(id(record.choice))
        if verdict is None:
            verdict = verdicts[id(record.choice)] = record.choice.verdict_key()
        base = vote_fingerprint_base(voter_key=record.voter_key, models=record.models, verdict_key=verdict,
                                     created=record.created, anonymous=record.anonymous,
                                     prompt_text=record.prompt_text, external_id=record.external_id)
        fingerprints.append(vote_fingerprint(base, seen[base]))
        seen[base] += 1
    return fingerprints


def _existing_fingerprints(fingerprints: list[str]) -> set[str]:
    if not Vote.objects.exists():
        return set()
    found: set[str] = set()
    if connection.vendor == "postgresql":
        # One array parameter per chunk: an IN list of 50,000 placeholders costs more to build than to run.
        with connection.cursor() as cursor:
            for start in range(0, len(fingerprints), 10 * CHUNK):
                cursor.execute("SELECT fingerprint FROM arena_vote WHERE fingerprint = ANY(%s)",
                               [fingerprints[start:start + 10 * CHUNK]])
                found.update(row[0] for row in cursor.fetchall())
        return found
    for start in range(0, len(fingerprints), CHUNK):
        chunk = fingerprints[start:start + CHUNK]
        found.update(Vote.objects.filter(fingerprint__in=chunk).values_list("fingerprint", flat=True))
    return found


def _ensure_contenders(names: set[str]) -> tuple[dict[str, int], int]:
    before = Contender.objects.count()
    Contender.objects.bulk_create([Contender(name=n) for n in sorted(names)], ignore_conflicts=True)
    ids = dict(Contender.objects.filter(name__in=names).values_list("name", "id"))
    return ids, Contender.objects.count() - before


def _ensure_voters(keys: set[str]) -> dict[str, int]:
    if connection.vendor == "postgresql":
        # One set-based upsert: building ORM objects for every distinct judge of a big file costs seconds.
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO arena_voter (key, ip_hash, created, flagged, flag_reason) "
                "SELECT k, '', now(), false, '' FROM unnest(%s::text[]) AS k ON CONFLICT (key) DO NOTHING",
                [sorted(keys)],
            )
            cursor.execute("SELECT key, id FROM arena_voter WHERE key = ANY(%s)", [list(keys)])
            return dict(cursor.fetchall())
    Voter.objects.bulk_create([Voter(key=k) for k in sorted(keys)], ignore_conflicts=True)
    return dict(Voter.objects.filter(key__in=keys).values_list("key", "id"))


def _ensure_prompts(records: Iterable[BattleRecord]) -> dict[str, int]:
    prompts: dict[str, Prompt] = {}
    for r in records:
        if r.prompt_text:
            sha = prompt_sha256(r.prompt_text)
            prompts.setdefault(sha, Prompt(text=r.prompt_text, sha256=sha, category=r.category, language=r.language))
    Prompt.objects.bulk_create(list(prompts.values()), ignore_conflicts=True, batch_size=5000)
    ids: dict[str, int] = {}
    shas = list(prompts)
    for start in range(0, len(shas), CHUNK):
        ids.update(Prompt.objects.filter(sha256__in=shas[start:start + CHUNK]).values_list("sha256", "id"))
    return ids


BATTLE_COLUMNS = ("id", "prompt_id", "k", "voter_id", "anonymous", "created", "revealed_at", "status", "turns",
                  "language", "category", "external_id", "source_metadata")
SLOT_COLUMNS = ("battle_id", "position", "contender_id", "sample", "response", "conversation", "token_count",
                "latency_ms", "style_tokens", "style_headers", "style_lists", "style_bold")
TAG_COLUMNS = ("battle_id", "tag")
VOTE_COLUMNS = ("battle_id", "voter_id", "created", "kind", "outcome", "best_position", "ranking", "aspects",
                "rationale", "idempotency_key", "fingerprint", "contender_a_id", "contender_b_id", "anonymous")


def slot_style(record: BattleRecord, position: int) -> StyleCounts | None:
    """A slot's style counts: the file's (LMArena's conv_metadata), else counted from its text, else unknown."""
    if record.style is not None:
        return record.style[position]
    if record.conversations and record.conversations[position] is not None:
        return conversation_style_counts(record.conversations[position])
    if record.responses is not None:
        return text_style_counts(record.responses[position])
    return None


@dataclass(frozen=True)
class _Batch:
    """Records to write with the ids they will get; rows for each table are generated lazily from it."""

    items: Sequence[tuple[BattleRecord, str]]
    battle_ids: list[uuid.UUID]
    contenders: dict[str, int]
    voters: dict[str, int]
    prompts: dict[str, int]
    stamped: datetime  # the time of a battle whose file gave none

    def battle_rows(self) -> Iterator[tuple]:
        for (record, _), battle_id in zip(self.items, self.battle_ids, strict=True):
            prompt_id = self.prompts[prompt_sha256(record.prompt_text)] if record.prompt_text else None
            created = record.created or self.stamped
            metadata = dict(record.metadata or {}) | (TIME_FROM_IMPORT if record.created is None else {})
            yield (battle_id, prompt_id, len(record.models), self.voters[record.voter_key], record.anonymous,
                   created, created, BattleStatus.VOTED.value, record.turns, record.language, record.category,
                   record.external_id, json.dumps(metadata) if metadata else None)

    def slot_rows(self) -> Iterator[tuple]:
        for (record, _), battle_id in zip(self.items, self.battle_ids, strict=True):
            for position, model in enumerate(record.models):
                conversation = record.conversations[position] if record.conversations else None
                sample = record.models[:position].count(model)  # >0 only in named battles showing a model twice
                style = slot_style(record, position) or (None, None, None, None)
                yield (battle_id, position, self.contenders[model], sample,
                       record.responses[position] if record.responses else "",
                       json.dumps(conversation) if conversation is not None else None, None, None, *style)

    def tag_rows(self) -> Iterator[tuple]:
        for (record, _), battle_id in zip(self.items, self.battle_ids, strict=True):
            for tag in sorted(record.tags):
                yield battle_id, tag

    def vote_rows(self) -> Iterator[tuple]:
        for (record, fingerprint), battle_id in zip(self.items, self.battle_ids, strict=True):
            fields = record.choice.as_fields()
            yield (battle_id, self.voters[record.voter_key], record.created or self.stamped, fields["kind"],
                   fields["outcome"],
                   fields["best_position"], json.dumps(fields["ranking"]) if fields["ranking"] is not None else None,
                   json.dumps(fields["aspects"]) if fields["aspects"] else "{}", fields["rationale"], None,
                   fingerprint, *self._pair(record), record.anonymous)

    def tallied_votes(self, flagged_voters: set[int]) -> Iterator[TalliedVote]:
        for record, _ in self.items:
            fields = record.choice.as_fields()
            yield TalliedVote(
                created=record.created or self.stamped, tags=record.tags, language=record.language,
                anonymous=record.anonymous, flagged=self.voters[record.voter_key] in flagged_voters,
                kind=fields["kind"], contenders=[self.contenders[m] for m in record.models],
                outcome=fields["outcome"], best_position=fields["best_position"], ranking=fields["ranking"])

    def _pair(self, record: BattleRecord) -> tuple[int | None, int | None]:
        if record.choice.kind != VoteKind.PAIRWISE:
            return None, None
        return self.contenders[record.models[0]], self.contenders[record.models[1]]


def _skip_per_row_triggers(*, contender_ids: list[int], voter_ids: list[int], prompt_ids: list[int]) -> bool:
    """On Postgres as a superuser, turn off per-row trigger work for this transaction, keeping its guarantees.

    Foreign-key checks run as one trigger per inserted row (six million for a million battles) and
    dominate a bulk load. Instead: take the same FOR KEY SHARE locks that those checks take, once per
    referenced row, and check that every one is still there, so nothing we point at can vanish before
    commit; the battle rows we point at are our own. The cross-table rules of migration 0002 hold by
    construction (K = number of models, positions 0..K-1, repeats only in named battles, kind from K,
    vote by the battle's voter, the vote's copies from the same record): ``_check_records`` has just
    checked every record. The caller turns the triggers back on (``_restore_triggers``) right after its
    COPYs, so the rest of an enclosing transaction runs with every check. Without the privilege the
    import runs with every trigger, only slower.
    """
    with connection.cursor() as cursor:
        for table, ids in (("arena_contender", contender_ids), ("arena_voter", voter_ids),
                           ("arena_prompt", prompt_ids)):
            cursor.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE id = ANY(%s) FOR KEY SHARE) AS t",
                           [ids])
            if cursor.fetchone()[0] != len(set(ids)):
                raise ImportConflict(f"rows of {table} this import refers to were deleted meanwhile; try again")
    try:
        with transaction.atomic(), connection.cursor() as cursor:  # a savepoint: a refusal leaves us usable
            cursor.execute("SET LOCAL session_replication_role = replica")
    except DatabaseError:
        return False
    return True


def _restore_triggers() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = origin")


class ImportConflict(Exception):
    """The database changed under the import in a way that would break its references."""


def _check_records(records: Sequence[BattleRecord]) -> None:
    """The rules the database triggers enforce, checked here for any caller (readers check them too)."""
    for index, r in enumerate(records):
        k = len(r.models)
        if not MIN_K <= k <= MAX_K:
            raise ValueError(f"record {index}: {k} models; a battle shows {MIN_K} to {MAX_K}")
        if r.anonymous and len(set(r.models)) != k:
            raise ValueError(f"record {index}: an anonymous battle shows each model once")
        if (r.choice.kind == VoteKind.PAIRWISE) != (k == 2):
            raise ValueError(f"record {index}: a {r.choice.kind} vote does not fit a battle of {k}")
        if r.choice.best_position is not None and r.choice.best_position >= k:
            raise ValueError(f"record {index}: best position {r.choice.best_position} of {k}")
        if r.choice.ranking is not None and sorted(p for g in r.choice.ranking for p in g) != list(range(k)):
            raise ValueError(f"record {index}: the ranking must name every position once")


def _write_postgres(batch: _Batch) -> None:
    copy_rows(Battle._meta.db_table, BATTLE_COLUMNS, batch.battle_rows())
    copy_rows(BattleSlot._meta.db_table, SLOT_COLUMNS, batch.slot_rows())
    copy_rows(Vote._meta.db_table, VOTE_COLUMNS, batch.vote_rows())
    copy_rows(BattleTag._meta.db_table, TAG_COLUMNS, batch.tag_rows())


def _write_orm(batch: _Batch) -> None:
    def objects(model: type, columns: Sequence[str], tuples: Iterable[tuple], json_columns: set[str]) -> list:
        return [model(**{c: (json.loads(v) if c in json_columns and v is not None else v)
                         for c, v in zip(columns, t, strict=True)}) for t in tuples]

    Battle.objects.bulk_create(objects(Battle, BATTLE_COLUMNS, batch.battle_rows(), {"source_metadata"}),
                               batch_size=2000)
    BattleSlot.objects.bulk_create(objects(BattleSlot, SLOT_COLUMNS, batch.slot_rows(), {"conversation"}),
                                   batch_size=2000)
    Vote.objects.bulk_create(objects(Vote, VOTE_COLUMNS, batch.vote_rows(), {"ranking", "aspects"}), batch_size=2000)
    BattleTag.objects.bulk_create(objects(BattleTag, TAG_COLUMNS, batch.tag_rows(), set()), batch_size=5000)


@transaction.atomic
def battles_import(*, records: Sequence[BattleRecord], batch_size: int = 100_000,
                   progress: Progress | None = None) -> ImportReport:
    """Store every record not already in the database; a second import of the same file adds nothing.

    A record without a time gets the time of this import (``Battle.source_metadata`` says so, and an
    export leaves the time out again); its identity does not depend on it.

    Raises ValueError for a record that breaks the data model, ImportConflict if referenced rows
    vanish meanwhile; either way nothing is written.
    """
    _check_records(records)
    fingerprints = record_fingerprints(records)
    existing = _existing_fingerprints(fingerprints)
    new = [(r, f) for r, f in zip(records, fingerprints, strict=True) if f not in existing]
    contenders, contenders_created = _ensure_contenders({m for r, _ in new for m in r.models})
    voters = _ensure_voters({r.voter_key for r, _ in new})
    prompts = _ensure_prompts(r for r, _ in new)
    write, skipped = _write_orm, False
    if connection.vendor == "postgresql":
        write = _write_postgres
        skipped = _skip_per_row_triggers(contender_ids=list(contenders.values()), voter_ids=list(voters.values()),
                                         prompt_ids=list(prompts.values()))
    stamped = timezone.now()
    flagged_voters = voters_flagged_locked(voters.values())
    with records_tallied() as tally:
        for start in range(0, len(new), batch_size):
            items = new[start:start + batch_size]
            batch = _Batch(items, [uuid7() for _ in items], contenders, voters, prompts, stamped)
            write(batch)
            tally(batch.tallied_votes(flagged_voters))
            if progress is not None:
                progress(len(items))
    if skipped:
        _restore_triggers()
    return ImportReport(rows=len(records), added=len(new), already_present=len(records) - len(new),
                        contenders_created=contenders_created)
