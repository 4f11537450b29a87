"""Arena rows that several test modules set up the same way."""
from __future__ import annotations

from arena.models import Contender, PoolResponse
from arena.services import prompt_get_or_create


def pool_contenders(prompts: int) -> list[Contender]:
    """Two pool contenders ("pool-a", "pool-b") that answered ``prompts`` prepared prompts: a public battle then
    opens without any live model, and a voter can open ``prompts`` battles before the pool runs out."""
    contenders = [Contender.objects.create(name=n, source_kind="pool") for n in ("pool-a", "pool-b")]
    for i in range(prompts):
        prompt = prompt_get_or_create(text=f"Prepared prompt {i}")
        for c in contenders:
            PoolResponse.objects.create(contender=c, prompt=prompt, text=f"{c.name} says {i}")
    return contenders
