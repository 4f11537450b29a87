"""Who may use each route: a table of every URL the project serves, and tests that hold each route to it.

``ROUTES`` gives, for every route the URL resolver knows (walked through every include, the admin site's
included), who may use each method. ``test_the_table_covers_every_route`` fails, naming the route, when a
route is added without an entry or an entry outlives its route: a new endpoint cannot go unclassified.
The admin site's per-model routes are derived from ``admin.site`` (``admin_model_routes``), so that
registering a model needs no entry here, and each of them is still tried by the admin tests below.

Kinds of access:

- ``PUBLIC``: anyone reads. A leaderboard read may start a fit: the page and the API share one per-client
  limit (``test_the_leaderboard_page_is_limited_like_the_api``).
- ``PUBLIC_WRITE``: anyone, by design: a visitor opens battles without an account. Protected by CSRF for
  cookie voters (``arena.auth.VoterCookieAuthentication`` on the API, Django's middleware on the form),
  rate limits per voter and per address, the optional CAPTCHA; giving the answers (``slots``) is staff only.
- ``OWN_BATTLE``: only the voter the battle was served to, through ``arena.selectors.battle_access``
  (anyone else, or nobody, gets the same 404 ``battle_not_found``); its writes (vote, new turn) are public
  writes in every other respect (CSRF, rate limits).
- ``STAFF``: the API answers an anonymous client 401 ``not_authenticated`` (``WWW-Authenticate: Token``) and
  a signed-in user who is not staff 403 ``permission_denied`` (``IsAdminUser``); pages redirect both to the
  admin login (``staff_member_required``).
- ``ADMIN``: ``admin.site.admin_view``: anyone who is not staff is sent to the admin login.
- ``LOGIN``: the admin login form, which lets staff accounts only in.

There are no worker-token endpoints: training and judge workers reach the database directly.

Tested elsewhere and relied on here rather than repeated:

- tests/arena/test_access_gate.py: ``battle_access`` on every battle route for a stranger and another
  voter, in every state (``test_every_battle_route_is_in_the_gate_tests`` checks that its lists keep
  covering every ``OWN_BATTLE`` route of the table).
- tests/arena/test_abuse.py: rate limits (429 + Retry-After), the CAPTCHA hook, token clients without CSRF.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from arena.models import Contender, VoteKind
from arena.services import SlotInput, battle_create, vote_record, voter_get_or_create
from arena.verdicts import VoteChoice
from judges.services import judge_create, judge_run_create, run_filters_from
from tests.support.arena_data import pool_contenders
from trainer.models import JobStatus, TrainingJob
from trainer.services import dataset_build

pytestmark = pytest.mark.django_db


class Access(StrEnum):
    PUBLIC = "public read"
    PUBLIC_WRITE = "public write"
    OWN_BATTLE = "the battle's own voter"
    STAFF = "staff only"
    ADMIN = "admin site"
    LOGIN = "admin login form"


WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Endpoint:
    """One method of one route. For staff endpoints, the request a staff member would make and what it shows.

    ``objects`` maps a path argument to the ``world`` object that fills it (default: the argument's name);
    ``body`` builds the request body from the world; ``shows`` is text the staff's response must contain.
    """

    access: Access
    objects: dict[str, str] = field(default_factory=dict)
    body: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    staff_status: int = 200
    shows: Callable[[dict[str, Any]], str] | None = None


E = Endpoint
A = Access

# Every route but the admin site's per-model ones: route pattern -> method -> endpoint.
ROUTES: dict[str, dict[str, Endpoint]] = {
    # arena: the voting site
    "": {"GET": E(A.PUBLIC)},
    "about": {"GET": E(A.PUBLIC)},
    "privacy": {"GET": E(A.PUBLIC)},
    "battles/new": {"POST": E(A.PUBLIC_WRITE)},
    "battles/<uuid:battle_id>": {"GET": E(A.OWN_BATTLE)},
    "api/v1/contenders": {"GET": E(A.PUBLIC)},
    "api/v1/battles": {"POST": E(A.PUBLIC_WRITE)},
    "api/v1/battles/<uuid:battle_id>": {"GET": E(A.OWN_BATTLE)},
    "api/v1/battles/<uuid:battle_id>/vote": {"POST": E(A.OWN_BATTLE)},
    "api/v1/battles/<uuid:battle_id>/turns": {"POST": E(A.OWN_BATTLE)},
    "api/v1/battles/<uuid:battle_id>/stream": {"GET": E(A.OWN_BATTLE)},
    "api/schema/": {"GET": E(A.PUBLIC)},
    "api/docs/": {"GET": E(A.PUBLIC)},
    # leaderboard
    "leaderboard": {"GET": E(A.PUBLIC)},
    "api/v1/leaderboard": {"GET": E(A.PUBLIC)},
    "api/v1/leaderboard/matrix": {"GET": E(A.PUBLIC)},
    # judges: judges and audits are public reads; creating judges and runs is for staff
    "judges": {"GET": E(A.PUBLIC)},
    "judges/<str:name>": {"GET": E(A.PUBLIC)},
    "judges/audits/<int:audit_id>": {"GET": E(A.PUBLIC)},
    "api/v1/judges": {
        "GET": E(A.PUBLIC),
        "POST": E(A.STAFF, body=lambda w: {"name": "judge-by-staff", "backend": "scripted", "config": {}},
                  staff_status=201, shows=lambda w: "judge-by-staff"),
    },
    "api/v1/judges/audits/<int:audit_id>": {"GET": E(A.PUBLIC)},
    "api/v1/judges/runs": {
        "POST": E(A.STAFF, body=lambda w: {"judge": w["judge"]}, staff_status=202, shows=lambda w: '"queued"'),
    },
    "api/v1/judges/runs/<int:run_id>": {"GET": E(A.STAFF, shows=lambda w: w["judge"])},
    "api/v1/judges/runs/<int:run_id>/cancel": {"POST": E(A.STAFF, shows=lambda w: '"cancelled"')},
    # trainer: everything is for staff
    "api/v1/datasets": {
        "GET": E(A.STAFF, shows=lambda w: w["dataset"]),
        "POST": E(A.STAFF, body=lambda w: {"name": "dataset-by-staff"}, staff_status=201,
                  shows=lambda w: "dataset-by-staff"),
    },
    "api/v1/datasets/<int:dataset_id>": {"GET": E(A.STAFF, shows=lambda w: w["dataset"])},
    "api/v1/datasets/<int:dataset_id>/records": {"GET": E(A.STAFF, shows=lambda w: w["answer"])},
    "api/v1/training/jobs": {
        "GET": E(A.STAFF, shows=lambda w: f'"id":{w["job_id"]}'),
        "POST": E(A.STAFF, staff_status=201, shows=lambda w: '"queued"',
                  body=lambda w: {"dataset": w["dataset_id"], "config": {"base_model": w["model_dir"], "loss": "dpo"}}),
    },
    "api/v1/training/jobs/<int:job_id>": {"GET": E(A.STAFF, shows=lambda w: f'"id":{w["job_id"]}')},
    "api/v1/training/jobs/<int:job_id>/cancel": {"POST": E(A.STAFF, shows=lambda w: '"cancelled"')},
    "api/v1/training/jobs/<int:job_id>/retry": {
        "POST": E(A.STAFF, objects={"job_id": "failed_job_id"}, shows=lambda w: '"queued"'),
    },
    "api/v1/training/jobs/<int:job_id>/enter": {
        "POST": E(A.STAFF, objects={"job_id": "succeeded_job_id"}, body=lambda w: {"name": "entered-by-staff"},
                  staff_status=201, shows=lambda w: "entered-by-staff"),
    },
    "training/jobs": {"GET": E(A.STAFF, shows=lambda w: "<h1>Training jobs</h1>")},
    "training/jobs/<int:job_id>": {"GET": E(A.STAFF, shows=lambda w: f"<h1>Training job {w['job_id']}: queued</h1>")},
    # the admin site, but for the routes of each registered model (admin_model_routes)
    "admin/": {"GET": E(A.ADMIN)},
    "admin/login/": {"GET": E(A.LOGIN), "POST": E(A.LOGIN)},
    "admin/logout/": {"POST": E(A.ADMIN)},
    "admin/password_change/": {"GET": E(A.ADMIN), "POST": E(A.ADMIN)},
    "admin/password_change/done/": {"GET": E(A.ADMIN)},
    "admin/autocomplete/": {"GET": E(A.ADMIN)},
    "admin/jsi18n/": {"GET": E(A.ADMIN)},
    "admin/r/<path:content_type_id>/<path:object_id>/": {"GET": E(A.ADMIN)},
    "admin/auth/user/<id>/password/": {"GET": E(A.ADMIN), "POST": E(A.ADMIN)},
    "admin/(?P<url>.*)$": {"GET": E(A.ADMIN)},
    "admin/^(?P<app_label>{apps})/$": {"GET": E(A.ADMIN)},
}

ADMIN_MODEL_SUFFIXES = ("", "add/", "<path:object_id>/history/", "<path:object_id>/delete/",
                        "<path:object_id>/change/", "<path:object_id>/")


def resolved_routes() -> dict[str, URLPattern]:
    """Every route the project serves, as its full pattern text, walking every nested resolver."""
    found: dict[str, URLPattern] = {}

    def walk(resolver: URLResolver, prefix: str) -> None:
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                walk(entry, prefix + str(entry.pattern))
            else:
                found[prefix + str(entry.pattern)] = entry

    walk(get_resolver(), "")
    return found


def admin_model_routes() -> set[str]:
    """The routes ``admin.site`` makes for each registered model: list, add, history, delete, change."""
    return {f"admin/{model._meta.app_label}/{model._meta.model_name}/{suffix}"
            for model in admin.site._registry for suffix in ADMIN_MODEL_SUFFIXES}


def table_key(route: str) -> str:
    # The app index's pattern lists the apps that have registered models: an app is not a route of its own.
    return re.sub(r"\(\?P<app_label>[^)]*\)", "(?P<app_label>{apps})", route)


ROUTE_PATTERNS = resolved_routes()
ADMIN_ROUTES = sorted(r for r in ROUTE_PATTERNS if r.startswith("admin/") and r != "admin/login/")
ENDPOINTS = [(route, method, endpoint) for route, methods in ROUTES.items() for method, endpoint in methods.items()]
STAFF_ENDPOINTS = [e for e in ENDPOINTS if e[2].access == Access.STAFF]
PUBLIC_WRITES = [(route, method) for route, method, endpoint in ENDPOINTS
                 if method in WRITE_METHODS and endpoint.access in (Access.PUBLIC_WRITE, Access.OWN_BATTLE)]


def endpoint_id(entry: tuple[str, str, Endpoint]) -> str:
    return f"{entry[1]} /{entry[0]}"


# --- the world the requests act on ------------------------------------------------------------------------


JUDGE = "scripted-audit-judge"
ANSWER = "A careful answer about the tides."


@pytest.fixture
def world(tmp_path: Path, voter_api: APIClient) -> dict[str, Any]:
    """One of everything a route can name: a battle of ``voter_api``'s, voted battles, a judge and a queued
    run, a dataset, and training jobs queued, failed and succeeded (the last with a model directory)."""
    first, second = (Contender.objects.create(name=n, family=n) for n in ("tide-7b", "moon-13b"))
    for i in range(2):
        voter = voter_get_or_create(key=f"access-voter-{i}")
        battle = battle_create(voter=voter, prompt_text=f"Why are there tides? ({i})", category="science",
                               language="en", slots=[SlotInput(contender=first.name, response=ANSWER),
                                                     SlotInput(contender=second.name, response="Because.")])
        vote_record(battle_id=battle.id, voter=voter, choice=VoteChoice(VoteKind.PAIRWISE, outcome="a"),
                    idempotency_key=f"access-{battle.id}")
    own = battle_create(voter=voter_get_or_create(key=f"user:{voter_api.user.pk}", user=voter_api.user),
                        prompt_text="Which is warmer?", slots=[SlotInput(contender=first.name, response="This."),
                                                               SlotInput(contender=second.name, response="That.")])
    judge = judge_create(name=JUDGE, backend="scripted", seed=0)
    run = judge_run_create(judge=judge, filters=run_filters_from({}))
    dataset = dataset_build(name="tides-dataset", filters={})
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    config = {"base_model": str(model_dir)}
    jobs = {status: TrainingJob.objects.create(dataset=dataset, config=config, status=status,
                                               finished=None if status == JobStatus.QUEUED else timezone.now(),
                                               manifest={"contender": {"path": str(model_dir)}})
            for status in (JobStatus.QUEUED, JobStatus.FAILED, JobStatus.SUCCEEDED)}
    return {"battle_id": own.id, "judge": judge.name, "name": judge.name, "run_id": run.pk, "audit_id": 1,
            "dataset": dataset.name, "dataset_id": dataset.pk, "answer": ANSWER, "model_dir": str(model_dir),
            "job_id": jobs[JobStatus.QUEUED].pk, "failed_job_id": jobs[JobStatus.FAILED].pk,
            "succeeded_job_id": jobs[JobStatus.SUCCEEDED].pk}


def path_for(route: str, world: dict[str, Any], endpoint: Endpoint | None = None) -> str:
    """The route with its arguments filled from ``world``."""
    objects = endpoint.objects if endpoint is not None else {}
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(world[objects.get(m[1], m[1])]), route)


# A leaderboard read fits the configuration it asks for when no snapshot has it yet, and keeps the snapshot:
# a cache that any read fills, whatever its method (the page's view answers every method alike).
SNAPSHOT_CACHE = ("leaderboard.Snapshot", "leaderboard.SnapshotRow")
SNAPSHOT_CACHE_ROUTES = {"leaderboard", "api/v1/leaderboard", "api/v1/leaderboard/matrix"}


def db_state(*, ignore: tuple[str, ...] = ()) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every model (sessions aside: a login writes one), to compare before and after a request."""
    return {model._meta.label: list(model.objects.order_by("pk").values_list())
            for model in apps.get_models() if model is not Session and model._meta.label not in ignore}


def send(client: Client, method: str, path: str, body: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
    if method == "GET":
        return client.get(path)
    if isinstance(client, APIClient):
        return getattr(client, method.lower())(path, body, format="json")
    return getattr(client, method.lower())(path, body or {})


@pytest.fixture
def clients(voter_api: APIClient) -> dict[str, APIClient]:
    """Everyone who is not staff: nobody, a signed-in user (session), and a user with an API token."""
    token_user = get_user_model().objects.create_user(username="scripted-user", password="pw-scripted")
    token_client = APIClient()
    token_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=token_user).key}")
    return {"anonymous": APIClient(), "user": voter_api, "token user": token_client}


