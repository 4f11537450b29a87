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
- ``ARENA_ANOMALY_MODEL_CHECKPOINTS`` ((20, 50, 100, 200, 500, 1000, 2000, 5000)), ``ARENA_ANOMALY_MODEL_ALPHA``
  (0.01), ``ARENA_ANOMALY_MIN_MODEL_VOTES`` (10): the per-model test (:func:`arena.anomaly.model_anomaly_test`),
  which finds an identity whose votes on battles showing one model all go one way, however many ordinary
  votes it casts besides; ``()`` turns it off.
- ``ARENA_ANOMALY_BY_ADDRESS`` (True): also test, as one identity, all the voters that share an address
  (``Voter.ip_hash``), and flag every one of them when it fails: a fresh cookie every few votes from one
  place is then one identity with many votes.
- ``ARENA_DUPLICATE_PROMPT_PERCENTILE`` (99.9), ``ARENA_DUPLICATE_PROMPT_MIN_COUNT`` (10),
  ``ARENA_DUPLICATE_PROMPT_KEEP`` (5): a typed prompt with more votes than that percentile of the
  per-prompt vote counts, and at least the minimum, keeps its first ``KEEP`` votes rated.
"""
from __future__ import annotations

import copy
import hashlib
import logging
from collections import defaultdict
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from itertools import groupby
from operator import itemgetter
from typing import Any
from uuid import UUID

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Case, Count, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from config.errors import ValidationFailed

from . import anomaly
from .models import AnomalyAddress, BattleSlot, Contender, PromptSource, Vote, VoteFlag, VoteFlagCode, VoteKind, Voter
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
        "model_checkpoints": tuple(getattr(settings, "ARENA_ANOMALY_MODEL_CHECKPOINTS",
                                           anomaly.DEFAULT_MODEL_CHECKPOINTS)),
        "model_alpha": float(getattr(settings, "ARENA_ANOMALY_MODEL_ALPHA", anomaly.DEFAULT_MODEL_ALPHA)),
        "min_model_votes": int(getattr(settings, "ARENA_ANOMALY_MIN_MODEL_VOTES", anomaly.DEFAULT_MIN_MODEL_VOTES)),
        "by_address": bool(getattr(settings, "ARENA_ANOMALY_BY_ADDRESS", True)),
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
    """A voter the run flagged. ``address`` (the first 12 characters of its ``ip_hash``) when the voters of its
    address failed together; ``model`` (a contender id) when the per-model test found it; ``n_pvalues`` counts
    the judged votes of the identity tested (the voter, or the whole address)."""

    voter_id: int
    key: str
    n_pvalues: int
    checkpoint: int
    statistic: float
    p_combined: float
    reason: str
    address: str = ""
    model: int | None = None


@dataclass(frozen=True)
class AnomalyReport:
    """What one detection run saw and did.

    ``voters_considered``: unflagged voters with at least the first checkpoint's number of votes;
    ``voters_tested``: those of them with that many votes whose pair history was long enough (the
    others are counted in ``voters_short_history``); ``flagged``: voters found anomalous in this run
    (written unless ``dry_run``); ``already_flagged``: voters flagged before, not tested again;
    ``addresses_tested``: addresses shared by at least two unflagged voters and with enough judged votes;
    ``addresses_flagged``: those that failed (each flagged voter of one is in ``flagged``).
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
    model_checkpoints: tuple[int, ...] = ()
    model_alpha: float = anomaly.DEFAULT_MODEL_ALPHA
    addresses_tested: int = 0
    addresses_flagged: int = 0


def _check_anomaly_args(*, alpha: float, checkpoints: tuple[int, ...], min_pair_history: int,
                        model_checkpoints: tuple[int, ...], model_alpha: float, min_model_votes: int,
                        ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if not 0 < alpha < 1:
        raise ValidationFailed(f"must be between 0 and 1 (exclusive), got {alpha}", field="alpha")
    try:
        marks = anomaly.validate_checkpoints(checkpoints)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="checkpoints") from None
    if min_pair_history < 0:
        raise ValidationFailed(f"must be 0 or more, got {min_pair_history}", field="min_pair_history")
    try:
        model_marks = anomaly.validate_checkpoints(model_checkpoints) if model_checkpoints else ()
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="model_checkpoints") from None
    if not 0 < model_alpha < 1:
        raise ValidationFailed(f"must be between 0 and 1 (exclusive), got {model_alpha}", field="model_alpha")
    if min_model_votes < 1:
        raise ValidationFailed(f"must be 1 or more, got {min_model_votes}", field="min_model_votes")
    return marks, model_marks


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


