"""Voted battles with text answers, the material every judge test starts from."""
from __future__ import annotations

from collections.abc import Callable

import pytest

from arena.models import Battle, Contender, VoteKind
from arena.services import SlotInput, battle_create, vote_record, voter_get_or_create
from arena.verdicts import VoteChoice

ANSWERS = {
    "alpha-7b": "Short answer.",
    "beta-13b": ("A longer answer with more words in it, explaining the point in some detail: it restates the "
                 "question, walks through the reasoning one step at a time, gives an example, notes a caveat, "
                 "and closes with a summary of what was said."),
    "gamma-70b": "## Answer\n\n- **First**, a point.\n- **Second**, another point.\n- Third, a closing point.",
    "delta-1b": "Brief.",
}


@pytest.fixture
def voted_battles(db) -> Callable[..., list[Battle]]:
    """``make(n, k=2, outcome="a")``: n voted battles of the first k contenders, one prompt each."""
    for name in ANSWERS:
        Contender.objects.get_or_create(name=name, defaults={"family": name.split("-")[0]})

    def make(n: int, *, k: int = 2, outcome: str = "a", names: list[str] | None = None,
             category: str = "writing") -> list[Battle]:
        names = names or list(ANSWERS)[:k]
        battles = []
        for i in range(n):
            voter = voter_get_or_create(key=f"judge-test-voter-{Battle.objects.count()}-{i}")
            battle = battle_create(voter=voter, slots=[SlotInput(contender=c, response=ANSWERS[c]) for c in names],
                                   prompt_text=f"Question {Battle.objects.count()} number {i}?", category=category,
                                   language="en")
            if k == 2:
                choice = VoteChoice(VoteKind.PAIRWISE, outcome=outcome)
            else:
                choice = VoteChoice(VoteKind.RANKING, ranking=[[p] for p in range(k)])
            vote_record(battle_id=battle.id, voter=voter, choice=choice, idempotency_key=f"k-{battle.id}")
            battles.append(Battle.objects.get(pk=battle.id))
        return battles

    return make