NOT_STAFF = ["anonymous", "user", "token user"]


# --- the table is complete --------------------------------------------------------------------------------


def test_the_table_covers_every_route():
    served = {table_key(route) for route in ROUTE_PATTERNS}
    classified = set(ROUTES) | admin_model_routes()
    unclassified, stale = sorted(served - classified), sorted(classified - served)
    assert not unclassified, f"routes with no access rule in ROUTES (tests/test_access_rules.py): {unclassified}"
    assert not stale, f"ROUTES names routes that no longer exist: {stale}"


def test_the_table_declares_every_method_an_api_view_implements():
    # A handler added to an API view (a `delete`, say) must be classified like a new route.
    for route, pattern in ROUTE_PATTERNS.items():
        view_class = getattr(pattern.callback, "view_class", None)
        if route.startswith("admin/") or view_class is None:
            continue
        implemented = {m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)}
        assert implemented == set(ROUTES[route]), f"/{route}: the view implements {sorted(implemented)}"


def test_public_routes_only_read():
    writes = [(route, method) for route, method, endpoint in ENDPOINTS
              if endpoint.access == Access.PUBLIC and method != "GET"]
    assert writes == [], "a write must be PUBLIC_WRITE, OWN_BATTLE or STAFF, with its protections tested"


def test_public_reads_ask_for_no_account(world):
    anonymous = APIClient()
    answered = {}
    for route, _, endpoint in ENDPOINTS:
        if endpoint.access == Access.PUBLIC:
            answered[route] = anonymous.get(path_for(route, world)).status_code
    # Neither refused nor sent to a login: 404 for the audits (the world has none), 422 for leaderboards that
    # two votes cannot fit, 200 for the rest.
    refused = {route: status for route, status in answered.items() if status in (301, 302, 401, 403)}
    assert refused == {}
    assert answered["judges/<str:name>"] == answered["api/v1/judges"] == answered[""] == 200


