"""Background refits, run by `manage.py db_worker` on any host that reaches the database, and the readers'
entry point that schedules them (the dependency runs one way: tasks call services, never the reverse)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.utils import timezone
from django_tasks import task

from arena.tallies import tallies_fold

from . import selectors
from .config import LeaderboardConfig
from .models import Snapshot
from .services import leaderboard_is_stale, leaderboard_refit, leaderboard_refit_if_stale, refit_stale_leaderboards

DEBOUNCE_KEY = "leaderboard:refit-enqueued"
DEBOUNCE_SECONDS = 30


@task()
def refit_stale_leaderboards_task() -> list[int]:
    """Refit the default leaderboards that have N new votes or are T minutes old; return snapshot ids.

    First folds the votes' tally changes (``arena.tallies``): this task runs after every burst of votes,
    which keeps the change table short.
    """
    tallies_fold()
    return [snapshot.id for snapshot in refit_stale_leaderboards()]


@task()
def refit_leaderboard_task(config: dict[str, Any]) -> int | None:
    """Refit one configuration (a reader found its snapshot stale); None if another run already did."""
    snapshot = leaderboard_refit_if_stale(config=LeaderboardConfig(**config))
    return snapshot.id if snapshot is not None else None


def leaderboard_refit_soon() -> bool:
    """Called after a vote commits: at most one refit check per DEBOUNCE_SECONDS window.

    The check is scheduled for the end of the window, so it sees every vote of a burst; the task
    itself decides whether anything is stale.
    """
    if not cache.add(DEBOUNCE_KEY, 1, timeout=DEBOUNCE_SECONDS):
        return False
    run_after = timezone.now() + timedelta(seconds=DEBOUNCE_SECONDS)
    refit_stale_leaderboards_task.using(run_after=run_after).enqueue()
    return True


def snapshot_serve(*, config: LeaderboardConfig) -> Snapshot:
    """The snapshot a reader (API, page) gets: the latest of ``config``, fitted now if there is none.

    A stale one is still served, and a background refit is enqueued: a reader never waits for a refit of
    data it already has a fit of.
    """
    snapshot = selectors.snapshot_latest(config)
    if snapshot is None:
        return leaderboard_refit(config=config)
    # At most one staleness check, and refit enqueued, per configuration and DEBOUNCE_SECONDS: a popular stale
    # leaderboard read 220 times in a load test had enqueued 221 refits. A snapshot that goes stale within the
    # window of a check that found it fresh is refitted at most DEBOUNCE_SECONDS later.
    if (cache.add(f"{DEBOUNCE_KEY}:{config.key()}", 1, timeout=DEBOUNCE_SECONDS)
            and leaderboard_is_stale(config=config, snapshot=snapshot)):
        refit_leaderboard_task.enqueue(config.as_dict())
    return snapshot
