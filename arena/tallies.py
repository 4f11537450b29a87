"""Upkeep of the vote tallies (``PairTally*`` and ``RankingTally*`` in ``arena.models``).

A vote counts once in the tally row of its facts with tag "" and once per tag of its battle. Writers:

- :func:`vote_tally` when a vote is stored (in the vote's transaction): appends +1 rows to the change tables;
- :func:`votes_reclassified` around anything that flags or unflags votes or voters: appends -1 rows for the
  affected votes before the change and +1 rows after it;
- :func:`records_tallied` for an import's votes, in the import's transaction, and :func:`tallies_rebuild`: grouped,
  added to the day and all-time tables directly through temporary staging tables (:func:`_bulk_tally`). Their
  row locks are held until the import commits: a fold that touches the same rows waits for it.

:func:`tallies_fold` moves the changes into the day and all-time tables; :func:`tallies_rebuild` recomputes
everything from the votes. Readers (``leaderboard.selectors``) add the tables and the unfolded changes.

Locks, so that a vote is never counted under the wrong ``flagged``: a vote reads its voter's ``flagged``
with ``FOR KEY SHARE`` (votes by one voter do not wait for each other) and holds it until it commits;
:func:`votes_reclassified` takes ``FOR UPDATE`` on the voters it flags, which waits for those votes and
makes new ones wait, and on the votes it reclassifies, so that two flaggings of one vote happen one after
the other. (The foreign-key check of the vote's INSERT would take the same lock, but Django's foreign
keys are checked at commit, too late.)
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, tzinfo
from typing import Any

from django.db import connection, transaction
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    Model,
    OuterRef,
    Q,
    QuerySet,
    UniqueConstraint,
    Value,
    When,
)
from django.db.models.functions import Greatest, Least, TruncDate
from django.utils import timezone

from .db_copy import copy_rows
from .models import (
    PAIR_KEY,
    RANKING_KEY,
    BattleSlot,
    BattleTag,
    PairTallyAll,
    PairTallyChange,
    PairTallyDay,
    RankingTallyAll,
    RankingTallyChange,
    RankingTallyDay,
    Vote,
    VoteFlag,
    VoteKind,
    Voter,
)

KWISE_KINDS = (VoteKind.BEST_OF_K, VoteKind.RANKING)


@dataclass(frozen=True)
class TallyTables:
    """The three tables of one kind of tally and the columns of its key (without ``day``)."""

    day: type[Model]
    all: type[Model]
    change: type[Model]
    key: tuple[str, ...]

    def columns(self) -> tuple[str, ...]:
        return tuple(self.change._meta.get_field(name).column for name in self.key)


PAIRS = TallyTables(PairTallyDay, PairTallyAll, PairTallyChange, PAIR_KEY)
RANKINGS = TallyTables(RankingTallyDay, RankingTallyAll, RankingTallyChange, RANKING_KEY)
Staging = Mapping[TallyTables, str]  # temporary tables an import or a rebuild writes to (_bulk_tally)


def tally_day(created: datetime) -> date:
    """The day a vote is tallied under: its date in the site's time zone (the leaderboards' date filters)."""
    return timezone.localdate(created, _site_zone())


def _site_zone() -> tzinfo:
    return timezone.get_default_timezone()


def ranking_key(*, kind: str, best_position: int | None, ranking: Sequence[Sequence[int]] | None,
                contenders: Sequence[int]) -> str:
    """A K-wise vote as ordered groups of contender ids, best first; ids sorted within a group.

    Best of K is the winner, then everyone else tied (``leaderboard.ratings``' reading of it);
    ``contenders`` holds the contender id at each position.
    """
    if kind == VoteKind.BEST_OF_K:
        assert best_position is not None
        groups = [[contenders[best_position]], sorted(c for p, c in enumerate(contenders) if p != best_position)]
    else:
        assert ranking is not None
        groups = [sorted(contenders[p] for p in group) for group in ranking]
    return json.dumps(groups, separators=(",", ":"))


SWAPPED_OUTCOME = {"a": "b", "b": "a"}  # a verdict seen from the other contender (ties stay ties)


def pair_in_order(contender_a: int, contender_b: int, outcome: str | None) -> tuple[int, int, str | None]:
    """A pairwise verdict as the tallies keep it: the lower contender id first, the outcome seen from it.

    Positions are dropped because no fit that reads the tallies has a position effect (Bradley-Terry,
    Plackett-Luce and the Bayesian fits are symmetric in A and B); merging (A, B) with (B, A) halves the
    rows a refit reads. Ties stay ties.
    """
    if contender_a <= contender_b:
        return contender_a, contender_b, outcome
    return contender_b, contender_a, SWAPPED_OUTCOME.get(outcome, outcome)  # type: ignore[arg-type]


# --- Appending changes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TalliedVote:
    """What the tallies need of one vote (the vote path and the importer have it in hand)."""

    created: datetime
    tags: Iterable[str]
    language: str
    anonymous: bool
    flagged: bool
    kind: str
    contenders: Sequence[int]  # contender id per position
    outcome: str | None = None
    best_position: int | None = None
    ranking: Sequence[Sequence[int]] | None = None


def _change_counts(votes: Iterable[TalliedVote]) -> tuple[Counter[tuple[Any, ...]], Counter[tuple[Any, ...]]]:
    """Pair and ranking change counts for ``votes`` by key: (day, *PAIR_KEY) and (day, *RANKING_KEY) values."""
    pairs: Counter[tuple[Any, ...]] = Counter()
    rankings: Counter[tuple[Any, ...]] = Counter()
    for vote in votes:
        day = tally_day(vote.created)
        for tag in ("", *vote.tags):
            facts = (day, tag, vote.language, vote.anonymous, vote.flagged)
            if vote.kind == VoteKind.PAIRWISE:
                pairs[(*facts, *pair_in_order(vote.contenders[0], vote.contenders[1], vote.outcome))] += 1
            else:
                rankings[(*facts, ranking_key(kind=vote.kind, best_position=vote.best_position,
                                              ranking=vote.ranking, contenders=vote.contenders))] += 1
    return pairs, rankings


def _write_changes(votes: Iterable[TalliedVote], *, sign: int = 1, into: Staging | None = None) -> None:
    """Append the tally rows of ``votes`` to the change tables, or to ``into``'s staging tables (COPY)."""
    for tables, counts in zip((PAIRS, RANKINGS), _change_counts(votes), strict=True):
        rows = [(*key, sign * n) for key, n in counts.items()]
        if into is not None and into.get(tables):
            copy_rows(into[tables], ("day", *tables.columns(), "n"), rows)
        else:
            fields = ("day", *(tables.change._meta.get_field(k).attname for k in tables.key), "n")
            tables.change.objects.bulk_create([tables.change(**dict(zip(fields, row, strict=True))) for row in rows],
                                              batch_size=5000)



@contextmanager
def _bulk_tally() -> Iterator[Staging]:
    """Where an import or a rebuild writes its millions of tally rows.

    Postgres: temporary staging tables, added to the day and all-time tables when the block ends and then
    dropped. Written to the change tables instead, they would leave as many dead rows there once folded,
    which every refit's scan of the changes would wade through until a VACUUM. SQLite: the change tables
    (``{}``: no staging), folded when the block ends.
    """
    if connection.vendor != "postgresql":
        yield {}
        tallies_fold()
        return
    quote = connection.ops.quote_name
    staging: dict[TallyTables, str] = {}
    with connection.cursor() as cursor:
        # Sorting millions of staged rows in memory rather than in temporary files (for this transaction only).
        cursor.execute("SET LOCAL work_mem = '256MB'")
        for tables in (PAIRS, RANKINGS):
            name = f"staging_{tables.change._meta.db_table}"
            columns = ", ".join(quote(c) for c in ("day", *tables.columns(), "n"))
            cursor.execute(f"DROP TABLE IF EXISTS {name}")
            cursor.execute(f"CREATE TEMPORARY TABLE {name} AS SELECT {columns} FROM "
                           f"{quote(tables.change._meta.db_table)} WITH NO DATA")
            staging[tables] = name
    yield staging
    with connection.cursor() as cursor:
        for tables, name in staging.items():
            cursor.execute(_upsert_sql(tables.day, ("day", *tables.columns()), name))
            cursor.execute(_all_time_upsert_sql(tables, name))
            cursor.execute(f"DROP TABLE {name}")


def vote_tally(vote: Vote, *, tags: Iterable[str], language: str, contenders: Sequence[int],
               identity_leak: bool) -> None:
    """Count a vote just stored (call it after the vote's INSERT, in the same transaction)."""
    tallied = TalliedVote(
        created=vote.created, tags=tags, language=language, anonymous=vote.anonymous,
        flagged=identity_leak, kind=vote.kind, contenders=contenders, outcome=vote.outcome,
        best_position=vote.best_position, ranking=vote.ranking,
    )
    if connection.vendor != "postgresql":  # SQLite: one writer at a time, nothing to lock
        flagged = Voter.objects.filter(pk=vote.voter_id).values_list("flagged", flat=True).get()
        _write_changes([replace(tallied, flagged=flagged or identity_leak)])
        return
    for tables, counts in zip((PAIRS, RANKINGS), _change_counts([tallied]), strict=True):
        if counts:
            _insert_changes_as_voter_flags(tables, counts, vote.voter_id)


def _insert_changes_as_voter_flags(tables: TallyTables, counts: Mapping[tuple[Any, ...], int], voter_id: int) -> None:
    """INSERT a vote's change rows, each flagged if it says so or if the voter is flagged, in one statement.

    The voter's ``flagged`` is read with ``FOR KEY SHARE``, a lock that lets other votes by the voter
    through but makes a flagging wait (and waits for one in progress) until this transaction ends; reading
    it inside the INSERT saves the vote path a round trip.
    """
    quote = connection.ops.quote_name
    columns = ("day", *tables.columns(), "n")
    flagged_at = columns.index("flagged")
    names = ", ".join(quote(c) for c in columns)
    picked = ", ".join(f"(v.{quote(c)} OR voter.{quote('flagged')})" if c == "flagged" else f"v.{quote(c)}"
                       for c in columns)
    row = "(" + ", ".join(["%s::date", *["%s"] * (len(columns) - 2), "%s::bigint"]) + ")"
    rows = [(*key, n) for key, n in counts.items()]
    assert all(isinstance(r[flagged_at], bool) for r in rows)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(tables.change._meta.db_table)} ({names}) SELECT {picked} "
            f"FROM (VALUES {', '.join([row] * len(rows))}) AS v ({names}) "
            f"CROSS JOIN (SELECT {quote('flagged')} FROM {quote(Voter._meta.db_table)} WHERE id = %s "
            "FOR KEY SHARE) AS voter",
            [x for r in rows for x in r] + [voter_id])
        if cursor.rowcount != len(rows):
            raise RuntimeError(f"voter {voter_id} vanished while its vote was tallied")