def test_every_battle_route_is_in_the_gate_tests():
    from tests.arena.test_access_gate import READS, WRITES

    gated = {("GET" if e[0] == "get" else "POST", e[1].replace("{id}", "<uuid:battle_id>").lstrip("/"))
             for e in READS + WRITES}
    ours = {(method, route) for route, method, endpoint in ENDPOINTS if endpoint.access == Access.OWN_BATTLE}
    assert ours - gated == set(), f"battle routes the gate tests do not try: {sorted(ours - gated)}"


# --- staff endpoints refuse everyone else, and change nothing --------------------------------------------


@pytest.mark.parametrize("entry", STAFF_ENDPOINTS, ids=endpoint_id)
def test_staff_endpoints_refuse_everyone_else(world, clients, entry):
    route, method, endpoint = entry
    path = path_for(route, world, endpoint)
    before = db_state()
    for who in NOT_STAFF:
        response = send(clients[who], method, path, endpoint.body(world) if endpoint.body else None)
        if not route.startswith("api/"):
            assert (response.status_code, response.get("Location")) == (302, f"/admin/login/?next={path}"), who
        elif who == "anonymous":
            assert response.status_code == 401
            assert response["WWW-Authenticate"] == "Token"
            assert response.json() == {"error": {"code": "not_authenticated",
                                                 "message": "Authentication credentials were not provided."}}
        else:
            assert response.status_code == 403, who
            assert response.json() == {"error": {"code": "permission_denied",
                                                 "message": "You do not have permission to perform this action."}}
        assert db_state() == before, who


