"""Writes to the arena: voters, prompts, battles, votes. Each is atomic and raises domain errors."""
from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from config.errors import Conflict, NotFound, ValidationFailed
from leaderboard.tasks import leaderboard_refit_soon

from .choices import VoteChoice
from .fingerprints import prompt_sha256, vote_fingerprint, vote_fingerprint_base
from .models import MAX_K, MIN_K, Battle, BattleSlot, BattleStatus, Contender, PoolResponse, Prompt, Vote, Voter
from .selectors import battle_queryset_for_voter

logger = logging.getLogger(__name__)


class BattleAlreadyVoted(Conflict):
    code = "battle_already_voted"


class BattleClosed(Conflict):
    code = "battle_closed"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class BattleNotFound(NotFound):
    code = "battle_not_found"


def ip_hash(ip: str) -> str:
    """Salted hash of an address: enough to spot many votes from one place, useless to recover it."""
    return hashlib.sha256(f"{settings.SECRET_KEY}|ip|{ip}".encode()).hexdigest() if ip else ""


def voter_get_or_create(*, key: str, user: AbstractBaseUser | None = None, ip: str = "") -> Voter:
    voter, _ = Voter.objects.get_or_create(key=key, defaults={"user": user, "ip_hash": ip_hash(ip)})
    return voter


def prompt_get_or_create(*, text: str, category: str = "", language: str = "") -> Prompt:
    prompt, _ = Prompt.objects.get_or_create(
        sha256=prompt_sha256(text), defaults={"text": text, "category": category, "language": language}
    )
    return prompt


@dataclass(frozen=True)
class SlotInput:
    contender: str
    response: str
    token_count: int | None = None
    latency_ms: int | None = None


@transaction.atomic
def battle_create(
    *, voter: Voter, slots: Sequence[SlotInput], prompt_text: str = "", category: str = "", language: str = "",
    anonymous: bool = True,
) -> Battle:
    """Open a battle showing ``slots`` to ``voter`` in a random order.

    The order is drawn from the OS's CSPRNG: the order of the request must not tell the voter which
    contender sits in which position.
    """
    if not MIN_K <= len(slots) <= MAX_K:
        raise ValidationFailed(f"a battle shows {MIN_K} to {MAX_K} responses, got {len(slots)}", field="slots")
    names = [s.contender for s in slots]
    if len(set(names)) != len(names):
        raise ValidationFailed("each contender may appear once in a battle", field="slots")
    contenders = {c.name: c for c in Contender.objects.filter(name__in=names)}
    if missing := [n for n in names if n not in contenders]:
        raise ValidationFailed(f"unknown contender(s): {', '.join(missing)}", field="slots")
    prompt = prompt_get_or_create(text=prompt_text, category=category, language=language) if prompt_text else None
    battle = Battle.objects.create(prompt=prompt, k=len(slots), voter=voter, anonymous=anonymous)
    shuffled = list(slots)
    secrets.SystemRandom().shuffle(shuffled)
    BattleSlot.objects.bulk_create(
        BattleSlot(battle=battle, position=position, contender=contenders[s.contender], response=s.response,
                   token_count=s.token_count, latency_ms=s.latency_ms)
        for position, s in enumerate(shuffled)
    )
    return battle


def battle_get_for_vote(*, battle_id: UUID, voter: Voter) -> Battle:
    """The one gate for voting: the battle, locked, if it exists and was served to this voter.

    Someone else's battle answers exactly like a missing one, so that ids cannot be probed.
    """
    battle = battle_queryset_for_voter(voter=voter).select_for_update().filter(id=battle_id).first()
    if battle is None:
        raise BattleNotFound("no such battle for this voter")
    return battle


def _replay(vote: Vote, *, battle_id: UUID, voter: Voter, choice: VoteChoice) -> Vote:
    """A retried request gets the vote it made; the same key on other content is a client bug."""
    same = (vote.battle_id == battle_id and vote.voter_id == voter.id
            and VoteChoice.from_vote_fields(kind=vote.kind, outcome=vote.outcome, best_position=vote.best_position,
                                            ranking=vote.ranking).verdict_key() == choice.verdict_key())
    if not same:
        raise IdempotencyKeyReused("this Idempotency-Key was already used for a different vote")
    return vote


