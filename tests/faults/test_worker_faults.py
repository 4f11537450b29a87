"""Drills on the background workers (issue 11): a training worker killed mid-job, a judge endpoint that times out
or answers 5xx.

Already covered elsewhere, in-process:
- tests/trainer/test_jobs.py::test_a_failed_job_retries_from_its_last_checkpoint -- a trainer stopped after a
  checkpoint (as on SIGTERM, exit 75) fails the job, and the retry resumes past that checkpoint;
- tests/trainer/test_jobs.py::test_cancelling_and_a_lost_heartbeat -- the watchdog fails a running job whose
  heartbeat is an hour old (the heartbeat set by hand);
- tests/judges/test_runs.py::test_a_failing_endpoint_fails_the_run_and_a_resume_makes_only_the_missing_calls --
  503s retried once, the run failed and not audited, the resume making only the missing calls;
- tests/judges/test_runs.py::test_a_resumed_run_does_not_repeat_calls_it_already_made -- a worker lost after two
  calls.
Here, for real: the worker process SIGKILLed mid-run (its trainer, told by the kernel, checkpoints and exits), the
watchdog on the stopped heartbeat, the retry resuming from the last checkpoint on disk; and a judge endpoint that
first times out, then fails part of a run, then recovers, with the backoff between retries measured.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from arena.models import Contender, VoteKind
from arena.services import SlotInput, battle_create, vote_record, voter_get_or_create
from arena.verdicts import VoteChoice
from judges.models import Audit, Judgment, RunJudgment, RunStatus
from judges.services import judge_create, judge_run_create, run_filters_from
from judges.tasks import judge_run_task
from tests.support.fixtures import ENDINGS, SUBJECTS, VERBS
from tests.support.openai_server import RecordedRequest
from tests.support.served_site import ROOT, children_of
from trainer.jobs import jobs_fail_stale
from trainer.models import JobStatus, PreferenceDataset, TrainingJob
from trainer.services import dataset_build
from trainer.tasks import training_job_task
from trainer.train import latest_checkpoint

JOBS = "/api/v1/training/jobs"
SEED = 11


# --- the judge endpoint ------------------------------------------------------------------------------------------


def _voted_battles(n: int) -> None:
    """n voted K = 2 battles with text answers, one voter each."""
    for name in ("alpha-7b", "beta-13b"):
        Contender.objects.get_or_create(name=name, defaults={"family": name.split("-")[0]})
    for i in range(n):
        voter = voter_get_or_create(key=f"judge-drill-{i}")
        battle = battle_create(voter=voter, prompt_text=f"Judge drill question {i}?", category="writing",
                               language="en", slots=[SlotInput(contender="alpha-7b", response="Short answer."),
                                                     SlotInput(contender="beta-13b", response="A longer answer.")])
        vote_record(battle_id=battle.id, voter=voter, choice=VoteChoice(VoteKind.PAIRWISE, outcome="a"),
                    idempotency_key=f"judge-drill-{battle.id}")


def _gaps(requests: list[RecordedRequest]) -> list[float]:
    """Seconds between the first and the second sending of each request body that was sent twice."""
    seen: dict[str, float] = {}
    gaps = []
    for request in requests:
        key = json.dumps(request.body["messages"], sort_keys=True)
        if key in seen:
            gaps.append(request.received - seen[key])
        seen[key] = request.received
    return gaps


def test_a_judge_endpoint_that_times_out_then_fails_then_recovers_gets_one_complete_audit(openai_server, db):
    _voted_battles(2)  # 4 calls: both orders of each battle
    # One attempt's deadline is the whole call's: a timed-out call is not retried; a 5xx is, once, after backoff.
    judge = judge_create(name="drill-judge", backend="openai",
                         config={"base_url": openai_server.base_url, "model": "drill", "timeout_s": 1,
                                 "max_retries": 1})
    run = judge_run_create(judge=judge, filters=run_filters_from({}), concurrency=1)

    # 1. The endpoint hangs: every call times out; the run fails, and a failed run is not audited.
    openai_server.script("drill", text="[[A]]", first_token_delay_s=3)
    summary = judge_run_task.call(run.pk)
    assert (summary["status"], summary["done"], summary["failed"]) == ("failed", 0, 4) and "audit" not in summary
    run.refresh_from_db()
    assert "4 of 4 calls have no judgment" in run.error and "timed out after 1 s" in run.error

    # 2. It answers again but two 500s in a row fail one call (its one retry): a partial run, still not audited.
    openai_server.script("drill", text="[[A]]", fail_times=2)
    before = len(openai_server.chat_requests("drill"))
    summary = judge_run_task.call(run.pk)
    assert (summary["status"], summary["done"], summary["failed"]) == ("failed", 3, 1) and "audit" not in summary
    phase2 = openai_server.chat_requests("drill")[before:]
    assert len(phase2) == 5 and len(_gaps(phase2)) == 1
    assert not Audit.objects.exists()

    # 3. One more 500, absorbed by the retry: the resume makes only the missing call and the run is audited once,
    # on all four judgments.
    openai_server.script("drill", text="[[A]]", fail_times=1)
    before = len(openai_server.chat_requests("drill"))
    summary = judge_run_task.call(run.pk)
    assert (summary["status"], summary["done"], summary["failed"]) == ("succeeded", 4, 0)
    phase3 = openai_server.chat_requests("drill")[before:]
    assert len(phase3) == 2
    # Exponential backoff from 0.5 s, less up to 25 % jitter, before each retry.
    gaps = _gaps(phase2) + _gaps(phase3)
    assert len(gaps) == 2 and all(0.37 <= g < 1.0 for g in gaps), gaps
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.n_done == run.n_total == 4
    audit = Audit.objects.get()
    assert audit.run_id == run.pk and audit.n_judgments == 4
    linked = Judgment.objects.filter(pk__in=RunJudgment.objects.filter(run=run).values("judgment_id"))
    assert sorted((str(j.battle_id), j.order) for j in linked) == sorted(
        {(str(j.battle_id), o) for j in linked for o in ("01", "10")})  # both orders of each battle, once
    assert {j.raw_text for j in Judgment.objects.all()} == {"[[A]]"}  # nothing from a failed attempt was kept


# --- the training worker -----------------------------------------------------------------------------------------


def _planted_dataset(n: int) -> PreferenceDataset:
    """n voted battles between a contender whose answers follow a rule and one whose answers do not."""
    rng = random.Random(SEED)
    for name in ("writer-good", "writer-bad"):
        Contender.objects.get_or_create(name=name, defaults={"family": name})
    for i in range(n):
        voter = voter_get_or_create(key=f"trainer-drill-{i}")
        good = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} a short poem{rng.choice(ENDINGS)}"
        bad = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} the weather{rng.choice(ENDINGS)}"
        battle = battle_create(voter=voter, prompt_text=f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} what? {i}",
                               slots=[SlotInput(contender="writer-good", response=good),
                                      SlotInput(contender="writer-bad", response=bad)])
        winner = battle.slots.get(contender__name="writer-good").position
        vote_record(battle_id=battle.id, voter=voter, choice=VoteChoice(VoteKind.PAIRWISE, outcome="ab"[winner]),
                    idempotency_key=f"k-{battle.id}")
    return dataset_build(name="trainer-drill", filters={}, mode="all_pairs", keep_ties=False)


def _database_url() -> str:
    params = connection.settings_dict
    auth = params["USER"] + (f":{params['PASSWORD']}" if params["PASSWORD"] else "")
    return f"postgres://{auth}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/{params['NAME']}"


def _wait(condition, *, timeout: float, what: str, log: Path | None = None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s\n{log.read_text()[-3000:] if log else ''}"
        time.sleep(0.02)


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] == "Z"
    except (FileNotFoundError, IndexError):
        return True


@pytest.mark.postgres  # the worker runs in another process: it must see the test's committed rows
@pytest.mark.django_db(transaction=True)
def test_a_training_worker_killed_mid_job_is_failed_by_the_watchdog_and_the_retry_resumes(
        staff_api, tiny_causal_lm, settings, tmp_path):
    settings.TRAINER_OUTPUT_ROOT = str(tmp_path / "runs")
    settings.TRAINER_HEARTBEAT_TIMEOUT_S = 3
    # 16 pairs, 2 steps an epoch, 3 epochs, a checkpoint every 2 steps: the kill lands after the first checkpoint and
    # well before the end; the retry's cost is mostly the trainer's start-up (torch, the model), not its steps.
    dataset = _planted_dataset(16)
    config = {"base_model": str(tiny_causal_lm), "loss": "dpo", "beta": 0.5, "epochs": 3, "batch_size": 8,
              "learning_rate": 3e-3, "max_length": 64, "device": "cpu", "log_every": 2, "save_every": 2, "seed": 0}
    created = staff_api.post(JOBS, {"dataset": dataset.pk, "config": config}, format="json")
    assert created.status_code == 201, created.content
    job_id = created.json()["id"]
    out = tmp_path / "runs" / f"job-{job_id}"

    # The gpu-queue worker, as a GPU host runs it, picks the job up and launches the trainer.
    env = {**os.environ, "DATABASE_URL": _database_url(), "DEBUG": "0", "SECRET_KEY": "drill-" + "x" * 60,
           "TRAINER_OUTPUT_ROOT": settings.TRAINER_OUTPUT_ROOT, "TRAINER_HEARTBEAT_TIMEOUT_S": "3"}
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        worker = subprocess.Popen([sys.executable, "manage.py", "db_worker", "--queue-name", "gpu", "--interval",
                                   "0.2", "--no-startup-delay"], cwd=ROOT, env=env, stdout=sink,
                                  stderr=subprocess.STDOUT, process_group=0)
    trainers: set[int] = set()
    try:
        _wait(lambda: latest_checkpoint(out) is not None, timeout=45, what="checkpoint", log=log)
        trainers = children_of(worker.pid)
        assert trainers, "the worker runs no trainer"
        # The worker is killed outright (no chance to tell anyone). Its trainer runs in a session of its own, so
        # the kill does not reach it; the kernel's parent-death signal does (config.processes.die_with_parent):
        # it saves a checkpoint and exits instead of training on as an orphan beside the retry.
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        _wait(lambda: all(_gone(pid) for pid in trainers), timeout=30, what="trainer following its killed worker",
              log=out / "train.log")
    finally:
        for pid in (worker.pid, *trainers):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        worker.wait(timeout=10)
    checkpoint = latest_checkpoint(out)
    assert checkpoint is not None
    killed_at = int(checkpoint.name.split("_")[1])
    job = TrainingJob.objects.get(pk=job_id)
    assert job.status == JobStatus.RUNNING and job.attempts == 1  # nobody told the database

    # The watchdog: nothing until the heartbeat is older than TRAINER_HEARTBEAT_TIMEOUT_S, then failed.
    age = (timezone.now() - job.heartbeat).total_seconds()
    if age < 2.5:
        assert jobs_fail_stale() == []
    time.sleep(max(0.0, 3.2 - age))
    assert jobs_fail_stale() == [job_id]
    failed = staff_api.get(f"{JOBS}/{job_id}").json()
    assert failed["status"] == "failed" and "no heartbeat" in failed["error"]

    # The retry resumes from the checkpoint on disk and finishes the same run of steps.
    assert staff_api.post(f"{JOBS}/{job_id}/retry").json()["status"] == "queued"
    assert training_job_task.call(job_id)["status"] == "succeeded", TrainingJob.objects.get(pk=job_id).error
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2
    assert f"resuming from {checkpoint} (step {killed_at} of " in (out / "train.log").read_text()
    steps = [m["step"] for m in job.metrics if m["split"] == "train"]
    assert steps == sorted(set(steps)) and steps[0] <= killed_at < steps[-1]  # no step twice, none lost
    print(f"\ntrainer killed after checkpoint step {killed_at}; resumed and finished at step {steps[-1]}")
