"""The demo a stranger starts, and the pages they click through."""
from __future__ import annotations

import re
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command

from arena.models import Battle, Contender, PoolResponse, Vote

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_demo_loads_pool_and_real_votes_and_is_idempotent():
    assert "2060 battles added" in seed()
    assert PoolResponse.objects.count() == 96
    assert Vote.objects.count() == 2060
    assert "0 battles added, 2060 already present" in seed()
    assert Vote.objects.count() == 2060 and PoolResponse.objects.count() == 96


def test_home_page_shows_the_seeded_arena(client):
    seed()
    html = client.get("/").content.decode()
    assert "2060 votes" in html
    assert "imagenhub_SDXLTurbo_generation" in html and "verbose-70b" in html


@pytest.mark.parametrize("k", [2, 3])
def test_a_visitor_gets_an_anonymous_pooled_battle_votes_and_sees_names(client, k):
    seed()
    response = client.post("/battles/new", {"k": str(k)})
    assert response.status_code == 302
    battle = Battle.objects.exclude(slots__contender__name__startswith="imagenhub").get()
    assert battle.k == k and response["Location"] == f"/battles/{battle.id}"
    page = client.get(response["Location"]).content.decode()
    names = list(Contender.objects.filter(slots__battle=battle).values_list("name", flat=True))
    assert battle.prompt.text in page.replace("&#x27;", "'")
    assert not any(name in page for name in names)
    body = {"outcome": "a"} if k == 2 else {"best": 1}
    voted = client.post(f"/api/v1/battles/{battle.id}/vote", body, content_type="application/json")
    assert voted.status_code == 201
    revealed = client.get(f"/battles/{battle.id}").content.decode()
    assert all(name in revealed for name in names)


def test_a_new_battle_without_a_pool_says_why(client):
    response = client.post("/battles/new", {"k": "2"})
    assert response.status_code == 400
    assert "No prepared prompt you have not seen yet can be answered by 2 models" in response.content.decode()
    assert not Battle.objects.exists()


def test_without_secret_key_and_debug_off_the_service_refuses_to_start(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DEBUG": "0", "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True,
                            text=True, cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert result.returncode != 0
    assert re.search(r"environment variable SECRET_KEY is required", result.stderr)


def test_a_bad_boolean_in_the_environment_is_refused():
    env = {"PATH": "/usr/bin:/bin", "DEBUG": "maybe", "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True,
                            text=True, cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert result.returncode != 0 and "DEBUG='maybe' is not a boolean" in result.stderr


@pytest.mark.parametrize("path", ["contender", "prompt", "voter", "battle", "vote", "voteflag", "poolresponse"])
def test_every_arena_model_has_a_working_admin(admin_client, path):
    seed()
    listing = admin_client.get(f"/admin/arena/{path}/")
    assert listing.status_code == 200
    assert "Select" in listing.content.decode()


def test_snapshots_are_in_the_admin_read_only(admin_client):
    seed()
    call_command("refit_leaderboard", stdout=StringIO())
    from leaderboard.models import Snapshot

    snapshot = Snapshot.objects.get()
    page = admin_client.get(f"/admin/leaderboard/snapshot/{snapshot.id}/change/")
    assert page.status_code == 200 and snapshot.data_hash in page.content.decode()
    assert admin_client.get("/admin/leaderboard/snapshot/add/").status_code == 403


def test_a_visitor_never_gets_the_same_pooled_prompt_twice(client):
    seed()
    prompts = []
    for _ in range(24):
        assert client.post("/battles/new", {"k": "2"}).status_code == 302
    prompts = list(Battle.objects.filter(prompt__isnull=False).values_list("prompt_id", flat=True))
    assert len(prompts) == len(set(prompts)) == 24
    exhausted = client.post("/battles/new", {"k": "2"})
    assert exhausted.status_code == 400 and "you have not seen" in exhausted.content.decode()


def test_reads_by_strangers_store_nothing_and_api_errors_are_json(client, voter_api, make_battle):
    from arena.models import Voter

    battle = make_battle(voter_api)
    before = Voter.objects.count()
    for path in (f"/api/v1/battles/{battle.id}", f"/battles/{battle.id}"):
        assert client.get(path).status_code == 404
    assert client.post(f"/api/v1/battles/{battle.id}/vote", {"outcome": "a"},
                       content_type="application/json").status_code == 404
    assert Voter.objects.count() == before
    for path in (f"/api/v1/battles/{str(battle.id).upper()}", "/api/v1/battles/not-a-uuid/vote"):
        response = client.get(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    big = client.post(f"/api/v1/battles/{battle.id}/vote", "x" * (3 * 2**20), content_type="application/json")
    assert big.status_code == 400 and big.json()["error"]["code"] == "parse_error"  # not JSON, under the size limit


def test_a_voted_battle_is_read_only_in_the_admin(admin_client):
    seed()
    battle = Battle.objects.filter(status="voted").first()
    page = admin_client.get(f"/admin/arena/battle/{battle.id}/change/").content.decode()
    assert 'name="anonymous"' not in page and 'name="slots-0-contender"' not in page
