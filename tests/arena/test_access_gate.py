"""The one gate to a battle (``arena.selectors.battle_access``), through every path that reaches a battle.

Every path — the battle JSON, the page, the event stream, the vote and a new turn — must answer a
stranger, another voter, a missing id and a malformed id the same way (404, JSON under /api/), and
show names only after the vote.
"""
from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from arena.models import Battle, Vote

pytestmark = pytest.mark.django_db

READS = [("get", "/api/v1/battles/{id}"), ("get", "/battles/{id}"), ("get", "/api/v1/battles/{id}/stream")]
WRITES = [("post", "/api/v1/battles/{id}/vote", {"outcome": "a"}), ("post", "/api/v1/battles/{id}/turns",
                                                                    {"prompt": "and then?"})]


def call(client, method: str, path: str, battle_id, body=None):
    url = path.format(id=battle_id)
    if method == "get":
        return client.get(url)
    return client.post(url, body, format="json") if isinstance(client, APIClient) else client.post(
        url, body, content_type="application/json")


def stream_text(response) -> str:
    return b"".join(response.streaming_content).decode()


@pytest.fixture
def stranger():
    return APIClient()  # no cookie yet, no user: no voter at all


@pytest.mark.parametrize("who", ["stranger", "other_api"])
@pytest.mark.parametrize("state", ["open", "voted", "void"])
@pytest.mark.parametrize("endpoint", READS + WRITES, ids=lambda e: f"{e[0]} {e[1]}")
def test_nobody_but_the_voter_reaches_a_battle(request, voter_api, make_battle, who, state, endpoint):
    battle = make_battle(voter_api)
    if state == "voted":
        assert voter_api.post(f"/api/v1/battles/{battle.id}/vote", {"outcome": "b"}, format="json").status_code == 201
    elif state == "void":
        Battle.objects.filter(id=battle.id).update(status="void", void_reason="answer A could not be generated")
    votes_before = Vote.objects.count()
    client = request.getfixturevalue(who)
    response = call(client, *endpoint[:2], battle.id, endpoint[2] if len(endpoint) > 2 else None)
    assert response.status_code == 404
    if endpoint[1].startswith("/api/"):
        assert response.json()["error"]["code"] == "battle_not_found"
    body = response.content.decode()
    assert all(slot.contender.name not in body for slot in battle.slots.all())
    assert Vote.objects.count() == votes_before
    assert Battle.objects.get(id=battle.id).status == state


@pytest.mark.parametrize("endpoint", READS + WRITES, ids=lambda e: f"{e[0]} {e[1]}")
@pytest.mark.parametrize("battle_id", [uuid.UUID(int=7), "not-a-uuid", "01234567-89ab-cdef-0123-456789abcdeg"])
def test_missing_and_malformed_ids_are_not_found_everywhere(voter_api, make_battle, endpoint, battle_id):
    make_battle(voter_api)  # the voter exists and owns another battle
    response = call(voter_api, *endpoint[:2], battle_id, endpoint[2] if len(endpoint) > 2 else None)
    assert response.status_code == 404
    if endpoint[1].startswith("/api/"):
        assert response["Content-Type"].startswith("application/json")
        assert response.json()["error"]["code"] in {"battle_not_found", "not_found"}


def test_the_voter_sees_an_open_battle_everywhere_without_names(voter_api, make_battle):
    battle = make_battle(voter_api, k=3)
    names = [s.contender.name for s in battle.slots.all()]
    detail = voter_api.get(f"/api/v1/battles/{battle.id}")
    page = voter_api.get(f"/battles/{battle.id}")
    stream = voter_api.get(f"/api/v1/battles/{battle.id}/stream")
    assert detail.status_code == page.status_code == stream.status_code == 200
    events = stream_text(stream)
    assert "event: done" in events  # a battle given with its responses is complete at once
    for text in (detail.content.decode(), page.content.decode(), events):
        assert not any(name in text for name in names)
    assert all("contender" not in slot for slot in detail.json()["slots"])


def test_the_voter_sees_names_everywhere_once_voted(voter_api, make_battle):
    battle = make_battle(voter_api)
    voter_api.post(f"/api/v1/battles/{battle.id}/vote", {"outcome": "tie"}, format="json")
    names = {s.contender.name for s in battle.slots.all()}
    detail = voter_api.get(f"/api/v1/battles/{battle.id}").json()
    assert {s["contender"]["name"] for s in detail["slots"]} == names
    page = voter_api.get(f"/battles/{battle.id}").content.decode()
    assert all(name in page for name in names) and "New round" in page


def test_a_voted_battle_refuses_a_second_vote_and_a_new_turn(voter_api, make_battle):
    battle = make_battle(voter_api)
    voter_api.post(f"/api/v1/battles/{battle.id}/vote", {"outcome": "a"}, format="json")
    again = voter_api.post(f"/api/v1/battles/{battle.id}/vote", {"outcome": "b"}, format="json")
    turn = voter_api.post(f"/api/v1/battles/{battle.id}/turns", {"prompt": "more"}, format="json")
    assert again.status_code == turn.status_code == 409
    assert again.json()["error"]["code"] == turn.json()["error"]["code"] == "battle_already_voted"


def test_a_void_battle_never_reveals_and_streams_why(voter_api, make_battle):
    battle = make_battle(voter_api)
    Battle.objects.filter(id=battle.id).update(status="void", void_reason="answer A could not be generated")
    detail = voter_api.get(f"/api/v1/battles/{battle.id}").json()
    assert detail["status"] == "void" and all("contender" not in s for s in detail["slots"])
    events = stream_text(voter_api.get(f"/api/v1/battles/{battle.id}/stream"))
    assert "event: void" in events and "answer A could not be generated" in events
    page = voter_api.get(f"/battles/{battle.id}").content.decode()
    assert "This battle is void and will not count." in page and "A is better" not in page


def test_under_asgi_the_stream_is_an_asynchronous_iterator(voter_api, make_battle):
    # A sync iterator under ASGI is buffered whole by Django: the visitor would see nothing until the end.
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    battle = make_battle(voter_api)

    async def read() -> tuple[bool, str]:
        client = AsyncClient()
        await client.aforce_login(voter_api.user)
        response = await client.get(f"/api/v1/battles/{battle.id}/stream")
        chunks = [chunk async for chunk in response.streaming_content]
        return response.is_async, b"".join(chunks).decode()

    is_async, body = async_to_sync(read)()
    assert is_async and "event: done" in body
    assert not any(slot.contender.name in body for slot in battle.slots.all())
