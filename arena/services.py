"""Writes to the arena: voters, prompts, battles, votes. Each is atomic and raises domain errors."""
from __future__ import annotations

import hashlib
import ipaddress
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from uuid import UUID

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from battlefiles import conversation_style_counts, site_tags, text_style_counts
from config.errors import Conflict, ValidationFailed

from .fingerprints import prompt_sha256, vote_fingerprint, vote_fingerprint_base
from .hooks import after_vote_run
from .leaks import find_identity_leak, identity_terms
from .models import (
    MAX_K,
    MIN_K,
    Battle,
    BattleSlot,
    BattleStatus,
    BattleTag,
    Contender,
    Generation,
    PoolResponse,
    Prompt,
    PromptSource,
    SourceKind,
    Vote,
    VoteFlag,
    VoteFlagCode,
    Voter,
)
from .selectors import battle_access, battle_can_continue
from .sources import LIVE_KINDS
from .tallies import vote_tally
from .tasks import moderation_run_soon
from .verdicts import VoteChoice

logger = logging.getLogger(__name__)


class BattleAlreadyVoted(Conflict):
    code = "battle_already_voted"


class BattleVoid(Conflict):
    code = "battle_void"


class BattleExpired(Conflict):
    code = "battle_expired"


class BattleGenerating(Conflict):
    code = "battle_generating"


class NoLiveContenders(ValidationFailed):
    code = "no_live_contenders"




class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


def ip_hash(ip: str) -> str:
    """Salted hash of an address: enough to spot many votes from one place, useless to recover it."""
    return hashlib.sha256(f"{settings.SECRET_KEY}|ip|{ip}".encode()).hexdigest() if ip else ""


