"""Moderation: flag anomalous voters and over-asked prompts so that default leaderboards can leave them out.

Nothing here deletes or changes a vote: a voter gets ``flagged`` with a reason, a vote gets a
``VoteFlag``; the leaderboard's ``exclude_flagged`` filter (``leaderboard.selectors``) leaves out the
votes of flagged voters and flagged votes. The statistics live in the pure core :mod:`arena.anomaly`.

Settings (read when a service runs; every one has a default):

- ``ARENA_ANOMALY_ALPHA`` (0.01): family-wise false-flag probability per honest voter.
- ``ARENA_ANOMALY_CHECKPOINTS`` ((5, 10, 20, 50, 100)): vote counts at which a voter is tested.
- ``ARENA_ANOMALY_MIN_PAIR_HISTORY`` (20): a vote is judged only against at least this many other
  votes on the same ordered pair (same kind and K).
- ``ARENA_ANOMALY_DRAW_HABIT`` (False): also score a voter's own tie rate (more power against random
  clickers, more false flags of honest voters who tie unusually often or seldom).
- ``ARENA_DUPLICATE_PROMPT_PERCENTILE`` (99.9), ``ARENA_DUPLICATE_PROMPT_MIN_COUNT`` (10),
  ``ARENA_DUPLICATE_PROMPT_KEEP`` (5): a typed prompt with more votes than that percentile of the
  per-prompt vote counts, and at least the minimum, keeps its first ``KEEP`` votes rated.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any
from uuid import UUID

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Case, Count, Value, When

from config.errors import ValidationFailed

from . import anomaly
from .models import BattleSlot, PromptSource, Vote, VoteFlag, VoteFlagCode, VoteKind, Voter
from .tallies import votes_reclassified

logger = logging.getLogger(__name__)

KWISE_KINDS = (VoteKind.BEST_OF_K, VoteKind.RANKING)
DEFAULT_MIN_PAIR_HISTORY = 20
DEFAULT_DUPLICATE_PERCENTILE = 99.9
DEFAULT_DUPLICATE_MIN_COUNT = 10
DEFAULT_DUPLICATE_KEEP = 5

# One history: (vote kind, K, contender in the first position, contender in the second).
PairKey = tuple[str, int, int, int]


def anomaly_settings() -> dict[str, Any]:
    """The keyword arguments of :func:`voters_flag_anomalous` from settings, defaults filled in."""
    return {
        "alpha": float(getattr(settings, "ARENA_ANOMALY_ALPHA", anomaly.DEFAULT_ALPHA)),
        "checkpoints": tuple(getattr(settings, "ARENA_ANOMALY_CHECKPOINTS", anomaly.DEFAULT_CHECKPOINTS)),
        "min_pair_history": int(getattr(settings, "ARENA_ANOMALY_MIN_PAIR_HISTORY", DEFAULT_MIN_PAIR_HISTORY)),
        "draw_habit": bool(getattr(settings, "ARENA_ANOMALY_DRAW_HABIT", False)),
    }


def duplicate_settings() -> dict[str, Any]:
    """The keyword arguments of :func:`prompts_flag_duplicates` from settings, defaults filled in."""
    return {
        "percentile": float(getattr(settings, "ARENA_DUPLICATE_PROMPT_PERCENTILE", DEFAULT_DUPLICATE_PERCENTILE)),
        "min_count": int(getattr(settings, "ARENA_DUPLICATE_PROMPT_MIN_COUNT", DEFAULT_DUPLICATE_MIN_COUNT)),
        "keep": int(getattr(settings, "ARENA_DUPLICATE_PROMPT_KEEP", DEFAULT_DUPLICATE_KEEP)),
    }


# ------------------------------------------------------------------------------ anomalous voters
@dataclass(frozen=True)
class FlaggedVoter:
    voter_id: int
    key: str
    n_pvalues: int
    checkpoint: int
    statistic: float
    p_combined: float
    reason: str


@dataclass(frozen=True)
class AnomalyReport:
    """What one detection run saw and did.

    ``voters_considered``: unflagged voters with at least the first checkpoint's number of votes;
    ``voters_tested``: those of them with that many votes whose pair history was long enough (the
    others are counted in ``voters_short_history``); ``flagged``: voters found anomalous in this run
    (written unless ``dry_run``); ``already_flagged``: voters flagged before, not tested again.
    """

    alpha: float
    checkpoints: tuple[int, ...]
    min_pair_history: int
    voters_considered: int
    voters_tested: int
    voters_short_history: int
    already_flagged: int
    votes_read: int
    flagged: list[FlaggedVoter] = field(default_factory=list)
    dry_run: bool = False


def _check_anomaly_args(*, alpha: float, checkpoints: tuple[int, ...], min_pair_history: int) -> tuple[int, ...]:
    if not 0 < alpha < 1:
        raise ValidationFailed(f"must be between 0 and 1 (exclusive), got {alpha}", field="alpha")
    try:
        marks = anomaly.validate_checkpoints(checkpoints)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="checkpoints") from None
    if min_pair_history < 0:
        raise ValidationFailed(f"must be 0 or more, got {min_pair_history}", field="min_pair_history")
    return marks


def _add(counts: dict[PairKey, np.ndarray], key: PairKey, outcome: int) -> None:
    if key not in counts:
        counts[key] = np.zeros(anomaly.N_OUTCOMES, dtype=np.int64)
    counts[key][outcome] += 1


def _pairwise_history() -> dict[PairKey, np.ndarray]:
    """Outcome counts of every rated pairwise vote per ordered pair (A, B): one GROUP BY."""
    history: dict[PairKey, np.ndarray] = {}
    rows = (Vote.objects.filter(kind=VoteKind.PAIRWISE, anonymous=True, voter__flagged=False)
            .values_list("contender_a_id", "contender_b_id", "outcome").annotate(n=Count("id")).order_by())
    for a, b, outcome, n in rows:
        first, second, code = anomaly.pairwise_comparison(a, b, outcome)
        key = (VoteKind.PAIRWISE.value, 2, first, second)
        history.setdefault(key, np.zeros(anomaly.N_OUTCOMES, dtype=np.int64))[code] += n
    return history


def _kwise_slots() -> dict[UUID, list[int]]:
    """Contender ids by position of every battle with a rated K-wise vote (one query, none if there are none)."""
    if not Vote.objects.filter(kind__in=KWISE_KINDS).exists():
        return {}
    slots: dict[UUID, dict[int, int]] = defaultdict(dict)
    rows = BattleSlot.objects.filter(battle__vote__kind__in=KWISE_KINDS, battle__vote__anonymous=True,
                                     battle__vote__voter__flagged=False).values_list("battle_id", "position",
                                                                                     "contender_id")
    for battle_id, position, contender_id in rows.iterator(chunk_size=10_000):
        slots[battle_id][position] = contender_id
    return {b: [by_position[p] for p in sorted(by_position)] for b, by_position in slots.items()}


def _kwise_history(slots: dict[UUID, list[int]]) -> dict[PairKey, np.ndarray]:
    """Every implied comparison of every rated K-wise vote.

    Counted here rather than in SQL: the comparisons come out of the JSON ranking, and K-wise votes
    are a small share of the table.
    """
    history: dict[PairKey, np.ndarray] = {}
    if not slots:
        return history
    rows = (Vote.objects.filter(kind__in=KWISE_KINDS, anonymous=True, voter__flagged=False)
            .values_list("battle_id", "kind", "best_position", "ranking"))
    for battle_id, kind, best, ranking in rows.iterator(chunk_size=10_000):
        contenders = slots.get(battle_id)
        if contenders is None:
            continue
        for first, second, code in anomaly.kwise_comparisons(contenders, best_position=best, ranking=ranking):
            _add(history, (kind, len(contenders), first, second), code)
    return history


VoteRow = tuple[int, str, str, str | None, int | None, Any, int | None, int | None, UUID]


def _candidate_votes(first_checkpoint: int) -> Iterator[VoteRow]:
    """Votes of unflagged voters with at least ``first_checkpoint`` rated votes, by voter, then in time order."""
    rated = Vote.objects.filter(anonymous=True, voter__flagged=False)
    candidates = rated.values("voter_id").annotate(n=Count("id")).filter(n__gte=first_checkpoint).values("voter_id")
    rows = (rated.filter(voter_id__in=candidates).order_by("voter_id", "created", "id")
            .values_list("voter_id", "voter__key", "kind", "outcome", "best_position", "ranking",
                         "contender_a_id", "contender_b_id", "battle_id"))
    return rows.iterator(chunk_size=10_000)


def _voter_comparisons(
    rows: Iterable[VoteRow], slots: dict[UUID, list[int]], rng: np.random.Generator,
) -> tuple[list[tuple[Hashable, int]], dict[PairKey, np.ndarray]]:
    """A voter's tested comparisons in time order, and what its votes added to the histories."""
    tested: list[tuple[Hashable, int]] = []
    own: dict[PairKey, np.ndarray] = {}
    for _, _, kind, outcome, best, ranking, a, b, battle_id in rows:
        if kind == VoteKind.PAIRWISE:
            first, second, code = anomaly.pairwise_comparison(a, b, outcome)
            key = (kind, 2, first, second)
            _add(own, key, code)
            tested.append((key, code))
            continue
        contenders = slots.get(battle_id)
        if contenders is None:  # voted after the slots were read: judged next run
            continue
        k = len(contenders)
        for first, second, code in anomaly.kwise_comparisons(contenders, best_position=best, ranking=ranking):
            _add(own, (kind, k, first, second), code)
        first, second, code = anomaly.kwise_comparison(contenders, best_position=best, ranking=ranking, rng=rng)
        tested.append(((kind, k, first, second), code))
    return tested, own