def _address_votes() -> Iterator[VoteRow]:
    """Votes of the unflagged voters of every address that two or more of them share, by address, then in time order.

    One query: the shared addresses are a subquery. Rows as :func:`_candidate_votes`' with ``(ip_hash,
    voter id)`` in place of ``(voter id, key)``.
    """
    shared = (Voter.objects.filter(flagged=False).exclude(ip_hash="").values("ip_hash")
              .annotate(n=Count("id")).filter(n__gte=2).values("ip_hash"))
    rows = (Vote.objects.filter(anonymous=True, voter__flagged=False, voter__ip_hash__in=shared)
            .order_by("voter__ip_hash", "created", "id")
            .values_list("voter__ip_hash", "voter_id", "kind", "outcome", "best_position", "ranking",
                         "contender_a_id", "contender_b_id", "battle_id"))
    return rows.iterator(chunk_size=10_000)


def _address_seed(ip_hash: str) -> int:
    """A stable integer per address for the per-identity random stream (ip_hash need not be hex in tests)."""
    return int.from_bytes(hashlib.sha256(ip_hash.encode()).digest()[:8], "big")


def _addresses_decided() -> dict[str, int]:
    """Checkpoints decided by earlier runs, per address (``AnomalyAddress``; absent: none)."""
    return dict(AnomalyAddress.objects.filter(anomaly_decided_through__gt=0)
                .values_list("ip_hash", "anomaly_decided_through"))


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


def _reason(result: anomaly.AnomalyResult, *, alpha: float, checkpoints: tuple[int, ...], draw_habit: bool,
            model_checkpoints: tuple[int, ...] = (), model_alpha: float = 0.0, model_name: str = "",
            address_voters: int = 0) -> str:
    assert result.checkpoint is not None
    who = (f"the {address_voters} voters sharing this voter's address, tested as one identity: "
           if address_voters else "")
    confirmed = "; confirmed against the votes of everyone not under suspicion in this run"
    if result.model is not None:
        direction = "for" if result.statistic > 0 else "against"
        return (
            f"{who}anomalous votes on one model (per-model test, Stouffer): of the first {result.checkpoint} judged "
            f"votes, those on battles showing {model_name or result.model} went {direction} it more than other "
            f"voters' votes on the same pairs (Z = {result.statistic:.1f}, p = {result.p_combined:.2e} <= "
            f"{result.level:.2e} = alpha {model_alpha:g} / (2 directions x {len(model_checkpoints)} checkpoints "
            f"x models tested)){confirmed}"
        )
    return who + (
        f"anomalous voting pattern (Fisher combination test, Chatbot Arena §5.1): after {result.checkpoint} judged "
        f"votes M = {result.statistic:.1f} on {2 * result.checkpoint} degrees of freedom, combined p = "
        f"{result.p_combined:.2e} <= alpha/{len(checkpoints)} = {result.level:.2e} (alpha {alpha:g}, checkpoints "
        f"{','.join(map(str, checkpoints))}{', draw habit' if draw_habit else ''}); each vote compared with other "
        f"voters' outcomes on the same pair of models in the same positions{confirmed}"
    )


def _write_decided(decided: dict[int, int]) -> None:
    """Remember the checkpoints each voter has been tested at (one UPDATE)."""
    if decided:
        mark = Case(*(When(pk=voter_id, then=Value(j)) for voter_id, j in decided.items()))
        Voter.objects.filter(pk__in=list(decided)).update(anomaly_decided_through=mark)


