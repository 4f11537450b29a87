"""Reads for the leaderboard: the votes a configuration counts, aggregated in SQL.

A refit must not read millions of votes: Bradley-Terry, Plackett-Luce and Bayesian fits read the vote
tallies (``arena.tallies``: counts per day, category, language and verdict, kept up with every vote), a
few thousand rows. Online Elo (order matters), style control (per-battle covariates) and per-aspect
verdicts still read the votes, each in one query.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from datetime import date, datetime, time

import numpy as np
from django.db import connection
from django.db.models import Count, Exists, F, Model, OuterRef, Q, QuerySet, Sum
from django.db.models.fields.json import KT
from django.utils import timezone

from arena.models import Battle, BattleSlot, BattleTag, Contender, Vote, VoteKind
from arena.tallies import PAIRS, RANKINGS, TallyTables
from battlefiles import category_label
from config.errors import ValidationFailed
from leaderboard.ratings import STYLE_FEATURES, EloBattles, PairCounts, RankingCounts, style_features

from .config import LeaderboardConfig
from .models import Snapshot

OUTCOME_CODE = {"a": 0, "b": 1, "tie": 2, "both_bad": 3}


def counted_votes(config: LeaderboardConfig) -> QuerySet[Vote]:
    """The votes a configuration counts (before tie handling, which the fit does)."""
    votes = Vote.objects.all()
    if not config.include_named:
        votes = votes.filter(anonymous=True)
    if config.category:  # a battle's categories are its tags (LMArena's hard_6, math, ... or a source's own)
        votes = votes.filter(Exists(BattleTag.objects.filter(battle_id=OuterRef("battle_id"), tag=config.category)))
    if config.language:
        votes = votes.filter(battle__language=config.language)
    if config.date_from:
        votes = votes.filter(created__gte=day_start(config.date_from))
    if config.date_to:
        votes = votes.filter(created__lt=day_start(config.date_to, next_day=True))
    if config.exclude_flagged:
        votes = votes.filter(voter__flagged=False).exclude(flags__isnull=False)
    if config.aspect:
        votes = votes.filter(aspects__has_key=config.aspect)
    if config.method in ("bt", "elo"):  # pairwise models: K-wise votes are not part of their data
        votes = votes.filter(kind=VoteKind.PAIRWISE)
    return votes


def day_start(iso: str, *, next_day: bool = False) -> datetime:
    """The start of day ``iso`` (or of the day after) in the site's time zone: date filters are inclusive days."""
    day = date.fromordinal(date.fromisoformat(iso).toordinal() + (1 if next_day else 0))
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_default_timezone())


def _pairwise_rows(config: LeaderboardConfig) -> QuerySet:
    """Pairwise votes with the verdict the configuration fits (the vote carries its two contenders)."""
    verdict = KT(f"aspects__{config.aspect}") if config.aspect else F("outcome")
    return counted_votes(config).filter(kind=VoteKind.PAIRWISE).annotate(verdict=verdict)


def _contender_names(ids: set[int]) -> dict[int, str]:
    return dict(Contender.objects.filter(id__in=ids).values_list("id", "name"))


def _per_battle_arrays(rows: list[tuple]) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
    """(models, a, b, outcome) from rows that start with (contender_a_id, contender_b_id, verdict)."""
    names = _contender_names({r[0] for r in rows} | {r[1] for r in rows})
    models = tuple(sorted(set(names.values())))
    index = {contender_id: models.index(name) for contender_id, name in names.items()}
    a = np.array([index[r[0]] for r in rows], dtype=np.int64)
    b = np.array([index[r[1]] for r in rows], dtype=np.int64)
    return models, a, b, np.array([OUTCOME_CODE[r[2]] for r in rows], dtype=np.int8)


def pair_counts(config: LeaderboardConfig) -> PairCounts | None:
    """Pairwise votes as unique (A, B, outcome) rows with counts, from the vote tallies.

    Per-aspect verdicts are not tallied: a leaderboard of one aspect groups the votes themselves.
    """
    if not config.aspect:
        return _pair_tally_counts(config)
    grouped = list(_pairwise_rows(config).values_list("contender_a_id", "contender_b_id", "verdict")
                   .annotate(n=Count("id")).order_by())
    # A named battle may show one model twice: it says nothing about ratings.
    grouped = [row for row in grouped if row[2] in OUTCOME_CODE and row[0] != row[1] and row[3] > 0]
    if not grouped:
        return None
    names = _contender_names({r[0] for r in grouped} | {r[1] for r in grouped})
    return PairCounts.from_records((names[a], names[b], OUTCOME_CODE[o], n) for a, b, o, n in grouped)