def _reason(result: anomaly.AnomalyResult, *, alpha: float, checkpoints: tuple[int, ...], draw_habit: bool) -> str:
    assert result.checkpoint is not None
    return (
        f"anomalous voting pattern (Fisher combination test, Chatbot Arena §5.1): after {result.checkpoint} judged "
        f"votes M = {result.statistic:.1f} on {2 * result.checkpoint} degrees of freedom, combined p = "
        f"{result.p_combined:.2e} <= alpha/{len(checkpoints)} = {result.level:.2e} (alpha {alpha:g}, checkpoints "
        f"{','.join(map(str, checkpoints))}{', draw habit' if draw_habit else ''}); each vote compared with other "
        f"voters' outcomes on the same pair of models in the same positions"
    )


def _write_decided(decided: dict[int, int]) -> None:
    """Remember the checkpoints each voter has been tested at (one UPDATE)."""
    if decided:
        mark = Case(*(When(pk=voter_id, then=Value(j)) for voter_id, j in decided.items()))
        Voter.objects.filter(pk__in=list(decided)).update(anomaly_decided_through=mark)


def _write_flags(flagged: list[FlaggedVoter]) -> int:
    """One UPDATE; a voter flagged meanwhile by someone else keeps its first reason."""
    if not flagged:
        return 0
    reason = Case(*(When(pk=f.voter_id, then=Value(f.reason)) for f in flagged))
    voter_ids = [f.voter_id for f in flagged]
    with votes_reclassified(voter_ids=voter_ids):  # their votes leave the default leaderboards' tallies
        return Voter.objects.filter(pk__in=voter_ids, flagged=False).update(flagged=True, flag_reason=reason)


