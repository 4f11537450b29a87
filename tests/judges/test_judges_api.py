"""The judges API and pages: who may do what, validation that names the field, and what the reports show."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from judges.models import Audit, Judge, JudgeRun, Judgment, RunStatus
from judges.tasks import judge_run_task

RUNS = "/api/v1/judges/runs"


@pytest.fixture
def judge(db) -> Judge:
    from judges.services import judge_create

    return judge_create(name="scripted-biased", backend="scripted", family="gamma", seed=0,
                        config={"position_bias": 0.4, "length_bias": 1.0})


def _start(client: APIClient, **body) -> dict:
    response = client.post(RUNS, {"judge": "scripted-biased", **body}, format="json")
    return response


@pytest.mark.django_db
def test_starting_a_run_is_for_staff_only(judge, voted_battles, voter_api, django_capture_on_commit_callbacks):
    voted_battles(2)
    anonymous = APIClient()
    assert _start(anonymous).status_code in (401, 403)
    refused = _start(voter_api)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert not JudgeRun.objects.exists()
    assert anonymous.get(f"{RUNS}/1").status_code in (401, 403)


@pytest.mark.django_db
def test_a_staff_run_is_queued_executed_by_the_worker_and_followed(
        judge, voted_battles, staff_api, django_capture_on_commit_callbacks):
    from django_tasks_db.models import DBTaskResult

    # 12 battles, 72 judgments: the planted bias (first shown picked outright 40 % of the time, a first-position
    # rate near 0.7) is then above 0.5 by ~4 standard errors whatever order the battles show their answers in.
    voted_battles(12)
    with django_capture_on_commit_callbacks(execute=True):
        response = _start(staff_api, replicates=2, perturbations=["bandwagon"], filters={"category": "writing"})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and body["battles"] == 12 and body["n_total"] == 12 * (4 + 2)
    queued = DBTaskResult.objects.get(task_path__endswith="judge_run_task")
    summary = judge_run_task.call(*queued.args_kwargs["args"])
    assert summary["status"] == "succeeded"
    followed = staff_api.get(f"{RUNS}/{body['id']}").json()
    assert followed["status"] == "succeeded" and followed["n_done"] == followed["n_total"] == 72
    assert followed["audits"] == [summary["audit"]]
    audit = APIClient().get(f"/api/v1/judges/audits/{summary['audit']}")   # audits are public
    assert audit.status_code == 200
    report = audit.json()["report"]["judges"]["scripted-biased"]
    assert report["n"] == 72
    assert report["position"]["first_position_rate"]["value"] > 0.5   # the planted position bias shows


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "field"), [
    ({"judge": "nobody"}, "judge"),
    ({"replicates": 0}, "replicates"),
    ({"replicates": 11}, "replicates"),
    ({"perturbations": ["flattery"]}, "perturbations"),
    ({"concurrency": 0}, "concurrency"),
    ({"filters": {"k": 7}}, "filters"),
    ({"filters": {"date_from": "2026-02-30"}}, "filters"),
    ({"filters": {"category": "no-such-category"}}, "filters"),
])
def test_bad_run_requests_name_the_field_and_create_nothing(judge, voted_battles, staff_api, body, field):
    voted_battles(1)
    response = staff_api.post(RUNS, {"judge": "scripted-biased", **body}, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not JudgeRun.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "field"), [
    ({"backend": "scripted", "config": {"position_bias": "high"}}, "config.position_bias"),
    ({"backend": "scripted", "config": {"flattery": 1}}, "config.flattery"),
    ({"backend": "openai", "config": {"model": "m"}}, "config.base_url"),
    ({"backend": "openai", "config": {"base_url": "http://x/v1", "model": "m", "api_key": "sk-1"}}, "config.api_key"),
    ({"backend": "transformers", "config": {}}, "config.path"),
    ({"backend": "magic"}, "backend"),
    ({"backend": "scripted", "temperature": 3}, "temperature"),
])
def test_bad_judges_are_refused_by_field(staff_api, body, field):
    response = staff_api.post("/api/v1/judges", {"name": "j", **body}, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not Judge.objects.exists()


@pytest.mark.django_db
def test_judges_are_listed_publicly_and_created_by_staff(staff_api, voter_api):
    assert voter_api.post("/api/v1/judges", {"name": "j", "backend": "scripted"}, format="json").status_code == 403
    created = staff_api.post("/api/v1/judges", {"name": "j", "backend": "scripted", "family": "openai",
                                                "config": {"length_bias": 0.5}}, format="json")
    assert created.status_code == 201
    assert staff_api.post("/api/v1/judges", {"name": "j", "backend": "scripted"}, format="json").json()[
        "error"]["fields"] == {"name": ["a judge called 'j' exists"]}
    listed = APIClient().get("/api/v1/judges").json()
    assert listed == [{"name": "j", "family": "openai", "backend": "scripted", "template": "arena-pair-v1",
                       "temperature": 0.0, "max_tokens": 1024, "latest_audit": None}]
    assert Judge.objects.get().config == {"length_bias": 0.5}


@pytest.mark.django_db
def test_a_cancelled_run_stops_and_is_not_audited(judge, voted_battles, staff_api):
    voted_battles(2)
    run_id = _start(staff_api).json()["id"]
    cancelled = staff_api.post(f"{RUNS}/{run_id}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    summary = None
    from config.errors import Conflict

    with pytest.raises(Conflict):
        summary = judge_run_task.call(run_id)
    assert summary is None and not Judgment.objects.exists() and not Audit.objects.exists()
    assert staff_api.post(f"{RUNS}/{run_id}/cancel").status_code == 409


@pytest.mark.django_db
def test_an_unfinished_run_cannot_be_audited(judge, voted_battles):
    from config.errors import Conflict
    from judges.services import audit_create, judge_run_create, run_filters_from

    voted_battles(1)
    run = judge_run_create(judge=judge, filters=run_filters_from({}))
    with pytest.raises(Conflict, match="only a succeeded run"):
        audit_create(run=run)
    assert run.status == RunStatus.QUEUED


@pytest.mark.django_db
def test_the_report_pages_show_the_audit(judge, voted_battles, client):
    from django.core.management import call_command

    voted_battles(6)
    call_command("judge_run", "--judge", "scripted-biased", "--replicates", "2", "--perturbation", "authority",
                 "--bootstrap", "30", stdout=open("/dev/null", "w"))  # noqa: SIM115
    audit = Audit.objects.get()
    report = audit.report["judges"]["scripted-biased"]

    listing = client.get("/judges").content.decode()
    assert "scripted-biased" in listing and f"/judges/audits/{audit.pk}" in listing
    page = client.get(f"/judges/audits/{audit.pk}").content.decode()
    rate = report["position"]["first_position_rate"]
    assert f"{rate['value']:.3f} [{rate['ci_low']:.3f}, {rate['ci_high']:.3f}]" in page
    assert page.count("<svg") >= 3 and "<script" not in page.split("<main", 1)[1]
    assert "authority" in page and "Bias-corrected ranking" in page
    judge_page = client.get("/judges/scripted-biased").content.decode()
    assert f"run {audit.run_id}" in judge_page and "<svg" in judge_page
    assert client.get("/judges/nobody").status_code == 404
    assert client.get("/judges/audits/999999").status_code == 404
    nav = client.get("/").content.decode()
    assert 'href="/judges"' in nav
