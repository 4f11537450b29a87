"""Reads from the arena. Access rules live here once, and every read path goes through them."""
from __future__ import annotations

from uuid import UUID

from django.db.models import Count, Prefetch, Q, QuerySet

from config.errors import NotFound

from .models import Battle, BattleSlot, Contender, Vote, Voter


def battle_queryset_for_voter(*, voter: Voter) -> QuerySet[Battle]:
    """Battles this voter may see or vote on: only those served to them."""
    return Battle.objects.filter(voter=voter)


def battle_get_for_voter(*, battle_id: UUID, voter: Voter | None) -> Battle:
    """A battle with its slots (contenders joined) and prompt, if served to ``voter``; else NotFound."""
    if voter is None:
        raise NotFound("no such battle for this voter", code="battle_not_found")
    slots = BattleSlot.objects.select_related("contender").order_by("position")
    battle = (
        battle_queryset_for_voter(voter=voter)
        .select_related("prompt", "vote")
        .prefetch_related(Prefetch("slots", queryset=slots))
        .filter(id=battle_id)
        .first()
    )
    if battle is None:
        raise NotFound("no such battle for this voter", code="battle_not_found")
    return battle


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
