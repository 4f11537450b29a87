"""The 'openai' response source against a real (local, scripted) OpenAI-compatible HTTP server."""
from __future__ import annotations

import socket
import time
from typing import Any

import openai
import pytest

from arena.models import Contender
from arena.sources import GenerationParams, SourceResult, source_for
from arena.sources.openai_compat import PLACEHOLDER_API_KEY, ChatCompletionError, chat_completion
from arena.sources.services import contenders_load
from tests.support.openai_server import OpenAIServer, count_tokens

ASK = [{"role": "user", "content": "Tell me about rain."}]
LONG = "Rain falls when droplets in a cloud grow heavy enough to overcome the updrafts that hold them."


def source(server: OpenAIServer, model: str, **config: Any):
    contender = Contender(name="anon", source_kind="openai",
                          source_config={"base_url": server.base_url, "model": model, **config})
    return source_for(contender)


def generate(server: OpenAIServer, model: str, *, params: GenerationParams | None = None,
             **config: Any) -> tuple[SourceResult, list[str]]:
    pieces: list[str] = []
    result = source(server, model, **config).generate(ASK, params or GenerationParams(), pieces.append)
    return result, pieces


def test_a_streamed_answer_arrives_in_order_in_several_pieces_and_whole(openai_server):
    openai_server.script("m", text=LONG, chunk_size=4)
    result, pieces = generate(openai_server, "m")
    assert result.ok and result.error == ""
    assert result.text == LONG
    assert len(pieces) == len(LONG) // 4 + 1 and "".join(pieces) == LONG
    assert result.token_count == count_tokens(LONG)
    assert result.latency_ms >= 0
    body = openai_server.chat_requests("m")[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"] == ASK


def test_a_non_streamed_answer_goes_to_on_delta_once(openai_server):
    openai_server.script("m", text=LONG)
    result, pieces = generate(openai_server, "m", stream=False)
    assert (result.text, pieces, result.token_count) == (LONG, [LONG], count_tokens(LONG))
    assert not openai_server.chat_requests("m")[0].body.get("stream")


@pytest.mark.parametrize("stream", [True, False])
def test_the_token_count_is_unknown_when_the_server_reports_no_usage(openai_server, stream):
    openai_server.script("m", text=LONG, usage=False)
    result, _ = generate(openai_server, "m", stream=stream)
    assert result.text == LONG and result.token_count is None


def test_an_unscripted_model_echoes_the_last_user_message(openai_server):
    result, _ = generate(openai_server, "anything")
    assert result.text == "Echo: Tell me about rain."


def test_call_parameters_override_the_configured_defaults(openai_server):
    config = {"max_tokens": 50, "temperature": 0.2, "seed": 1}
    generate(openai_server, "m", **config)
    generate(openai_server, "m", params=GenerationParams(max_tokens=7, temperature=1.5, seed=3), **config)
    generate(openai_server, "m")
    defaults, overridden, unset = (r.body for r in openai_server.chat_requests("m"))
    assert (defaults["max_tokens"], defaults["temperature"], defaults["seed"]) == (50, 0.2, 1)
    assert (overridden["max_tokens"], overridden["temperature"], overridden["seed"]) == (7, 1.5, 3)
    assert not {"max_tokens", "temperature", "seed"} & set(unset)   # the server's own defaults apply


def test_a_slow_first_token_times_out_without_retrying(openai_server):
    openai_server.script("m", text=LONG, first_token_delay_s=5)
    started = time.monotonic()
    result, _pieces = generate(openai_server, "m", timeout_s=0.3)
    assert not result.ok and result.error == "timed out after 0.3 s"
    assert result.text == "" and result.token_count is None
    assert time.monotonic() - started < 2
    assert len(openai_server.chat_requests("m")) == 1   # a timeout used the whole budget: no retry


def test_a_non_streamed_answer_slower_than_the_timeout_times_out(openai_server):
    openai_server.script("m", text=LONG, first_token_delay_s=5)
    result, _ = generate(openai_server, "m", timeout_s=0.3, stream=False)
    assert result.error == "timed out after 0.3 s"


def test_a_stream_that_trickles_past_the_deadline_is_abandoned(openai_server):
    # Each chunk arrives well within the read timeout, but the whole answer would take 2.3 s.
    openai_server.script("m", text=LONG, chunk_size=4, delay_s=0.1)
    started = time.monotonic()
    result, pieces = generate(openai_server, "m", timeout_s=0.5)
    assert result.error == "timed out after 0.5 s" and result.text == ""
    assert 0 < len(pieces) < len(LONG) // 4   # what streamed before is void: the caller discards it
    assert time.monotonic() - started < 1.5


def test_server_errors_are_retried_with_backoff_then_reported(openai_server):
    openai_server.script("m", status=503)
    started = time.monotonic()
    result, pieces = generate(openai_server, "m", max_retries=2)
    elapsed = time.monotonic() - started
    assert result.error == "the model's server answered HTTP 503 (after 3 attempts)"
    assert len(openai_server.chat_requests("m")) == 3   # max_retries + 1
    assert pieces == []
    # Exponential backoff: ~0.5 s then ~1 s, each less up to 25 % jitter.
    assert 0.5 * 0.75 + 1.0 * 0.75 <= elapsed < 5


def test_two_server_errors_then_an_answer_succeeds(openai_server):
    openai_server.script("m", text=LONG, fail_times=2, retry_after_ms=10)
    result, pieces = generate(openai_server, "m", max_retries=2)
    assert result.ok and result.text == LONG and "".join(pieces) == LONG
    assert len(openai_server.chat_requests("m")) == 3


def test_max_retries_zero_means_one_attempt(openai_server):
    openai_server.script("m", text=LONG, fail_times=1)
    result, _ = generate(openai_server, "m", max_retries=0)
    assert result.error == "the model's server answered HTTP 500"
    assert len(openai_server.chat_requests("m")) == 1


def test_rate_limiting_is_retried_and_honours_retry_after(openai_server):
    openai_server.script("m", status=429, retry_after_ms=20)
    with pytest.raises(ChatCompletionError) as failure:
        chat_completion(base_url=openai_server.base_url, model="m", api_key=None, messages=ASK, max_retries=1,
                        timeout_s=5)
    assert failure.value.status == 429 and failure.value.attempts == 2
    assert "rate limiting" in failure.value.reason
    assert len(openai_server.chat_requests("m")) == 2


def test_a_client_error_is_not_retried(openai_server):
    openai_server.script("m", status=400)
    result, _ = generate(openai_server, "m", max_retries=2)
    assert result.error == "the model's server answered HTTP 400"
    assert len(openai_server.chat_requests("m")) == 1


@pytest.mark.parametrize("stream", [True, False])
def test_a_malformed_answer_is_an_error_not_an_exception(openai_server, stream):
    openai_server.script("m", text=LONG, malformed=True)
    result, _ = generate(openai_server, "m", stream=stream)
    assert result.error == "the model's server sent a malformed answer"
    assert result.text == ""


def test_an_unreachable_server_is_an_error():
    with socket.socket() as probe:   # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    contender = Contender(name="anon", source_kind="openai",
                          source_config={"base_url": f"http://127.0.0.1:{port}/v1", "model": "m", "max_retries": 0})
    result = source_for(contender).generate(ASK, GenerationParams())
    assert result.error == "could not reach the model's server"


