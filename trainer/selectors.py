"""Reads for the trainer: which votes a dataset's filters choose, those votes as plain rows, and datasets."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from arena.models import BattleSlot, Vote, VoteFlag, VoteFlagCode
from leaderboard.config import LeaderboardConfig
from leaderboard.selectors import day_start, snapshot_latest

from .datasets import VoteRow
from .models import PreferenceDataset

ROW_CHUNK = 2000


@dataclass(frozen=True)
class DatasetFilters:
    """Which votes a dataset is built from.

    The first five choose votes; the four switches leave out votes the arena distrusts, each counted in the
    dataset's ``counts`` under the first reason that applies, in this order: named, identity leak, duplicate
    prompt, flagged.
    """

    category: str = ""
    language: str = ""
    date_from: str = ""               # ISO dates, inclusive days, on the vote's creation time
    date_to: str = ""
    contenders: tuple[str, ...] = ()  # every answer of the battle comes from one of these (empty: any)
    exclude_flagged: bool = True      # votes of flagged voters, and votes with a flag other than the two below
    exclude_identity_leaks: bool = True   # an answer revealed its model (battle.identity_leak or the vote's flag)
    dedupe_prompts: bool = True       # votes the arena flagged duplicate_prompt (a prompt asked too many times)
    include_named: bool = False       # votes where the voter saw the names

    def as_json(self) -> dict[str, Any]:
        return {"category": self.category, "language": self.language, "date_from": self.date_from,
                "date_to": self.date_to, "contenders": list(self.contenders),
                "exclude_flagged": self.exclude_flagged, "exclude_identity_leaks": self.exclude_identity_leaks,
                "dedupe_prompts": self.dedupe_prompts, "include_named": self.include_named}


def votes_chosen(filters: DatasetFilters) -> QuerySet[Vote]:
    """Votes that the choosing filters (category, language, dates, contenders) match, before exclusions."""
    votes = Vote.objects.all()
    if filters.category:
        votes = votes.filter(battle__prompt__category=filters.category)
    if filters.language:
        votes = votes.filter(battle__prompt__language=filters.language)
    if filters.date_from:
        votes = votes.filter(created__gte=day_start(filters.date_from))
    if filters.date_to:
        votes = votes.filter(created__lt=day_start(filters.date_to, next_day=True))
    if filters.contenders:
        outside = (BattleSlot.objects.filter(battle=OuterRef("battle_id"))
                   .exclude(contender__name__in=filters.contenders))
        votes = votes.exclude(Exists(outside))
    return votes


def _flag(*codes: str, exclude: Sequence[str] = ()) -> Exists:
    flags = VoteFlag.objects.filter(vote=OuterRef("pk"))
    if codes:
        flags = flags.filter(code__in=codes)
    if exclude:
        flags = flags.exclude(code__in=exclude)
    return Exists(flags)


def votes_for_dataset(filters: DatasetFilters) -> tuple[QuerySet[Vote], dict[str, int]]:
    """The votes a dataset is built from, and how many each filter took away (``matched``, ``excluded_*``)."""
    votes = votes_chosen(filters)
    counts = {"matched": votes.count()}
    exclusions: list[tuple[str, Q | Exists]] = []
    if not filters.include_named:
        exclusions.append(("excluded_named", Q(anonymous=False)))
    if filters.exclude_identity_leaks:
        exclusions.append(("excluded_identity_leak",
                           ~Q(battle__identity_leak="") | Q(_flag(VoteFlagCode.IDENTITY_LEAK))))
    if filters.dedupe_prompts:
        exclusions.append(("excluded_duplicate_prompt", Q(_flag(VoteFlagCode.DUPLICATE_PROMPT))))
    if filters.exclude_flagged:
        exclusions.append(("excluded_flagged", Q(voter__flagged=True) | Q(
            _flag(exclude=[VoteFlagCode.IDENTITY_LEAK, VoteFlagCode.DUPLICATE_PROMPT]))))
    remaining = counts["matched"]
    for key, condition in exclusions:
        votes = votes.exclude(condition)
        now = votes.count() if remaining else 0
        counts[key] = remaining - now
        remaining = now
    return votes, counts


def vote_rows(votes: QuerySet[Vote]) -> Iterator[VoteRow]:
    """The votes as the pure core's rows, by id, read in chunks (a vote and its slots, no model objects)."""
    fields = ("id", "kind", "outcome", "best_position", "ranking", "battle_id", "battle__prompt__text",
              "battle__turns")
    last = 0
    while True:
        chunk = list(votes.filter(id__gt=last).order_by("id").values_list(*fields)[:ROW_CHUNK])
        if not chunk:
            return
        last = chunk[-1][0]
        slots: dict[Any, list[tuple]] = {}
        slot_rows = (BattleSlot.objects.filter(battle_id__in=[row[5] for row in chunk])
                     .values_list("battle_id", "position", "response", "error", "contender__name", "conversation"))
        for slot in slot_rows:
            slots.setdefault(slot[0], []).append(slot)
        for vote_id, kind, outcome, best, ranking, battle_id, prompt, turns in chunk:
            battle_slots = sorted(slots.get(battle_id, ()), key=lambda s: s[1])
            user_turns = max([turns or 1, *(_user_turns(s[5]) for s in battle_slots)])
            yield VoteRow(
                vote_id=vote_id, kind=kind, prompt=prompt or "",
                responses=tuple("" if s[3] else s[2] for s in battle_slots),
                models=tuple(s[4] for s in battle_slots), outcome=outcome, best=best,
                ranking=tuple(tuple(g) for g in ranking) if ranking is not None else None, user_turns=user_turns,
            )


def _user_turns(conversation: Any) -> int:
    if not isinstance(conversation, list):
        return 0
    return sum(1 for m in conversation if isinstance(m, dict) and m.get("role") == "user")


def contender_ratings() -> tuple[int | None, dict[str, float]]:
    """The latest default leaderboard snapshot's ratings by contender name (its id, or None if there is none)."""
    snapshot = snapshot_latest(LeaderboardConfig())
    if snapshot is None:
        return None, {}
    return snapshot.pk, {row.model: row.rating for row in snapshot.rows.all()}


# --- datasets ---------------------------------------------------------------------------------------------


def dataset_list() -> QuerySet[PreferenceDataset]:
    """Every dataset, newest first, without its bytes."""
    return PreferenceDataset.objects.defer("content_gz", "vote_ids").order_by("-created", "-id")


def dataset_get(dataset_id: int) -> PreferenceDataset | None:
    """One dataset without its bytes (``trainer.services.dataset_bytes`` reads them), or None."""
    return PreferenceDataset.objects.defer("content_gz", "vote_ids").filter(pk=dataset_id).first()
