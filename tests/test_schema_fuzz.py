"""Schema-driven fuzzing (schemathesis) of every operation in /api/schema/, in-process, seeded and bounded.

The same runner as ``python -m benchmarks.schema_fuzz`` (which sends >= 1,000 requests; figures in
benchmarks/RESULTS.md), with 2 examples per operation, mode (valid / invalid input) and identity
(staff token, anonymous browser with a CSRF token): about 170 requests, well under a minute.
"""
from __future__ import annotations

import pytest

from benchmarks.schema_fuzz import _fixtures, anonymous_identity, fuzz, load_schema, staff_identity


@pytest.fixture
def quiet_request_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR", logger="django.request")  # hundreds of expected 4xx warnings otherwise


def test_generated_requests_get_no_5xx_and_responses_match_the_schema(db, quiet_request_log):
    token_key, path_parameters = _fixtures()
    schema = load_schema()
    report = fuzz(schema, [staff_identity(token_key), anonymous_identity()], max_examples=2, seed=0,
                  path_parameters=path_parameters)
    details = "\n\n".join(report.failures.values())
    assert report.server_errors == 0, details
    assert report.violations == 0, details
    # Every operation was reached, and not only as refusals: the fixtures' ids let detail endpoints answer 200.
    operations = {op.ok().label for op in schema.get_all_operations()}
    assert set(report.by_operation) == operations
    assert report.by_status[200] >= 10 and report.requests >= 2 * len(operations)


def test_the_schema_documents_errors_in_the_one_error_shape(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"] and error["properties"]["error"]["required"] == ["code", "message"]
    vote = schema["paths"]["/api/v1/battles/{battle_id}/vote"]["post"]["responses"]
    assert {"400", "403", "404", "409", "413", "429"} <= set(vote)
    assert vote["413"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    leaderboard = schema["paths"]["/api/v1/leaderboard"]["get"]["responses"]
    assert {"304", "422"} <= set(leaderboard) and "413" not in leaderboard  # a read takes no body
    assert set(leaderboard["200"]["content"]) == {"application/json", "text/csv"}
