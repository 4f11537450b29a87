"""Voting through the API: every outcome, every refusal, and that refusals change nothing."""
from __future__ import annotations

import pytest
from django.db import connection

from arena.models import Battle, Vote

pytestmark = pytest.mark.django_db


def vote_url(battle: Battle) -> str:
    return f"/api/v1/battles/{battle.id}/vote"


def vote(client, battle, body, key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(vote_url(battle), body, format="json", **headers)


@pytest.mark.parametrize("outcome", ["a", "b", "tie", "both_bad"])
def test_a_pairwise_vote_is_stored_and_reveals_the_battle(voter_api, make_battle, outcome):
    battle = make_battle(voter_api)
    response = vote(voter_api, battle, {"outcome": outcome}, key="k1")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "voted"
    assert body["vote"]["kind"] == "pairwise" and body["vote"]["outcome"] == outcome
    assert sorted(s["contender"]["name"] for s in body["slots"]) == ["alpha-7b", "beta-13b"]
    stored = Vote.objects.get(battle=battle)
    assert stored.outcome == outcome
    battle.refresh_from_db()
    assert battle.status == "voted" and battle.revealed_at == stored.created


def test_a_vote_request_looks_its_voter_up_once_and_writes_in_few_statements(voter_api, make_battle,
                                                                            django_assert_max_num_queries):
    """The whole request, reveal included: the voter once, the stalled check once, no savepoint of its own, the
    revealed battle built from the rows the vote read (not read again); 19 statements before this was pinned (load
    profile, benchmarks/RESULTS.md). The body is the one a later read of the battle gets."""
    battle = make_battle(voter_api)
    with django_assert_max_num_queries(17) as ctx:
        response = vote(voter_api, battle, {"outcome": "a"}, key="k1")
    assert response.status_code == 201 and response.json()["vote"]["outcome"] == "a"
    statements = [q["sql"] for q in ctx.captured_queries]
    # This client logs in with a session (2 statements an anonymous voter does not make), and in a test the
    # vote's transaction is a savepoint of the test's: one pair, where a savepoint of the vote's own would be two.
    assert sum(s.startswith("SAVEPOINT") for s in statements) == 1, statements
    ours = [s for s in statements if not s.startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
            and '"django_session"' not in s and not s.startswith('SELECT "auth_user"')]
    # On SQLite (the demo) the tally reads the voter's flag in a statement of its own (by id, not by key).
    assert len(ours) == (11 if connection.vendor == "postgresql" else 12), ours
    assert sum(s.startswith('SELECT "arena_voter"') and '"arena_voter"."key" =' in s for s in ours) == 1, ours
    assert sum('"arena_battle"."generation_started" <' in s for s in ours) == 1, ours
    assert not any(s.startswith('SELECT "arena_prompt"') for s in ours), ours  # read with the battle's row
    assert response.json() == voter_api.get(f"/api/v1/battles/{battle.id}").json()


def test_a_retry_with_the_same_key_returns_the_stored_vote(voter_api, make_battle):
    battle = make_battle(voter_api)
    first = vote(voter_api, battle, {"outcome": "a"}, key="same-key")
    again = vote(voter_api, battle, {"outcome": "a"}, key="same-key")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()
    assert Vote.objects.filter(battle=battle).count() == 1


def test_a_second_different_vote_is_refused(voter_api, make_battle):
    battle = make_battle(voter_api)
    vote(voter_api, battle, {"outcome": "a"}, key="k1")
    response = vote(voter_api, battle, {"outcome": "b"}, key="k2")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "battle_already_voted"
    assert Vote.objects.get(battle=battle).outcome == "a"


def test_a_reused_key_with_another_verdict_is_refused(voter_api, make_battle):
    battle = make_battle(voter_api)
    vote(voter_api, battle, {"outcome": "a"}, key="k1")
    response = vote(voter_api, battle, {"outcome": "b"}, key="k1")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert Vote.objects.get(battle=battle).outcome == "a"


def test_a_reused_key_on_another_battle_is_refused(voter_api, make_battle):
    first, second = make_battle(voter_api), make_battle(voter_api)
    vote(voter_api, first, {"outcome": "a"}, key="k1")
    response = vote(voter_api, second, {"outcome": "a"}, key="k1")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert not Vote.objects.filter(battle=second).exists()


def test_a_vote_on_another_voters_battle_is_not_found(voter_api, other_api, make_battle):
    battle = make_battle(voter_api)
    response = vote(other_api, battle, {"outcome": "a"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "battle_not_found"
    assert not Vote.objects.exists()


def test_an_anonymous_browser_cannot_vote_on_a_users_battle(client, voter_api, make_battle):
    battle = make_battle(voter_api)
    response = client.post(vote_url(battle), {"outcome": "a"}, content_type="application/json")
    assert response.status_code == 404
    assert not Vote.objects.exists()


def test_a_vote_on_an_unknown_battle_is_not_found(voter_api, contenders):
    response = voter_api.post("/api/v1/battles/00000000-0000-4000-8000-000000000000/vote", {"outcome": "a"},
                              format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "battle_not_found"


@pytest.mark.parametrize(
    ("k", "body", "field"),
    [
        (2, {}, "outcome"),
        (2, {"outcome": "c"}, "outcome"),
        (2, {"outcome": "a", "best": 0}, "outcome"),
        (2, {"best": 0}, "outcome"),
        (2, {"ranking": [[0], [1]]}, "outcome"),
        (3, {"outcome": "a"}, "outcome"),
        (3, {"best": 3}, "best"),
        (3, {"best": -1}, "best"),
        (3, {"best": True}, "best"),
        (3, {"ranking": [[0], [1]]}, "ranking"),
        (3, {"ranking": [[0, 1], [1, 2]]}, "ranking"),
        (3, {"ranking": [[0], [], [1, 2]]}, "ranking"),
        (3, {"ranking": [[0], [1], [5]]}, "ranking"),
        (3, {"ranking": "0>1>2"}, "ranking"),
        (2, {"outcome": "a", "aspects": {"charm": "a"}}, "aspects.charm"),
        (2, {"outcome": "a", "aspects": {"style": "z"}}, "aspects.style"),
        (3, {"best": 0, "aspects": {"style": 4}}, "aspects.style"),
        (3, {"ranking": [[0], [1], [2]], "aspects": {"style": [[0], [1]]}}, "aspects.style"),
        (2, {"outcome": "a", "rationale": "x" * 2001}, "rationale"),
    ],
)
def test_a_malformed_vote_is_refused_naming_the_field(voter_api, make_battle, k, body, field):
    battle = make_battle(voter_api, k=k)
    response = vote(voter_api, battle, body)
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert field in error["fields"]
    assert not Vote.objects.exists()
    battle.refresh_from_db()
    assert battle.status == "open" and battle.revealed_at is None


def test_an_overlong_idempotency_key_is_refused(voter_api, make_battle):
    battle = make_battle(voter_api)
    response = vote(voter_api, battle, {"outcome": "a"}, key="k" * 129)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["fields"]
    assert not Vote.objects.exists()


def test_best_of_k_names_one_position(voter_api, make_battle):
    battle = make_battle(voter_api, k=4)
    response = vote(voter_api, battle, {"best": 3, "aspects": {"style": 1}, "rationale": "clearest"})
    assert response.status_code == 201
    stored = Vote.objects.get(battle=battle)
    assert (stored.kind, stored.best_position, stored.aspects, stored.rationale) == (
        "best_of_k", 3, {"style": 1}, "clearest")


def test_a_ranking_with_ties_is_stored_as_sorted_groups(voter_api, make_battle):
    battle = make_battle(voter_api, k=6)
    response = vote(voter_api, battle, {"ranking": [[4], [2, 0], [5], [3, 1]]})
    assert response.status_code == 201
    assert response.json()["vote"]["ranking"] == [[4], [0, 2], [5], [1, 3]]
    assert Vote.objects.get(battle=battle).ranking == [[4], [0, 2], [5], [1, 3]]


def test_per_aspect_outcomes_are_kept(voter_api, make_battle):
    battle = make_battle(voter_api)
    response = vote(voter_api, battle, {"outcome": "a", "aspects": {"correctness": "b", "style": "tie"}})
    assert response.status_code == 201
    assert Vote.objects.get(battle=battle).aspects == {"correctness": "b", "style": "tie"}


def test_a_void_battle_takes_no_vote(voter_api, make_battle):
    battle = make_battle(voter_api)
    Battle.objects.filter(id=battle.id).update(status="void", void_reason="answer B could not be generated")
    response = vote(voter_api, battle, {"outcome": "a"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "battle_void"
    assert "answer B could not be generated" in response.json()["error"]["message"]
    assert not Vote.objects.exists()


def test_a_malformed_json_body_is_a_json_400(voter_api, make_battle):
    battle = make_battle(voter_api)
    response = voter_api.post(vote_url(battle), "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert not Vote.objects.exists()


def test_a_given_response_that_names_its_model_flags_the_vote(staff_api, contenders):
    body = {"prompt": "Who are you?", "slots": [
        {"contender": "alpha-7b", "response": "I am Alpha, made by Alpha Labs."},
        {"contender": "beta-13b", "response": "A language model."}]}
    battle_id = staff_api.post("/api/v1/battles", body, format="json").json()["id"]
    assert staff_api.post(f"/api/v1/battles/{battle_id}/vote", {"outcome": "b"}, format="json").status_code == 201
    flag = Vote.objects.get(battle_id=battle_id).flags.get()
    assert flag.code == "identity_leak" and "alpha-7b" in flag.reason and "beta" not in flag.reason