@contextmanager
def records_tallied() -> Iterator[Callable[[Iterable[TalliedVote]], None]]:
    """Count an import's votes: call the function this yields with each batch of votes.

    The batches are staged and added to the day and all-time tables once, when the block ends: one pass
    over the all-time table per import, where one per batch rewrote most of it every time (an import of
    2,000,000 votes in 100,000-vote batches spent 8 of its 11 minutes there).
    """
    with _bulk_tally() as staging:
        yield lambda votes: _write_changes(votes, into=staging)


def voters_flagged_locked(voter_ids: Iterable[int]) -> set[int]:
    """Which of ``voter_ids`` are flagged, locking them against flagging until this transaction ends.

    For writers that store votes without the foreign-key lock (the importer's COPY without triggers).
    """
    ids = sorted(set(voter_ids))
    flagged: set[int] = set()
    for start in range(0, len(ids), 10_000):
        chunk = ids[start:start + 10_000]
        flagged.update(Voter.objects.filter(pk__in=chunk).order_by("pk").select_for_update(no_key=True)
                       .filter(flagged=True).values_list("pk", flat=True))
    return flagged


# --- Reclassifying existing votes ----------------------------------------------------------------------------


def _flagged_expression(vote: str = "") -> ExpressionWrapper:
    """SQL for "this vote counts as flagged"; ``vote`` is the path from the queryset's model to the vote."""
    flags = VoteFlag.objects.filter(vote_id=OuterRef(f"{vote}id"))
    return ExpressionWrapper(Q(**{f"{vote}voter__flagged": True}) | Exists(flags), output_field=BooleanField())


