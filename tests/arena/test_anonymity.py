"""Before the vote nothing that identifies a contender leaves the server: JSON, HTML, headers, slot order."""
from __future__ import annotations

import re
from collections import Counter

import pytest

pytestmark = pytest.mark.django_db


def identifying_strings(battle) -> list[str]:
    values = []
    for slot in battle.slots.select_related("contender"):
        c = slot.contender
        values += [c.name, c.organization, c.license, c.family, f'"id": {c.id}', f'"contender": {c.id}']
        values += [f'"latency_ms": {slot.latency_ms}', "token_count", "latency"]
    return values


def assert_nothing_identifying(response, battle) -> None:
    text = response.content.decode()
    headers = " ".join(f"{k}: {v}" for k, v in response.items())
    for value in identifying_strings(battle):
        # Whole words: a license "mit" is not leaked by a "Submit" button.
        pattern = rf"(?<![\w]){re.escape(value)}(?![\w])"
        assert not re.search(pattern, text, re.IGNORECASE), value
        assert not re.search(pattern, headers, re.IGNORECASE), value


@pytest.mark.parametrize("k", [2, 3, 6])
def test_the_battle_json_names_no_contender_before_the_vote(voter_api, make_battle, k):
    battle = make_battle(voter_api, k=k)
    response = voter_api.get(f"/api/v1/battles/{battle.id}")
    assert response.status_code == 200
    assert set(response.json()) == {"id", "k", "status", "generation", "complete", "turns", "void_reason", "created",
                                    "prompt", "slots"}
    assert all(set(slot) == {"position", "label", "response", "conversation"} for slot in response.json()["slots"])
    assert_nothing_identifying(response, battle)


def test_the_creation_response_names_no_contender(staff_api, contenders):
    body = {"prompt": "hi", "slots": [{"contender": c.name, "response": f"text {i}", "latency_ms": 7391}
                                     for i, c in enumerate(contenders[:3])]}
    response = staff_api.post("/api/v1/battles", body, format="json")
    assert response.status_code == 201
    for c in contenders:
        assert c.name not in response.content.decode() and c.organization not in response.content.decode()
    assert "7391" not in response.content.decode() and "latency" not in response.content.decode()


def test_the_battle_page_names_no_contender_before_the_vote(voter_api, make_battle):
    battle = make_battle(voter_api, k=3)
    response = voter_api.get(f"/battles/{battle.id}")
    assert response.status_code == 200
    assert "Answer A" in response.content.decode()
    assert_nothing_identifying(response, battle)


def test_after_the_vote_the_page_and_json_reveal_names(voter_api, make_battle):
    battle = make_battle(voter_api)
    voter_api.post(f"/api/v1/battles/{battle.id}/vote", {"outcome": "tie"}, format="json")
    page = voter_api.get(f"/battles/{battle.id}").content.decode()
    data = voter_api.get(f"/api/v1/battles/{battle.id}").json()
    assert "alpha-7b" in page and "beta-13b" in page
    assert {s["contender"]["organization"] for s in data["slots"]} == {"Alpha Labs", "Beta Inc"}


def test_slot_order_does_not_follow_the_request_order(staff_api, contenders):
    """The first contender of the request lands in each of 3 positions about equally often."""
    first_positions = Counter()
    names = [c.name for c in contenders[:3]]
    for _ in range(90):
        body = {"prompt": "hi", "slots": [{"contender": n, "response": f"text of slot {i}"}
                                         for i, n in enumerate(names)]}
        slots = staff_api.post("/api/v1/battles", body, format="json").json()["slots"]
        first_positions[next(s["position"] for s in slots if s["response"] == "text of slot 0")] += 1
    # Uniform would be 30 each; P(any count < 12 or > 48) under uniformity is below 1e-5.
    assert set(first_positions) == {0, 1, 2}
    assert all(12 <= n <= 48 for n in first_positions.values()), first_positions
