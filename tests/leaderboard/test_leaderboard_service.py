"""Leaderboards from the database: refit command, API, page, downloads, caching, background refits."""
from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from arena.models import Vote
from leaderboard.config import LeaderboardConfig
from leaderboard.models import Snapshot
from leaderboard.services import leaderboard_is_stale, leaderboard_refit, refit_stale_leaderboards
from tests.conftest import REAL_FILE

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def real_votes() -> None:
    call_command("import_battles", REAL_FILE, stdout=StringIO())


def cli_rows(*args: str) -> list[dict]:
    result = subprocess.run([sys.executable, "-m", "leaderboard.ratings", REAL_FILE, *args], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


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


@pytest.mark.parametrize(
    ("query", "field"),
    [({"method": "trueskill"}, "method"), ({"ties": "maybe"}, "ties"), ({"bootstrap": "many"}, "bootstrap"),
     ({"bootstrap": "5000"}, "bootstrap"), ({"date_from": "yesterday"}, "date_from"),
     ({"method": "pl", "ties": "davidson"}, "ties"), ({"style_control": "perhaps"}, "style_control"),
     ({"format": "xml"}, "format"), ({"date_to": "9999-12-31"}, "date_to"), ({"seed": "-1"}, "seed")],
)
def test_bad_leaderboard_parameters_are_400_naming_the_field(client, real_votes, query, field):
    response = client.get("/api/v1/leaderboard", query)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not Snapshot.objects.exists()


def test_no_votes_is_a_json_404(client):
    response = client.get("/api/v1/leaderboard")
    assert response.status_code == 404 and response.json()["error"]["code"] == "no_votes"


def test_the_api_serves_rows_with_metadata_and_an_etag(client, real_votes):
    response = client.get("/api/v1/leaderboard")
    body = response.json()
    assert body["snapshot"]["n_votes"] == 1515 and body["snapshot"]["method"] == "bt"
    top = body["rows"][0]
    assert top["organization"] == "" and set(top) >= {"rank", "rank_ub", "model", "rating", "ci_low", "ci_high",
                                                      "votes", "license"}
    assert all(r["ci_low"] is None or r["ci_low"] <= r["rating"] + 1e-9 for r in body["rows"])
    etag = response["ETag"]
    again = client.get("/api/v1/leaderboard", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b""
    assert Snapshot.objects.count() == 1


def test_csv_and_json_downloads(client, real_votes):
    response = client.get("/api/v1/leaderboard", {"format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 13 and rows[0]["rank"] == "1"
    assert float(rows[0]["rating"]) == pytest.approx(client.get("/api/v1/leaderboard").json()["rows"][0]["rating"])
    download = client.get("/api/v1/leaderboard", {"download": "1"})
    assert "attachment" in download["Content-Disposition"] and len(download.json()["rows"]) == 13


@pytest.mark.parametrize("kind", ["winrate", "count", "predicted"])
def test_matrices(client, real_votes, kind):
    body = client.get("/api/v1/leaderboard/matrix", {"kind": kind}).json()
    models, matrix = body["models"], np.array(body["matrix"], dtype=float)
    assert matrix.shape == (13, 13)
    if kind == "count":
        assert np.nansum(matrix) == 2 * 1515 - 2 * 0  # each battle counted for both models
        assert np.allclose(matrix, matrix.T)
    else:
        both = ~np.isnan(matrix) & ~np.isnan(matrix.T)
        assert np.allclose((matrix + matrix.T)[both], 1.0)
    assert len(models) == 13


def test_an_unknown_matrix_kind_is_refused(client, real_votes):
    response = client.get("/api/v1/leaderboard/matrix", {"kind": "elo"})
    assert response.status_code == 400 and "kind" in response.json()["error"]["fields"]


def test_filters_change_what_is_counted(client, real_votes):
    named = client.get("/api/v1/leaderboard", {"include_named": "1"}).json()["snapshot"]["n_votes"]
    # Without ties two models never beat anyone: no MLE exists, and the API says so instead of inventing one.
    mle = client.get("/api/v1/leaderboard", {"exclude_ties": "1"})
    assert mle.status_code == 422 and mle.json()["error"]["code"] == "fit_failed"
    assert "imagenhub_SDEdit_edition" in mle.json()["error"]["message"]
    no_ties = client.get("/api/v1/leaderboard", {"exclude_ties": "1", "method": "bayes"}).json()
    assert named == 2060  # every battle of the file; its one self-battle is skipped on import
    assert sum(r["votes"] for r in no_ties["rows"]) == 2 * Vote.objects.filter(
        battle__anonymous=True, outcome__in=["a", "b"]).count()
    empty = client.get("/api/v1/leaderboard", {"date_to": "2020-01-01"})
    assert empty.status_code == 404


def test_every_method_is_on_the_page(client, real_votes):
    for method in ("bt", "elo", "pl", "bayes"):
        html = client.get("/leaderboard", {"method": method}).content.decode()
        assert "imagenhub_PlayGroundV2_generation" in html and f"· {method} ·" in html
        assert "<svg" in html and "Win rate" in html
    assert "P(best)" in client.get("/leaderboard", {"method": "bayes"}).content.decode()
    bad = client.get("/leaderboard", {"method": "nope"})
    assert bad.status_code == 400 and "method: must be one of" in bad.content.decode()


def test_style_control_through_the_api(client, voter_api, contenders):
    """Equal models whose long answers win more often: style control finds a positive length effect."""
    from arena.services import SlotInput, battle_create, voter_get_or_create

    rng = np.random.default_rng(7)
    voter = voter_get_or_create(key=f"user:{voter_api.user.pk}", user=voter_api.user)
    names = [c.name for c in contenders[:4]]
    for i in range(160):
        pair = rng.choice(4, size=2, replace=False)
        lengths = rng.integers(5, 60, size=2)
        battle = battle_create(voter=voter, prompt_text=f"prompt {i}", slots=[
            SlotInput(contender=names[p], response="word " * int(n)) for p, n in zip(pair, lengths, strict=True)])
        by_position = [s.response.count("word") for s in battle.slots.order_by("position")]
        p_a = 1 / (1 + np.exp(-1.5 * (by_position[0] - by_position[1]) / (sum(by_position) + 1) * 3))
        outcome = "a" if rng.random() < p_a else "b"
        voter_api.post(f"/api/v1/battles/{battle.id}/vote", {"outcome": outcome}, format="json")
    response = client.get("/api/v1/leaderboard", {"style_control": "1", "bootstrap": "50"})
    assert response.status_code == 200, response.json()
    coefficients = {c["name"]: c for c in response.json()["style_coefficients"]}
    length = next(c for name, c in coefficients.items() if "len" in name or "token" in name)
    assert length["ci_low"] > 0 and length["value"] > 0
    plain = client.get("/api/v1/leaderboard").json()
    assert plain["style_coefficients"] == []


@override_settings(LEADERBOARD_REFIT_VOTES=3, LEADERBOARD_REFIT_MINUTES=60)
def test_the_background_refit_runs_after_n_new_votes(voter_api, make_battle):
    def vote_once() -> None:
        battle = make_battle(voter_api)
        voter_api.post(f"/api/v1/battles/{battle.id}/vote", {"outcome": "tie"}, format="json")

    vote_once()
    assert [s.method for s in refit_stale_leaderboards()] == ["bt", "elo", "bayes"]
    vote_once()
    vote_once()
    assert not leaderboard_is_stale(config=LeaderboardConfig()) and refit_stale_leaderboards() == []
    vote_once()  # the third new vote since the snapshot
    assert leaderboard_is_stale(config=LeaderboardConfig())
    assert {s.n_votes for s in refit_stale_leaderboards()} == {4}


def test_a_vote_enqueues_one_refit_task(voter_api, make_battle, django_capture_on_commit_callbacks):
    from django.core.cache import cache
    from django_tasks_db.models import DBTaskResult

    cache.clear()
    for _ in range(3):
        battle = make_battle(voter_api)
        with django_capture_on_commit_callbacks(execute=True):
            voter_api.post(f"/api/v1/battles/{battle.id}/vote", {"outcome": "a"}, format="json")
    assert DBTaskResult.objects.filter(task_path__endswith="refit_stale_leaderboards_task").count() == 1


def _vote_many(voter_api, make_battle, verdicts: list[dict], prompt: str = "Write a haiku about rain.") -> None:
    for body in verdicts:
        battle = make_battle(voter_api, k=2, prompt=prompt)
        assert voter_api.post(f"/api/v1/battles/{battle.id}/vote", body, format="json").status_code == 201


def test_an_aspect_leaderboard_fits_the_aspect_verdicts(client, voter_api, make_battle):
    """alpha wins 12 of 16 overall but loses 12 of 16 on style: the two leaderboards must disagree."""
    for i in range(16):
        battle = make_battle(voter_api, k=2)
        alpha, other = ("a", "b") if battle.slots.get(position=0).contender.name == "alpha-7b" else ("b", "a")
        body = {"outcome": alpha, "aspects": {"style": other}} if i < 12 else {"outcome": other,
                                                                                "aspects": {"style": alpha}}
        voter_api.post(f"/api/v1/battles/{battle.id}/vote", body, format="json")
    overall = client.get("/api/v1/leaderboard", {"method": "bayes"}).json()
    style = client.get("/api/v1/leaderboard", {"method": "bayes", "aspect": "style"}).json()
    assert overall["snapshot"]["n_votes"] == style["snapshot"]["n_votes"] == 16
    assert next(r for r in overall["rows"] if r["model"] == "alpha-7b")["mu"] > 1000
    assert next(r for r in style["rows"] if r["model"] == "alpha-7b")["mu"] < 1000
    assert client.get("/api/v1/leaderboard", {"aspect": "charm"}).status_code == 404


def test_flagged_voters_and_categories_are_filters(client, voter_api, other_api, make_battle):
    from arena.models import Voter

    _vote_many(voter_api, make_battle, [{"outcome": "tie"}] * 3, prompt="Poem please")
    _vote_many(other_api, make_battle, [{"outcome": "tie"}] * 5, prompt="Prove it")
    Voter.objects.filter(key=f"user:{other_api.user.pk}").update(flagged=True, flag_reason="bot-like timing")
    # Flagged voters' votes are kept, and left out unless asked for.
    assert client.get("/api/v1/leaderboard").json()["snapshot"]["n_votes"] == 3
    assert client.get("/api/v1/leaderboard", {"exclude_flagged": "0"}).json()["snapshot"]["n_votes"] == 8
    assert client.get("/api/v1/leaderboard", {"category": "poetry", "exclude_flagged": "0"}).json()[
        "snapshot"]["n_votes"] == 8
    assert client.get("/api/v1/leaderboard", {"category": "law"}).status_code == 404


def test_both_bad_counts_as_a_tie_unless_excluded(client, real_votes):
    with_both_bad = client.get("/api/v1/leaderboard", {"method": "bayes"}).json()
    without = client.get("/api/v1/leaderboard", {"method": "bayes", "exclude_both_bad": "1"}).json()
    anonymous = Vote.objects.filter(anonymous=True)
    assert sum(r["votes"] for r in with_both_bad["rows"]) == 2 * anonymous.count()
    assert sum(r["votes"] for r in without["rows"]) == 2 * anonymous.exclude(outcome="both_bad").count()


def test_bootstrap_zero_and_seed_zero_are_kept_by_the_command(real_votes):
    call_command("refit_leaderboard", "--ci", "sandwich", "--bootstrap", "0", "--seed", "0", stdout=StringIO())
    assert Snapshot.objects.get().config["bootstrap"] == 0


def test_contender_edits_change_the_etag_and_renames_keep_the_fitted_name(client, real_votes):
    from arena.models import Contender

    first = client.get("/api/v1/leaderboard")
    Contender.objects.filter(name="imagenhub_SDXL_generation").update(organization="Stability AI")
    second = client.get("/api/v1/leaderboard", HTTP_IF_NONE_MATCH=first["ETag"])
    assert second.status_code == 200 and second["ETag"] != first["ETag"]
    assert "Stability AI" in second.content.decode()
    Contender.objects.filter(name="imagenhub_SDXL_generation").update(name="sdxl-renamed")
    page = client.get("/leaderboard")
    assert page.status_code == 200 and "imagenhub_SDXL_generation" in page.content.decode()


@override_settings(LEADERBOARD_REFIT_VOTES=2)
def test_a_stale_custom_leaderboard_is_served_and_refitted_in_the_background(client, voter_api, make_battle):
    from django_tasks_db.models import DBTaskResult

    _vote_many(voter_api, make_battle, [{"outcome": "tie"}] * 2)
    first = client.get("/api/v1/leaderboard", {"category": "poetry"}).json()
    _vote_many(voter_api, make_battle, [{"outcome": "tie"}] * 2)
    again = client.get("/api/v1/leaderboard", {"category": "poetry"}).json()
    assert again["snapshot"]["id"] == first["snapshot"]["id"]  # served at once, not refitted in the request
    queued = DBTaskResult.objects.filter(task_path__endswith="refit_leaderboard_task")
    assert queued.count() == 1 and queued.get().args_kwargs["args"][0]["category"] == "poetry"
    from leaderboard.tasks import refit_leaderboard_task

    refit_leaderboard_task.call(queued.get().args_kwargs["args"][0])
    assert client.get("/api/v1/leaderboard", {"category": "poetry"}).json()["snapshot"]["n_votes"] == 4


def test_the_refit_check_runs_at_the_end_of_the_debounce_window(voter_api, make_battle,
                                                                   django_capture_on_commit_callbacks):
    from django.core.cache import cache
    from django_tasks_db.models import DBTaskResult

    cache.clear()
    battle = make_battle(voter_api)
    with django_capture_on_commit_callbacks(execute=True):
        voter_api.post(f"/api/v1/battles/{battle.id}/vote", {"outcome": "a"}, format="json")
    task = DBTaskResult.objects.get(task_path__endswith="refit_stale_leaderboards_task")
    assert task.run_after is not None and (task.run_after - task.enqueued_at).total_seconds() >= 29


def test_leaderboard_requests_are_rate_limited(client, real_votes, monkeypatch):
    from django.core.cache import cache
    from rest_framework.throttling import ScopedRateThrottle

    cache.clear()
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"leaderboard": "2/minute"})
    codes = [client.get("/api/v1/leaderboard", {"seed": str(s)}).status_code for s in range(3)]
    assert codes == [200, 200, 429]
    assert client.get("/api/v1/leaderboard").json()["error"]["code"] == "throttled"
    assert Snapshot.objects.count() == 2  # the refused request fitted nothing


def test_the_page_shows_each_models_share_of_recent_battles_and_names_the_bayes_score(client, voter_api,
                                                                                         make_battle):
    # make_battle shows the first k contenders: alpha and beta in every battle, gamma in the K = 3 ones.
    _vote_many(voter_api, make_battle, [{"outcome": "a"}, {"outcome": "b"}, {"outcome": "tie"}])
    battle = make_battle(voter_api, k=3)
    # alpha wins the K = 3 battle wherever it was seated: with position 0 chosen, a seat that went to gamma left
    # alpha and beta symmetric, their ratings equal, and the separation figure (rightly) unknown.
    alpha = battle.slots.get(contender__name="alpha-7b").position
    voter_api.post(f"/api/v1/battles/{battle.id}/vote", {"best": alpha}, format="json")
    page = client.get("/leaderboard", {"method": "bayes"}).content.decode()
    assert "Recent share" in page and "the last 4 battles" in page
    rows = {name: row for name, row in re.findall(r"<td>([a-z]+-\d+b)</td>(.*?)</tr>", page, re.S)}
    assert re.search(r">100 %<", rows["alpha-7b"]) and re.search(r">25 %<", rows["gamma-70b"])
    score = "Score (\u03bc \u2212 3\u03c3)"  # "Score (mu - 3 sigma)", as the page prints it
    assert score in page  # the Bayes column is the conservative score, not the interval's centre
    assert score not in client.get("/leaderboard", {"method": "bt"}).content.decode()
    # Three contenders on four votes overlap everywhere: the page gives the rough figure to separate them.
    assert re.search(r'id="to-separate">About \d+ more pairwise votes would separate the top 3', page)