def test_an_empty_answer_is_an_error(openai_server):
    openai_server.script("m", text="")
    result, _ = generate(openai_server, "m")
    assert result.error == "the model returned an empty response"


@pytest.mark.parametrize("behaviour", [
    {"status": 500}, {"status": 404}, {"status": 401}, {"malformed": True}, {"first_token_delay_s": 3},
])
def test_an_error_never_names_the_model_or_its_server(openai_server, behaviour):
    model = "secret-model-7b"
    openai_server.script(model, text=LONG, retry_after_ms=1, **behaviour)
    result, _ = generate(openai_server, model, timeout_s=0.3)
    assert result.error
    host_port = openai_server.base_url.removeprefix("http://").removesuffix("/v1")
    for leak in ("secret", "7b", model, "127.0.0.1", host_port.split(":")[1], "http"):
        assert leak not in result.error


def test_the_key_comes_from_the_named_environment_variable_as_a_bearer_token(openai_server, monkeypatch):
    monkeypatch.setenv("ARENA_TEST_MODEL_KEY", "sk-test-1234")
    generate(openai_server, "m", api_key_env="ARENA_TEST_MODEL_KEY")
    assert openai_server.chat_requests("m")[0].headers["authorization"] == "Bearer sk-test-1234"
    monkeypatch.setenv("ARENA_TEST_MODEL_KEY", "sk-rotated-5678")   # read at each call: rotation needs no restart
    generate(openai_server, "m", api_key_env="ARENA_TEST_MODEL_KEY")
    assert openai_server.chat_requests("m")[1].headers["authorization"] == "Bearer sk-rotated-5678"


