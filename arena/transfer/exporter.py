"""Votes out of the database as BattleRecords, streamed in chunks (an export may hold millions)."""
from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Prefetch

from ..models import BattleSlot, Vote
from ..verdicts import VoteChoice
from .formats import TIME_FROM_IMPORT, BattleRecord


def vote_records(*, chunk_size: int = 5000) -> Iterator[BattleRecord]:
    slots = BattleSlot.objects.select_related("contender").order_by("position")
    votes = (
        Vote.objects.select_related("battle__prompt", "voter")
        .prefetch_related(Prefetch("battle__slots", queryset=slots), "battle__tags")
        .order_by("created", "id")
    )
    for vote in votes.iterator(chunk_size=chunk_size):
        battle = vote.battle
        battle_slots = list(battle.slots.all())
        has_responses = any(s.response for s in battle_slots)
        conversations = tuple(s.conversation for s in battle_slots)
        prompt = battle.prompt
        metadata = battle.source_metadata or {}
        stamped = all(metadata.get(k) == v for k, v in TIME_FROM_IMPORT.items())
        yield BattleRecord(
            models=tuple(s.contender.name for s in battle_slots),
            choice=VoteChoice.from_vote_fields(kind=vote.kind, outcome=vote.outcome, best_position=vote.best_position,
                                               ranking=vote.ranking, aspects=vote.aspects, rationale=vote.rationale),
            voter_key=vote.voter.key,
            created=None if stamped else vote.created,
            anonymous=battle.anonymous,
            prompt_text=prompt.text if prompt else "",
            category=battle.category or (prompt.category if prompt else ""),
            language=battle.language or (prompt.language if prompt else ""),
            responses=tuple(s.response for s in battle_slots) if has_responses else None,
            conversations=conversations if any(c is not None for c in conversations) else None,
            external_id=battle.external_id,
            tags=frozenset(t.tag for t in battle.tags.all()),
            metadata={k: v for k, v in metadata.items() if k not in TIME_FROM_IMPORT} or None,
            turns=battle.turns,
        )
