"""Server-rendered pages of the arena. Same gates as the API: a page shows what the API would."""
from __future__ import annotations

from uuid import UUID

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from config.errors import NotFound

from .apis import POSITION_LABELS
from .identity import voter_from_request
from .models import BattleStatus
from .selectors import arena_totals, battle_get_for_voter, contender_battle_counts


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "arena/home.html", {"totals": arena_totals(), "contenders": contender_battle_counts()})


def battle_page(request: HttpRequest, battle_id: UUID) -> HttpResponse:
    try:
        battle = battle_get_for_voter(battle_id=battle_id, voter=voter_from_request(request))
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    revealed = battle.status == BattleStatus.VOTED
    slots = [
        {"position": s.position, "label": POSITION_LABELS[s.position], "response": s.response,
         "contender": s.contender if revealed else None}
        for s in battle.slots.all()
    ]
    return render(request, "arena/battle.html", {"battle": battle, "slots": slots, "revealed": revealed})
