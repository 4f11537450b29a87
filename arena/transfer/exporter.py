"""Votes out of the database as BattleRecords, streamed in chunks (an export may hold millions)."""
from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Prefetch

from ..choices import VoteChoice
from ..models import BattleSlot, Vote
from .formats import BattleRecord


def vote_records(*, chunk_size: int = 5000) -> Iterator[BattleRecord]:
    slots = BattleSlot.objects.select_related("contender").order_by("position")
    votes = (
        Vote.objects.select_related("battle__prompt", "voter")
        .prefetch_related(Prefetch("battle__slots", queryset=slots))
        .order_by("created", "id")
    )
    for vote in votes.iterator(chunk_size=chunk_size):
        battle = vote.battle
        battle_slots = list(battle.slots.all())
        has_responses = any(s.response for s in battle_slots)
        conversations = tuple(s.conversation for s in battle_slots)
        prompt = battle.prompt
        yield BattleRecord(
            models=tuple(s.contender.name for s in battle_slots),
            choice=VoteChoice.from_vote_fields(kind=vote.kind, outcome=vote.outcome, best_position=vote.best_position,
                                               ranking=vote.ranking, aspects=vote.aspects, rationale=vote.rationale),
            voter_key=vote.voter.key,
            created=vote.created,
            anonymous=battle.anonymous,
            prompt_text=prompt.text if prompt else "",
            category=prompt.category if prompt else "",
            language=prompt.language if prompt else "",
            responses=tuple(s.response for s in battle_slots) if has_responses else None,
            conversations=conversations if any(c is not None for c in conversations) else None,
        )