@transaction.atomic
def voters_flag_anomalous(
    *, alpha: float, checkpoints: tuple[int, ...], min_pair_history: int, draw_habit: bool = False,
    dry_run: bool = False, seed: int = 0,
) -> AnomalyReport:
    """Test every unflagged voter's rated votes against the other voters' and flag the anomalous ones.

    For each ordered pair of contenders (per vote kind and K) the outcome counts of all rated votes — anonymous
    votes of unflagged voters — are read once; each voter is then judged against those counts minus
    its own votes (leave-one-voter-out), its votes in time order, with :func:`arena.anomaly.voter_pvalues`
    and :func:`arena.anomaly.voter_anomaly_test`. Votes whose pair has fewer than ``min_pair_history``
    other votes are skipped, and only a voter's first ``max(checkpoints)`` judged votes are tested. Each
    checkpoint is decided once per voter (``Voter.anomaly_decided_through``): a later run tests only the
    checkpoints reached since, so repeated runs keep an honest voter's flag chance at ``alpha``.
    Flagging sets ``Voter.flagged`` and a reason naming the test, the checkpoint and the combined p-value;
    an already flagged voter is not tested again and keeps its first reason. Nothing is deleted.

    Queries: the pairwise history (one GROUP BY), the K-wise votes and their slots (two, only when
    there are K-wise votes), the candidate voters' votes (one, streamed), and one UPDATE.

    Parameters
    ----------
    alpha, checkpoints
        As in :func:`arena.anomaly.voter_anomaly_test`.
    min_pair_history : int
        Shortest pair history a vote is judged against.
    draw_habit : bool
        Score the voter's own tie rate too (:func:`arena.anomaly.vote_pvalue`).
    dry_run : bool
        Compute and report, write nothing.
    seed : int
        Seeds the randomized p-values and the K-wise pair draws, per voter (``[seed, voter id]``): a rerun
        on the same votes gives the same verdicts.

    Raises
    ------
    ValidationFailed
        If ``alpha``, ``checkpoints`` or ``min_pair_history`` is out of range.
    """
    marks = _check_anomaly_args(alpha=alpha, checkpoints=checkpoints, min_pair_history=min_pair_history)
    slots = _kwise_slots()
    history = _pairwise_history() | _kwise_history(slots)
    already = Voter.objects.filter(flagged=True).count()
    decided = dict(Voter.objects.filter(flagged=False, anomaly_decided_through__gt=0)
                   .values_list("id", "anomaly_decided_through"))
    newly_decided: dict[int, int] = {}
    considered = tested_n = short = votes_read = 0
    flagged: list[FlaggedVoter] = []
    for voter_id, voter_rows in groupby(_candidate_votes(marks[0]), key=itemgetter(0)):
        rows = list(voter_rows)
        considered += 1
        votes_read += len(rows)
        rng = np.random.default_rng([seed, voter_id])
        tested, own = _voter_comparisons(rows, slots, rng)
        # A vote committed between the reads may be in `own` but not yet in `history`: never subtract
        # more than the history holds.
        own = {key: np.minimum(counts, history.get(key, 0)) for key, counts in own.items()}
        pvalues = anomaly.voter_pvalues(tested, history, own, min_pair_history=min_pair_history, rng=rng,
                                        draw_habit=draw_habit, limit=marks[-1])
        if pvalues.size < marks[0]:
            short += 1
            continue
        tested_n += 1
        result = anomaly.voter_anomaly_test(pvalues, checkpoints=marks, alpha=alpha,
                                            decided_through=decided.get(voter_id, 0))
        reached = max((j for j in marks if j <= pvalues.size), default=0)
        if reached > decided.get(voter_id, 0):
            newly_decided[voter_id] = reached
        if result.flagged:
            assert result.checkpoint is not None
            flagged.append(FlaggedVoter(voter_id=voter_id, key=rows[0][1], n_pvalues=result.n_pvalues,
                                        checkpoint=result.checkpoint, statistic=result.statistic,
                                        p_combined=result.p_combined,
                                        reason=_reason(result, alpha=alpha, checkpoints=marks,
                                                       draw_habit=draw_habit)))
    if not dry_run:
        _write_decided(newly_decided)
        written = _write_flags(flagged)
        logger.info("anomaly detection: %d voters tested, %d flagged", tested_n, written)
    return AnomalyReport(alpha=alpha, checkpoints=marks, min_pair_history=min_pair_history,
                         voters_considered=considered, voters_tested=tested_n, voters_short_history=short,
                         already_flagged=already, votes_read=votes_read, flagged=flagged, dry_run=dry_run)


