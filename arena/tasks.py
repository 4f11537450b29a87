"""Background moderation, run by `manage.py db_worker`: anomalous voters and duplicate prompts."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django_tasks import task

DEBOUNCE_KEY = "arena:moderation-enqueued"
DEFAULT_DEBOUNCE_SECONDS = 300


@task()
def moderation_run_task() -> dict[str, Any]:
    """Flag anomalous voters, then duplicate prompts, with the settings' parameters; return a summary."""
    # Imported here: moderation loads scipy.stats (~1.5 s), which a web process voting must not pay.
    from .moderation import anomaly_settings, duplicate_settings, prompts_flag_duplicates, voters_flag_anomalous

    voters = voters_flag_anomalous(**anomaly_settings())
    prompts = prompts_flag_duplicates(**duplicate_settings())
    return {
        "voters_tested": voters.voters_tested,
        "voters_flagged": [f.key for f in voters.flagged],
        "duplicate_prompts": [d.prompt_id for d in prompts.duplicates],
        "votes_flagged_duplicate": prompts.votes_flagged,
    }


def moderation_run_soon() -> bool:
    """Called after a vote commits: at most one moderation run per debounce window.

    The run is scheduled for the end of the window, so it sees every vote of a burst. The window is
    ``ARENA_MODERATION_DEBOUNCE_SECONDS`` (default 300): a run reads every rated vote, so it is kept
    rarer than a leaderboard refit check.
    """
    seconds = int(getattr(settings, "ARENA_MODERATION_DEBOUNCE_SECONDS", DEFAULT_DEBOUNCE_SECONDS))
    if not cache.add(DEBOUNCE_KEY, 1, timeout=seconds):
        return False
    moderation_run_task.using(run_after=timezone.now() + timedelta(seconds=seconds)).enqueue()
    return True
