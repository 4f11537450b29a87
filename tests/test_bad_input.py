"""Hostile and malformed input through the HTTP API: each is refused with a 4xx JSON error that names the
problem (or the field), and nothing is written.

Decisions, from the models and limits:
- Request bodies are capped at settings.DATA_UPLOAD_MAX_MEMORY_SIZE (8 MiB by default; MAX_REQUEST_BODY_BYTES):
  above it, 413 ``request_too_large`` before anything reads the body (config.middleware).
- A prompt is at most 100,000 characters (arena.apis): a 1 MB prompt is under the body limit but over that,
  so it is refused with a 400 naming ``prompt`` rather than stored.
- JSON nested deeper than 200 levels is a 400 ``parse_error`` (config.parsers): no legitimate body nests more
  than a few levels, and Python's parser would otherwise hit its recursion limit (a 500).
"""
from __future__ import annotations

import json

import pytest
from django.apps import apps
from django.conf import settings
from rest_framework.test import APIClient

API = "/api/v1"


def _row_counts() -> dict[str, int]:
    return {model._meta.label: model.objects.count() for model in apps.get_models()}


@pytest.fixture
def unchanged(db):  # type: ignore[no-untyped-def]
    """Asserts, after the test, that no table gained or lost a row."""
    before = _row_counts()
    yield
    after = _row_counts()
    assert {k: (before[k], after[k]) for k in before if before[k] != after[k]} == {}


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()  # an anonymous browser visitor (the test client skips CSRF, as a page's token would pass)


def _error(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    return response.json()["error"]


def _post_raw(client: APIClient, path: str, body: bytes):  # type: ignore[no-untyped-def]
    return client.generic("POST", path, body, content_type="application/json")


# NUL bytes: Postgres text cannot hold them, so they must never get as far as the database.

def test_a_nul_byte_in_the_prompt_is_refused_naming_the_prompt(contenders, anonymous, unchanged):
    error = _error(anonymous.post(f"{API}/battles", {"prompt": "Hello\x00world", "k": 2}, format="json"), 400)
    assert "prompt" in error["fields"]


@pytest.mark.parametrize("path, body, field", [
    ("/judges", {"name": "judge\x00one", "backend": "scripted"}, "name"),
    ("/datasets", {"name": "set\x00one"}, "name"),
    ("/battles", {"prompt": "p", "slots": [{"contender": "alpha-7b\x00", "response": "a"},
                                            {"contender": "beta-13b", "response": "b"}]}, "slots"),
    ("/battles", {"prompt": "p", "category": "po\x00etry", "slots": [{"contender": "alpha-7b", "response": "a"},
                                                                     {"contender": "beta-13b", "response": "b"}]},
     "category"),
])
def test_nul_bytes_in_names_are_refused_naming_the_field(contenders, staff_api, unchanged, path, body, field):
    error = _error(staff_api.post(API + path, body, format="json"), 400)
    assert field in error["fields"]


def test_a_nul_byte_in_a_vote_is_refused(make_battle, voter_api, db):
    battle = make_battle(voter_api)
    before = _row_counts()
    error = _error(voter_api.post(f"{API}/battles/{battle.id}/vote", {"outcome": "a", "rationale": "x\x00y"},
                                  format="json"), 400)
    assert "rationale" in error["fields"]
    error = _error(voter_api.post(f"{API}/battles/{battle.id}/vote", {"outcome": "a"}, format="json",
                                  HTTP_IDEMPOTENCY_KEY="key\x00"), 400)
    assert "Idempotency-Key" in error["fields"]
    assert _row_counts() == before


def test_a_nul_byte_in_a_json_config_is_refused(staff_api, unchanged):
    # Postgres jsonb cannot hold \u0000 either.
    error = _error(staff_api.post(f"{API}/judges", {"name": "j", "backend": "scripted", "config": {"a\x00": 1}},
                                  format="json"), 400)
    assert "config" in error["fields"]


def test_a_nul_byte_in_a_query_parameter_is_refused(anonymous, db):
    error = _error(anonymous.get(f"{API}/leaderboard", {"category": "a\x00b"}), 400)
    assert "category" in error["fields"]


# Size.

def test_a_body_over_the_limit_is_refused_with_413_before_it_is_read(contenders, anonymous, unchanged):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert limit == 8 * 1024 * 1024  # the documented default (tests set no MAX_REQUEST_BODY_BYTES)
    body = json.dumps({"prompt": "x" * limit, "k": 2}).encode()
    error = _error(_post_raw(anonymous, f"{API}/battles", body), 413)
    assert error["code"] == "request_too_large" and str(limit) in error["message"]


def test_a_body_just_under_the_limit_is_read(contenders, anonymous, unchanged):
    # Under the limit the body reaches validation: the prompt is too long, which is a 400, not a 413.
    body = json.dumps({"prompt": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE - 100), "k": 2}).encode()
    assert _error(_post_raw(anonymous, f"{API}/battles", body), 400)["fields"].keys() == {"prompt"}


def test_a_one_megabyte_prompt_is_refused_naming_the_prompt_and_its_limit(contenders, anonymous, unchanged):
    error = _error(anonymous.post(f"{API}/battles", {"prompt": "word " * 200_000, "k": 2}, format="json"), 400)
    assert "100000" in " ".join(error["fields"]["prompt"])


def test_a_prompt_at_the_limit_is_accepted(contenders, staff_api):
    slots = [{"contender": "alpha-7b", "response": "a"}, {"contender": "beta-13b", "response": "b"}]
    response = staff_api.post(f"{API}/battles", {"prompt": "x" * 100_000, "slots": slots}, format="json")
    assert response.status_code == 201 and response.json()["prompt"]["text"] == "x" * 100_000


# Malformed JSON.

@pytest.mark.parametrize("body", [
    b"[" * 10_000 + b"]" * 10_000,
    b'{"prompt": ' + b"[" * 10_000 + b"]" * 10_000 + b', "k": 2}',
    b'{"outcome": "a", "aspects": ' + b'{"a": ' * 10_000 + b"1" + b"}" * 10_001,
    b"[" * 300 + b"]" * 300,  # under the recursion limit, over ours
], ids=["array", "in-a-field", "objects", "300-levels"])
def test_deeply_nested_json_is_a_400_not_a_recursion_error(contenders, anonymous, unchanged, body):
    error = _error(_post_raw(anonymous, f"{API}/battles", body), 400)
    assert error["code"] == "parse_error" and "nested" in error["message"]


def test_invalid_utf8_is_a_400_naming_the_encoding(contenders, anonymous, unchanged):
    error = _error(_post_raw(anonymous, f"{API}/battles", b'{"prompt": "caf\xe9 \xff\xfe", "k": 2}'), 400)
    assert error["code"] == "parse_error" and "utf-8" in error["message"].lower()


def test_a_body_that_is_not_json_at_all_is_a_400(contenders, anonymous, unchanged):
    assert _error(_post_raw(anonymous, f"{API}/battles", b"\x00\x01\x02 not json"), 400)["code"] == "parse_error"


def test_a_judge_price_beyond_its_column_is_a_400_not_a_500(staff_api, unchanged):
    # Found by the schema fuzzer: DECIMAL(12, 4) overflowed in Postgres.
    body = {"name": "pricey", "backend": "scripted", "completion_price_per_mtok": 1.0e308}
    assert "completion_price_per_mtok" in _error(staff_api.post(f"{API}/judges", body, format="json"), 400)["fields"]
