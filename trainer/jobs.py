"""Training jobs: create, execute on a worker, follow, cancel, retry, and enter the result into the arena.

The state machine is enforced here, under a row lock, for every transition::

    queued --execute--> running --exit 0--> succeeded --enter--> (a Contender)
                               --exit != 0 / heartbeat lost--> failed --retry--> queued
    queued | running --cancel--> cancelled --retry--> queued

A job keeps one output directory across attempts, so a retry resumes from the trainer's last checkpoint.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from arena.models import Contender, SourceKind
from arena.sources.config import validate_source_config
from config.errors import Conflict, ValidationFailed

from .config import ConfigError, config_from_dict
from .models import JobStatus, Launcher, PreferenceDataset, TrainingJob
from .runner import Progress, launch_command, run_training
from .services import dataset_bytes

logger = logging.getLogger(__name__)

_SET_BY_WORKER = ("train_file", "output_dir")
FINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


# --- create -----------------------------------------------------------------------------------------------


def job_config_check(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` checked by the trainer's own validator (errors name ``config.<key>``).

    ``train_file`` and ``output_dir`` belong to the worker (the dataset's frozen bytes, the job's directory),
    so a config may not set them. Paths (``base_model``, ``tokenizer``) are checked on this host: with several
    hosts, they must be the same path on every worker (a shared model directory).
    """
    if not isinstance(config, dict):
        raise ValidationFailed("must be a JSON object", field="config")
    for key in _SET_BY_WORKER:
        if key in config:
            raise ValidationFailed("set by the worker from the dataset and the job; leave it out",
                                   field=f"config.{key}")
    with tempfile.TemporaryDirectory() as scratch:
        placeholder = Path(scratch) / "train.jsonl"
        placeholder.write_text("")
        try:
            config_from_dict({**config, "train_file": str(placeholder), "output_dir": str(Path(scratch) / "out")},
                             base_dir=Path(scratch))
        except ConfigError as exc:
            raise ValidationFailed(exc.message, field=f"config.{exc.key}" if exc.key else "config") from None
    return dict(config)


@transaction.atomic
def job_create(*, dataset: PreferenceDataset, config: dict[str, Any], launcher: str = Launcher.PYTHON,
               nproc: int = 1) -> TrainingJob:
    """A queued job; it is enqueued on the ``gpu`` queue when the transaction commits."""
    if launcher not in Launcher.values:
        raise ValidationFailed(f"must be one of {', '.join(Launcher.values)}", field="launcher")
    if not 1 <= nproc <= 64 or (launcher == Launcher.PYTHON and nproc != 1):
        raise ValidationFailed("the python launcher runs 1 process; torchrun / accelerate 1 to 64", field="nproc")
    job = TrainingJob.objects.create(dataset=dataset, config=job_config_check(config), launcher=launcher,
                                     nproc=nproc)
    _enqueue_on_commit(job)
    return job


def _enqueue_on_commit(job: TrainingJob) -> None:
    from .tasks import training_job_task

    transaction.on_commit(lambda: training_job_task.enqueue(job.pk))


# --- execute ----------------------------------------------------------------------------------------------


def job_output_dir(job: TrainingJob) -> Path:
    return Path(settings.TRAINER_OUTPUT_ROOT) / f"job-{job.pk}"


def _claim(job_id: int) -> TrainingJob | None:
    """Mark the job running for this worker; None when there is nothing to run (cancelled meanwhile, or done)."""
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().select_related("dataset").get(pk=job_id)
        stale = job.status == JobStatus.RUNNING and _heartbeat_lost(job)
        if job.status != JobStatus.QUEUED and not stale:
            logger.info("training job %s is %s: not started", job.pk, job.status)
            return None
        now = timezone.now()
        job.status, job.started, job.heartbeat, job.error = JobStatus.RUNNING, now, now, ""
        job.attempts += 1
        job.worker = f"{socket.gethostname()}:{os.getpid()}"
        job.output_dir = str(job_output_dir(job))
        job.save()
        return job


