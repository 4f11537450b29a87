"""``POST /minimal/vote``: a voted battle of two contenders and its vote, in one transaction, with the ORM."""
from __future__ import annotations

import functools
import uuid

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from arena.models import Battle, BattleSlot, BattleStatus, Contender, Generation, Vote, VoteKind, Voter


@functools.cache
def _fixture() -> tuple[int, int, int]:
    """The voter and the two contenders every vote uses (read once per process)."""
    voter, _ = Voter.objects.get_or_create(key="minimal-benchmark")
    first, second = Contender.objects.order_by("id").values_list("id", flat=True)[:2]
    return voter.id, first, second


@csrf_exempt
@require_POST
def vote(request: HttpRequest) -> JsonResponse:
    voter_id, first, second = _fixture()
    now = timezone.now()
    with transaction.atomic():
        battle = Battle.objects.create(voter_id=voter_id, k=2, status=BattleStatus.VOTED, revealed_at=now,
                                       generation=Generation.DONE)
        BattleSlot.objects.bulk_create([BattleSlot(battle=battle, position=0, contender_id=first),
                                        BattleSlot(battle=battle, position=1, contender_id=second)])
        key = uuid.uuid4().hex
        Vote.objects.create(battle=battle, voter_id=voter_id, created=now, kind=VoteKind.PAIRWISE, outcome="a",
                            contender_a_id=first, contender_b_id=second, idempotency_key=key, fingerprint=key)
    return JsonResponse({"id": str(battle.id), "key": key}, status=201)


urlpatterns = [path("minimal/vote", vote)]