@transaction.atomic
def voter_flag_set(*, voter_id: int, flagged: bool, reason: str = "") -> None:
    """Flag (with ``reason``) or unflag a voter by hand: staff judgement, or a test's planted bot.

    Its votes move out of (or back into) what the default leaderboards count.

    Raises
    ------
    ValidationFailed
        If a flag has no reason.
    """
    if flagged and not reason.strip():
        raise ValidationFailed("a flagged voter needs a reason", field="reason")
    with votes_reclassified(voter_ids=[voter_id]):
        Voter.objects.filter(pk=voter_id).update(flagged=flagged, flag_reason=reason.strip() if flagged else "")


@transaction.atomic
def vote_flag_add(*, vote_id: int, code: str, reason: str) -> VoteFlag:
    """Flag one vote (kept, but not counted by the default leaderboards); a second flag of a code is refused."""
    if code not in VoteFlagCode.values:
        raise ValidationFailed(f"must be one of {', '.join(VoteFlagCode.values)}", field="code")
    if not reason.strip():
        raise ValidationFailed("a flag needs a reason", field="reason")
    with votes_reclassified(vote_ids=[vote_id]):
        return VoteFlag.objects.create(vote_id=vote_id, code=code, reason=reason.strip())


# ------------------------------------------------------------------------------ duplicate prompts
@dataclass(frozen=True)
class DuplicatePrompt:
    prompt_id: int
    votes: int
    newly_flagged: int