@transaction.atomic
def vote_record(*, battle_id: UUID, voter: Voter, choice: VoteChoice, idempotency_key: str) -> tuple[Vote, bool]:
    """Store the voter's verdict on a battle exactly once and reveal the battle.

    Returns ``(vote, created)``; ``created`` is False when the request replays an earlier one.
    """
    if (done := Vote.objects.filter(voter=voter, idempotency_key=idempotency_key).first()) is not None:
        return _replay(done, battle_id=battle_id, voter=voter, choice=choice), False
    battle = battle_get_for_vote(battle_id=battle_id, voter=voter)
    # Another request may have voted while we waited for the lock: read again under it.
    if (existing := Vote.objects.filter(battle=battle).first()) is not None:
        if existing.idempotency_key == idempotency_key:
            return _replay(existing, battle_id=battle_id, voter=voter, choice=choice), False
        raise BattleAlreadyVoted("this battle already has a vote")
    if battle.status != BattleStatus.OPEN:
        raise BattleClosed(f"this battle is {battle.status} and takes no vote")
    choice.validate_for(k=battle.k)
    now = timezone.now()
    slots = list(battle.slots.select_related("contender").order_by("position"))
    models = [s.contender.name for s in slots]
    pair = {"contender_a": slots[0].contender, "contender_b": slots[1].contender} if battle.k == 2 else {}
    # The battle is marked voted first: the database accepts a vote only on a voted battle.
    battle.status = BattleStatus.VOTED
    battle.revealed_at = now
    battle.save(update_fields=["status", "revealed_at"])
    try:
        with transaction.atomic():
            vote = Vote.objects.create(
                battle=battle, voter=voter, created=now, idempotency_key=idempotency_key, anonymous=battle.anonymous,
                **pair,
                fingerprint=vote_fingerprint(vote_fingerprint_base(
                    voter_key=voter.key, models=models, verdict_key=choice.verdict_key(), created=now,
                    anonymous=battle.anonymous, prompt_text=battle.prompt.text if battle.prompt else "")),
                **choice.as_fields(),
            )
    except IntegrityError as exc:  # the constraint is the last line if two writers slipped past the lock
        logger.warning("vote on %s refused by the database: %s", battle_id, exc)
        raise BattleAlreadyVoted("this battle already has a vote") from exc
    transaction.on_commit(leaderboard_refit_soon)
    return vote, True


def battle_create_from_pool(*, voter: Voter, k: int = 2) -> Battle:
    """Open a battle on a random pooled prompt that at least ``k`` active contenders have answered.

    A stand-in for matchmaking until the voting site has its own: uniform over prompts and contenders.
    A pooled answer is the same text every time, so a voter who saw it revealed would recognise its
    model: each voter gets each pooled prompt once.
    """
    rng = secrets.SystemRandom()
    seen = Battle.objects.filter(voter=voter, prompt__isnull=False).values("prompt_id")
    answered = (PoolResponse.objects.filter(contender__active=True).exclude(prompt_id__in=seen).values("prompt_id")
                .annotate(n=Count("id")).filter(n__gte=k).values_list("prompt_id", flat=True))
    prompt_ids = list(answered)
    if not prompt_ids:
        raise ValidationFailed(f"no pooled prompt you have not seen has {k} answers from active contenders",
                               field="k")
    prompt = Prompt.objects.get(id=rng.choice(prompt_ids))
    chosen = rng.sample(list(PoolResponse.objects.filter(prompt=prompt, contender__active=True)
                             .select_related("contender")), k)
    return battle_create(
        voter=voter, prompt_text=prompt.text, category=prompt.category, language=prompt.language,
        slots=[SlotInput(contender=r.contender.name, response=r.text, token_count=r.token_count) for r in chosen],
    )