def _write_address_decided(decided: dict[str, int]) -> None:
    if decided:
        AnomalyAddress.objects.bulk_create(
            [AnomalyAddress(ip_hash=h, anomaly_decided_through=j) for h, j in decided.items()],
            update_conflicts=True, unique_fields=["ip_hash"], update_fields=["anomaly_decided_through"])


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
    dry_run: bool = False, seed: int = 0, model_checkpoints: tuple[int, ...] = anomaly.DEFAULT_MODEL_CHECKPOINTS,
    model_alpha: float = anomaly.DEFAULT_MODEL_ALPHA, min_model_votes: int = anomaly.DEFAULT_MIN_MODEL_VOTES,
    by_address: bool = True,
) -> AnomalyReport:
    """Test every unflagged voter's rated votes, and every shared address's, against the others'; flag the anomalous.

    For each ordered pair of contenders (per vote kind and K) the outcome counts of all rated votes — anonymous
    votes of unflagged voters — are read once. Each *identity* is then judged against those counts minus
    its own votes (leave-one-identity-out), its votes in time order, with
    :func:`arena.anomaly.voter_scored_votes` and :func:`arena.anomaly.identity_anomaly_test`: the all-votes
    test at ``checkpoints`` (level ``alpha``) and the per-model test at ``model_checkpoints`` (level
    ``model_alpha``; ``()`` turns it off). The identities are every voter (cookie or user), and with
    ``by_address`` every address (``Voter.ip_hash``) shared by two or more unflagged voters, whose votes are
    merged in time order: a fresh cookie every few votes is one identity again. When an address fails, every
    unflagged voter that voted from it is flagged (a campus or carrier NAT is protected by the test's level,
    not by an exception). An identity that fails is tested once more, with the same random numbers, against
    the votes of every identity that did not (a confirmation: a large attack left in the history skews the
    crowd's verdict on the models it targets, against which honest identities with many votes on them look
    anomalous); it is flagged only when both fail. An honest voter is flagged with probability at most
    ``alpha + model_alpha``, plus as much again when it shares its address.

    Votes whose pair has fewer than ``min_pair_history`` other votes are skipped, and only an identity's
    first ``max(checkpoints + model_checkpoints)`` judged votes are tested. Each checkpoint is decided once
    per identity (``Voter.anomaly_decided_through``; for addresses, ``AnomalyAddress``):
    a later run tests only the checkpoints reached since, so repeated runs keep an honest identity's flag
    chance at its level. Flagging sets ``Voter.flagged`` and a reason naming the test, the checkpoint and
    the combined p-value; an already flagged voter is not tested again and keeps its first reason. Nothing
    is deleted.

    Queries: the pairwise history (one GROUP BY), the K-wise votes and their slots (two, only when
    there are K-wise votes), the candidate voters' votes (one, streamed), the addresses' decided checkpoints
    and the shared addresses' votes (two, the second streamed; only ``by_address``), contender names for
    per-model reasons (one, only then), and the UPDATEs.

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
        Seeds the randomized p-values and the K-wise pair draws, per identity (``[seed, voter id]``, and
        ``[seed, 1, address]``): a rerun on the same votes gives the same verdicts.
    model_checkpoints, model_alpha, min_model_votes
        As in :func:`arena.anomaly.model_anomaly_test`.
    by_address : bool
        Also test the voters of each shared address as one identity.

    Raises
    ------
    ValidationFailed
        If ``alpha``, ``checkpoints``, ``min_pair_history``, ``model_checkpoints``, ``model_alpha`` or
        ``min_model_votes`` is out of range.
    """
    marks, model_marks = _check_anomaly_args(alpha=alpha, checkpoints=checkpoints, min_pair_history=min_pair_history,
                                             model_checkpoints=model_checkpoints, model_alpha=model_alpha,
                                             min_model_votes=min_model_votes)
    slots = _kwise_slots()
    history = _pairwise_history() | _kwise_history(slots)
    already = Voter.objects.filter(flagged=True).count()
    decided = dict(Voter.objects.filter(flagged=False, anomaly_decided_through__gt=0)
                   .values_list("id", "anomaly_decided_through"))
    limit = max((*marks, *model_marks))
    first_mark = min((*marks, *model_marks))

    def own_counts(rows: list[VoteRow], rng: np.random.Generator) -> tuple[list[tuple[Hashable, int]],
                                                                           dict[PairKey, np.ndarray]]:
        tested, own = _voter_comparisons(rows, slots, rng)
        # A vote committed between the reads may be in `own` but not yet in `history`: never subtract
        # more than the history holds.
        return tested, {key: np.minimum(counts, history.get(key, 0)) for key, counts in own.items()}

    def judge(tested: list[tuple[Hashable, int]], against: dict[PairKey, np.ndarray], own: dict[PairKey, np.ndarray],
              rng: np.random.Generator, done: int) -> anomaly.AnomalyResult | None:
        """The identity's result, or None when it has fewer judged votes than the first checkpoint."""
        scored = anomaly.voter_scored_votes(tested, against, own, min_pair_history=min_pair_history, rng=rng,
                                            draw_habit=draw_habit, limit=limit)
        if scored.pvalues.size < first_mark:
            return None
        return anomaly.identity_anomaly_test(scored, checkpoints=marks, alpha=alpha, model_checkpoints=model_marks,
                                             model_alpha=model_alpha, min_model_votes=min_model_votes,
                                             decided_through=done)

    newly_decided: dict[int, int] = {}
    considered = tested_n = short = votes_read = 0
    # Pass 1: every identity against everyone else's votes. Suspects: (voter ids, key, tested comparisons,
    # its random stream as the p-values started it, decided through, address, voters at the address, result).
    suspects: list[tuple[list[int], str, list[tuple[Hashable, int]], np.random.Generator, int, str, int,
                         anomaly.AnomalyResult]] = []
    suspect_own: dict[int, dict[PairKey, np.ndarray]] = {}   # what each suspect voter's votes add to the history
    for voter_id, voter_rows in groupby(_candidate_votes(first_mark), key=itemgetter(0)):
        rows = list(voter_rows)
        considered += 1
        votes_read += len(rows)
        rng = np.random.default_rng([seed, voter_id])
        tested, own = own_counts(rows, rng)
        stream = copy.deepcopy(rng)
        result = judge(tested, history, own, rng, decided.get(voter_id, 0))
        if result is None:
            short += 1
            continue
        tested_n += 1
        reached = anomaly.reached_checkpoint(result.n_pvalues, marks, model_marks)
        if reached > decided.get(voter_id, 0):
            newly_decided[voter_id] = reached
        if result.flagged:
            suspects.append(([voter_id], rows[0][1], tested, stream, decided.get(voter_id, 0), "", 0, result))
            suspect_own[voter_id] = own

    addresses_tested = 0
    address_decided: dict[str, int] = {}
    if by_address:
        address_done = _addresses_decided()
        for ip_hash, address_rows in groupby(_address_votes(), key=itemgetter(0)):
            rows = list(address_rows)
            voter_ids = sorted({int(row[1]) for row in rows})
            if len(voter_ids) < 2:   # the others' votes were not rated: this is the voter's own test
                continue
            done = address_done.get(ip_hash, 0)
            rng = np.random.default_rng([seed, 1, _address_seed(ip_hash)])
            tested, own = own_counts(rows, rng)
            stream = copy.deepcopy(rng)
            result = judge(tested, history, own, rng, done)
            if result is None:
                continue
            addresses_tested += 1
            reached = anomaly.reached_checkpoint(result.n_pvalues, marks, model_marks)
            if reached > done:
                address_decided[ip_hash] = reached
            if result.flagged:
                suspects.append((voter_ids, "", tested, stream, done, str(ip_hash), len(voter_ids), result))
                for voter_id in voter_ids:
                    if voter_id not in suspect_own:
                        mine = [row for row in rows if int(row[1]) == voter_id]   # (ip_hash, voter id, ...)
                        suspect_own[voter_id] = own_counts(mine, np.random.default_rng(0))[1]

    # Pass 2, confirmation: each suspect again, against the votes of everyone *not* under suspicion, with the
    # same random numbers (so that only the history differs). Why: a large attack that is in the history skews
    # the crowd's verdict on its target and the target's rivals, so honest identities with many votes on them
    # (a campus NAT) look anomalous against it. A flag needs both passes, so the confirmation can only remove
    # flags: an honest identity's flag chance stays within its level.
    cleaned = {key: counts.copy() for key, counts in history.items()}
    for own in suspect_own.values():
        for pair, counts in own.items():
            cleaned[pair] = np.maximum(cleaned[pair] - counts, 0)
    found: list[tuple[int, str, anomaly.AnomalyResult, str, int]] = []   # voter, key, result, address, voters
    addresses_failed = 0
    for voter_ids, voter_key, tested, stream, done, ip_hash, n_voters, result in suspects:
        again = judge(tested, cleaned, {}, stream, done)
        if again is None or not again.flagged:
            continue
        addresses_failed += bool(ip_hash)
        found.extend((v, voter_key, result, ip_hash, n_voters) for v in voter_ids)

    # Keys of voters found through their address, and names of models the per-model test named (one query each,
    # only when needed).
    missing = [voter_id for voter_id, key, _, _, _ in found if not key]
    keys = dict(Voter.objects.filter(id__in=missing).values_list("id", "key")) if missing else {}
    models = {r.model for _, _, r, _, _ in found if r.model is not None}
    names = dict(Contender.objects.filter(id__in=models).values_list("id", "name")) if models else {}
    flagged: list[FlaggedVoter] = []
    seen: set[int] = set()
    for voter_id, key, result, ip_hash, n_voters in found:
        if voter_id in seen:   # failed both alone and with its address: its own test's reason
            continue
        seen.add(voter_id)
        assert result.checkpoint is not None
        reason = _reason(result, alpha=alpha, checkpoints=marks, draw_habit=draw_habit,
                         model_checkpoints=model_marks, model_alpha=model_alpha,
                         model_name=names.get(result.model, ""), address_voters=n_voters)
        flagged.append(FlaggedVoter(voter_id=voter_id, key=key or keys[voter_id], n_pvalues=result.n_pvalues,
                                    checkpoint=result.checkpoint, statistic=result.statistic,
                                    p_combined=result.p_combined, reason=reason, address=ip_hash[:12],
                                    model=None if result.model is None else int(result.model)))  # type: ignore[call-overload]
    if not dry_run:
        _write_decided(newly_decided)
        _write_address_decided(address_decided)
        written = _write_flags(flagged)
        logger.info("anomaly detection: %d voters and %d addresses tested, %d voters flagged", tested_n,
                    addresses_tested, written)
    return AnomalyReport(alpha=alpha, checkpoints=marks, min_pair_history=min_pair_history,
                         voters_considered=considered, voters_tested=tested_n, voters_short_history=short,
                         already_flagged=already, votes_read=votes_read, flagged=flagged, dry_run=dry_run,
                         model_checkpoints=model_marks, model_alpha=model_alpha, addresses_tested=addresses_tested,
                         addresses_flagged=addresses_failed)


