"""The demo's judge content: simulated human votes on the pooled answers, and a scripted judge audited on them.

The pooled demo answers differ by design in length and markdown (terse-1b, plain-7b, markdown-13b,
verbose-70b), which is what a judge audit is about. The demo has no real human votes on them, so
``demo_votes_seed`` casts simulated ones -- each from its own simulated voter (``demo-sim-*``), drawn from a
Bradley-Terry model with the strengths below, on named battles so that no leaderboard counts them by
default -- and ``manage.py seed_demo_judge`` says so when it runs. A fresh machine then shows
a full audit report: position, length, self-preference, agreement, perturbations.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
from django.db import transaction

from arena.models import Contender, PoolResponse, Vote, VoteKind
from arena.services import SlotInput, battle_create, vote_record, voter_get_or_create
from arena.verdicts import VoteChoice

from .models import Audit, Judge, JudgeRun, RunStatus
from .selectors import RunFilters
from .services import audit_create, judge_create, judge_run_create, judge_run_execute

DEMO_VOTER_PREFIX = "demo-sim-"
DEMO_STRENGTHS = {"markdown-13b": 0.6, "plain-7b": 0.5, "verbose-70b": 0.0, "terse-1b": -1.2}
DEMO_TIE_SHARE = 0.15
DEMO_JUDGE = "scripted-demo"
# Planted biases the demo audit should find: the first shown answer, longer answers, markdown, its own family
# ("verbose"), and two perturbations that sway it.
DEMO_JUDGE_CONFIG = {
    "position_bias": 0.15, "length_bias": 0.8, "markdown_bias": 0.3, "self_preference": 0.7,
    "human_agreement": 0.4, "strengths": DEMO_STRENGTHS,
    "perturbation_effects": {"authority": 2.0, "verbosity": 1.5},
}


def _pairwise_outcome(rng: np.random.Generator, a: str, b: str) -> str:
    if rng.random() < DEMO_TIE_SHARE:
        return "tie"
    p_a = 1 / (1 + math.exp(DEMO_STRENGTHS.get(b, 0.0) - DEMO_STRENGTHS.get(a, 0.0)))
    return "a" if rng.random() < p_a else "b"


@transaction.atomic
def demo_votes_seed(*, seed: int = 0) -> int:
    """Simulated votes on every pair (and every triple) of pooled answers; idempotent. Returns votes added."""
    if Vote.objects.filter(voter__key__startswith=DEMO_VOTER_PREFIX).exists():
        return 0
    rng = np.random.default_rng(seed)
    names = [n for n in DEMO_STRENGTHS if Contender.objects.filter(name=n).exists()]
    answers: dict[int, dict[str, PoolResponse]] = {}
    for response in PoolResponse.objects.filter(contender__name__in=names).select_related("prompt", "contender"):
        answers.setdefault(response.prompt_id, {})[response.contender.name] = response
    added = 0
    for prompt_id, by_name in sorted(answers.items()):
        prompt = next(iter(by_name.values())).prompt
        groups = [*itertools.combinations(sorted(by_name), 2), *itertools.combinations(sorted(by_name), 3)]
        for group in groups:
            voter = voter_get_or_create(key=f"{DEMO_VOTER_PREFIX}{prompt_id}-{'-'.join(group)}")
            # Named (anonymous=False): default leaderboards count only anonymous votes, so simulated votes
            # never enter the demo's ratings; the judge run reads them all the same.
            battle = battle_create(voter=voter, slots=[SlotInput(contender=n, response=by_name[n].text,
                                                                 token_count=by_name[n].token_count) for n in group],
                                   prompt_text=prompt.text, category=prompt.category, language=prompt.language,
                                   anonymous=False)
            order = [s.contender.name for s in sorted(battle.slots.select_related("contender"),
                                                      key=lambda s: s.position)]
            if len(group) == 2:
                choice = VoteChoice(VoteKind.PAIRWISE, outcome=_pairwise_outcome(rng, order[0], order[1]))
            else:   # a Plackett-Luce draw: Gumbel noise on the strengths
                scores = [DEMO_STRENGTHS[n] + rng.gumbel() for n in order]
                choice = VoteChoice(VoteKind.RANKING, ranking=[[int(i)] for i in np.argsort(scores)[::-1]])
            vote_record(battle_id=battle.id, voter=voter, choice=choice, idempotency_key=f"demo-{battle.id}")
            added += 1
    return added


def demo_judge_seed() -> Audit | None:
    """The scripted demo judge, run over the simulated-vote battles (2 replicates, 3 perturbations) and audited.

    Idempotent: once the demo judge has a succeeded run, nothing is done again.
    """
    judge = Judge.objects.filter(name=DEMO_JUDGE).first() or judge_create(
        name=DEMO_JUDGE, backend="scripted", config=DEMO_JUDGE_CONFIG, family="verbose", seed=0)
    if JudgeRun.objects.filter(judge=judge, status=RunStatus.SUCCEEDED).exists():
        return None
    run = judge_run_create(judge=judge, filters=RunFilters(contenders=tuple(DEMO_STRENGTHS)), replicates=2,
                           perturbations=("authority", "bandwagon", "verbosity"))
    run = judge_run_execute(run_id=run.pk)
    return audit_create(run=run) if run.status == RunStatus.SUCCEEDED else None
