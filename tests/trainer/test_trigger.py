"""The automatic loop from votes to a training job: off by default, on at N new votes, never twice per data."""
from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from arena.models import Contender, VoteKind
from arena.services import SlotInput, battle_create, vote_record, voter_get_or_create
from arena.verdicts import VoteChoice
from trainer.jobs import job_create
from trainer.models import PreferenceDataset, TrainingJob
from trainer.services import dataset_build
from trainer.tasks import training_trigger_soon, training_trigger_task

pytestmark = pytest.mark.django_db


def _votes(n: int, start: int = 0) -> None:
    for name in ("a-model", "b-model"):
        Contender.objects.get_or_create(name=name)
    for i in range(start, start + n):
        voter = voter_get_or_create(key=f"trigger-voter-{i}")
        battle = battle_create(voter=voter, prompt_text=f"Question {i}?",
                               slots=[SlotInput(contender="a-model", response=f"A good answer {i}."),
                                      SlotInput(contender="b-model", response=f"A poor answer {i}.")])
        a = battle.slots.get(contender__name="a-model").position
        vote_record(battle_id=battle.id, voter=voter, choice=VoteChoice(VoteKind.PAIRWISE, outcome="ab"[a]),
                    idempotency_key=f"t-{battle.id}")


def _check() -> str:
    out = StringIO()
    call_command("check_training_trigger", stdout=out)
    return out.getvalue()


@pytest.fixture
def policy(settings, tmp_path, tiny_causal_lm):
    path = tmp_path / "trigger.json"
    path.write_text(json.dumps({"filters": {}, "mode": "all_pairs",
                                "config": {"base_model": str(tiny_causal_lm), "loss": "dpo", "device": "cpu"}}))
    settings.TRAINER_TRIGGER_VOTES = 5
    settings.TRAINER_TRIGGER_FILE = str(path)
    return path


def test_the_trigger_is_off_by_default(settings):
    assert settings.TRAINER_TRIGGER_VOTES == 0
    _votes(3)
    assert training_trigger_soon() is False
    assert "the trigger is off" in _check()
    assert not PreferenceDataset.objects.exists()


def test_enough_new_votes_build_a_dataset_and_queue_one_job(policy, django_capture_on_commit_callbacks):
    from django.core.cache import cache
    from django_tasks_db.models import DBTaskResult

    cache.clear()
    _votes(4)
    assert "4 of 5 new votes" in _check() and not PreferenceDataset.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        _votes(1, start=4)
    assert DBTaskResult.objects.filter(task_path__endswith="training_trigger_task").count() == 1
    summary = training_trigger_task.call()
    job = TrainingJob.objects.get()
    assert summary["job"] == job.pk and job.dataset.name.startswith("auto-") and job.dataset.n_votes == 5
    assert job.status == "queued" and job.config["loss"] == "dpo"
    assert "0 of 5 new votes" in _check()           # counted from the last automatic dataset on
    _votes(5, start=5)
    assert "job" in _check() and TrainingJob.objects.count() == 2
    assert TrainingJob.objects.order_by("-pk").first().dataset.n_votes == 10
    cache.clear()


def test_the_same_data_never_gets_a_second_job(policy):
    _votes(5)
    manual = dataset_build(name="manual", filters={}, mode="all_pairs")
    job_create(dataset=manual, config={"base_model": json.loads(policy.read_text())["config"]["base_model"],
                                       "loss": "dpo", "device": "cpu"})
    out = _check()
    auto = PreferenceDataset.objects.get(name__startswith="auto-")
    assert auto.sha256 == manual.sha256 and "already trained on this data" in out
    assert TrainingJob.objects.count() == 1


def test_a_bad_policy_file_is_named(policy):
    policy.write_text(json.dumps({"config": {"loss": "dpo"}}))
    with pytest.raises(CommandError, match=r"config\.base_model"):
        _check()
    policy.write_text("{not json")
    with pytest.raises(CommandError, match="TRAINER_TRIGGER_FILE"):
        _check()