@pytest.mark.parametrize("entry", STAFF_ENDPOINTS, ids=endpoint_id)
def test_staff_endpoints_serve_staff(world, staff_api, entry):
    # The control for the test above: the very request it refuses does its work for staff.
    route, method, endpoint = entry
    before = db_state()
    body = endpoint.body(world) if endpoint.body else None
    response = send(staff_api, method, path_for(route, world, endpoint), body)
    assert response.status_code == endpoint.staff_status, response.content[:500]
    assert endpoint.shows is not None and endpoint.shows(world) in response.content.decode()
    assert (db_state() != before) == (method in WRITE_METHODS)


def test_only_staff_may_open_a_battle_with_given_answers(world, clients, staff_api):
    # Opening battles is a public write; giving the answers is not (weaker twin: test_battle_api.py).
    body = {"prompt": "Given answers", "slots": [{"contender": "tide-7b", "response": "One."},
                                                 {"contender": "moon-13b", "response": "Two."}]}
    before = db_state()
    for who in NOT_STAFF:
        response = clients[who].post("/api/v1/battles", body, format="json")
        assert response.status_code == 403, who
        assert response.json()["error"] == {"code": "forbidden",
                                            "message": "only staff may open a battle with given responses",
                                            "fields": {"slots": ["only staff may open a battle with given responses"]}}
        assert db_state() == before, who
    assert staff_api.post("/api/v1/battles", body, format="json").status_code == 201


