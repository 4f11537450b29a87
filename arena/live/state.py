"""What a visitor can see of a battle being generated, kept in the cache that every web process shares.

The coordinator writes one small record per battle at each tick; the battle API and the event stream
read it. Only *released* text (see ``pacing``) is ever written here, so no reader can see more than the
pacing allows. With several web processes the cache must be shared (Redis, ``REDIS_URL``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any
from uuid import UUID

from django.core.cache import cache

# Long enough to outlive any generation; the database holds the final text afterwards.
LIVE_TTL_S = 60 * 60


@dataclass
class LiveState:
    turn: int
    texts: list[str]
    seq: int = 0
    complete: bool = False
    void_reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _key(battle_id: UUID | str) -> str:
    return f"arena:live:{battle_id}"


def live_state_write(battle_id: UUID | str, state: LiveState) -> None:
    cache.set(_key(battle_id), asdict(state), timeout=LIVE_TTL_S)


def live_state_read(battle_id: UUID | str) -> LiveState | None:
    raw = cache.get(_key(battle_id))
    return LiveState(**raw) if raw is not None else None