def address_block(ip: str) -> str:
    """The unit that counts as one place: the address for IPv4, its /64 for IPv6.

    One IPv6 subscriber usually holds a whole /64 and can rotate through it at will. Rate limits count per
    block, and a voter's ``ip_hash`` is its block's, so that the anomalous-voter test's address identities
    (``arena.moderation``) cannot be split by rotating through it.
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def voter_get_or_create(*, key: str, user: AbstractBaseUser | None = None, ip: str = "") -> Voter:
    voter, _ = Voter.objects.get_or_create(key=key, defaults={"user": user, "ip_hash": ip_hash(address_block(ip))})
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
    anonymous: bool = True, prompt_source: str = PromptSource.GIVEN,
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
    battle = Battle.objects.create(prompt=prompt, k=len(slots), voter=voter, anonymous=anonymous,
                                   prompt_source=prompt_source)
    shuffled = list(slots)
    secrets.SystemRandom().shuffle(shuffled)
    created = BattleSlot.objects.bulk_create([
        BattleSlot(battle=battle, position=position, contender=contenders[s.contender], response=s.response,
                   token_count=s.token_count, latency_ms=s.latency_ms)
        for position, s in enumerate(shuffled)
    ])
    _check_identity_leaks(battle, created)
    battle.written_slots = created  # in position order, as enumerated
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
    battle = battle_access(battle_id=battle_id, voter=voter, lock=True).battle
    # Another request may have voted while we waited for the lock: read again under it.
    if (existing := Vote.objects.filter(battle=battle).first()) is not None:
        if existing.idempotency_key == idempotency_key:
            return _replay(existing, battle_id=battle_id, voter=voter, choice=choice), False
        raise BattleAlreadyVoted("this battle already has a vote")
    battle_check_open(battle)
    choice.validate_for(k=battle.k)
    now = timezone.now()
    slots = list(battle.slots.select_related("contender").order_by("position"))
    models = [s.contender.name for s in slots]
    pair = {"contender_a": slots[0].contender, "contender_b": slots[1].contender} if battle.k == 2 else {}
    tags = _describe(battle, slots)  # before the vote: afterwards the battle and its slots are a frozen record
    # The battle is marked voted first: the database accepts a vote only on a voted battle.
    battle.status = BattleStatus.VOTED
    battle.revealed_at = now
    battle.save(update_fields=["status", "revealed_at", "language", "category"])
    # No savepoint around the INSERT: a refusal ends this transaction anyway (the error below rolls it back).
    try:
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
    if battle.identity_leak:
        VoteFlag.objects.create(vote=vote, code=VoteFlagCode.IDENTITY_LEAK, reason=battle.identity_leak)
    vote_tally(vote, tags=tags, language=battle.language, contenders=[s.contender_id for s in slots],
               identity_leak=bool(battle.identity_leak))
    transaction.on_commit(_after_vote)
    battle.written_slots = slots  # vote.battle is this object, revealed now, its vote cached on it
    return vote, True


def _describe(battle: Battle, slots: Sequence[BattleSlot]) -> frozenset[str]:
    """Write what a leaderboard filters and style control reads: language, category, tags, slot style counts.

    Computed once, from the battle's own data, when it is voted (``battlefiles.categories.site_tags``
    says which tags that data supports); refits then read them in SQL instead of every response.
    """
    prompt = battle.prompt
    battle.language = battle.language or (prompt.language if prompt else "")
    battle.category = battle.category or (prompt.category if prompt else "")
    for slot in slots:
        counts = conversation_style_counts(slot.conversation) if slot.conversation else text_style_counts(slot.response)
        slot.style_tokens, slot.style_headers, slot.style_lists, slot.style_bold = counts
    BattleSlot.objects.bulk_update(slots, ["style_tokens", "style_headers", "style_lists", "style_bold"])
    conversation = slots[0].conversation or []
    user_turns = [t["content"] for t in conversation if t.get("role") == "user"] or ([prompt.text] if prompt else [])
    tags = site_tags(language=battle.language, user_turns=user_turns, answers=[s.response for s in slots],
                     category=battle.category)
    # A battle gets its tags here, when it is voted, and nowhere else: these are all of them.
    BattleTag.objects.bulk_create([BattleTag(battle=battle, tag=tag) for tag in sorted(tags)])
    return tags


def _after_vote() -> None:
    moderation_run_soon()
    after_vote_run()  # what other apps subscribed (arena.hooks): leaderboard refits, the training trigger


def battle_expired(battle: Battle) -> bool:
    return battle.created + timedelta(minutes=settings.ARENA_BATTLE_TTL_MINUTES) < timezone.now()


def battle_check_open(battle: Battle) -> None:
    """Raise the Conflict that says why ``battle`` cannot take a vote or a new turn now, if any."""
    if battle.status == BattleStatus.VOTED:
        raise BattleAlreadyVoted("this battle already has a vote")
    if battle.status == BattleStatus.VOID:
        raise BattleVoid(f"this battle is void and takes no vote: {battle.void_reason}")
    if battle.generation == Generation.RUNNING:
        raise BattleGenerating("the answers are still being written; vote when they are complete")
    if battle_expired(battle):
        raise BattleExpired(f"this battle expired after {settings.ARENA_BATTLE_TTL_MINUTES} minutes unvoted")


def _sampled_prompt(*, voter: Voter, k: int, live: list[Contender]
                   ) -> tuple[Prompt, list[Contender], dict[int, PoolResponse]]:
    """A pooled prompt this voter has not been served, the contenders that can answer it, and their pooled answers
    by contender id.

    A pooled answer is the same text every time, so a voter who saw it revealed would recognise its
    model: each voter gets each pooled prompt once. Live contenders answer any prompt.
    """
    seen = Battle.objects.filter(voter=voter, prompt__isnull=False).values("prompt_id")
    pooled = (PoolResponse.objects.filter(contender__active=True, contender__source_kind=SourceKind.POOL)
              .exclude(prompt_id__in=seen).values("prompt_id")
              .annotate(n=Count("id")).filter(n__gte=max(0, k - len(live))).values_list("prompt_id", flat=True))
    prompt_ids = list(pooled)
    if not prompt_ids:
        raise ValidationFailed(f"No prepared prompt you have not seen yet can be answered by {k} models: "
                               "type your own prompt or choose fewer answers.", field="k", code="no_sampled_prompt")
    prompt = Prompt.objects.get(id=secrets.SystemRandom().choice(prompt_ids))
    answers = {r.contender_id: r for r in PoolResponse.objects.filter(
        prompt=prompt, contender__active=True, contender__source_kind=SourceKind.POOL).select_related("contender")}
    pool = [r.contender for r in answers.values()]
    return prompt, pool + [c for c in live if c not in pool], answers


@transaction.atomic
def battle_open(*, voter: Voter, k: int = 2, prompt_text: str = "", category: str = "", language: str = "",
                rng: np.random.Generator | None = None) -> Battle:
    """Open an anonymous battle: the visitor's prompt (or a sampled one) answered by ``k`` matched contenders.

    Answers from the pool are known at once; if every chosen contender answers from the pool the battle
    is complete when it opens. Otherwise its slots start empty and the live coordinator generates them
    after this transaction commits (``arena.live.coordinator``).
    """
    from .matchmaking.services import contenders_choose  # it reads leaderboard snapshots: imported late

    if not MIN_K <= k <= MAX_K:
        raise ValidationFailed(f"must be between {MIN_K} and {MAX_K}", field="k")
    prompt_text = _checked_prompt(prompt_text, required=False)
    live = list(Contender.objects.filter(active=True, source_kind__in=LIVE_KINDS))
    if prompt_text:
        if not live:
            raise NoLiveContenders(
                "The models in this arena answer only prepared prompts (the demo pool), so a new prompt cannot be "
                "answered; press 'Surprise me' to vote on a prepared prompt, or point contenders at a model "
                "server (README: contenders.toml)", field="prompt")
        prompt, candidates, source = prompt_get_or_create(text=prompt_text, category=category, language=language), \
            live, PromptSource.TYPED
        answers = None
    else:
        prompt, candidates, answers = _sampled_prompt(voter=voter, k=k, live=live)
        source = PromptSource.SAMPLED
    chosen = contenders_choose(candidates=candidates, k=k, rng=rng)  # in slot order, random
    if answers is None:  # a typed prompt may still be one the pool answers
        answers = {r.contender_id: r for r in PoolResponse.objects.filter(prompt=prompt, contender__in=chosen)}
    pooled = {c.id: answers[c.id] for c in chosen if c.id in answers}
    # In an arena with only pooled answers every battle is instant, which tells nobody anything. Once live
    # models are around, an instant battle would say "these are pool models": pooled answers then stream
    # through the coordinator like the others (at ARENA_POOL_STREAM_CHARS_PER_S).
    all_pooled = not live and all(c.source_kind == SourceKind.POOL and c.id in pooled for c in chosen)
    now = timezone.now()
    battle = Battle.objects.create(
        prompt=prompt, k=k, voter=voter, prompt_source=source,
        generation=Generation.DONE if all_pooled else Generation.RUNNING,
        generation_started=None if all_pooled else now,
    )
    first_turn = [{"role": "user", "content": prompt.text}]
    slots = BattleSlot.objects.bulk_create([
        BattleSlot(battle=battle, position=position, contender=contender,
                   response=pooled[contender.id].text if all_pooled else "",
                   token_count=pooled[contender.id].token_count if all_pooled else None,
                   conversation=first_turn + ([{"role": "assistant", "content": pooled[contender.id].text}]
                                              if all_pooled else []))
        for position, contender in enumerate(chosen)
    ])
    if all_pooled:
        _check_identity_leaks(battle, slots)
    else:
        _start_generation_on_commit(battle)
    battle.written_slots = slots
    return battle


def _checked_prompt(text: str, *, required: bool) -> str:
    text = text.strip()
    if "\x00" in text:
        raise ValidationFailed("must not contain NUL characters", field="prompt")
    if required and not text:
        raise ValidationFailed("must not be empty", field="prompt")
    if len(text) > settings.ARENA_PROMPT_MAX_CHARS:
        raise ValidationFailed(f"must be at most {settings.ARENA_PROMPT_MAX_CHARS} characters", field="prompt")
    return text


def _start_generation_on_commit(battle: Battle) -> None:
    from .live.coordinator import generation_start

    battle_id, turn = battle.id, battle.turns
    transaction.on_commit(lambda: generation_start(battle_id=battle_id, turn=turn))


@transaction.atomic
def battle_continue(*, battle_id: UUID, voter: Voter, prompt_text: str) -> Battle:
    """Add a user turn to an unvoted battle: every contender answers it, seeing its own earlier answers."""
    prompt_text = _checked_prompt(prompt_text, required=True)
    battle = battle_access(battle_id=battle_id, voter=voter, lock=True).battle
    battle_check_open(battle)
    if battle.turns >= settings.ARENA_MAX_TURNS:
        raise ValidationFailed(f"a conversation has at most {settings.ARENA_MAX_TURNS} turns; vote now",
                               field="prompt", code="too_many_turns")
    if not battle_can_continue(battle.id):
        raise ValidationFailed("these answers come from a prepared pool and cannot continue a conversation; vote, "
                               "then start a new round with your own prompt", field="prompt",
                               code="conversation_not_supported")
    slots = list(battle.slots.order_by("position"))
    for slot in slots:
        slot.conversation = [*(slot.conversation or []), {"role": "user", "content": prompt_text}]
    BattleSlot.objects.bulk_update(slots, ["conversation"])
    battle.turns += 1
    battle.generation = Generation.RUNNING
    battle.generation_started = timezone.now()
    battle.save(update_fields=["turns", "generation", "generation_started"])
    _start_generation_on_commit(battle)
    return battle


@dataclass(frozen=True)
class SlotAnswer:
    """What one source produced for one slot in one turn."""

    position: int
    text: str
    token_count: int | None
    latency_ms: int
    error: str = ""


@transaction.atomic
def battle_generation_finish(*, battle_id: UUID, turn: int, answers: Sequence[SlotAnswer]) -> Battle | None:
    """Store a finished turn: every answer, or the void battle if any source failed.

    Returns None when the battle has moved on (voided meanwhile, or another turn started): a late
    coordinator never overwrites newer state.
    """
    battle = Battle.objects.select_for_update().filter(id=battle_id).first()
    if battle is None or battle.turns != turn or battle.generation != Generation.RUNNING:
        return None
    slots = {s.position: s for s in battle.slots.select_related("contender")}
    if failed := [a for a in answers if a.error]:
        for answer in failed:
            slot = slots[answer.position]
            slot.error = answer.error
            slot.save(update_fields=["error"])
        # The voter reads this before any reveal: which slot failed, and how, would hint at its source.
        return _void(battle, reason="one of the models could not answer",
                     generation=Generation.FAILED)
    for answer in answers:
        slot = slots[answer.position]
        # Postgres text and jsonb cannot hold NUL; a model that emits one loses just that character.
        answer = replace(answer, text=answer.text.replace("\x00", ""))
        slot.response = answer.text
        slot.token_count = answer.token_count
        slot.latency_ms = answer.latency_ms
        slot.conversation = [*(slot.conversation or []), {"role": "assistant", "content": answer.text}]
    BattleSlot.objects.bulk_update(slots.values(), ["response", "token_count", "latency_ms", "conversation"])
    battle.generation = Generation.DONE
    battle.save(update_fields=["generation"])
    _check_identity_leaks(battle, list(slots.values()))
    return battle


def _check_identity_leaks(battle: Battle, slots: Sequence[BattleSlot]) -> None:
    """Note on the battle when an answer names its own model; the vote will carry the flag.

    ``slots``: every slot of the battle, with its contender, as this transaction just wrote them.
    """
    leaks = []
    for slot in sorted(slots, key=lambda s: s.position):
        c = slot.contender
        terms = identity_terms(name=c.name, organization=c.organization, family=c.family,
                               words=c.identity_words or [])
        answers = [m["content"] for m in (slot.conversation or []) if m.get("role") == "assistant"] or [slot.response]
        for text in answers:
            if (term := find_identity_leak(text, terms)) is not None:
                leaks.append(f"answer {'ABCDEF'[slot.position]} ({c.name}) says {term!r}")
                break
    reason = "; ".join(leaks)
    if reason != battle.identity_leak:
        battle.identity_leak = reason
        battle.save(update_fields=["identity_leak"])


def _void(battle: Battle, *, reason: str, generation: str | None = None) -> Battle:
    battle.status = BattleStatus.VOID
    battle.void_reason = reason
    fields = ["status", "void_reason"]
    if generation is not None:
        battle.generation = generation
        fields.append("generation")
    battle.save(update_fields=fields)
    return battle


def _stalled(battle: Battle) -> bool:
    if battle.generation != Generation.RUNNING or battle.status != BattleStatus.OPEN:
        return False
    deadline = battle.generation_started + timedelta(seconds=settings.ARENA_GENERATION_TIMEOUT_S + 30)
    return timezone.now() >= deadline


def battle_void_if_stalled(*, battle_id: UUID, voter: Voter | None) -> bool:
    """Void the voter's battle if its generation outlived its time-out (its web process died, say).

    Runs before every read of a battle, so it costs one small query when nothing is stalled: is this
    voter's battle running since before the deadline? (Someone else's battle never matches: the
    caller's gate then answers NotFound.) Only then is the row taken through the gate, locked and
    voided. True if it voided the battle.
    """
    if voter is None:
        return False
    started_before = timezone.now() - timedelta(seconds=settings.ARENA_GENERATION_TIMEOUT_S + 30)
    try:
        battle_id = UUID(str(battle_id))
    except ValueError:
        return False
    if not Battle.objects.filter(id=battle_id, voter=voter, status=BattleStatus.OPEN, generation=Generation.RUNNING,
                                 generation_started__lt=started_before).exists():
        return False
    with transaction.atomic():
        battle = battle_access(battle_id=battle_id, voter=voter, lock=True).battle
        if not _stalled(battle):
            return False
        _void(battle, reason="the answers were not completed in time", generation=Generation.FAILED)
    return True