# --- public writes: CSRF for cookie voters ----------------------------------------------------------------


@pytest.fixture
def pool(db) -> list[Contender]:
    """Two pool contenders with prepared answers: a visitor can open battles without any live model."""
    return pool_contenders(1)


PUBLIC_WRITE_BODIES = {"battles/new": {"k": "2", "action": "sample"}, "api/v1/battles": {"k": 2},
                       "api/v1/battles/<uuid:battle_id>/vote": {"outcome": "a"},
                       "api/v1/battles/<uuid:battle_id>/turns": {"prompt": "And then?"}}


@pytest.mark.parametrize(("route", "method"), PUBLIC_WRITES, ids=lambda v: v)
def test_public_writes_from_a_cookie_voter_need_the_csrf_token(pool, route, method):
    # A cross-site page can make a visitor's browser send the voter cookie, never the CSRF token.
    browser = APIClient(enforce_csrf_checks=True)
    token = browser.get("/").cookies["csrftoken"].value
    opened = browser.post("/api/v1/battles", {"k": 2}, format="json", HTTP_X_CSRFTOKEN=token)
    assert opened.status_code == 201
    path = path_for(route, {"battle_id": opened.json()["id"]})
    body = PUBLIC_WRITE_BODIES[route]
    before = db_state()
    refused = (browser.post(path, body, format="json") if route.startswith("api/")
               else browser.post(path, body, format="multipart"))
    assert refused.status_code == 403
    if route.startswith("api/"):
        assert refused.json()["error"]["code"] == "permission_denied"
        assert refused.json()["error"]["message"].startswith("CSRF failed:")
    else:
        assert "CSRF verification failed" in refused.content.decode()
    assert db_state() == before
    with_token = (browser.post(path, body, format="json", HTTP_X_CSRFTOKEN=token) if route.startswith("api/")
                  else browser.post(path, {**body, "csrfmiddlewaretoken": token}, format="multipart"))
    assert with_token.status_code != 403, with_token.content[:300]


# --- methods a route does not declare change nothing ------------------------------------------------------


UNDECLARED = {route: [method for method in ("GET", *WRITE_METHODS) if method not in methods]
              for route, methods in ROUTES.items() if not route.startswith("admin/")}


# Under /api/ but not DRF views of ours: Django's require_GET and drf-spectacular's views answer 405 in
# their own format (an empty HTML body; an OpenAPI document type), not the API's JSON error shape.
FOREIGN_405 = {"api/v1/battles/<uuid:battle_id>/stream", "api/schema/", "api/docs/"}