def test_without_a_key_a_placeholder_is_sent_and_the_hosts_openai_settings_are_not(openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-this-hosts-own-key")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-this-host")
    monkeypatch.delenv("ARENA_UNSET_KEY", raising=False)
    result, _ = generate(openai_server, "m")
    assert result.ok
    generate(openai_server, "m", api_key_env="ARENA_UNSET_KEY")
    for request in openai_server.chat_requests("m"):
        assert request.headers["authorization"] == f"Bearer {PLACEHOLDER_API_KEY}"
        assert "openai-organization" not in request.headers
        assert "sk-this-hosts-own-key" not in str(request.headers)


@pytest.mark.django_db
def test_the_key_itself_is_never_stored(openai_server, monkeypatch):
    monkeypatch.setenv("ARENA_TEST_MODEL_KEY", "sk-never-in-the-db")
    contenders_load(specs=[{"name": "hosted", "source": "openai", "base_url": openai_server.base_url,
                            "model": "m", "api_key_env": "ARENA_TEST_MODEL_KEY"}])
    contender = Contender.objects.get(name="hosted")
    assert source_for(contender).generate(ASK, GenerationParams()).ok
    assert openai_server.chat_requests("m")[0].headers["authorization"] == "Bearer sk-never-in-the-db"
    stored = Contender.objects.filter(name="hosted").values_list("source_config", flat=True).get()
    assert "sk-never-in-the-db" not in str(stored)
    assert stored["api_key_env"] == "ARENA_TEST_MODEL_KEY"


def test_an_exception_raised_by_on_delta_propagates(openai_server):
    # The caller's way to abandon a generation (its client went away): not a source failure.
    openai_server.script("m", text=LONG)

    def hang_up(piece: str) -> None:
        raise ConnectionAbortedError("voter left")

    with pytest.raises(ConnectionAbortedError):
        source(openai_server, "m").generate(ASK, GenerationParams(), hang_up)


def test_chat_completion_reports_prompt_and_completion_tokens(openai_server):
    openai_server.script("judge", text="Verdict: A")
    messages = [{"role": "system", "content": "You judge."}, {"role": "user", "content": "A or B?"}]
    for stream in (True, False):
        completion = chat_completion(base_url=openai_server.base_url, model="judge", api_key="k",
                                     messages=messages, stream=stream, temperature=0.0)
        assert (completion.text, completion.prompt_tokens, completion.completion_tokens) == ("Verdict: A", 5, 2)
        assert completion.finish_reason == "stop"


def test_live_sources_answer_any_well_formed_conversation(openai_server):
    src = source(openai_server, "m")
    assert src.can_answer([*ASK, {"role": "assistant", "content": "..."}, {"role": "user", "content": "More?"}])
    assert not src.can_answer([])
    assert src.generate([], GenerationParams()).error == "the conversation is empty"
    assert openai_server.chat_requests() == []


def test_the_test_server_lists_its_scripted_models(openai_server):
    openai_server.script("alpha")
    openai_server.script("beta")
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="k", max_retries=0)
    assert [m.id for m in client.models.list()] == ["alpha", "beta"]
