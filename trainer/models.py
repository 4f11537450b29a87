"""Preference datasets (and, later, training jobs).

A ``PreferenceDataset`` is frozen when it is built: the records of the votes that matched its filters then,
as canonical JSONL (see ``trainer.datasets``), with the sha256 of those bytes. Later votes never change it.

The JSONL lives in the row itself, gzip-compressed (``content_gz``), not in a file: the training workers run
on any host that reaches the database (``manage.py db_worker --queue-name gpu``) and need no shared disk; the
bytes are written in the same transaction as the row, so a failed build leaves neither; and JSONL of text
compresses about 4-5x, so a 100k-record dataset (~100 MB) is a ~25 MB ``bytea`` (Postgres takes up to 1 GB).
List and detail reads defer the column; every read of the bytes checks them against ``sha256``.

``sha256`` is not unique: two datasets with different names (or filters) may rest on the same votes and
have the same bytes. Whatever must happen once per content (a training job) keys on the hash.
"""
from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class DatasetMode(models.TextChoices):
    RANKINGS = "rankings", "K-wise votes as rankings"
    ALL_PAIRS = "all_pairs", "Every pair a K-wise vote orders"
    BEST_VS_REST = "best_vs_rest", "The best answer against each other"
    CURRICULUM = "curriculum", "All pairs, easy to hard by rating gap"


class PreferenceDataset(models.Model):
    name = models.CharField(max_length=200, unique=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)
    filters = models.JSONField(help_text="The normalised filters the votes were chosen by.")
    mode = models.CharField(max_length=16, choices=DatasetMode.choices, help_text="How K-wise votes became records.")
    keep_ties = models.BooleanField(help_text="Ties kept as tie records (and as 1/2 in soft labels), else dropped.")
    n_records = models.PositiveIntegerField()
    n_votes = models.PositiveIntegerField(help_text="Votes some record rests on (len(vote_ids)).")
    counts = models.JSONField(default=dict, help_text="What happened to the votes: matched, excluded, skipped, "
                                                      "dropped, merged, used.")
    ratings = models.JSONField(default=dict, blank=True,
                               help_text="Curriculum mode: {snapshot, values: {contender: rating}} used to order it.")
    sha256 = models.CharField(max_length=64, db_index=True, help_text="sha256 of the canonical JSONL bytes.")
    size_bytes = models.PositiveBigIntegerField(help_text="Length of the canonical JSONL (uncompressed).")
    vote_ids = models.JSONField(default=list, help_text="Sorted ids of the votes the records rest on.")
    content_gz = models.BinaryField(editable=False, help_text="The canonical JSONL, gzip-compressed.")

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(name=""), name="dataset_name_nonempty"),
            models.CheckConstraint(condition=Q(sha256__regex=r"^[0-9a-f]{64}$"), name="dataset_sha256_hex"),
            models.CheckConstraint(condition=Q(n_records__gte=0), name="dataset_n_records_nonnegative"),
            models.CheckConstraint(condition=Q(n_votes__gte=0), name="dataset_n_votes_nonnegative"),
            models.CheckConstraint(condition=Q(mode__in=DatasetMode.values), name="dataset_mode_valid"),
            # Every record is one non-empty line: no records, no bytes; records, some bytes.
            models.CheckConstraint(condition=Q(n_records=0, size_bytes=0) | Q(n_records__gt=0, size_bytes__gt=0),
                                   name="dataset_size_matches_records"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.n_records} records, {self.sha256[:12]})"


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Launcher(models.TextChoices):
    PYTHON = "python", "python -m trainer.train (one process)"
    TORCHRUN = "torchrun", "torchrun --nproc_per_node N"
    ACCELERATE = "accelerate", "accelerate launch --num_processes N"


class TrainingJob(models.Model):
    """A training run of ``python -m trainer.train`` on a dataset, executed by a worker on the ``gpu`` queue.

    The state machine (queued -> running -> succeeded | failed | cancelled; failed or cancelled -> queued by a
    retry, which resumes from the last checkpoint) is enforced in ``trainer.jobs``; the constraints below
    keep the row consistent whatever writes it.
    """

    dataset = models.ForeignKey(PreferenceDataset, on_delete=models.PROTECT, related_name="jobs")
    config = models.JSONField(help_text="JOB.json keys other than train_file and output_dir, which the worker sets.")
    launcher = models.CharField(max_length=12, choices=Launcher.choices, default=Launcher.PYTHON)
    nproc = models.PositiveSmallIntegerField(default=1, help_text="Processes (GPUs) for torchrun / accelerate.")
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    created = models.DateTimeField(default=timezone.now, db_index=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Times a worker started it.")
    worker = models.CharField(max_length=200, blank=True, default="", help_text="host:pid of the running worker.")
    output_dir = models.CharField(max_length=1000, blank=True, default="")
    progress = models.JSONField(default=dict, blank=True, help_text="The trainer's progress.json, as last read.")
    metrics = models.JSONField(default=list, blank=True,
                               help_text="metrics.jsonl lines as read (train and eval), for the curves.")
    manifest = models.JSONField(null=True, blank=True, help_text="Artifacts with sha256 (succeeded jobs).")
    model_card = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    contender = models.OneToOneField("arena.Contender", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="training_job", help_text="The contender it entered as.")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(status__in=JobStatus.values), name="job_status_known"),
            models.CheckConstraint(condition=Q(launcher__in=Launcher.values), name="job_launcher_known"),
            models.CheckConstraint(condition=Q(nproc__gte=1) & Q(nproc__lte=64), name="job_nproc_range"),
            models.CheckConstraint(condition=~Q(launcher=Launcher.PYTHON) | Q(nproc=1),
                                   name="job_plain_launcher_one_process"),
            models.CheckConstraint(
                condition=(Q(status__in=[JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED],
                             finished__isnull=False)
                           | Q(status__in=[JobStatus.QUEUED, JobStatus.RUNNING], finished__isnull=True)),
                name="job_finished_iff_final"),
            models.CheckConstraint(condition=~Q(status=JobStatus.RUNNING) | Q(started__isnull=False),
                                   name="job_running_has_start"),
            models.CheckConstraint(condition=~Q(status=JobStatus.SUCCEEDED) | Q(manifest__isnull=False),
                                   name="job_succeeded_has_manifest"),
            models.CheckConstraint(condition=Q(contender__isnull=True) | Q(status=JobStatus.SUCCEEDED),
                                   name="job_contender_only_when_succeeded"),
        ]

    def __str__(self) -> str:
        return f"training job {self.pk} ({self.status})"