# ------------------------------------------------------------------------------ per-model drift (report only)
@dataclass(frozen=True)
class DriftFinding:
    """A contender whose results in the days ``first_day..last_day`` drifted from its earlier ones (for review)."""

    contender_id: int
    name: str
    first_day: date
    last_day: date
    z: float
    p: float


@dataclass(frozen=True)
class DriftReport:
    days: int
    alpha: float
    windows: tuple[int, ...]
    votes_read: int
    findings: list[DriftFinding] = field(default_factory=list)


def models_check_drift(*, days: int = 10, alpha: float = anomaly.DEFAULT_DRIFT_ALPHA,
                       windows: tuple[int, ...] = anomaly.DEFAULT_DRIFT_WINDOWS, today: date | None = None,
                       ) -> DriftReport:
    """Find the contenders whose recent results against the same opponents drifted from their earlier ones.

    The rated pairwise votes (anonymous, unflagged voter, no vote flag: what the default leaderboards count) of
    the last ``days`` days up to ``today`` (UTC), counted per day and ordered pair of contenders in one GROUP BY,
    go through :func:`arena.anomaly.model_drift_scan`: each day, windows of ``windows`` days ending that day
    against the days before, a day without any change finding something with probability at most ``alpha``.
    This is the check that catches an attacker spread over many addresses with a few votes each, which no
    per-identity test can see — and cannot tell it from a genuine change (a new version behind the same
    name). It **writes nothing**: there is no place yet to hold a contender's votes for review
    (``VoteFlagCode`` has no drift code, the leaderboard no "held" state); staff read the report.

    Raises
    ------
    ValidationFailed
        If ``days`` is below 2, ``alpha`` outside (0, 1) or ``windows`` not increasing positive integers.
    """
    if days < 2:
        raise ValidationFailed(f"must be 2 or more, got {days}", field="drift_days")
    if not 0 < alpha < 1:
        raise ValidationFailed(f"must be between 0 and 1 (exclusive), got {alpha}", field="drift_alpha")
    try:
        lengths = anomaly.validate_checkpoints(windows)
    except ValueError as exc:
        raise ValidationFailed(str(exc).replace("checkpoints", "windows"), field="windows") from None
    last = today or timezone.now().astimezone(UTC).date()
    first = last - timedelta(days=days - 1)
    rows = list(Vote.objects.filter(kind=VoteKind.PAIRWISE, anonymous=True, voter__flagged=False,
                                    created__date__gte=first, created__date__lte=last)
                .exclude(flags__isnull=False)
                .annotate(day=TruncDate("created", tzinfo=UTC))
                .values_list("day", "contender_a_id", "contender_b_id", "outcome").annotate(n=Count("id")).order_by())
    ids = sorted({a for _, a, _, _, _ in rows} | {b for _, _, b, _, _ in rows})
    index = {c: i for i, c in enumerate(ids)}
    daily = np.zeros((days, len(ids), len(ids), anomaly.N_OUTCOMES))
    for day, a, b, outcome, n in rows:
        _, _, code = anomaly.pairwise_comparison(a, b, outcome)
        daily[(day - first).days, index[a], index[b], code] += n
    holds = anomaly.model_drift_scan(daily, alpha=alpha, windows=lengths) if ids else []
    names = dict(Contender.objects.filter(id__in=[ids[h.model] for h in holds]).values_list("id", "name")) \
        if holds else {}
    findings = [DriftFinding(contender_id=ids[h.model], name=names.get(ids[h.model], ""),
                             first_day=first + timedelta(days=h.first_day), last_day=first + timedelta(days=h.day),
                             z=h.z, p=h.p) for h in holds]
    return DriftReport(days=days, alpha=alpha, windows=lengths, votes_read=int(sum(r[-1] for r in rows)),
                       findings=findings)


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