def _pair_tally_selects(vote_filter: Q, sign: int) -> Iterator[QuerySet]:
    """SELECTs of (day, tag, language, anonymous, flagged, a, b, outcome, n) for the pairwise votes matching
    ``vote_filter`` (a Q on Vote): one for tag "" and one for the battles' tags."""
    columns = ("f_day", "f_tag", "f_language", "f_anonymous", "f_flagged", "f_a", "f_b", "f_outcome", "f_n")
    zone = _site_zone()
    untagged = Vote.objects.filter(vote_filter, kind=VoteKind.PAIRWISE).values(
        f_day=TruncDate("created", tzinfo=zone), f_tag=Value("", output_field=CharField()),
        f_language=F("battle__language"), f_anonymous=F("anonymous"), f_flagged=_flagged_expression(),
        **_pair_in_order_sql(""),
    ).annotate(f_n=Count("id") * Value(sign)).order_by()
    tagged = BattleTag.objects.filter(_prefixed(vote_filter, "battle__vote__"), battle__vote__kind=VoteKind.PAIRWISE)
    tagged = tagged.values(
        f_day=TruncDate("battle__vote__created", tzinfo=zone), f_tag=F("tag"), f_language=F("battle__language"),
        f_anonymous=F("battle__vote__anonymous"), f_flagged=_flagged_expression("battle__vote__"),
        **_pair_in_order_sql("battle__vote__"),
    ).annotate(f_n=Count("id") * Value(sign)).order_by()
    for query in (untagged, tagged):
        # The INSERT names its columns in this order: make sure the SELECT lists them so.
        assert tuple(query.query.annotation_select) == columns, tuple(query.query.annotation_select)
        yield query


