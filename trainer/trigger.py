"""The automatic loop from votes to a tuned model: a policy, off unless ``TRAINER_TRIGGER_VOTES`` > 0.

After votes commit, :func:`training_trigger_soon` (in ``trainer.tasks``) schedules a check at most once a
minute. The check counts the votes the configured filters choose that are newer than every vote of the last
automatic dataset; at ``TRAINER_TRIGGER_VOTES`` or more it freezes a dataset and queues a job on it. A
dataset whose bytes (sha256) already have a job gets none: two jobs never train on the same data.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import ValidationFailed

from .jobs import job_config_check, job_create
from .models import Launcher, PreferenceDataset, TrainingJob
from .selectors import votes_for_dataset
from .services import dataset_build, dataset_filters_from

logger = logging.getLogger(__name__)

AUTO_PREFIX = "auto-"


@dataclass(frozen=True)
class TriggerPolicy:
    votes: int
    filters: dict[str, Any]
    mode: str
    keep_ties: bool
    config: dict[str, Any]
    launcher: str
    nproc: int


@dataclass(frozen=True)
class TriggerOutcome:
    new_votes: int
    dataset: PreferenceDataset | None = None
    job: TrainingJob | None = None
    reason: str = ""


def trigger_policy() -> TriggerPolicy | None:
    """The configured policy, or None when the trigger is off. Raises ValidationFailed naming what is wrong."""
    if settings.TRAINER_TRIGGER_VOTES <= 0:
        return None
    path = Path(settings.TRAINER_TRIGGER_FILE)
    if not settings.TRAINER_TRIGGER_FILE or not path.is_file():
        raise ValidationFailed(f"TRAINER_TRIGGER_VOTES is set but the file {path} does not exist",
                               field="TRAINER_TRIGGER_FILE")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValidationFailed(f"cannot read {path}: {exc}", field="TRAINER_TRIGGER_FILE") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        raise ValidationFailed("must be a JSON object with a config object", field="TRAINER_TRIGGER_FILE")
    unknown = set(spec) - {"filters", "mode", "keep_ties", "config", "launcher", "nproc"}
    if unknown:
        raise ValidationFailed(f"unknown keys {sorted(unknown)}", field="TRAINER_TRIGGER_FILE")
    dataset_filters_from(spec.get("filters") or {})        # fail now, naming the filter, not at build time
    job_config_check(spec["config"])
    return TriggerPolicy(votes=settings.TRAINER_TRIGGER_VOTES, filters=spec.get("filters") or {},
                         mode=spec.get("mode", "all_pairs"), keep_ties=bool(spec.get("keep_ties", False)),
                         config=spec["config"], launcher=spec.get("launcher", Launcher.PYTHON),
                         nproc=int(spec.get("nproc", 1)))


def _last_auto_vote() -> int:
    last = PreferenceDataset.objects.filter(name__startswith=AUTO_PREFIX).order_by("-created", "-id").first()
    return max(last.vote_ids) if last is not None and last.vote_ids else 0


def training_trigger_check() -> TriggerOutcome:
    """Build a dataset and queue a job when enough new votes have come in (see the module docstring)."""
    policy = trigger_policy()
    if policy is None:
        return TriggerOutcome(new_votes=0, reason="the trigger is off")
    votes, _ = votes_for_dataset(dataset_filters_from(policy.filters))
    new_votes = votes.filter(pk__gt=_last_auto_vote()).count()
    if new_votes < policy.votes:
        return TriggerOutcome(new_votes=new_votes, reason=f"{new_votes} of {policy.votes} new votes")
    with transaction.atomic():
        name = f"{AUTO_PREFIX}{timezone.now():%Y%m%d-%H%M%S-%f}"
        dataset = dataset_build(name=name, filters=policy.filters, mode=policy.mode, keep_ties=policy.keep_ties)
        if TrainingJob.objects.filter(dataset__sha256=dataset.sha256).exists():
            logger.info("trigger: dataset %s has the bytes of one already trained on; no job", name)
            return TriggerOutcome(new_votes=new_votes, dataset=dataset, reason="a job already trained on this data")
        job = job_create(dataset=dataset, config=policy.config, launcher=policy.launcher, nproc=policy.nproc)
    logger.info("trigger: %d new votes -> dataset %s, job %s", new_votes, name, job.pk)
    return TriggerOutcome(new_votes=new_votes, dataset=dataset, job=job)
