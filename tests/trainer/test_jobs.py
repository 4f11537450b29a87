"""Training jobs through the staff API and the gpu-queue task: votes -> dataset -> job -> trainer subprocess ->
metrics and artifacts -> a new contender that answers in a live battle. CPU only, a tiny model, no downloads."""
from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from arena.live.coordinator import generation_wait
from arena.models import Battle, Contender, VoteKind
from arena.services import SlotInput, battle_create, vote_record, voter_get_or_create
from arena.verdicts import VoteChoice
from tests.support.fixtures import ENDINGS, SUBJECTS, VERBS
from trainer.jobs import jobs_fail_stale
from trainer.models import JobStatus, PreferenceDataset, TrainingJob
from trainer.services import dataset_build
from trainer.tasks import training_job_task

pytestmark = pytest.mark.django_db(transaction=True)

JOBS = "/api/v1/training/jobs"
GOOD = ["a short poem", "the blue sky", "a prime number"]
BAD = ["the weather", "the leaderboard", "a long story"]


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path):
    settings.TRAINER_OUTPUT_ROOT = str(tmp_path / "runs")
    cache.clear()
    yield
    cache.clear()


def _arena_votes(n: int, seed: int = 0) -> PreferenceDataset:
    """n voted battles between a contender whose answers follow the planted rule and one whose answers do not."""
    rng = random.Random(seed)
    for name in ("writer-good", "writer-bad"):
        Contender.objects.get_or_create(name=name, defaults={"family": name})

    def answer(objects: list[str]) -> str:
        return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(objects)}{rng.choice(ENDINGS)}"

    for i in range(n):
        voter = voter_get_or_create(key=f"trainer-voter-{seed}-{i}")
        battle = battle_create(voter=voter, prompt_text=f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} what? {i}",
                               slots=[SlotInput(contender="writer-good", response=answer(GOOD)),
                                      SlotInput(contender="writer-bad", response=answer(BAD))])
        good = battle.slots.get(contender__name="writer-good").position
        vote_record(battle_id=battle.id, voter=voter, choice=VoteChoice(VoteKind.PAIRWISE, outcome="ab"[good]),
                    idempotency_key=f"k-{battle.id}")
    return dataset_build(name=f"planted-{seed}", filters={}, mode="all_pairs", keep_ties=False)


def _config(model: Path, **overrides) -> dict:
    return {"base_model": str(model), "loss": "dpo", "beta": 0.5, "epochs": 3, "batch_size": 8,
            "learning_rate": 3e-3, "max_length": 64, "device": "cpu", "log_every": 2, "save_every": 4,
            "seed": 0, **overrides}