def _pair_in_order_sql(vote: str) -> dict[str, Any]:
    """:func:`pair_in_order` in SQL: ``f_a``, ``f_b`` and ``f_outcome`` for the vote at path ``vote``."""
    a, b, outcome = F(f"{vote}contender_a_id"), F(f"{vote}contender_b_id"), F(f"{vote}outcome")
    swapped = Q(**{f"{vote}contender_a_id__gt": F(f"{vote}contender_b_id")})
    return {
        "f_a": Least(a, b), "f_b": Greatest(a, b),
        "f_outcome": Case(*(When(swapped & Q(**{f"{vote}outcome": old}), then=Value(new))
                            for old, new in SWAPPED_OUTCOME.items()), default=outcome, output_field=CharField()),
    }


def _prefixed(condition: Q, prefix: str) -> Q:
    """``condition`` (on Vote) as seen from a model that reaches the vote through ``prefix``."""
    result = Q(_connector=condition.connector, _negated=condition.negated)
    for child in condition.children:
        result.children.append(_prefixed(child, prefix) if isinstance(child, Q) else (prefix + child[0], child[1]))
    return result


def _insert_pair_changes(vote_filter: Q, sign: int, *, into: Staging | None = None) -> None:
    table = connection.ops.quote_name(into[PAIRS] if into else PairTallyChange._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(c) for c in ("day", *PAIRS.columns(), "n"))
    with connection.cursor() as cursor:
        for query in _pair_tally_selects(vote_filter, sign):
            sql, params = query.query.sql_with_params()
            cursor.execute(f"INSERT INTO {table} ({columns}) {sql}", params)


def _stored_kwise_votes(vote_filter: Q) -> Iterator[TalliedVote]:
    """The K-wise votes matching ``vote_filter`` as TalliedVote, read in chunks (rankings are mapped in Python)."""
    votes = (Vote.objects.filter(vote_filter, kind__in=KWISE_KINDS)
             .annotate(is_flagged=_flagged_expression())
             .values_list("id", "battle_id", "created", "anonymous", "is_flagged", "kind", "best_position", "ranking",
                          "battle__language").order_by("id"))
    rows = list(votes)
    for start in range(0, len(rows), 5000):
        chunk = rows[start:start + 5000]
        battle_ids = [r[1] for r in chunk]
        contenders: dict[Any, dict[int, int]] = {}
        for battle_id, position, contender_id in BattleSlot.objects.filter(battle_id__in=battle_ids).values_list(
                "battle_id", "position", "contender_id"):
            contenders.setdefault(battle_id, {})[position] = contender_id
        tags: dict[Any, list[str]] = {}
        for battle_id, tag in BattleTag.objects.filter(battle_id__in=battle_ids).values_list("battle_id", "tag"):
            tags.setdefault(battle_id, []).append(tag)
        for _, battle_id, created, anonymous, flagged, kind, best, ranking, language in chunk:
            by_position = contenders[battle_id]
            yield TalliedVote(created=created, tags=tags.get(battle_id, ()), language=language, anonymous=anonymous,
                              flagged=flagged, kind=kind, contenders=[by_position[p] for p in sorted(by_position)],
                              best_position=best, ranking=ranking)


