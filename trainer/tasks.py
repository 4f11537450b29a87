"""Training jobs as django-tasks tasks: the job itself on the ``gpu`` queue, the watchdog on ``default``.

A GPU host runs ``manage.py db_worker --queue-name gpu``; any worker on the default queue runs the watchdog,
which is why it is not on the ``gpu`` queue: a dead GPU worker cannot report its own death.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django_tasks import task


@task(queue_name="gpu")
def training_job_task(job_id: int) -> dict[str, Any]:
    """Execute (or resume) a training job on this host and follow it to its end."""
    from .jobs import job_execute

    training_watchdog_soon()
    job = job_execute(job_id=job_id)
    return {"job": job.pk, "status": job.status, "attempts": job.attempts}


@task()
def training_watchdog_task() -> dict[str, Any]:
    """Fail running jobs whose heartbeat stopped; check again later while any job is still active."""
    from .jobs import jobs_fail_stale
    from .models import JobStatus, TrainingJob

    failed = jobs_fail_stale()
    if TrainingJob.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).exists():
        training_watchdog_soon()
    return {"failed": failed}


def training_watchdog_soon() -> bool:
    """Schedule one watchdog run a heartbeat timeout from now (at most one per window)."""
    seconds = settings.TRAINER_HEARTBEAT_TIMEOUT_S
    if not cache.add("trainer:watchdog-enqueued", 1, timeout=max(1, seconds - 1)):
        return False
    training_watchdog_task.using(run_after=timezone.now() + timedelta(seconds=seconds)).enqueue()
    return True


TRIGGER_DEBOUNCE_S = 60


@task()
def training_trigger_task() -> dict[str, Any]:
    """Check the automatic training policy (see trainer.trigger)."""
    from .trigger import training_trigger_check

    outcome = training_trigger_check()
    return {"new_votes": outcome.new_votes, "dataset": outcome.dataset.pk if outcome.dataset else None,
            "job": outcome.job.pk if outcome.job else None, "reason": outcome.reason}


def training_trigger_soon() -> bool:
    """Called after a vote commits: with the policy on, one check per minute at most (at the minute's end)."""
    if settings.TRAINER_TRIGGER_VOTES <= 0:
        return False
    if not cache.add("trainer:trigger-enqueued", 1, timeout=TRIGGER_DEBOUNCE_S):
        return False
    training_trigger_task.using(run_after=timezone.now() + timedelta(seconds=TRIGGER_DEBOUNCE_S)).enqueue()
    return True
