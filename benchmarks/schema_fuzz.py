"""Schema-driven fuzzing of the REST API: schemathesis generates requests from ``/api/schema/``.

    DATABASE_URL=postgres://... REDIS_URL=redis://... python -m benchmarks.schema_fuzz \
        [--max-examples 6] [--seed 0] [--modes positive,negative] [--show 20]

Every operation of the schema is exercised in-process through the WSGI application (no server, no
network), as two identities: a staff user (``Authorization: Token ...``) and an anonymous browser
visitor (a CSRF cookie and the matching ``X-CSRFToken`` header, so that its writes get past CSRF and
reach validation). Requests are generated in both of schemathesis's modes: positive (bodies and
parameters that fit the schema) and negative (ones that do not: wrong types, missing fields, ...).
Each response is checked for: no 5xx, a status code the schema documents, a documented content type,
and a body that matches the documented schema. Printed as JSON: requests, 5xx, schema violations (by
check), status-code histogram, and the first distinct failures with a curl line to reproduce them.

The benchmark runs against a fresh test database that Django creates beside ``DATABASE_URL``'s
(``test_<name>_schema_fuzz``) and drops afterwards: it never writes to the real one. The suite's
``tests/test_schema_fuzz.py`` runs the same :func:`fuzz` with a small ``max_examples``.

Generation is seeded (``hypothesis.seed``), so a run with the same seed and code sends the same requests.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

# A 32-character CSRF secret (Django accepts the unmasked secret in the header): fixed, so runs repeat.
CSRF_TOKEN = "schemafuzzcsrfsecret000000000000"


@dataclass(frozen=True)
class Identity:
    """Who sends the generated requests: extra headers and cookies on every one."""

    name: str
    headers: dict[str, str]
    cookies: dict[str, str] = field(default_factory=dict)


@dataclass
class FuzzReport:
    requests: int = 0
    server_errors: int = 0
    violations: int = 0  # responses that failed at least one schema check (other than 5xx)
    by_status: Counter[int] = field(default_factory=Counter)
    by_check: Counter[str] = field(default_factory=Counter)
    by_operation: Counter[str] = field(default_factory=Counter)  # requests per operation
    failures: dict[str, str] = field(default_factory=dict)  # one message per (operation, check, status)
    no_cases: set[str] = field(default_factory=set)  # operation and mode with nothing to generate

    def as_dict(self, *, show: int = 20) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "server_errors": self.server_errors,
            "schema_violations": self.violations,
            "violations_by_check": dict(self.by_check),
            "status_codes": {str(k): v for k, v in sorted(self.by_status.items())},
            "operations": len(self.by_operation),
            "min_requests_per_operation": min(self.by_operation.values(), default=0),
            "no_cases": sorted(self.no_cases),
            "distinct_failures": len(self.failures),
            "failures": list(self.failures.values())[:show],
        }


def anonymous_identity() -> Identity:
    return Identity("anonymous", headers={"X-CSRFToken": CSRF_TOKEN}, cookies={"csrftoken": CSRF_TOKEN})


def staff_identity(token_key: str) -> Identity:
    return Identity("staff", headers={"Authorization": f"Token {token_key}"})


@contextlib.contextmanager
def in_process_requests() -> Iterator[None]:
    """Keep the database connection open across in-process requests, as Django's test client does.

    A real request ends by closing a connection that is not in autocommit mode; inside a test's
    transaction that would close the test's own connection and lose its data.
    """
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def load_schema():  # type: ignore[no-untyped-def]  # -> schemathesis.BaseSchema
    """The schema as the running application serves it, bound to the in-process WSGI application."""
    import schemathesis
    from django.core.handlers.wsgi import WSGIHandler

    # The handler itself, not get_wsgi_application(): that runs django.setup() again, which resets logging.
    with in_process_requests():
        return schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler(), headers={"Accept": "application/json"})


def _checks() -> list[Any]:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def fuzz(schema: Any, identities: Sequence[Identity], *, max_examples: int, seed: int = 0,
         modes: Sequence[str] = ("positive", "negative"), path_parameters: dict[str, dict[str, Any]] | None = None,
         ) -> FuzzReport:
    """Send up to ``max_examples`` generated requests per (operation, mode, identity); record what came back.

    ``path_parameters`` maps an operation label (``"GET /api/v1/battles/{battle_id}"``) to path values of
    objects that exist, so that detail endpoints are also reached past their 404; every other
    request of that operation uses generated values.
    Failures are recorded rather than raised, so that one bad operation does not hide the others and
    Hypothesis does not spend the budget shrinking.
    """
    import hypothesis
    from hypothesis import HealthCheck, Phase
    from schemathesis import GenerationMode

    checks = _checks()
    report = FuzzReport()
    operations = [result.ok() for result in schema.get_all_operations()]
    with in_process_requests():
        for operation in operations:
            for mode in modes:
                for identity in identities:
                    strategies = [operation.as_strategy(generation_mode=GenerationMode(mode))]
                    if path_parameters and operation.label in path_parameters and mode == "positive":
                        strategies.append(operation.as_strategy(generation_mode=GenerationMode(mode),
                                                                path_parameters=path_parameters[operation.label]))
                    strategy = hypothesis.strategies.one_of(strategies)

                    test = hypothesis.settings(
                        max_examples=max_examples, database=None, deadline=None, derandomize=False,
                        phases=[Phase.explicit, Phase.generate],  # no shrinking: failures are recorded, not raised
                        suppress_health_check=list(HealthCheck),
                    )(hypothesis.given(strategy)(_sender(report, checks, identity, mode)))
                    try:
                        hypothesis.seed(seed)(test)()
                    except hypothesis.errors.Unsatisfiable:
                        # Nothing to get wrong: an operation without parameters or body has no negative cases.
                        report.no_cases.add(f"{operation.label} ({mode})")
    return report


def _sender(report: FuzzReport, checks: list[Any], identity: Identity, mode: str) -> Any:
    """The body of one Hypothesis test: send a generated case as ``identity``, check and record the response."""
    from schemathesis.core.failures import FailureGroup

    def send(case: Any) -> None:
        response = case.call(headers=identity.headers, cookies=identity.cookies)
        report.requests += 1
        report.by_status[response.status_code] += 1
        report.by_operation[case.operation.label] += 1
        if response.status_code >= 500:
            report.server_errors += 1
        try:
            case.validate_response(response, checks=checks, headers=identity.headers)
        except FailureGroup as group:
            failed = {type(f).__name__ for f in group.exceptions}
            if response.status_code < 500:
                report.violations += 1
            for name in failed:
                report.by_check[name] += 1
            key = f"{case.operation.label} {response.status_code} {sorted(failed)}"
            report.failures.setdefault(key, f"[{identity.name}/{mode}] {group}"[:3000])

    return send


def _fixtures() -> tuple[str, dict[str, dict[str, Any]]]:
    """A staff user with a token, and one object of each kind: the ids to aim detail endpoints at.

    Three voted battles (so that leaderboards, datasets and judge runs have votes to work on), one open
    battle, a judge, a queued judge run, a dataset and a queued training job.
    """
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from arena.models import Contender, VoteKind
    from arena.services import SlotInput, battle_create, vote_record, voter_get_or_create
    from arena.verdicts import VoteChoice
    from judges.services import judge_create, judge_run_create, run_filters_from
    from trainer.models import TrainingJob
    from trainer.services import dataset_build

    user = get_user_model().objects.create_user("fuzz-staff", password=None, is_staff=True)
    token = Token.objects.create(user=user)
    names = [Contender.objects.create(name=f"fuzz-model-{i}", organization="Fuzz", license="mit",
                                      family=f"fuzz{i}").name for i in range(3)]
    voter = voter_get_or_create(key=f"user:{user.pk}", user=user)

    def battle(prompt: str, pair: list[str]):  # type: ignore[no-untyped-def]
        return battle_create(voter=voter, prompt_text=prompt, category="fuzz", language="en",
                             slots=[SlotInput(contender=c, response=f"answer {i}", token_count=2, latency_ms=10)
                                    for i, c in enumerate(pair)])

    for i, pair in enumerate([names[:2], names[1:], [names[2], names[0]]]):  # a cycle: the fit converges
        voted = battle(f"Voted prompt {i}", pair)
        vote_record(battle_id=voted.id, voter=voter, choice=VoteChoice(VoteKind.PAIRWISE, outcome="a"),
                    idempotency_key=f"fuzz-{i}")
    open_battle = battle("Open prompt", names[:2])
    judge = judge_create(name="fuzz-judge", backend="scripted")
    run = judge_run_create(judge=judge, filters=run_filters_from({}))
    dataset = dataset_build(name="fuzz-dataset")
    # Straight into the table: job_create checks that the base model exists, and no model is needed to read it.
    job = TrainingJob.objects.create(dataset=dataset, config={"base_model": "fuzz-model", "loss": "dpo"})
    ids: dict[str, dict[str, Any]] = {}
    for label, values in [
        ("GET /api/v1/battles/{battle_id}", {"battle_id": str(open_battle.id)}),
        ("POST /api/v1/battles/{battle_id}/vote", {"battle_id": str(open_battle.id)}),
        ("POST /api/v1/battles/{battle_id}/turns", {"battle_id": str(open_battle.id)}),
        ("GET /api/v1/judges/runs/{run_id}", {"run_id": run.pk}),
        ("POST /api/v1/judges/runs/{run_id}/cancel", {"run_id": run.pk}),
        ("GET /api/v1/datasets/{dataset_id}", {"dataset_id": dataset.pk}),
        ("GET /api/v1/datasets/{dataset_id}/records", {"dataset_id": dataset.pk}),
        ("GET /api/v1/training/jobs/{job_id}", {"job_id": job.pk}),
        ("POST /api/v1/training/jobs/{job_id}/cancel", {"job_id": job.pk}),
        ("POST /api/v1/training/jobs/{job_id}/retry", {"job_id": job.pk}),
        ("POST /api/v1/training/jobs/{job_id}/enter", {"job_id": job.pk}),
    ]:
        ids[label] = values
    return token.key, ids


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=6,
                        help="generated requests per operation, mode and identity (default 6)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", default="positive,negative")
    parser.add_argument("--show", type=int, default=20, help="distinct failures to print")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECRET_KEY", "schema-fuzz-only")
    os.environ.setdefault("ALLOWED_HOSTS", "localhost,testserver")
    os.environ.setdefault("SECURE_COOKIES", "0")  # plain HTTP in-process: no redirect to HTTPS
    # Visitors' rate limits would answer 429 after a few requests and hide everything behind them.
    for name in ("ARENA_BATTLE_RATE_LIMIT", "ARENA_BATTLE_IP_RATE_LIMIT", "ARENA_VOTE_RATE_LIMIT",
                 "ARENA_VOTE_IP_RATE_LIMIT", "LEADERBOARD_RATE_LIMIT"):
        os.environ.setdefault(name, "1000000/minute")
    import django

    django.setup()
    # Every 4xx would log a warning line; 5xx (logged as errors) still show.
    logging.getLogger("django.request").setLevel(logging.ERROR)
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    old_name = connection.settings_dict["NAME"]
    # A test database of its own, so that a test run on the same server at the same time is not clobbered.
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"test_{old_name}_schema_fuzz"
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        token_key, path_parameters = _fixtures()
        schema = load_schema()
        started = time.perf_counter()
        report = fuzz(schema, [staff_identity(token_key), anonymous_identity()], max_examples=args.max_examples,
                      seed=args.seed, modes=args.modes.split(","), path_parameters=path_parameters)
        elapsed = time.perf_counter() - started
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    out = {"max_examples": args.max_examples, "seed": args.seed, "seconds": round(elapsed, 1),
           **report.as_dict(show=args.show)}
    json.dump(out, sys.stdout, indent=2)
    print()
    return 1 if report.server_errors or report.violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