def job_execute(*, job_id: int, poll_s: float = 1.0) -> TrainingJob:
    """Run the job's training as a subprocess on this host, following it until it ends (the worker's task).

    The dataset's frozen bytes (sha256 checked) become ``train.jsonl`` in the job's directory; the trainer
    resumes from its last checkpoint there on a retry.
    """
    job = _claim(job_id)
    if job is None:
        return TrainingJob.objects.get(pk=job_id)
    out = Path(job.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_file = out / "train.jsonl"
    train_file.write_bytes(dataset_bytes(job.dataset))
    job_file = out / "job.json"
    job_file.write_text(json.dumps({**job.config, "train_file": str(train_file), "output_dir": str(out)}, indent=2))
    outcome = run_training(
        command=launch_command(job.launcher, job.nproc, job_file), output_dir=out, poll_s=poll_s,
        on_progress=lambda progress: _report(job.pk, progress),
        should_cancel=lambda: TrainingJob.objects.filter(pk=job.pk, status=JobStatus.CANCELLED).exists(),
        cwd=Path(settings.BASE_DIR),
    )
    return _conclude(job.pk, out, outcome.returncode, outcome.cancelled, outcome.log_tail)


def _report(job_id: int, progress: Progress) -> None:
    """Progress, metrics and the heartbeat, written while the job is still running."""
    metrics = [m for m in (progress.last_train, progress.last_eval) if m]
    TrainingJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(
        progress=progress.progress, heartbeat=timezone.now(),
        **({"metrics": _metrics_lines(job_id)} if metrics else {}))


def _metrics_lines(job_id: int) -> list[dict[str, Any]]:
    path = job_output_dir(TrainingJob(pk=job_id)) / "metrics.jsonl"
    lines = []
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    lines.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    except FileNotFoundError:
        pass
    return lines


@transaction.atomic
def _conclude(job_id: int, out: Path, returncode: int, cancelled: bool, log_tail: str) -> TrainingJob:
    job = TrainingJob.objects.select_for_update().select_related("dataset").get(pk=job_id)
    job.metrics = _metrics_lines(job_id)
    job.heartbeat = timezone.now()
    if job.status == JobStatus.CANCELLED or cancelled:
        job.save(update_fields=["metrics", "heartbeat"])
        return job
    if job.status != JobStatus.RUNNING:   # the watchdog gave up on it meanwhile: leave its verdict
        return job
    manifest_path = out / "manifest.json"
    if returncode == 0 and manifest_path.is_file():
        job.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        job.model_card = model_card(job)
        (out / "MODEL_CARD.md").write_text(job.model_card, encoding="utf-8")
        job.status = JobStatus.SUCCEEDED
    else:
        job.status = JobStatus.FAILED
        job.error = f"the trainer exited with code {returncode}\n{log_tail[-2000:]}"
    job.finished = timezone.now()
    job.save()
    return job


def model_card(job: TrainingJob) -> str:
    """A short model card: base model, data, loss and parameters, final held-out metrics."""
    manifest = job.manifest or {}
    config = manifest.get("config", {})
    final = manifest.get("final_eval", {})
    dataset = job.dataset
    lines = [
        f"# Model from training job {job.pk}",
        "",
        f"- Base model: `{config.get('base_model')}`" + (" with a LoRA adapter" if config.get("lora") else ""),
        f"- Dataset: {dataset.name} (sha256 `{dataset.sha256}`, {dataset.n_records} records from "
        f"{dataset.n_votes} arena votes, mode {dataset.mode})",
        f"- Loss: {config.get('loss')}, beta {config.get('beta')}, learning rate {config.get('learning_rate')}, "
        f"{config.get('epochs')} epoch(s), batch {config.get('batch_size')} x {config.get('grad_accum')}, "
        f"seed {config.get('seed')}; {manifest.get('steps')} steps on {manifest.get('world_size')} process(es)",
        f"- Final evaluation ({final.get('data')}): loss {final.get('loss')}, reward accuracy "
        f"{final.get('reward_accuracy')}, reward margin {final.get('reward_margin')}",
        f"- Trained {manifest.get('started')} to {manifest.get('finished')}",
    ]
    return "\n".join(lines) + "\n"


# --- control ----------------------------------------------------------------------------------------------


@transaction.atomic
def job_cancel(*, job: TrainingJob) -> TrainingJob:
    """Cancel a queued or running job; a running one's worker stops the trainer within a second."""
    job = TrainingJob.objects.select_for_update().get(pk=job.pk)
    if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
        raise Conflict(f"a {job.status} job cannot be cancelled", code="job_finished")
    job.status, job.finished = JobStatus.CANCELLED, timezone.now()
    job.save(update_fields=["status", "finished"])
    return job


@transaction.atomic
def job_retry(*, job: TrainingJob) -> TrainingJob:
    """Queue a failed or cancelled job again; it resumes from its last checkpoint."""
    job = TrainingJob.objects.select_for_update().get(pk=job.pk)
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise Conflict(f"only a failed or cancelled job can be retried (this one is {job.status})",
                       code="job_not_retryable")
    job.status, job.finished, job.error = JobStatus.QUEUED, None, ""
    job.save(update_fields=["status", "finished", "error"])
    _enqueue_on_commit(job)
    return job


def _heartbeat_lost(job: TrainingJob) -> bool:
    limit = timedelta(seconds=settings.TRAINER_HEARTBEAT_TIMEOUT_S)
    return job.heartbeat is None or timezone.now() - job.heartbeat > limit


def jobs_fail_stale() -> list[int]:
    """Mark failed every running job whose worker stopped reporting (it died, or its host did)."""
    failed = []
    for job_id in TrainingJob.objects.filter(status=JobStatus.RUNNING).values_list("pk", flat=True):
        with transaction.atomic():
            job = TrainingJob.objects.select_for_update().get(pk=job_id)
            if job.status == JobStatus.RUNNING and _heartbeat_lost(job):
                job.status, job.finished = JobStatus.FAILED, timezone.now()
                job.error = (f"no heartbeat from worker {job.worker} for {settings.TRAINER_HEARTBEAT_TIMEOUT_S} s; "
                             "retry to resume from the last checkpoint")
                job.save(update_fields=["status", "finished", "error"])
                failed.append(job.pk)
    return failed


# --- close the loop ---------------------------------------------------------------------------------------


@transaction.atomic
def job_enter_arena(*, job: TrainingJob, name: str, family: str = "") -> Contender:
    """Register a succeeded job's model as a contender answered by the local ``transformers`` source."""
    job = TrainingJob.objects.select_for_update().get(pk=job.pk)
    if job.status != JobStatus.SUCCEEDED:
        raise Conflict(f"only a succeeded job can enter the arena (this one is {job.status})", code="job_not_done")
    if job.contender_id is not None:
        raise Conflict(f"this job already entered the arena as {job.contender.name!r}", code="job_entered")
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationFailed("required: at most 200 characters", field="name")
    if Contender.objects.filter(name=name).exists():
        raise ValidationFailed(f"a contender called {name!r} exists", field="name")
    source = dict((job.manifest or {}).get("contender") or {})
    if not source.get("path"):
        raise Conflict("the job's manifest names no model directory", code="job_no_model")
    source = validate_source_config(SourceKind.TRANSFORMERS, source)
    contender = Contender.objects.create(
        name=name, organization="trained in this arena", license="see the base model's",
        family=family.strip(), source_kind=SourceKind.TRANSFORMERS, source_config=source)
    job.contender = contender
    job.save(update_fields=["contender"])
    return contender
