from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.test import APIClient

from arena.models import Battle, Contender
from arena.services import SlotInput, battle_create, voter_get_or_create

pytest_plugins = ["tests.support.fixtures"]

# The real GenAI-Arena file (a copy of shared/data's, shipped with the demo).
REAL_FILE = os.path.join(os.path.dirname(__file__), "..", "arena", "demo", "genai_arena_clean_battle_20240220.json")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    on_postgres = connection.vendor == "postgresql"
    if os.environ.get("REQUIRE_POSTGRES") and not on_postgres:
        raise pytest.UsageError("REQUIRE_POSTGRES is set but DATABASE_URL does not point at Postgres")
    if on_postgres:
        return
    skip = pytest.mark.skip(reason="needs Postgres: set DATABASE_URL=postgres://... to run it")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> str:
    vendor = connection.vendor
    note = "" if vendor == "postgresql" else " (Postgres-only tests are skipped; set DATABASE_URL to run them)"
    return f"database: {vendor}{note}"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    # Test users need passwords, not slow key stretching: PBKDF2 costs ~0.2 s per user on these machines.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def contenders(db) -> list[Contender]:
    specs = [("alpha-7b", "Alpha Labs", "apache-2.0"), ("beta-13b", "Beta Inc", "mit"),
             ("gamma-70b", "Gamma AI", "llama"), ("delta-1b", "Delta Org", "cc-by"),
             ("epsilon-3b", "Epsilon", "apache-2.0"), ("zeta-8b", "Zeta Corp", "proprietary")]
    return [Contender.objects.create(name=n, organization=o, license=lic, family=n.split("-")[0])
            for n, o, lic in specs]


def _user_client(username: str, *, staff: bool = False) -> APIClient:
    user = get_user_model().objects.create_user(username=username, password="pw-" + username, is_staff=staff)
    client = APIClient()
    client.force_login(user)  # a session, as a browser has: API views and pages both see the user
    client.user = user  # type: ignore[attr-defined]
    return client


@pytest.fixture
def staff_api(db) -> APIClient:
    return _user_client("staff", staff=True)


@pytest.fixture
def voter_api(db) -> APIClient:
    return _user_client("voter")


@pytest.fixture
def other_api(db) -> APIClient:
    return _user_client("other")


@pytest.fixture
def make_battle(contenders) -> Callable[..., Battle]:
    """A battle served to the given client's user, showing the first k contenders."""

    def make(client: APIClient, k: int = 2, *, prompt: str = "Write a haiku about rain.") -> Battle:
        voter = voter_get_or_create(key=f"user:{client.user.pk}", user=client.user)
        # Response texts name no model: the anonymity tests look for names in everything sent.
        slots = [SlotInput(contender=c.name, response=f"Answer text number {i}.", token_count=4, latency_ms=120 + i)
                 for i, c in enumerate(contenders[:k])]
        return battle_create(voter=voter, slots=slots, prompt_text=prompt, category="poetry", language="en")

    return make
