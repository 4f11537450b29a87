"""Background refits, run by `manage.py db_worker` on any host that reaches the database."""
from __future__ import annotations

from django.core.cache import cache
from django_tasks import task

from .services import refit_stale_leaderboards

DEBOUNCE_KEY = "leaderboard:refit-enqueued"
DEBOUNCE_SECONDS = 30


@task()
def refit_stale_leaderboards_task() -> list[int]:
    """Refit the default leaderboards that have N new votes or are T minutes old; return snapshot ids."""
    return [snapshot.id for snapshot in refit_stale_leaderboards()]


def leaderboard_refit_soon() -> bool:
    """Called after a vote commits: enqueue one refit check, at most once per DEBOUNCE_SECONDS.

    The task itself decides whether anything is stale, so a burst of votes costs one queued row.
    """
    if not cache.add(DEBOUNCE_KEY, 1, timeout=DEBOUNCE_SECONDS):
        return False
    refit_stale_leaderboards_task.enqueue()
    return True
