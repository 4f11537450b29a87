"""python manage.py check_training_trigger: run the automatic training policy's check now (cron-friendly)."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from config.errors import ApplicationError
from trainer.trigger import training_trigger_check


class Command(BaseCommand):
    help = ("Check the automatic training policy (TRAINER_TRIGGER_VOTES, TRAINER_TRIGGER_FILE): with enough new "
            "eligible votes, build a dataset and queue a training job. Votes also schedule this check.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            outcome = training_trigger_check()
        except ApplicationError as exc:
            raise CommandError(f"{exc.field}: {exc.message}" if exc.field else exc.message) from None
        if outcome.job is not None:
            self.stdout.write(f"{outcome.new_votes} new votes: dataset {outcome.dataset.name} "
                              f"({outcome.dataset.n_records} records), job {outcome.job.pk} queued")
        else:
            self.stdout.write(f"no job: {outcome.reason}")
