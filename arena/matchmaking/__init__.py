"""Matchmaking: which K contenders a battle shows, and in which slot order.

The pure policies (``policies``: NumPy only) are imported eagerly. The Django side
(``contenders_choose``, ``contender_stats``, the source-health functions) is re-exported lazily, on
first access: the vote-budget simulator imports this package with no Django settings at all, and
``import arena.matchmaking`` must not load models there.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .policies import (
    POLICIES,
    ContenderStats,
    NotEnoughContenders,
    Policy,
    RandomPolicy,
    WeightedPolicy,
    policy_from_name,
)

if TYPE_CHECKING:
    from .health import source_failing, source_failure_record, source_success_record
    from .selectors import contender_stats
    from .services import contenders_choose

_LAZY = {
    "contenders_choose": "services",
    "contender_stats": "selectors",
    "source_failing": "health",
    "source_failure_record": "health",
    "source_success_record": "health",
}

__all__ = [
    "POLICIES",
    "ContenderStats",
    "NotEnoughContenders",
    "Policy",
    "RandomPolicy",
    "WeightedPolicy",
    "contender_stats",
    "contenders_choose",
    "policy_from_name",
    "source_failing",
    "source_failure_record",
    "source_success_record",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
