"""Creating and fetching battles through the API."""
from __future__ import annotations

import pytest

from arena.models import Battle, BattleSlot, Prompt

pytestmark = pytest.mark.django_db


def create_body(names, prompt="Explain entropy.") -> dict:
    return {"prompt": prompt, "category": "science", "language": "en",
            "slots": [{"contender": n, "response": f"Answer text {i}", "token_count": 3} for i, n in enumerate(names)]}


def test_staff_creates_an_anonymous_battle(staff_api, contenders):
    response = staff_api.post("/api/v1/battles", create_body(["alpha-7b", "beta-13b", "gamma-70b"]), format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["k"] == 3 and body["status"] == "open"
    assert body["prompt"] == {"text": "Explain entropy.", "category": "science", "language": "en"}
    assert [s["label"] for s in body["slots"]] == ["A", "B", "C"]
    assert sorted(s["response"] for s in body["slots"]) == ["Answer text 0", "Answer text 1", "Answer text 2"]
    battle = Battle.objects.get(id=body["id"])
    assert {s.contender.name for s in battle.slots.all()} == {"alpha-7b", "beta-13b", "gamma-70b"}
    # The answer is built from what the request wrote; a read of the battle gets the same body.
    assert staff_api.get(f"/api/v1/battles/{battle.id}").json() == body


def test_the_same_prompt_is_stored_once(staff_api, contenders):
    for _ in range(2):
        staff_api.post("/api/v1/battles", create_body(["alpha-7b", "beta-13b"], prompt="Explain  entropy. "),
                       format="json")
    staff_api.post("/api/v1/battles", create_body(["alpha-7b", "beta-13b"]), format="json")
    assert Prompt.objects.count() == 1
    assert Battle.objects.count() == 3


@pytest.mark.parametrize("client_fixture, status", [("client", 403), ("voter_api", 403)])
def test_only_staff_may_create_battles(request, contenders, client_fixture, status):
    api = request.getfixturevalue(client_fixture)
    response = api.post("/api/v1/battles", create_body(["alpha-7b", "beta-13b"]), content_type="application/json")
    assert response.status_code == status
    assert "error" in response.json()
    assert not Battle.objects.exists()


@pytest.mark.parametrize(
    ("names", "field"),
    [
        (["alpha-7b"], "slots"),
        (["alpha-7b", "beta-13b", "gamma-70b", "delta-1b", "epsilon-3b", "zeta-8b", "alpha-7b"], "slots"),
        (["alpha-7b", "alpha-7b"], "slots"),
        (["alpha-7b", "no-such-model"], "slots"),
    ],
)
def test_a_bad_battle_is_refused_and_nothing_is_stored(staff_api, contenders, names, field):
    response = staff_api.post("/api/v1/battles", create_body(names), format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not Battle.objects.exists() and not BattleSlot.objects.exists() and not Prompt.objects.exists()


def test_a_typed_prompt_with_no_live_contender_says_why(staff_api, contenders):
    # Without slots a battle is matched and generated; these contenders have no source that answers new prompts.
    response = staff_api.post("/api/v1/battles", {"prompt": "hi"}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "no_live_contenders" and "prompt" in error["fields"]
    assert "Surprise me" in error["message"]
    assert not Battle.objects.exists()


def test_fetching_another_voters_battle_is_not_found(voter_api, other_api, make_battle):
    battle = make_battle(voter_api)
    assert voter_api.get(f"/api/v1/battles/{battle.id}").status_code == 200
    response = other_api.get(f"/api/v1/battles/{battle.id}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "battle_not_found"


def test_contenders_are_listed_with_metadata(client, contenders):
    response = client.get("/api/v1/contenders")
    assert response.status_code == 200
    rows = response.json()
    assert [r["name"] for r in rows] == sorted(c.name for c in contenders)
    assert rows[0] == {"name": "alpha-7b", "organization": "Alpha Labs", "license": "apache-2.0",
                       "family": "alpha", "active": True}


def test_the_schema_and_docs_are_served_without_a_cdn(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/battles/{battle_id}/vote" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html and "cdn" not in html.lower() and "unpkg" not in html


def test_unknown_api_paths_are_404(client):
    assert client.get("/api/v1/nothing-here").status_code == 404


def test_the_schema_documents_each_body_under_its_own_name(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    assert "VoteInput" in schema and "BattleCreateInput" in schema


def test_the_schema_validates_without_warnings_and_documents_the_live_flow(tmp_path):
    from django.core.management import call_command

    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = out.read_text()
    assert "/api/v1/battles/{battle_id}/turns" in schema and "voterCookie" in schema
    assert "TurnInput" in schema and "generation" in schema
