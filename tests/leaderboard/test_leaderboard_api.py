"""The leaderboard API: rows, filters, downloads, matrices, caching and bad parameters."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from arena.models import Vote
from leaderboard.config import LeaderboardConfig
from leaderboard.models import Snapshot
from leaderboard.services import leaderboard_refit
from tests.leaderboard.conftest import vote_many

pytestmark = pytest.mark.django_db


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


def test_a_repeated_read_is_served_from_the_rendered_snapshot(client, real_votes, voter_api, make_battle,
                                                              django_assert_max_num_queries):
    """Rows are loaded and serialized once per snapshot: later reads cost the snapshot lookup and the metadata
    version (and, once per 30 s, the staleness check), and get the same bytes and ETag."""
    first = client.get("/api/v1/leaderboard")
    for fmt in ("json", "csv"):
        client.get("/api/v1/leaderboard", {"format": fmt})  # rendered and cached (and the staleness check done)
        with django_assert_max_num_queries(2) as ctx:
            again = client.get("/api/v1/leaderboard", {"format": fmt})
        assert again.status_code == 200
        assert not any("leaderboard_snapshotrow" in q["sql"] for q in ctx.captured_queries)
    again = client.get("/api/v1/leaderboard")
    assert again.content == first.content and again["ETag"] == first["ETag"]
    assert again["Content-Type"] == "application/json" and again.json()["snapshot"]["n_votes"] == 1515
    # A newer snapshot is rendered anew.
    vote_many(voter_api, make_battle, [{"outcome": "a"}, {"outcome": "b"}, {"outcome": "tie"}])
    leaderboard_refit(config=LeaderboardConfig())
    newer = client.get("/api/v1/leaderboard")
    assert newer.json()["snapshot"]["n_votes"] == 1518 and newer["ETag"] != first["ETag"]


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
    from arena.moderation import voter_flag_set

    vote_many(voter_api, make_battle, [{"outcome": "tie"}] * 3, prompt="Poem please")
    vote_many(other_api, make_battle, [{"outcome": "tie"}] * 5, prompt="Prove it")
    voter_flag_set(voter_id=Voter.objects.get(key=f"user:{other_api.user.pk}").pk, flagged=True,
                   reason="bot-like timing")
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


def test_the_leaderboard_limit_counts_fixed_windows_in_one_counter(client, real_votes, monkeypatch):
    from django.core.cache import cache
    from rest_framework.throttling import ScopedRateThrottle

    from config.throttling import FixedWindowScopedThrottle

    cache.clear()
    now = [6000.5]  # 100 minutes and half a second
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"leaderboard": "3/minute"})
    monkeypatch.setattr(FixedWindowScopedThrottle, "timer", lambda self: now[0])
    assert [client.get("/api/v1/leaderboard").status_code for _ in range(4)] == [200, 200, 200, 429]
    refused = client.get("/api/v1/leaderboard")
    assert refused.status_code == 429 and refused["Retry-After"] == "60"  # the window ends at 6060 s
    now[0] = 6059.2
    assert client.get("/api/v1/leaderboard")["Retry-After"] == "1"
    now[0] = 6060.0  # a new window
    assert client.get("/api/v1/leaderboard").status_code == 200
    # The client's state is one count per window (refused requests included), not the list of its request times.
    assert cache.get("throttle_leaderboard_127.0.0.1:6000") == 6
    assert cache.get("throttle_leaderboard_127.0.0.1:6060") == 1


def test_leaderboard_requests_are_rate_limited(client, real_votes, monkeypatch):
    from django.core.cache import cache
    from rest_framework.throttling import ScopedRateThrottle

    cache.clear()
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"leaderboard": "2/minute"})
    codes = [client.get("/api/v1/leaderboard", {"seed": str(s)}).status_code for s in range(3)]
    assert codes == [200, 200, 429]
    assert client.get("/api/v1/leaderboard").json()["error"]["code"] == "throttled"
    assert Snapshot.objects.count() == 2  # the refused request fitted nothing
