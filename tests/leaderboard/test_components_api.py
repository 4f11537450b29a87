"""Components, provisional rows and unbounded intervals through the snapshot, the API, the CSV and the page."""
from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from leaderboard.config import LeaderboardConfig
from leaderboard.models import SnapshotRow
from leaderboard.services import leaderboard_refit
from tests.conftest import REAL_FILE

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def real_votes() -> None:
    call_command("import_battles", REAL_FILE, stdout=StringIO())


def cli_rows(*args: str) -> dict[str, dict]:
    result = subprocess.run([sys.executable, "-m", "leaderboard.ratings", REAL_FILE, *args], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    return {r["model"]: r for r in json.loads(result.stdout)}


def test_the_snapshot_round_trips_component_through_the_api(client, real_votes):
    body = client.get("/api/v1/leaderboard").json()
    rows = body["rows"]
    expected = cli_rows()
    # The API, the snapshot rows and the core agree row by row on the new fields.
    stored = {r.model: r for r in SnapshotRow.objects.filter(snapshot_id=body["snapshot"]["id"])}
    for row in rows:
        want = expected[row["model"]]
        assert (row["component"], row["rank"], row["rank_ub"]) == (want["component"], want["rank"], want["rank_ub"])
        assert row["provisional"] is want["provisional"]
        assert row["ci_degenerate_share"] == pytest.approx(want["ci_degenerate_share"])
        assert (row["ci_low"] is None) == (want["ci_low"] is None)
        db = stored[row["model"]]
        assert (db.component, db.provisional) == (row["component"], row["provisional"])
    # Rows come by component (the generation models have the most votes), ranked within it.
    assert [r["component"] for r in rows] == [1] * 6 + [2] * 7
    assert all(r["model"].endswith("_generation") for r in rows[:6])
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6, 7]
    # The edition models have 11-26 votes: provisional; the generation ones 440-547: not.
    assert [r["provisional"] for r in rows] == [False] * 6 + [True] * 7
    params = body["snapshot"]["params"]
    assert params["components"] == 2 and params["component_sizes"] == [6, 7]
    assert sum(params["component_votes"]) == 1515 and params["provisional_votes"] == 30


def test_the_csv_has_the_component_and_writes_unbounded_ends_as_infinities(client, real_votes):
    json_rows = client.get("/api/v1/leaderboard").json()["rows"]
    text = client.get("/api/v1/leaderboard", {"format": "csv"}).content.decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0])[:3] == ["component", "rank", "rank_ub"]
    assert [int(r["component"]) for r in rows] == [r["component"] for r in json_rows]
    assert [r["provisional"] for r in rows] == ["true" if r["provisional"] else "false" for r in json_rows]
    open_rows = [(c, j) for c, j in zip(rows, json_rows, strict=True) if j["ci_low"] is None]
    assert open_rows, "the real file has edition models whose bootstrap cannot bound them below"
    for c, j in open_rows:
        assert c["ci_low"] == "-inf" and float(c["ci_low"]) == float("-inf")
        assert j["ci_degenerate_share"] > 0
        assert float(c["ci_degenerate_share"]) == pytest.approx(j["ci_degenerate_share"])
    assert all(r["mu"] == "" for r in rows)  # not applicable (bt) stays empty, not "unbounded"


def test_the_schema_says_null_means_unbounded(client, db):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    row = schema["components"]["schemas"]["RowOutput"]["properties"]
    assert "null = unbounded below" in row["ci_low"]["description"]
    assert "null = unbounded above" in row["ci_high"]["description"]
    assert set(row) >= {"component", "provisional", "ci_degenerate_share"}
    assert row["ci_degenerate_share"]["nullable"] is True


def test_the_anchor_pins_its_own_component_in_the_api(client, real_votes):
    plain = {r["model"]: r for r in client.get("/api/v1/leaderboard").json()["rows"]}
    anchored = {r["model"]: r for r in client.get(
        "/api/v1/leaderboard", {"anchor": "imagenhub_SDXL_generation"}).json()["rows"]}
    assert anchored["imagenhub_SDXL_generation"]["rating"] == 1000.0
    for name, row in anchored.items():
        if name.endswith("_edition"):  # never met the anchor: unchanged, still centred on its own
            assert row["rating"] == pytest.approx(plain[name]["rating"], abs=1e-9)


def test_the_page_has_one_table_per_component_largest_first(client, real_votes):
    leaderboard_refit(config=LeaderboardConfig())
    html = client.get("/leaderboard").content.decode()
    tables = re.findall(r'<table class="leaderboard" id="component-(\d)".*?</table>', html, flags=re.S)
    assert tables == ["1", "2"]
    captions = re.findall(r"<caption>(.*?)</caption>", html)
    votes = [float(v) for v in client.get("/api/v1/leaderboard").json()["snapshot"]["params"]["component_votes"]]
    assert captions == [f"Group 1: 6 models · {votes[0]:.0f} votes", f"Group 2: 7 models · {votes[1]:.0f} votes"]
    first, second = re.findall(r'id="component-\d".*?</table>', html, flags=re.S)
    assert "_generation" in first and "_edition" not in first
    assert "_edition" in second and "_generation" not in second
    assert second.count("provisional-badge") == 7 and first.count("provisional-badge") == 0
    # An interval the bootstrap cannot bound below is drawn open-ended, and says why.
    minus_infinity = "\u2212\u221e"  # as the page writes it
    assert second.count('class="open-end"') >= 1 and "unbounded:" in second and minus_infinity in second
    # The heatmap orders models by component: a line between the 6 generation and the 7 edition models.
    assert html.count('class="component-break"') == 2 and 'x1="204"' in html  # 6 cells x 34 px
