"""Reads for judges: which battles a run may judge, the facts a judge sees, and the audit's input rows."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from arena.models import Battle, BattleSlot, BattleStatus, Vote, VoteFlag, VoteKind
from battlefiles.style import text_style_counts
from leaderboard.selectors import day_start

from .models import Audit, Judge, JudgeRun, RunJudgment, Verdict


@dataclass(frozen=True)
class RunFilters:
    """Which battles a run judges. Only voted battles qualify: their names are revealed, and the audit
    compares the judge with the human verdict (a judge run must never expose the models of an open battle)."""

    category: str = ""
    language: str = ""
    date_from: str = ""           # ISO dates, inclusive, on the battle's creation day
    date_to: str = ""
    contenders: tuple[str, ...] = ()   # every answer of the battle comes from one of these (empty: any)
    k: int | None = None          # only battles with this many answers (empty: any)
    exclude_flagged: bool = True  # leave out battles whose vote or voter the arena flagged
    limit: int | None = None      # at most this many battles, the most recent first

    def as_json(self) -> dict[str, Any]:
        return {"category": self.category, "language": self.language, "date_from": self.date_from,
                "date_to": self.date_to, "contenders": list(self.contenders), "k": self.k,
                "exclude_flagged": self.exclude_flagged, "limit": self.limit}


def battles_matching(filters: RunFilters) -> QuerySet[Battle]:
    """Voted battles with a complete text answer in every slot, filtered, most recent first."""
    empty_slots = BattleSlot.objects.filter(Q(response="") | ~Q(error=""), battle=OuterRef("pk"))
    battles = (Battle.objects.filter(status=BattleStatus.VOTED, vote__isnull=False)
               .filter(Q(prompt__isnull=False) | Q(slots__conversation__isnull=False))
               .exclude(Exists(empty_slots)))
    if filters.category:
        battles = battles.filter(prompt__category=filters.category)
    if filters.language:
        battles = battles.filter(prompt__language=filters.language)
    if filters.date_from:
        battles = battles.filter(created__gte=day_start(filters.date_from))
    if filters.date_to:
        battles = battles.filter(created__lt=day_start(filters.date_to, next_day=True))
    if filters.k is not None:
        battles = battles.filter(k=filters.k)
    if filters.contenders:
        outside = BattleSlot.objects.filter(battle=OuterRef("pk")).exclude(contender__name__in=filters.contenders)
        battles = battles.exclude(Exists(outside))
    if filters.exclude_flagged:
        flagged = VoteFlag.objects.filter(vote__battle=OuterRef("pk"))
        battles = battles.exclude(Exists(flagged)).exclude(vote__voter__flagged=True)
    return battles.distinct().order_by("-created", "-id")


@dataclass(frozen=True)
class BattleFacts:
    """A battle as the judge run needs it: conversations by position, and what the audit compares."""

    id: str
    k: int
    user_turns: tuple[str, ...]
    answers: tuple[tuple[str, ...], ...]       # by battle position: the answer's turns
    models: tuple[str, ...]
    families: tuple[str, ...]
    tokens: tuple[int, ...]                     # whitespace tokens over the answer's turns
    markdown: tuple[int, ...]                   # headers + list items + bold spans
    human_ranking: tuple[tuple[int, ...], ...] | None   # battle positions as ordered groups, best first
    human_outcome: str | None                   # pairwise votes: a | b | tie | both_bad
    category: str


def _turns(slot: BattleSlot, prompt_text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    conversation = slot.conversation or []
    users = tuple(str(m.get("content", "")) for m in conversation if m.get("role") == "user")
    answers = tuple(str(m.get("content", "")) for m in conversation if m.get("role") == "assistant")
    if users and len(answers) == len(users):
        return users, answers
    return (prompt_text,), (slot.response,)


def _human(vote: Vote, k: int) -> tuple[tuple[tuple[int, ...], ...] | None, str | None]:
    if vote.kind == VoteKind.PAIRWISE:
        outcome = vote.outcome
        ranking = {"a": ((0,), (1,)), "b": ((1,), (0,))}.get(outcome, ((0, 1),))
        return ranking, outcome
    if vote.kind == VoteKind.RANKING:
        return tuple(tuple(group) for group in vote.ranking), None
    best = vote.best_position
    rest = tuple(p for p in range(k) if p != best)
    return ((best,), rest), None   # best of K: the rest are unordered among themselves (one group)


def battle_facts(battle_ids: Sequence[str]) -> list[BattleFacts]:
    """Facts for ``battle_ids``, in that order (ids that no longer qualify are left out)."""
    battles = (Battle.objects.filter(pk__in=battle_ids).select_related("prompt", "vote")
               .prefetch_related("slots__contender"))
    by_id = {str(b.pk): b for b in battles}
    facts = []
    for battle_id in battle_ids:
        battle = by_id.get(str(battle_id))
        if battle is None:
            continue
        slots = sorted(battle.slots.all(), key=lambda s: s.position)
        prompt_text = battle.prompt.text if battle.prompt else ""
        turns = [_turns(slot, prompt_text) for slot in slots]
        counts = [np.sum([text_style_counts(answer) for answer in answers] or [(0, 0, 0, 0)], axis=0)
                  for _, answers in turns]
        ranking, outcome = _human(battle.vote, battle.k)
        facts.append(BattleFacts(
            id=str(battle.pk), k=battle.k, user_turns=turns[0][0], answers=tuple(a for _, a in turns),
            models=tuple(s.contender.name for s in slots), families=tuple(s.contender.family for s in slots),
            tokens=tuple(int(c[0]) for c in counts), markdown=tuple(int(c[1:].sum()) for c in counts),
            human_ranking=ranking, human_outcome=outcome,
            category=battle.prompt.category if battle.prompt else "",
        ))
    return facts


# --- the audit's input ------------------------------------------------------------------------------------


def _pair_verdict(ranking: Sequence[Sequence[int]], i: int, j: int) -> str:
    group = {p: g for g, members in enumerate(ranking) for p in members}
    if group[i] == group[j]:
        return "tie"
    return "a" if group[i] < group[j] else "b"


def _human_pair(facts: BattleFacts, i: int, j: int) -> str | None:
    if facts.k == 2:
        return facts.human_outcome
    ranking = facts.human_ranking
    if ranking is None:
        return None
    group = {p: g for g, members in enumerate(ranking) for p in members}
    if len(ranking) == 2 and len(ranking[0]) == 1 and group[i] == group[j] == 1:
        return None  # best of K says nothing about two answers that were not chosen
    return _pair_verdict(ranking, i, j)


def audit_records(run: JudgeRun) -> Iterator[dict[str, Any]]:
    """The run's judgments as the audit's input rows (one per judgment and answer pair).

    K-wise judgments are expanded to every pair of answers (battle id ``<uuid>/<i><j>``), the verdict read
    from the judge's ranking and "shown first" from the order the answers were shown in.
    """
    judge = run.judge
    items = (RunJudgment.objects.filter(run=run).select_related("judgment")
             .order_by("judgment__battle_id", "judgment__order", "judgment__replicate", "judgment__perturbation"))
    judgments = [item.judgment for item in items]
    facts = {f.id: f for f in battle_facts(sorted({str(j.battle_id) for j in judgments}))}
    for judgment in judgments:
        battle = facts.get(str(judgment.battle_id))
        if battle is None:
            continue
        shown = [int(c) for c in judgment.order]
        for i in range(battle.k):
            for j in range(i + 1, battle.k):
                yield _record(judge, battle, judgment, shown, i, j)


def _record(judge: Judge, battle: BattleFacts, judgment: Any, shown: list[int], i: int, j: int) -> dict[str, Any]:
    ranked = judgment.verdict == Verdict.RANKING
    verdict = _pair_verdict(judgment.ranking, i, j) if ranked else judgment.verdict
    perturbed = None
    if judgment.perturbation and judgment.perturbed_position in (i, j):
        perturbed = "a" if judgment.perturbed_position == i else "b"
    return {
        "battle_id": battle.id if battle.k == 2 else f"{battle.id}/{i}{j}",
        "judge": judge.name, "judge_family": judge.family or None,
        "model_a": battle.models[i], "model_b": battle.models[j],
        "family_a": battle.families[i] or None, "family_b": battle.families[j] or None,
        "order": "ab" if shown.index(i) < shown.index(j) else "ba",
        "verdict": verdict, "len_a": battle.tokens[i], "len_b": battle.tokens[j],
        "md_a": battle.markdown[i], "md_b": battle.markdown[j],
        "human": _human_pair(battle, i, j), "replicate": judgment.replicate,
        "perturbation": judgment.perturbation or None, "perturbed": perturbed,
        "category": battle.category or None,
        # The pairs of one K-wise battle come from one ranking: the audit resamples them together.
        "cluster": battle.id if battle.k > 2 else None,
    }


# --- pages and API ----------------------------------------------------------------------------------------


def judges_with_latest_audit() -> list[tuple[Judge, Audit | None]]:
    judges = list(Judge.objects.order_by("name").annotate(n_runs=Count("runs")))
    # Ids first: the reports are large, and only each judge's latest is shown.
    latest_ids: dict[int, int] = {}
    for audit_id, judge_id in Audit.objects.order_by("run__judge_id", "-created", "-id").values_list(
            "id", "run__judge_id"):
        latest_ids.setdefault(judge_id, audit_id)
    audits = Audit.objects.in_bulk(list(latest_ids.values()))
    return [(judge, audits.get(latest_ids.get(judge.pk, -1))) for judge in judges]


def judge_audits(judge: Judge) -> list[Audit]:
    """The judge's audits, oldest first (the latest per run)."""
    audits = Audit.objects.filter(run__judge=judge).select_related("run").order_by("run_id", "-created", "-id")
    latest_per_run: dict[int, Audit] = {}
    for audit in audits:
        latest_per_run.setdefault(audit.run_id, audit)
    return sorted(latest_per_run.values(), key=lambda a: (a.created, a.pk))