@pytest.mark.parametrize("route", sorted(UNDECLARED))
def test_methods_a_route_does_not_declare_change_nothing(world, clients, route):
    # Pages of plain Django views answer any method as they answer GET (Django's CSRF middleware refuses a
    # cross-site POST before them); API views refuse it. Either way nothing is written.
    path = path_for(route, world)
    ignore = SNAPSHOT_CACHE if route in SNAPSHOT_CACHE_ROUTES else ()
    before = db_state(ignore=ignore)
    for who in ("anonymous", "user"):
        for method in UNDECLARED[route]:
            response = send(clients[who], method, path, {"name": "sneaky", "outcome": "a", "prompt": "x"})
            if route in FOREIGN_405:
                assert response.status_code == 405, (who, method)
            elif route.startswith("api/"):
                assert response.status_code in (401, 403, 405), (who, method, response.status_code)
                assert response.json()["error"]["code"] in ("method_not_allowed", "not_authenticated",
                                                            "permission_denied"), (who, method)
    assert db_state(ignore=ignore) == before


# --- the admin site ---------------------------------------------------------------------------------------


def admin_path(route: str) -> str:
    route = re.sub(r"\^\(\?P<app_label>[^)]*\)/\$$", "arena/", route)
    route = route.replace("(?P<url>.*)$", "no-such-page/")
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", "1", route)


@pytest.mark.parametrize("route", ADMIN_ROUTES)
def test_the_admin_sends_everyone_but_staff_to_its_login(clients, route):
    path = admin_path(route)
    # Logging out is the one admin request a visitor who is not signed in may make: it goes to the index.
    target = "/admin/" if route == "admin/logout/" else f"/admin/login/?next={path}"
    before = db_state()
    for who in ("anonymous", "user"):  # the admin knows no API tokens: a token client is anonymous there
        for method in ("GET", "POST"):
            response = send(clients[who], method, path, {"name": "sneaky", "is_superuser": "on"})
            assert (response.status_code, response.get("Location")) == (302, target), (who, method)
    assert db_state() == before


def test_the_admin_login_form_lets_no_one_but_staff_in(voter_api):
    browser = Client()
    response = browser.post("/admin/login/?next=/admin/", {"username": "voter", "password": "pw-voter"})
    assert response.status_code == 200
    assert "Please enter the correct username and password for a staff account" in response.content.decode()
    assert browser.get("/admin/")["Location"] == "/admin/login/?next=/admin/"


def test_the_admin_lets_staff_in(staff_api):
    browser = Client()
    assert browser.post("/admin/login/", {"username": "staff", "password": "pw-staff"}).status_code == 302
    index = browser.get("/admin/")
    assert index.status_code == 200 and "Site administration" in index.content.decode()


@pytest.fixture
def superuser_client(db) -> Client:
    user = get_user_model().objects.create_superuser(username="root", password="pw-root")
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("model", sorted(admin.site._registry, key=lambda m: m._meta.label),
                         ids=lambda m: m._meta.label)
def test_a_superuser_sees_every_admin_list(superuser_client, model):
    response = superuser_client.get(f"/admin/{model._meta.app_label}/{model._meta.model_name}/")
    assert response.status_code == 200
    assert f"Select {model._meta.verbose_name} to" in response.content.decode()



# --- the leaderboard page counts against the leaderboard limit ----------------------------------------------


def test_the_leaderboard_page_is_limited_like_the_api(client, voter_api, make_battle, monkeypatch):
    # A page load may start a fit, as an API request may: both count against the per-client "leaderboard" rate.
    from django.core.cache import cache
    from rest_framework.throttling import ScopedRateThrottle

    from leaderboard.models import Snapshot
    from tests.leaderboard.conftest import vote_many

    vote_many(voter_api, make_battle, [{"outcome": "a"}, {"outcome": "b"}, {"outcome": "tie"}, {"outcome": "a"}])
    cache.clear()
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"leaderboard": "2/minute"})
    assert [client.get("/leaderboard", {"method": "elo", "seed": str(s)}).status_code for s in (1, 2)] == [200, 200]
    fitted = Snapshot.objects.count()
    refused = client.get("/leaderboard", {"method": "elo", "seed": "3"})
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert "Too many leaderboard requests" in refused.content.decode()
    assert Snapshot.objects.count() == fitted  # the refused load fitted nothing
    assert client.get("/api/v1/leaderboard", {"method": "elo", "seed": "1"}).status_code == 429  # one budget
    cache.clear()
