"""Shared by the leaderboard tests: the real GenAI-Arena votes in the database, the CLI on the same file."""
from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.conftest import REAL_FILE

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def real_votes() -> None:
    call_command("import_battles", REAL_FILE, stdout=StringIO())


def cli_rows(*args: str) -> list[dict]:
    result = subprocess.run([sys.executable, "-m", "leaderboard.ratings", REAL_FILE, *args], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def vote_many(voter_api, make_battle, verdicts: list[dict], prompt: str = "Write a haiku about rain.") -> None:
    for body in verdicts:
        battle = make_battle(voter_api, k=2, prompt=prompt)
        assert voter_api.post(f"/api/v1/battles/{battle.id}/vote", body, format="json").status_code == 201
