"""`manage.py refit_leaderboard`: snapshots with provenance, the same numbers as the CLI, clear errors."""
from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from arena.models import Vote
from leaderboard.config import LeaderboardConfig
from leaderboard.models import Snapshot
from leaderboard.services import leaderboard_refit
from tests.leaderboard.conftest import cli_rows

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("args", [(), ("--method", "bayes"), ("--ties", "davidson", "--ci", "sandwich")])
def test_the_service_and_the_cli_agree_on_the_real_file(client, real_votes, args):
    query = {a.lstrip("-"): b for a, b in zip(args[::2], args[1::2], strict=True)}
    api_rows = client.get("/api/v1/leaderboard", query).json()["rows"]
    expected = cli_rows(*args)
    assert [r["model"] for r in api_rows] == [r["model"] for r in expected]
    for got, want in zip(api_rows, expected, strict=True):
        assert got["rating"] == pytest.approx(want["rating"], abs=1e-6)
        assert got["votes"] == want["votes"]
        assert (got["rank"], got["rank_ub"]) == (want["rank"], want["rank_ub"])


def test_refit_command_stores_a_snapshot_with_provenance(real_votes):
    out = StringIO()
    call_command("refit_leaderboard", "--method", "bt", "--ties", "davidson", stdout=out)
    snapshot = Snapshot.objects.get()
    assert "snapshot" in out.getvalue() and "1515 votes" in out.getvalue()
    assert snapshot.n_votes == Vote.objects.filter(battle__anonymous=True).count() == 1515
    assert snapshot.config["ties"] == "davidson" and snapshot.params["tie_parameter"] > 0
    assert len(snapshot.data_hash) == 64 and snapshot.rows.count() == 13
    # Two components (6 generation, 7 edition models that never met): ranks run within each.
    ranks = sorted(snapshot.rows.values_list("component", "rank"))
    assert ranks == [(1, k) for k in range(1, 7)] + [(2, k) for k in range(1, 8)]


def test_refitting_unchanged_votes_gives_the_same_hash_and_ratings(real_votes):
    first = leaderboard_refit(config=LeaderboardConfig())
    second = leaderboard_refit(config=LeaderboardConfig())
    assert first.id != second.id and first.data_hash == second.data_hash
    assert list(first.rows.order_by("contender__name").values_list("rating", "ci_low")) == list(
        second.rows.order_by("contender__name").values_list("rating", "ci_low"))


def test_a_bad_refit_option_is_a_cli_error():
    with pytest.raises(CommandError, match="method: must be one of"):
        call_command("refit_leaderboard", "--method", "glicko")
    with pytest.raises(CommandError, match="no votes match"):
        call_command("refit_leaderboard")


def test_bootstrap_zero_and_seed_zero_are_kept_by_the_command(real_votes):
    call_command("refit_leaderboard", "--ci", "sandwich", "--bootstrap", "0", "--seed", "0", stdout=StringIO())
    assert Snapshot.objects.get().config["bootstrap"] == 0
