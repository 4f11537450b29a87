"""A visitor's own prompt answered live by matched contenders behind a real OpenAI-compatible server.

These tests run generation the way the site does: in background threads that use their own database
connections, so they need committed data (``transaction=True``) and wait for each battle's turn.
"""
from __future__ import annotations

import json
import re

import pytest
from django.core.cache import cache

from arena.live.coordinator import generation_wait
from arena.matchmaking.health import source_failing
from arena.models import Battle, BattleSlot, Contender, PoolResponse, Vote, VoteFlag
from arena.services import prompt_get_or_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()  # source health and live state from another test must not leak in
    yield
    cache.clear()


def live_contender(server, name: str, model: str, **extra) -> Contender:
    config = {"base_url": server.base_url, "model": model, "timeout_s": 5, "max_retries": 0, **extra}
    return Contender.objects.create(name=name, organization=f"{name.title()} Labs", family=name.split("-")[0],
                                    source_kind="openai", source_config=config)


def open_battle(api, **body):
    response = api.post("/api/v1/battles", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def read_events(api, battle_id) -> list[tuple[str, dict]]:
    response = api.get(f"/api/v1/battles/{battle_id}/stream")
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    raw = b"".join(response.streaming_content).decode()
    events = []
    for block in raw.split("\n\n"):
        name = re.search(r"^event: (.+)$", block, re.M)
        data = re.search(r"^data: (.+)$", block, re.M)
        if name and data:
            events.append((name.group(1), json.loads(data.group(1))))
    return events, raw


def finished(api, battle_id) -> dict:
    assert generation_wait(battle_id, timeout=20)
    return api.get(f"/api/v1/battles/{battle_id}").json()


def test_a_typed_prompt_is_answered_live_streamed_voted_and_revealed(voter_api, openai_server):
    openai_server.script("model-fast", text="Fast answer: **rain** falls on the roof.", chunk_size=3)
    openai_server.script("model-slow", text="Slow answer, written one piece at a time.", chunk_size=3, delay_s=0.01)
    live_contender(openai_server, "quokka-7b", "model-fast")
    live_contender(openai_server, "wombat-13b", "model-slow")

    body = open_battle(voter_api, prompt="Write a line about rain.", k=2)
    assert body["generation"] == "running" and body["complete"] is False and body["status"] == "open"
    assert "quokka" not in json.dumps(body) and "wombat" not in json.dumps(body)

    events, raw = read_events(voter_api, body["id"])
    names = [name for name, _ in events]
    assert names[-1] == "done" and "update" in names
    assert "quokka" not in raw.lower() and "wombat" not in raw.lower() and "labs" not in raw.lower()
    final = {s["position"]: s["html"] for s in events[-1][1]["slots"]}
    assert any("<strong>rain</strong>" in html for html in final.values())  # markdown rendered

    detail = finished(voter_api, body["id"])
    assert detail["complete"] is True and detail["generation"] == "done"
    assert sorted(s["response"] for s in detail["slots"]) == sorted(
        ["Fast answer: **rain** falls on the roof.", "Slow answer, written one piece at a time."])
    # Both models were asked the visitor's prompt, exactly.
    for model in ("model-fast", "model-slow"):
        (request,) = openai_server.chat_requests(model)
        assert request.body["messages"] == [{"role": "user", "content": "Write a line about rain."}]

    vote = voter_api.post(f"/api/v1/battles/{body['id']}/vote", {"outcome": "a"}, format="json")
    assert vote.status_code == 201
    revealed = {s["position"]: s["contender"]["name"] for s in vote.json()["slots"]}
    assert set(revealed.values()) == {"quokka-7b", "wombat-13b"}
    battle = Battle.objects.get(id=body["id"])
    assert battle.prompt_source == "typed" and battle.prompt.text == "Write a line about rain."
    assert Vote.objects.get(battle=battle).contender_a.name == revealed[0]


def test_streamed_answers_grow_in_lockstep_whatever_each_model_speed(voter_api, openai_server):
    # One model is ten times slower and starts late: the visitor must not see which is which from the stream.
    openai_server.script("model-fast", text="x" * 120, chunk_size=6)
    openai_server.script("model-slow", text="y" * 90, chunk_size=3, delay_s=0.01, first_token_delay_s=0.1)
    live_contender(openai_server, "quokka-7b", "model-fast")
    live_contender(openai_server, "wombat-13b", "model-slow")
    body = open_battle(voter_api, prompt="Repeat a letter.", k=2)
    events, _ = read_events(voter_api, body["id"])
    updates = [[len(re.sub(r"<[^>]+>", "", s["html"]).strip()) for s in data["slots"]]
               for name, data in events if name == "update"]
    assert len(updates) >= 3
    for lengths in updates:
        # Until the shorter answer (90 characters) has ended, every slot shows the same amount of text.
        if min(lengths) < 90:
            assert lengths[0] == lengths[1], updates
    assert events[-1][0] == "done"
    generation_wait(body["id"])


def test_a_source_error_voids_the_battle_which_takes_no_vote(voter_api, openai_server):
    openai_server.script("model-ok", text="A fine answer.")
    openai_server.script("model-down", status=500)
    live_contender(openai_server, "quokka-7b", "model-ok")
    live_contender(openai_server, "wombat-13b", "model-down")
    body = open_battle(voter_api, prompt="Hello?", k=2)
    events, raw = read_events(voter_api, body["id"])
    # One generic reason: which slot failed, and how, would hint at its source before any reveal.
    assert events[-1] == ("void", {"reason": "one of the models could not answer"})
    assert "wombat" not in raw and "model-down" not in raw and "127.0.0.1" not in raw
    detail = finished(voter_api, body["id"])
    assert detail["status"] == "void" and detail["generation"] == "failed"
    assert detail["void_reason"] == "one of the models could not answer"
    assert all("contender" not in s for s in detail["slots"])  # a void battle never reveals the names
    vote = voter_api.post(f"/api/v1/battles/{body['id']}/vote", {"outcome": "a"}, format="json")
    assert vote.status_code == 409 and vote.json()["error"]["code"] == "battle_void"
    assert not Vote.objects.exists()
    failed = BattleSlot.objects.get(battle_id=body["id"], contender__name="wombat-13b")
    assert "500" in failed.error  # staff see which source failed and how
    healthy = BattleSlot.objects.get(battle_id=body["id"], contender__name="quokka-7b")
    assert healthy.error == ""  # the partner that answered is not blamed
    assert source_failing([failed.contender_id, healthy.contender_id]) == set()  # one failure is not a streak
    assert cache.get(f"arena:source-failures:{healthy.contender_id}") in (None, 0)


def test_voting_before_the_answers_are_complete_is_refused(voter_api, openai_server):
    openai_server.script("model-a", text="slow " * 20, chunk_size=5, delay_s=0.03)
    openai_server.script("model-b", text="also slow " * 10, chunk_size=5, delay_s=0.03)
    live_contender(openai_server, "quokka-7b", "model-a")
    live_contender(openai_server, "wombat-13b", "model-b")
    body = open_battle(voter_api, prompt="Take your time.", k=2)
    early = voter_api.post(f"/api/v1/battles/{body['id']}/vote", {"outcome": "b"}, format="json")
    assert early.status_code == 409 and early.json()["error"]["code"] == "battle_generating"
    finished(voter_api, body["id"])
    late = voter_api.post(f"/api/v1/battles/{body['id']}/vote", {"outcome": "b"}, format="json")
    assert late.status_code == 201


def test_the_conversation_continues_with_the_same_anonymous_models(voter_api, openai_server):
    live_contender(openai_server, "quokka-7b", "echo-1")  # unscripted models echo the last user message
    live_contender(openai_server, "wombat-13b", "echo-2")
    body = open_battle(voter_api, prompt="First question", k=2)
    finished(voter_api, body["id"])
    turn = voter_api.post(f"/api/v1/battles/{body['id']}/turns", {"prompt": "Second question"}, format="json")
    assert turn.status_code == 202 and turn.json()["turns"] == 2 and turn.json()["generation"] == "running"
    detail = finished(voter_api, body["id"])
    assert [s["response"] for s in detail["slots"]] == ["Echo: Second question"] * 2
    for slot in BattleSlot.objects.filter(battle_id=body["id"]):
        assert slot.conversation == [
            {"role": "user", "content": "First question"}, {"role": "assistant", "content": "Echo: First question"},
            {"role": "user", "content": "Second question"}, {"role": "assistant", "content": "Echo: Second question"},
        ]
    # Each model saw the whole conversation, its own first answer included.
    second = openai_server.chat_requests("echo-1")[-1]
    assert [m["content"] for m in second.body["messages"]] == ["First question", "Echo: First question",
                                                               "Second question"]
    vote = voter_api.post(f"/api/v1/battles/{body['id']}/vote", {"outcome": "tie"}, format="json")
    assert vote.status_code == 201 and len(vote.json()["slots"][0]["conversation"]) == 4


def test_a_sampled_prompt_mixes_pool_and_live_contenders(voter_api, openai_server):
    pooled = Contender.objects.create(name="pool-model", source_kind="pool")
    prompt = prompt_get_or_create(text="What is a prime number?")
    PoolResponse.objects.create(contender=pooled, prompt=prompt, text="A number with exactly two divisors.")
    live_contender(openai_server, "quokka-7b", "echo-1")
    body = open_battle(voter_api, k=2)  # no prompt: the arena samples one of its own
    assert body["prompt"]["text"] == "What is a prime number?"
    detail = finished(voter_api, body["id"])
    assert sorted(s["response"] for s in detail["slots"]) == ["A number with exactly two divisors.",
                                                              "Echo: What is a prime number?"]
    assert Battle.objects.get(id=body["id"]).prompt_source == "sampled"
    # A pooled answer cannot go on talking.
    turn = voter_api.post(f"/api/v1/battles/{body['id']}/turns", {"prompt": "And 2?"}, format="json")
    assert turn.status_code == 400 and turn.json()["error"]["code"] == "conversation_not_supported"


def test_an_answer_that_names_its_model_flags_the_vote_and_leaves_it_out_of_ratings(voter_api, openai_server):
    openai_server.script("model-leaky", text="As Quokka, trained by Quokka-7b Labs, I think so.")
    openai_server.script("model-quiet", text="I think so.")
    live_contender(openai_server, "quokka-7b", "model-leaky")
    live_contender(openai_server, "wombat-13b", "model-quiet")
    body = open_battle(voter_api, prompt="Do you think so?", k=2)
    finished(voter_api, body["id"])
    assert "quokka" in Battle.objects.get(id=body["id"]).identity_leak.lower()
    vote = voter_api.post(f"/api/v1/battles/{body['id']}/vote", {"outcome": "a"}, format="json")
    assert vote.status_code == 201  # stored: votes are never thrown away
    flag = VoteFlag.objects.get(vote__battle_id=body["id"])
    assert flag.code == "identity_leak" and "quokka" in flag.reason.lower()
    board = voter_api.get("/api/v1/leaderboard?method=bayes")
    assert board.status_code == 404 and board.json()["error"]["code"] == "no_votes"  # nothing left to rate
    counted = voter_api.get("/api/v1/leaderboard?method=bayes&exclude_flagged=0")
    assert counted.status_code == 200, counted.json()
    assert counted.json()["snapshot"]["n_votes"] == 1


def test_asking_for_more_models_than_can_answer_says_how_many_can(voter_api, openai_server):
    live_contender(openai_server, "quokka-7b", "echo-1")
    live_contender(openai_server, "wombat-13b", "echo-2")
    response = voter_api.post("/api/v1/battles", {"prompt": "hi", "k": 4}, format="json")
    assert response.status_code == 400
    assert "k" in response.json()["error"]["fields"] and "2" in response.json()["error"]["message"]
    assert not Battle.objects.exists()


def test_k_wise_battle_with_four_live_models_takes_a_ranking(voter_api, openai_server):
    for i, animal in enumerate(["quokka", "wombat", "numbat", "bilby"]):
        live_contender(openai_server, f"{animal}-{i + 1}b", f"echo-{i}")
    body = open_battle(voter_api, prompt="Rank us.", k=4)
    assert [s["label"] for s in body["slots"]] == ["A", "B", "C", "D"]
    finished(voter_api, body["id"])
    vote = voter_api.post(f"/api/v1/battles/{body['id']}/vote", {"ranking": [[2], [0, 3], [1]]}, format="json")
    assert vote.status_code == 201
    assert Vote.objects.get().ranking == [[2], [0, 3], [1]]


def test_a_local_transformers_model_answers_beside_an_http_one(voter_api, openai_server, tiny_causal_lm):
    live_contender(openai_server, "quokka-7b", "echo-1")
    Contender.objects.create(name="tiny-local", source_kind="transformers",
                             source_config={"path": str(tiny_causal_lm), "max_tokens": 8, "seed": 3})
    body = open_battle(voter_api, prompt="the cat sat", k=2)
    detail = finished(voter_api, body["id"])
    assert detail["status"] == "open" and detail["complete"], detail
    local = BattleSlot.objects.get(battle_id=body["id"], contender__name="tiny-local")
    assert local.response and local.token_count and local.token_count <= 8
    assert local.conversation[-1] == {"role": "assistant", "content": local.response}


def test_pooled_answers_stream_like_live_ones_once_the_arena_has_live_models(voter_api, openai_server, settings):
    # Were a battle of two pooled answers complete the moment it opens, the voter would know both slots
    # hold pool models; beside live models it is generated (and paced) like any other.
    settings.ARENA_POOL_STREAM_CHARS_PER_S = 400
    prompt = prompt_get_or_create(text="Name a prime.")
    for name, text in (("pool-a", "Seven is prime, and so is " + "eleven " * 10), ("pool-b", "Two.")):
        contender = Contender.objects.create(name=name, source_kind="pool")
        PoolResponse.objects.create(contender=contender, prompt=prompt, text=text)
    never = live_contender(openai_server, "quokka-7b", "echo-1")
    Contender.objects.filter(id=never.id).update(sampling_weight=0)  # live, but never drawn
    body = open_battle(voter_api, k=2)
    assert body["generation"] == "running" and body["complete"] is False
    events, _ = read_events(voter_api, body["id"])
    assert [name for name, _ in events].count("update") >= 2 and events[-1][0] == "done"
    detail = finished(voter_api, body["id"])
    assert sorted(s["response"] for s in detail["slots"]) == sorted(
        ["Seven is prime, and so is " + "eleven " * 10, "Two."])