def test_votes_become_a_model_that_enters_the_arena_and_answers_in_a_battle(staff_api, tiny_causal_lm):
    dataset = _arena_votes(48)
    created = staff_api.post(JOBS, {"dataset": dataset.pk, "config": _config(tiny_causal_lm)}, format="json")
    assert created.status_code == 201, created.content
    job_id = created.json()["id"]
    assert created.json()["status"] == "queued"

    summary = training_job_task.call(job_id)   # what `manage.py db_worker --queue-name gpu` runs
    assert summary["status"] == "succeeded", TrainingJob.objects.get(pk=job_id).error
    body = staff_api.get(f"{JOBS}/{job_id}").json()
    assert body["progress"]["state"] == "done" and body["progress"]["step"] == body["progress"]["total_steps"]
    train_lines = [m for m in body["metrics"] if m["split"] == "train"]
    final = [m for m in body["metrics"] if m.get("final")]
    assert train_lines and len(final) == 1
    assert final[0]["reward_accuracy"] >= 0.9   # the planted preference is learnt (on the training votes)
    assert dataset.sha256 in body["model_card"] and "reward accuracy" in body["model_card"]

    job = TrainingJob.objects.get(pk=job_id)
    out = Path(job.output_dir)
    for artifact in job.manifest["artifacts"]:
        data = (out / artifact["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == artifact["sha256"]
    assert (out / "MODEL_CARD.md").read_text() == job.model_card

    page = staff_api.get(f"/training/jobs/{job_id}").content.decode()
    assert 'aria-valuenow="100"' in page and page.count("<polyline") >= 2 and dataset.sha256 in page
    assert "/admin/login" in APIClient().get(f"/training/jobs/{job_id}")["Location"]   # staff only

    entered = staff_api.post(f"{JOBS}/{job_id}/enter", {"name": "tuned-writer", "family": "tiny"}, format="json")
    assert entered.status_code == 201 and entered.json()["contender"] == "tuned-writer"
    tuned = Contender.objects.get(name="tuned-writer")
    assert tuned.source_kind == "transformers" and tuned.source_config == {"path": str(out / "final")}
    assert staff_api.post(f"{JOBS}/{job_id}/enter", {"name": "again"}, format="json").status_code == 409

    # The base model beside it, so that matchmaking has two live contenders to pair.
    Contender.objects.create(name="tiny-base", source_kind="transformers",
                             source_config={"path": str(tiny_causal_lm), "max_tokens": 8})
    Contender.objects.filter(name="tuned-writer").update(source_config={"path": str(out / "final"), "max_tokens": 8})
    voter = APIClient()
    opened = voter.post("/api/v1/battles", {"prompt": "The cat writes what?", "k": 2}, format="json")
    assert opened.status_code == 201, opened.content
    assert generation_wait(opened.json()["id"], timeout=60)
    battle = Battle.objects.get(pk=opened.json()["id"])
    assert set(battle.slots.values_list("contender__name", flat=True)) == {"tuned-writer", "tiny-base"}
    assert all(slot.response for slot in battle.slots.all())


def test_a_job_is_staff_only_and_a_bad_config_names_its_key(staff_api, voter_api, tiny_causal_lm):
    dataset = _arena_votes(4, seed=1)
    assert APIClient().post(JOBS, {"dataset": dataset.pk, "config": {}}, format="json").status_code in (401, 403)
    assert voter_api.post(JOBS, {"dataset": dataset.pk, "config": {}}, format="json").status_code == 403
    for config, field in [({**_config(tiny_causal_lm), "loss": "magic"}, "config.loss"),
                          ({**_config(tiny_causal_lm), "beta": -1}, "config.beta"),
                          ({**_config(tiny_causal_lm), "train_file": "/etc/passwd"}, "config.train_file"),
                          ({**_config(tiny_causal_lm), "learning_rte": 1e-3}, "config.learning_rte"),
                          (_config(Path("/no/such/model")), "config.base_model")]:
        response = staff_api.post(JOBS, {"dataset": dataset.pk, "config": config}, format="json")
        assert response.status_code == 400 and field in response.json()["error"]["fields"], (field, response.json())
    bad_nproc = staff_api.post(JOBS, {"dataset": dataset.pk, "config": _config(tiny_causal_lm), "nproc": 2},
                               format="json")
    assert "nproc" in bad_nproc.json()["error"]["fields"]
    assert staff_api.post(JOBS, {"dataset": 999999, "config": _config(tiny_causal_lm)},
                          format="json").json()["error"]["fields"] == {"dataset": ["no such dataset"]}
    assert not TrainingJob.objects.exists()


def test_a_failed_job_retries_from_its_last_checkpoint(staff_api, tiny_causal_lm, monkeypatch):
    dataset = _arena_votes(24, seed=2)
    job_id = staff_api.post(JOBS, {"dataset": dataset.pk, "config": _config(tiny_causal_lm, epochs=2)},
                            format="json").json()["id"]
    monkeypatch.setenv("TRAINER_STOP_AFTER_STEP", "4")   # the trainer stops after a checkpoint, as on SIGTERM
    assert training_job_task.call(job_id)["status"] == "failed"
    job = TrainingJob.objects.get(pk=job_id)
    assert "exited with code 75" in job.error and (Path(job.output_dir) / "checkpoints" / "step_4").is_dir()
    assert staff_api.post(f"{JOBS}/{job_id}/enter", {"name": "x"}, format="json").status_code == 409

    monkeypatch.delenv("TRAINER_STOP_AFTER_STEP")
    assert staff_api.post(f"{JOBS}/{job_id}/retry").json()["status"] == "queued"
    assert training_job_task.call(job_id)["status"] == "succeeded"
    job.refresh_from_db()
    assert job.attempts == 2
    steps = [m["step"] for m in job.metrics if m["split"] == "train"]
    assert steps == sorted(set(steps)) and steps[0] <= 4 < steps[-1]   # one run of steps, resumed past 4
    assert staff_api.post(f"{JOBS}/{job_id}/retry").status_code == 409   # a succeeded job is not retried


def test_cancelling_and_a_lost_heartbeat(staff_api, tiny_causal_lm, settings):
    dataset = _arena_votes(4, seed=3)
    created = staff_api.post(JOBS, {"dataset": dataset.pk, "config": _config(tiny_causal_lm)}, format="json")
    job_id = created.json()["id"]
    assert staff_api.post(f"{JOBS}/{job_id}/cancel").json()["status"] == "cancelled"
    assert training_job_task.call(job_id)["status"] == "cancelled"   # a worker picking it up does nothing
    assert not Path(settings.TRAINER_OUTPUT_ROOT, f"job-{job_id}").exists()
    assert staff_api.post(f"{JOBS}/{job_id}/cancel").status_code == 409

    # A worker that died mid-job: its heartbeat stops and the watchdog fails the job.
    from django.utils import timezone

    TrainingJob.objects.filter(pk=job_id).update(status=JobStatus.RUNNING, finished=None, started=timezone.now(),
                                                 heartbeat=timezone.now() - timezone.timedelta(hours=1))
    assert jobs_fail_stale() == [job_id]
    job = TrainingJob.objects.get(pk=job_id)
    assert job.status == JobStatus.FAILED and "no heartbeat" in job.error
