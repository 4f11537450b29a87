"""Server-rendered pages of the arena. Same gates as the API: a page shows what the API would."""
from __future__ import annotations

from uuid import UUID

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from config.errors import NotFound, ValidationFailed

from .apis import POSITION_LABELS
from .identity import voter_for_read, voter_from_request
from .models import MAX_K, MIN_K, BattleStatus
from .selectors import arena_totals, battle_get_for_voter, contender_battle_counts
from .services import battle_create_from_pool


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "arena/home.html", {"totals": arena_totals(), "contenders": contender_battle_counts()})


def battle_new(request: HttpRequest) -> HttpResponse:
    """POST: open a battle on a pooled prompt for this browser and go to it."""
    if request.method != "POST":
        return redirect("arena:home")
    try:
        k = min(max(int(request.POST.get("k", 2)), MIN_K), MAX_K)
    except ValueError:
        k = 2
    try:
        battle = battle_create_from_pool(voter=voter_from_request(request), k=k)
    except ValidationFailed as exc:
        return render(request, "arena/home.html", {"totals": arena_totals(), "contenders": contender_battle_counts(),
                                                   "error": exc.message}, status=400)
    return redirect("arena:battle-page", battle_id=battle.id)


def battle_page(request: HttpRequest, battle_id: UUID) -> HttpResponse:
    try:
        battle = battle_get_for_voter(battle_id=battle_id, voter=voter_for_read(request))
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    revealed = battle.status == BattleStatus.VOTED
    slots = [
        {"position": s.position, "label": POSITION_LABELS[s.position], "response": s.response,
         "contender": s.contender if revealed else None}
        for s in battle.slots.all()
    ]
    return render(request, "arena/battle.html", {"battle": battle, "slots": slots, "revealed": revealed})