def _pair_tally_counts(config: LeaderboardConfig) -> PairCounts | None:
    """The counted pairwise votes from the tallies, summed in one query and read straight into arrays.

    This is most of what a default refit spends outside the fit: ~33,000 rows for 130 models (8,385 pairs x
    4 outcomes) whatever the number of votes, so the rows skip the ORM and per-row Python.
    """
    parts, params = [], []
    for model, condition in _tally_sources(PAIRS, config):
        sql, part_params = (model.objects.filter(condition).order_by()
                            .values_list("contender_a_id", "contender_b_id", "outcome", "n").query.sql_with_params())
        parts.append(sql)
        params.extend(part_params)
    code = f"CASE t.outcome {' '.join('WHEN %s THEN %s' for _ in OUTCOME_CODE)} END"
    with connection.cursor() as cursor:
        # A named battle may show one model twice: it says nothing about ratings.
        cursor.execute(f"SELECT t.contender_a_id, t.contender_b_id, {code}, t.n FROM ({' UNION ALL '.join(parts)}) t "
                       "WHERE t.contender_a_id <> t.contender_b_id",
                       [*(x for pair in OUTCOME_CODE.items() for x in pair), *params])
        rows = cursor.fetchall()
    if not rows:
        return None
    table = np.array(rows, dtype=np.int64)  # (n, 4): contender A id, contender B id, outcome code, count
    # Summed here rather than by a GROUP BY: the all-time rows of one set of facts are unique already, and
    # numpy sums the unfolded changes (+1 / -1 rows) into them faster than the server's hash aggregate.
    span = int(table[:, :2].max()) + 1
    cell = (table[:, 0] * span + table[:, 1]) * len(OUTCOME_CODE) + table[:, 2]  # one integer per (A, B, outcome)
    cells, inverse = np.unique(cell, return_inverse=True)
    counts = np.bincount(inverse, weights=table[:, 3], minlength=cells.size)
    cells, counts = cells[counts > 0], counts[counts > 0]
    if not cells.size:
        return None
    pair, outcome = np.divmod(cells, len(OUTCOME_CODE))
    contenders = np.stack(np.divmod(pair, span), axis=1)  # (cells, 2) contender ids
    models, ids, index = _model_index(contenders)
    position = np.searchsorted(ids, contenders)
    return PairCounts.from_arrays(models, index[position[:, 0]], index[position[:, 1]], outcome, counts)


def _tally_sources(tables: TallyTables, config: LeaderboardConfig) -> tuple[tuple[type[Model], Q], ...]:
    """The tally tables that hold ``config``'s counted votes, each with the condition that selects them.

    Without a date filter the all-time table, with one the per-day table; then the changes not yet folded
    (``arena.tallies``), so that the sum is exact at the time of reading whether or not a fold has run.
    """
    facts = Q(tag=config.category)  # tag "" tallies every battle
    if not config.include_named:
        facts &= Q(anonymous=True)
    if config.exclude_flagged:
        facts &= Q(flagged=False)
    # The all-time table sums every language under language "" (arena.tallies); the others keep each vote's own.
    language = Q(language=config.language) if config.language else Q()
    days = Q()
    if config.date_from:
        days &= Q(day__gte=date.fromisoformat(config.date_from))
    if config.date_to:
        days &= Q(day__lte=date.fromisoformat(config.date_to))
    tallied = (tables.day, facts & language & days) if days else (tables.all, facts & Q(language=config.language))
    return tallied, (tables.change, facts & language & days)


def _tally_sums(tables: TallyTables, config: LeaderboardConfig, key: tuple[str, ...]) -> Counter[tuple]:
    """The counted votes' tally rows (:func:`_tally_sources`) summed by ``key``."""
    sums: Counter[tuple] = Counter()
    for model, condition in _tally_sources(tables, config):
        rows = model.objects.filter(condition)
        if not key:
            sums[()] += rows.aggregate(total=Sum("n"))["total"] or 0
            continue
        for *values, n in rows.values_list(*key).annotate(total=Sum("n")).order_by():
            sums[tuple(values)] += n
    return sums


def counted_vote_total(config: LeaderboardConfig) -> int:
    """How many votes ``config`` counts (what ``counted_votes(config).count()`` would say), from the tallies."""
    if config.aspect:
        return counted_votes(config).count()
    total = sum(_tally_sums(PAIRS, config, ()).values())
    if config.method not in ("bt", "elo"):
        total += sum(_tally_sums(RANKINGS, config, ()).values())
    return total


STYLE_COLUMNS = ("style_tokens", "style_headers", "style_lists", "style_bold")  # STYLE_FEATURES order