@dataclass(frozen=True)
class DuplicateReport:
    """``threshold``: the percentile of per-prompt vote counts (None when no typed prompt has votes)."""

    percentile: float
    min_count: int
    keep: int
    prompts_counted: int
    threshold: float | None
    duplicates: list[DuplicatePrompt] = field(default_factory=list)
    votes_flagged: int = 0
    dry_run: bool = False


def _check_duplicate_args(*, percentile: float, min_count: int, keep: int) -> None:
    if not 0 <= percentile <= 100:
        raise ValidationFailed(f"must be between 0 and 100, got {percentile}", field="percentile")
    if min_count < 1:
        raise ValidationFailed(f"must be 1 or more, got {min_count}", field="min_count")
    if keep < 0:
        raise ValidationFailed(f"must be 0 or more, got {keep}", field="keep")


@transaction.atomic
def prompts_flag_duplicates(*, percentile: float, min_count: int, keep: int, dry_run: bool = False) -> DuplicateReport:
    """Flag the votes on over-asked visitor-typed prompts beyond the first ``keep`` of each.

    Only battles whose ``prompt_source`` is ``typed`` count: the arena serves its sampled pool prompts
    many times on purpose. A prompt is a duplicate when its number of votes is strictly above the
    ``percentile``-th percentile of the per-prompt vote counts (numpy's linear interpolation, over typed
    prompts with at least one vote) *and* at least ``min_count``; its votes after the first ``keep`` (by
    creation time, then id) get a ``VoteFlag`` with code ``duplicate_prompt`` and a reason, which the
    leaderboards' ``exclude_flagged`` filter leaves out. Nothing is deleted; a vote flagged before is
    not flagged again, so a rerun on the same votes adds nothing.

    Raises
    ------
    ValidationFailed
        If ``percentile`` is outside 0..100, ``min_count`` below 1 or ``keep`` negative.
    """
    _check_duplicate_args(percentile=percentile, min_count=min_count, keep=keep)
    typed = Vote.objects.filter(battle__prompt_source=PromptSource.TYPED, battle__prompt__isnull=False)
    counts = dict(typed.values_list("battle__prompt_id").annotate(n=Count("id")).order_by())
    if not counts:
        return DuplicateReport(percentile=percentile, min_count=min_count, keep=keep, prompts_counted=0,
                               threshold=None, dry_run=dry_run)
    threshold = float(np.percentile(np.fromiter(counts.values(), dtype=float), percentile))
    duplicates = {pid: n for pid, n in counts.items() if n > threshold and n >= min_count}
    ordered = (typed.filter(battle__prompt_id__in=list(duplicates)).order_by("battle__prompt_id", "created", "id")
               .values_list("id", "battle__prompt_id"))
    already = set(VoteFlag.objects.filter(code=VoteFlagCode.DUPLICATE_PROMPT,
                                          vote__battle__prompt_id__in=list(duplicates)).values_list("vote_id",
                                                                                                     flat=True))
    new_flags: list[VoteFlag] = []
    report_rows: list[DuplicatePrompt] = []
    for prompt_id, rows in groupby(ordered, key=itemgetter(1)):
        n = duplicates[prompt_id]
        reason = (f"prompt asked in {n} typed battles: more than the {percentile:g}th percentile of votes per "
                  f"prompt ({threshold:.1f}) and at least {min_count}; only its first {keep} votes are rated")
        fresh = [VoteFlag(vote_id=vote_id, code=VoteFlagCode.DUPLICATE_PROMPT, reason=reason)
                 for vote_id, _ in list(rows)[keep:] if vote_id not in already]
        new_flags.extend(fresh)
        report_rows.append(DuplicatePrompt(prompt_id=prompt_id, votes=n, newly_flagged=len(fresh)))
    if not dry_run and new_flags:
        # ignore_conflicts: a concurrent run may have flagged the same votes; the unique (vote, code) wins.
        with votes_reclassified(vote_ids=[flag.vote_id for flag in new_flags]):
            VoteFlag.objects.bulk_create(new_flags, batch_size=1000, ignore_conflicts=True)
    return DuplicateReport(percentile=percentile, min_count=min_count, keep=keep, prompts_counted=len(counts),
                           threshold=threshold, duplicates=report_rows, votes_flagged=len(new_flags),
                           dry_run=dry_run)
