"""What other apps plug into the arena, so that the arena imports none of them.

The dependency runs one way: the leaderboard and the trainer read the arena; the arena only calls what
they registered here when their apps load (``AppConfig.ready``):

- :func:`after_vote_subscribe`: run after each vote commits (the leaderboard schedules a refit, the
  trainer checks its trigger). The arena's own moderation is called directly.
- :func:`contender_ratings_provide`: current ratings for matchmaking's ``active`` policy (the
  leaderboard serves its latest default snapshot).

Without a registration the arena still works: no callbacks run and matchmaking sees no ratings.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

Ratings = dict[int, tuple[float, float, float]]  # contender id -> (rating, ci_low, ci_high); NaN: unknown bound

_after_vote: list[Callable[[], None]] = []
_ratings_provider: list[Callable[[Sequence[int]], Ratings]] = []


def after_vote_subscribe(callback: Callable[[], None]) -> None:
    """Run ``callback`` after every committed vote (idempotent: registering twice runs it once)."""
    if callback not in _after_vote:
        _after_vote.append(callback)


def after_vote_run() -> None:
    for callback in list(_after_vote):
        callback()


def contender_ratings_provide(provider: Callable[[Sequence[int]], Ratings]) -> None:
    """Make ``provider`` the source of :func:`contender_ratings` (the last registration wins)."""
    _ratings_provider[:] = [provider]


def contender_ratings(contender_ids: Sequence[int]) -> Ratings:
    """(rating, ci_low, ci_high) per contender from whoever provides ratings; {} when nobody does."""
    return _ratings_provider[0](contender_ids) if _ratings_provider else {}
