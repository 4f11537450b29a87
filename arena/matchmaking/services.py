"""Matchmaking for a battle: the policy named in the settings, run on the candidates' stats."""
from __future__ import annotations

import secrets
from collections.abc import Sequence

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from arena.models import MAX_K, MIN_K, Contender
from config.errors import ValidationFailed

from .policies import POLICIES, NotEnoughContenders, Policy, policy_from_name
from .selectors import contender_stats


def _policy_params(name: str) -> dict[str, object]:
    if name == "weighted":
        return {
            "new_boost": float(getattr(settings, "ARENA_MATCHMAKING_NEW_BOOST", 3.0)),
            "new_until_votes": int(getattr(settings, "ARENA_MATCHMAKING_NEW_UNTIL_VOTES", 300)),
        }
    if name == "active":
        return {"min_share": float(getattr(settings, "ARENA_MATCHMAKING_MIN_SHARE", 0.1))}
    return {}


def matchmaking_policy(name: str | None = None) -> Policy:
    """The policy ``name`` (a caller's choice) or, when None, the one ``ARENA_MATCHMAKING_POLICY`` names.

    Its parameters always come from the settings.
    """
    if name is not None and name not in POLICIES:
        raise ValidationFailed(f"unknown matchmaking policy; choose one of {', '.join(sorted(POLICIES))}",
                               field="policy", code="unknown_policy")
    name = name or getattr(settings, "ARENA_MATCHMAKING_POLICY", "weighted")
    try:
        return policy_from_name(name, **_policy_params(name))
    except ValueError as exc:  # a bad setting must stop the site loudly, not turn into a visitor's 400
        raise ImproperlyConfigured(f"matchmaking settings: {exc}") from exc


def _not_enough_message(available: int, k: int) -> str:
    if available < MIN_K:
        can = "no model can" if available == 0 else "only 1 model can"
        return f"{can} answer this prompt right now; please try again later"
    return f"only {available} models can answer this prompt right now; choose k ≤ {available}"


def contenders_choose(
    *, candidates: Sequence[Contender], k: int, rng: np.random.Generator | None = None, policy: str | None = None,
) -> list[Contender]:
    """Choose ``k`` of ``candidates`` for a battle, returned in slot order (A first).

    ``candidates`` are the contenders able to answer this prompt; inactive ones and those whose source
    is failing are left out here. Without ``rng`` the draw is seeded from the OS's CSPRNG: a visitor must
    not be able to predict which model sits in which slot.

    Raises
    ------
    ValidationFailed
        ``field="k"``: ``k`` outside 2..6, or (``code="not_enough_contenders"``) fewer than ``k``
        candidates can be chosen; ``field="policy"``: an unknown ``policy``.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not MIN_K <= k <= MAX_K:
        raise ValidationFailed(f"a battle shows {MIN_K} to {MAX_K} responses", field="k")
    chosen_policy = matchmaking_policy(policy)
    stats = contender_stats(candidates=candidates, with_snapshot=chosen_policy.uses_ratings)
    if rng is None:
        rng = np.random.default_rng(secrets.randbits(128))
    try:
        indices = chosen_policy.choose(stats, k, rng)
    except NotEnoughContenders as exc:
        raise ValidationFailed(_not_enough_message(exc.available, k), field="k",
                               code="not_enough_contenders") from exc
    return [candidates[int(i)] for i in indices]