def _style_battles_sql(config: LeaderboardConfig) -> tuple[str, list]:
    """SQL (and params) for the counted pairwise votes with both slots' style counts, one row per vote.

    Columns: contender A id, contender B id, verdict code (OUTCOME_CODE), then the four counts of slot A
    and the four of slot B; in vote order (created, id). Votes whose verdict is not one of OUTCOME_CODE's,
    named battles of a model against itself, and battles without counts are left out in SQL.

    The ORM selects the counted votes (every filter of :func:`counted_votes`); the two slots are joined to
    the vote's ``battle_id`` directly, not through the battle as a ``FilteredRelation`` on
    ``battle__slots`` would, so that only narrow integer rows leave the database.
    """
    votes = _pairwise_rows(config).values(
        v_battle=F("battle_id"), v_a=F("contender_a_id"), v_b=F("contender_b_id"), v_verdict=F("verdict"),
        v_created=F("created"), v_id=F("id"),
    ).order_by()
    inner, params = votes.query.get_compiler(connection=connection).as_sql()
    quote, meta = connection.ops.quote_name, BattleSlot._meta
    slots = quote(meta.db_table)
    battle, position, *counts = (quote(meta.get_field(name).column) for name in ("battle", "position", *STYLE_COLUMNS))
    # The verdict is coded in plain SQL on the text: a When() on a JSON key's text compares it as JSON on SQLite.
    code = f"CASE v.v_verdict {' '.join('WHEN %s THEN %s' for _ in OUTCOME_CODE)} END"
    sql = (
        f"SELECT v.v_a, v.v_b, {code}, {', '.join(f'sa.{c}' for c in counts)}, {', '.join(f'sb.{c}' for c in counts)} "
        f"FROM ({inner}) v "
        f"JOIN {slots} sa ON sa.{battle} = v.v_battle AND sa.{position} = 0 "
        f"JOIN {slots} sb ON sb.{battle} = v.v_battle AND sb.{position} = 1 "
        # One count is enough: a slot has all four or none (constraint slot_style_all_or_none).
        f"WHERE sa.{counts[0]} IS NOT NULL AND sb.{counts[0]} IS NOT NULL AND v.v_a <> v.v_b "
        f"AND v.v_verdict IN ({', '.join('%s' for _ in OUTCOME_CODE)}) "
        "ORDER BY v.v_created, v.v_id"
    )
    return sql, [*(x for pair in OUTCOME_CODE.items() for x in pair), *params, *OUTCOME_CODE]


def _model_index(contender_ids: np.ndarray) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """(models sorted by name, the distinct ids, each distinct id's index into models)."""
    ids = np.unique(contender_ids)
    names = _contender_names({int(i) for i in ids})
    models = tuple(sorted(names.values()))
    position = {name: i for i, name in enumerate(models)}
    return models, ids, np.array([position[names[int(i)]] for i in ids], dtype=np.int64)


def pair_battles_with_style(config: LeaderboardConfig) -> PairCounts | None:
    """Per-battle pairwise rows with style covariates from the counts stored on the two slots.

    The counts were computed once when each slot was written (``arena.battle_facts``); battles whose
    slots have none (an import without text or metadata) are left out. Rows come back as integers in
    one query (on Postgres an index-only scan of ``slot_style_covering``, migration 0006) and go straight
    into arrays: ~0.5 s for 200,000 battles where the ORM join took ~1.1 s (``benchmarks/refit_style.py``).
    """
    sql, params = _style_battles_sql(config)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return None
    table = np.array(rows, dtype=np.int64)  # (n, 3 + 2 * len(STYLE_COLUMNS))
    models, ids, index = _model_index(table[:, :2])
    a, b = index[np.searchsorted(ids, table[:, 0])], index[np.searchsorted(ids, table[:, 1])]
    width = len(STYLE_COLUMNS)
    counts = table[:, 3:].astype(np.float64)
    features = style_features(counts[:, :width], counts[:, width:])
    # A feature that never varies among these battles (no answer used a header, say) has no identifiable
    # coefficient: leave it out rather than refuse the whole fit.
    varies = np.ptp(features, axis=0) > 0
    if not varies.any():
        raise ValidationFailed("no style feature varies among the selected battles", field="style_control")
    features = features[:, varies]
    return PairCounts(
        models=models, a=a, b=b, outcome=table[:, 2].astype(np.int8), weight=np.ones(len(table)),
        features=features, feature_names=tuple(n for n, keep in zip(STYLE_FEATURES, varies, strict=True) if keep),
    )