def _votes_tally(vote_filter: Q, *, sign: int, into: Staging | None = None) -> None:
    """Append ``sign`` x the tally rows of the stored votes matching ``vote_filter`` (to ``into`` if given)."""
    _insert_pair_changes(vote_filter, sign, into=into)
    _write_changes(_stored_kwise_votes(vote_filter), sign=sign, into=into)


@contextmanager
def votes_reclassified(*, voter_ids: Iterable[int] = (), vote_ids: Iterable[int] = ()) -> Iterator[None]:
    """Keep the tallies right across a change of who or what is flagged.

    Wrap the change (flagging or unflagging voters ``voter_ids``, adding or removing flags of votes
    ``vote_ids``) in this, inside a transaction::

        with votes_reclassified(voter_ids=[voter.id]):
            Voter.objects.filter(id=voter.id).update(flagged=True, flag_reason=reason)
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("votes_reclassified must run inside a transaction")
    voters, votes = sorted(set(voter_ids)), sorted(set(vote_ids))
    if not voters and not votes:
        yield
        return
    if voters:  # waits for votes in flight by these voters; new ones wait for this transaction
        list(Voter.objects.filter(pk__in=voters).order_by("pk").select_for_update().values_list("pk"))
    affected = Q(voter__in=voters) | Q(pk__in=votes)
    list(Vote.objects.filter(affected).order_by("pk").select_for_update().values_list("pk"))
    _votes_tally(affected, sign=-1)
    yield
    _votes_tally(affected, sign=+1)


# --- Folding and rebuilding ----------------------------------------------------------------------------------


def _upsert_sql(target: type[Model], columns: Sequence[str], source: str) -> str:
    """INSERT the grouped sums of ``source`` into ``target``, adding to the rows that exist.

    Grouped and sent in the order of ``target``'s unique index: a million rows then go into the index
    page after page instead of at random places (4x faster for an import's tallies than hash order).
    """
    quote = connection.ops.quote_name
    table, cols = quote(target._meta.db_table), ", ".join(quote(c) for c in columns)
    (unique,) = (c for c in target._meta.constraints if isinstance(c, UniqueConstraint))
    in_index_order = ", ".join(quote(target._meta.get_field(name).column) for name in unique.fields)
    assert sorted(in_index_order.split(", ")) == sorted(cols.split(", ")), (in_index_order, cols)
    return (f"INSERT INTO {table} ({cols}, n) SELECT {cols}, SUM(n) FROM {source} WHERE true "
            f"GROUP BY {in_index_order} ORDER BY {in_index_order} "
            f"ON CONFLICT ({cols}) DO UPDATE SET n = {table}.n + EXCLUDED.n")


def _all_time_upsert_sql(tables: TallyTables, source: str) -> str:
    """Add ``source``'s changes (per day, per language) to the all-time table: once under their language and
    once more under language "" (every language), unless their language is "" already.

    A leaderboard without a language filter -- the default -- then reads one row per (pair, outcome) where it
    summed one per language (LMArena's votes come in over 100 languages). Language "" can double as "every
    language" because a leaderboard cannot filter by the empty language: it is "no filter".
    """
    quote = connection.ops.quote_name
    cols = [quote(c) for c in tables.columns()]
    language = quote(tables.change._meta.get_field("language").column)
    every_language = ", ".join("'' AS " + c if c == language else c for c in cols)
    expanded = (f"(SELECT {', '.join(cols)}, n FROM {source} UNION ALL "
                f"SELECT {every_language}, n FROM {source} WHERE {language} <> '') AS by_language")
    return _upsert_sql(tables.all, tables.columns(), expanded)


class TalliesOutOfStep(RuntimeError):
    """A fold would leave a negative count: something changed votes or flags without ``arena.tallies``."""


@transaction.atomic
def tallies_fold() -> int:
    """Move every change into the day and all-time tables; returns the number of change rows folded.

    On Postgres one statement deletes the changes and adds them up, so a change committed meanwhile is
    either folded or left for the next fold, never both. SQLite runs one writer at a time.

    Raises
    ------
    TalliesOutOfStep
        If a count would go below zero (nothing is changed; ``manage.py rebuild_tallies`` repairs it).
    """
    quote = connection.ops.quote_name
    folded = negative = 0
    for tables in (PAIRS, RANKINGS):
        change = quote(tables.change._meta.db_table)
        with_day = ("day", *tables.columns())
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cols = ", ".join(quote(c) for c in (*with_day, "n"))
                cursor.execute(
                    f"WITH moved AS (DELETE FROM {change} RETURNING {cols}), "
                    f"by_day AS ({_upsert_sql(tables.day, with_day, 'moved')} RETURNING n), "
                    f"all_time AS ({_all_time_upsert_sql(tables, 'moved')} RETURNING n) "
                    "SELECT (SELECT COUNT(*) FROM moved), (SELECT COUNT(*) FROM by_day WHERE n < 0) "
                    "+ (SELECT COUNT(*) FROM all_time WHERE n < 0)"
                )
                moved, below_zero = cursor.fetchone()
            else:
                cursor.execute(_upsert_sql(tables.day, with_day, change))
                cursor.execute(_all_time_upsert_sql(tables, change))
                cursor.execute(f"DELETE FROM {change}")
                moved = cursor.rowcount
                below_zero = tables.day.objects.filter(n__lt=0).count() + tables.all.objects.filter(n__lt=0).count()
        folded, negative = folded + moved, negative + below_zero
        # A vote flagged and unflagged again leaves rows that count nothing.
        tables.day.objects.filter(n=0).delete()
        tables.all.objects.filter(n=0).delete()
    if negative:
        raise TalliesOutOfStep(f"folding the vote tallies would leave {negative} negative counts: votes or flags were "
                               "changed without arena.tallies; run `manage.py rebuild_tallies`")
    return folded


@dataclass(frozen=True)
class RebuildReport:
    pair_rows: int
    ranking_rows: int
    votes: int


@transaction.atomic
def tallies_rebuild() -> RebuildReport:
    """Recompute every tally from the votes (``manage.py rebuild_tallies``).

    The change tables are locked first (Postgres): a vote stored meanwhile waits to append its change
    until the rebuild commits, so it is counted once -- by its change, since the rebuild cannot see it.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            tables = ", ".join(connection.ops.quote_name(t.change._meta.db_table) for t in (PAIRS, RANKINGS))
            cursor.execute(f"LOCK TABLE {tables} IN EXCLUSIVE MODE")
    for tables in (PAIRS, RANKINGS):
        for model in (tables.change, tables.day, tables.all):
            model.objects.all().delete()
    with _bulk_tally() as staging:
        _votes_tally(Q(), sign=+1, into=staging)
    return RebuildReport(pair_rows=PairTallyDay.objects.count(), ranking_rows=RankingTallyDay.objects.count(),
                         votes=Vote.objects.count())


def tally_snapshot() -> dict[str, dict[tuple[Any, ...], int]]:
    """Every tally key with its count, unfolded changes included: per day and all-time, for pairs and rankings.

    What a reader sees; the rebuild check and the tests compare it before and after a rebuild.
    """
    result: dict[str, dict[tuple[Any, ...], int]] = {}
    for name, tables in (("pairs", PAIRS), ("rankings", RANKINGS)):
        key = tuple(tables.day._meta.get_field(k).attname for k in tables.key)
        by_day: Counter[tuple[Any, ...]] = Counter()
        all_time: Counter[tuple[Any, ...]] = Counter()
        for model, counts, fields in ((tables.day, by_day, ("day", *key)), (tables.change, by_day, ("day", *key)),
                                      (tables.all, all_time, key), (tables.change, all_time, key)):
            for *values, n in model.objects.values_list(*fields, "n"):
                counts[tuple(values)] += n
        result[f"{name}_by_day"] = {k: n for k, n in by_day.items() if n != 0}
        result[f"{name}_all_time"] = {k: n for k, n in all_time.items() if n != 0}
    return result
