"""The tie models' held-out evidence at refit, on the page and in the API; the evidence-chosen default tie model."""
from __future__ import annotations

import html
import re
from io import StringIO

import pytest
from django.core.management import call_command

from leaderboard import selectors
from leaderboard.config import LeaderboardConfig
from leaderboard.ratings.tie_selection import tie_model_evidence
from leaderboard.services import leaderboard_refit
from tests.conftest import REAL_FILE

pytestmark = pytest.mark.django_db
LABELS = {"half": "half", "davidson": "Davidson", "rao-kupper": "Rao-Kupper"}


@pytest.fixture
def real_votes() -> None:
    call_command("import_battles", REAL_FILE, stdout=StringIO())


def _evidence_line(page: str) -> str:
    match = re.search(r'<p class="note" id="tie-evidence">(.*?)</p>', page, re.S)
    assert match, "no tie-evidence line on the page"
    return html.unescape(re.sub(r"<[^>]+>", "", match.group(1)))


def _selected_ties(page: str) -> str:
    select = re.search(r'<select name="ties">(.*?)</select>', page, re.S).group(1)
    return re.search(r'<option value="([^"]*)" selected>', select).group(1)


def test_a_bradley_terry_refit_stores_the_held_out_evidence_of_the_three_tie_models(real_votes):
    config = LeaderboardConfig()
    snapshot = leaderboard_refit(config=config)
    evidence = snapshot.params["tie_model_evidence"]
    assert set(evidence["scores"]) == {"half", "davidson", "rao-kupper"} and evidence["unavailable"] == {}
    # The figures are the pure function's on the refit's own counted votes, with the leaderboard's seed.
    expected = tie_model_evidence(selectors.pair_counts(config), seed=config.seed).to_dict()
    assert {k: v for k, v in evidence.items() if k != "duration_ms"} == expected
    assert evidence["n_votes"] == snapshot.n_votes == 1515 and evidence["folds"] == 5
    assert 0 <= evidence["duration_ms"] <= snapshot.duration_ms
    # On these votes ties as 1/2 predicts held-out outcomes worst, clearly (paired standard errors).
    half = evidence["scores"]["half"]
    assert evidence["choice"] != "half" and half["difference"] < -2 * half["difference_se"]


def test_the_default_tie_model_is_rao_kupper_for_bradley_terry_only(client, real_votes):
    assert LeaderboardConfig().ties == "rao-kupper"
    assert [LeaderboardConfig(method=m).ties for m in ("pl", "bayes", "elo")] == ["half"] * 3
    assert LeaderboardConfig(ties="half").ties == "half"  # every option stays selectable
    body = client.get("/api/v1/leaderboard").json()
    assert body["snapshot"]["params"]["ties"] == "rao-kupper" and body["snapshot"]["params"]["tie_parameter"] > 1
    # Plackett-Luce takes only ties as 1/2: asking for it without a tie model is not an error.
    assert client.get("/api/v1/leaderboard", {"method": "pl"}).json()["snapshot"]["params"]["ties"] == "half"
    half = client.get("/api/v1/leaderboard", {"ties": "half"}).json()
    assert half["snapshot"]["params"]["ties"] == "half" and half["snapshot"]["params"]["tie_parameter"] is None


def test_the_page_shows_the_evidence_beside_the_model_of_the_table(client, real_votes):
    page = client.get("/leaderboard").content.decode()
    evidence = leaderboard_refit(config=LeaderboardConfig()).params["tie_model_evidence"]
    line = _evidence_line(page)
    figures = ", ".join(f"{LABELS[m]} \u2212{-s['mean']:.4f}" for m, s in evidence["scores"].items())
    assert line.startswith(f"Held-out log-likelihood per vote (5-fold, higher is better): {figures} (this table: ")
    best = LABELS[evidence["choice"]]
    assert line.endswith("(this table: Rao-Kupper)." if best == "Rao-Kupper" else
                         f"(this table: Rao-Kupper; highest: {best}).")
    assert re.search(r'<span class="chosen">Rao-Kupper \u2212', page)
    assert _selected_ties(page) == ""  # the form keeps the method's default when the method changes
    assert ">default (rao-kupper)</option>" in page

    half_page = client.get("/leaderboard", {"ties": "half"}).content.decode()
    assert _evidence_line(half_page).endswith(f"(this table: half; highest: {best}).")
    assert re.search(rf'<span title="\u2212[0-9.]+ \u00b1 [0-9.]+ per vote against {best}" class="chosen">half ',
                     half_page)
    assert _selected_ties(half_page) == "half"


@pytest.mark.parametrize("query", [{"method": "elo"}, {"method": "bayes"}, {"exclude_ties": "1", "method": "bayes"}])
def test_leaderboards_that_do_not_fit_pairwise_tie_models_show_no_evidence(client, real_votes, query):
    body = client.get("/api/v1/leaderboard", query).json()
    assert body["snapshot"]["method"] == query["method"]
    assert "tie_model_evidence" not in body["snapshot"]["params"]
    assert 'id="tie-evidence"' not in client.get("/leaderboard", query).content.decode()


def _vote(voter_api, make_battle, outcomes: list[str]) -> None:
    """One alpha-7b vs beta-13b battle per outcome: "alpha" or "beta" (the winner) or "tie"."""
    for outcome in outcomes:
        battle = make_battle(voter_api)
        alpha = "a" if battle.slots.get(position=0).contender.name == "alpha-7b" else "b"
        verdict = {"alpha": alpha, "beta": "b" if alpha == "a" else "a"}.get(outcome, outcome)
        assert voter_api.post(f"/api/v1/battles/{battle.id}/vote", {"outcome": verdict}, format="json").status_code \
            == 201


@pytest.mark.parametrize(("outcomes", "reason"), [
    (["alpha", "alpha", "beta"], "no ties among the counted votes"),
    (["tie", "tie"], "no decisive votes among the counted votes"),
    (["tie", "alpha"], "its tie parameter has no finite estimate on these few votes"),
])
def test_votes_a_tie_model_cannot_fit_are_rated_with_ties_as_half_and_the_page_says_why(
        client, voter_api, make_battle, outcomes, reason):
    _vote(voter_api, make_battle, outcomes)
    params = client.get("/api/v1/leaderboard").json()["snapshot"]["params"]
    assert params["ties"] == "half" and params["ties_fallback"]["requested"] == "rao-kupper"
    assert params["ties_fallback"]["reason"] == reason
    page = client.get("/leaderboard").content.decode()
    assert f"Ties count as ½ in this table, not rao-kupper: {reason}." in html.unescape(page)
    assert 'id="tie-evidence"' not in page  # one tie model or none to compare: no line