def pair_battles_in_time_order(config: LeaderboardConfig) -> EloBattles | None:
    """Pairwise votes one by one in time order (online Elo depends on the order)."""
    rows = list(
        _pairwise_rows(config).values_list("contender_a_id", "contender_b_id", "verdict").order_by("created", "id")
    )
    rows = [r for r in rows if r[2] in OUTCOME_CODE and r[0] != r[1]]
    if not rows:
        return None
    return EloBattles.from_arrays(*_per_battle_arrays(rows))


def ranking_counts(config: LeaderboardConfig) -> RankingCounts | None:
    """K-wise votes (best of K, rankings) as unique rankings of contenders with counts."""
    if config.aspect:
        return _aspect_ranking_counts(config)
    tally = {tuple(tuple(group) for group in json.loads(ranking)): n
             for (ranking,), n in _tally_sums(RANKINGS, config, ("ranking",)).items() if n > 0}
    if not tally:
        return None
    names = _contender_names({c for groups in tally for group in groups for c in group})
    models = tuple(sorted(set(names.values())))
    index = {contender_id: models.index(name) for contender_id, name in names.items()}
    rankings = [[sorted(index[c] for c in group) for group in groups] for groups in tally]
    return RankingCounts.from_rankings(models, rankings, list(tally.values()))


def _aspect_ranking_counts(config: LeaderboardConfig) -> RankingCounts | None:
    """K-wise votes' verdicts on ``config.aspect``, read vote by vote (aspects are not tallied)."""
    votes = counted_votes(config).exclude(kind=VoteKind.PAIRWISE)
    rows = list(votes.values_list("battle_id", "aspects"))
    if not rows:
        return None
    slots: dict[object, dict[int, int]] = defaultdict(dict)
    for battle_id, position, contender_id in BattleSlot.objects.filter(
            battle_id__in=[r[0] for r in rows]).values_list("battle_id", "position", "contender_id"):
        slots[battle_id][position] = contender_id
    names = _contender_names({c for s in slots.values() for c in s.values()})
    models = tuple(sorted(set(names.values())))
    index = {name: i for i, name in enumerate(models)}
    tally: dict[tuple, int] = defaultdict(int)
    for battle_id, aspects in rows:
        model_at = {p: index[names[c]] for p, c in slots[battle_id].items()}
        choice = aspects.get(config.aspect)
        if choice is None:
            continue
        if isinstance(choice, int):  # best of K: the winner, then everyone else tied
            groups = ((model_at[choice],), tuple(sorted(m for p, m in model_at.items() if p != choice)))
        else:
            groups = tuple(tuple(sorted(model_at[p] for p in group)) for group in choice)
        tally[groups] += 1
    if not tally:
        return None
    keys = list(tally)
    return RankingCounts.from_rankings(models, [[list(g) for g in key] for key in keys], [tally[k] for k in keys])


def data_hash(*parts: object) -> str:
    """sha256 over the fitted arrays, so two snapshots of the same data can be recognised."""
    digest = hashlib.sha256()
    for part in parts:
        if part is None:
            digest.update(b"none")
            continue
        for name in ("models", "a", "b", "outcome", "weight", "items", "group", "features"):
            value = getattr(part, name, None)
            if value is not None:
                digest.update(name.encode())
                raw = repr(value).encode() if isinstance(value, tuple) else np.ascontiguousarray(value).tobytes()
                digest.update(raw)
    return digest.hexdigest()


def snapshot_latest(config: LeaderboardConfig) -> Snapshot | None:
    return Snapshot.objects.filter(config_key=config.key()).order_by("-created", "-id").first()


def snapshot_with_rows(snapshot_id: int) -> Snapshot:
    return Snapshot.objects.prefetch_related("rows__contender").get(id=snapshot_id)


def contender_metadata_version() -> str:
    """A short hash of the contender metadata leaderboard rows show (organization, license), one small query.

    A snapshot's rows are immutable, the metadata beside them is not: a rendered leaderboard is cached under
    this version as well as the snapshot's id, so that an edit is served at once.
    """
    rows = Contender.objects.order_by("id").values_list("id", "organization", "license")
    return hashlib.sha256(repr(list(rows)).encode()).hexdigest()[:16]


def categories() -> list[tuple[str, str]]:
    """(tag, display name) of every category some battle carries, LMArena's named ones first."""
    tags = list(BattleTag.objects.values_list("tag", flat=True).distinct().order_by("tag"))
    return sorted(((t, category_label(t)) for t in tags), key=lambda item: (item[1] == item[0], item[1].lower()))


def languages() -> list[str]:
    return list(Battle.objects.exclude(language="").values_list("language", flat=True).distinct().order_by("language"))
