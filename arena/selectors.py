"""Reads from the arena. Access rules live here once, and every read path goes through them."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.db.models import Count, Prefetch, Q, QuerySet

from config.errors import NotFound

from .live.state import live_state_read
from .models import Battle, BattleSlot, BattleStatus, Contender, Generation, Prompt, Vote, Voter
from .sources import LIVE_KINDS


class BattleNotFound(NotFound):
    code = "battle_not_found"


@dataclass(frozen=True)
class BattleAccess:
    """A battle as one voter may see it."""

    battle: Battle
    reveal: bool  # the contenders' names may be shown: only once the voter has voted


def battle_access(*, battle_id: UUID | str, voter: Voter | None, lock: bool = False) -> BattleAccess:
    """The one gate to a battle, for every page, API call, stream and write.

    A battle is visible only to the voter it was served to, and its contenders are revealed only once
    it is voted. Someone else's battle, a missing one, a malformed id and a request with no voter at all
    answer the same NotFound, so that ids cannot be probed. ``lock=True`` (writes) takes a row lock and
    skips the prefetches; callers then read the slots under the lock themselves.
    """
    if voter is None:
        raise BattleNotFound("no such battle for this voter")
    try:
        battle_id = UUID(str(battle_id))
    except ValueError:
        raise BattleNotFound("no such battle for this voter") from None
    battles = Battle.objects.filter(voter=voter, id=battle_id)
    if lock:
        # The prompt comes along (a vote's fingerprint reads it) but only the battle's row is locked.
        battles = battles.select_related("prompt").select_for_update(of=("self",))
    else:
        slots = BattleSlot.objects.select_related("contender").order_by("position")
        battles = battles.select_related("prompt", "vote").prefetch_related(Prefetch("slots", queryset=slots))
    battle = battles.first()
    if battle is None:
        raise BattleNotFound("no such battle for this voter")
    return BattleAccess(battle=battle, reveal=battle.status == BattleStatus.VOTED)


def battle_access_written(battle: Battle, *, voter: Voter | None) -> BattleAccess:
    """The gate for a battle this request has just written and holds (opened it, or voted it through
    :func:`battle_access`): the same rule, without reading the battle again."""
    if voter is None or battle.voter_id != voter.id:
        raise BattleNotFound("no such battle for this voter")
    return BattleAccess(battle=battle, reveal=battle.status == BattleStatus.VOTED)


POSITION_LABELS = "ABCDEF"


@dataclass(frozen=True)
class SlotView:
    position: int
    label: str
    response: str
    conversation: list[dict[str, str]]
    contender: Contender | None  # None until the reveal
    token_count: int | None
    latency_ms: int | None


@dataclass(frozen=True)
class BattleView:
    """What a voter may see of a battle: the stored answers, or while generating the text released so far."""

    id: UUID
    k: int
    status: str
    generation: str
    complete: bool
    turns: int
    void_reason: str
    created: datetime
    revealed_at: datetime | None
    prompt: Prompt | None
    slots: list[SlotView]
    vote: Vote | None
    reveal: bool


def battle_view(access: BattleAccess) -> BattleView:
    """The battle behind ``access`` as its voter sees it; contenders only when ``access.reveal``."""
    battle = access.battle
    slots = battle.written_slots if battle.written_slots is not None else list(battle.slots.all())
    live = live_state_read(battle.id) if battle.generation == Generation.RUNNING else None
    running = battle.generation == Generation.RUNNING and battle.status == BattleStatus.OPEN
    views = []
    for slot in slots:
        conversation = list(slot.conversation or [])
        response = slot.response
        if running:
            # The turn in progress: its answer so far comes from the live state (released text only).
            released = live.texts if live is not None and live.turn == battle.turns and not live.complete else []
            response = released[slot.position] if slot.position < len(released) else ""
        views.append(SlotView(
            position=slot.position, label=POSITION_LABELS[slot.position], response=response,
            conversation=conversation, contender=slot.contender if access.reveal else None,
            token_count=slot.token_count if access.reveal else None,
            latency_ms=slot.latency_ms if access.reveal else None,
        ))
    return BattleView(
        id=battle.id, k=battle.k, status=battle.status, generation=battle.generation,
        complete=battle.generation == Generation.DONE, turns=battle.turns, void_reason=battle.void_reason,
        created=battle.created, revealed_at=battle.revealed_at, prompt=battle.prompt, slots=views,
        vote=getattr(battle, "vote", None) if access.reveal else None, reveal=access.reveal,
    )


def battle_can_continue(battle_id: UUID) -> bool:
    """Whether every answer of the battle comes from a live source (pooled answers cannot continue)."""
    return not BattleSlot.objects.filter(battle_id=battle_id).exclude(contender__source_kind__in=LIVE_KINDS).exists()


RECENT_BATTLES = 1000


def contender_recent_shares(*, last: int = RECENT_BATTLES) -> tuple[dict[int, float], int]:
    """Each contender's share of the last ``last`` battles served (void ones included), and how many there were.

    What matchmaking actually does, for an operator: a share far below K / (number of contenders) is a
    contender the policy starves or whose source keeps failing. Two queries: the battle window, then one
    GROUP BY over its slots.
    """
    recent = list(Battle.objects.order_by("-created").values_list("id", flat=True)[:last])
    if not recent:
        return {}, 0
    counts = (BattleSlot.objects.filter(battle_id__in=recent).values("contender_id")
              .annotate(n=Count("battle_id", distinct=True)))
    return {row["contender_id"]: row["n"] / len(recent) for row in counts}, len(recent)


def contender_list(*, active: bool | None = None) -> QuerySet[Contender]:
    contenders = Contender.objects.all().order_by("name")
    return contenders if active is None else contenders.filter(active=active)


def arena_totals() -> dict[str, int]:
    return {
        "contenders": Contender.objects.count(),
        "battles": Battle.objects.count(),
        "votes": Vote.objects.count(),
        "voters": Voter.objects.count(),
    }


def contender_battle_counts() -> QuerySet[Contender]:
    """Contenders with the number of voted battles each took part in (one GROUP BY)."""
    return (
        Contender.objects.annotate(voted_battles=Count("slots", filter=Q(slots__battle__status="voted")))
        .order_by("-voted_battles", "name")
    )
