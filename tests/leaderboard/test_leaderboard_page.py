"""The leaderboard page, as a visitor loads it."""
from __future__ import annotations

import re

import pytest

from tests.leaderboard.conftest import vote_many

pytestmark = pytest.mark.django_db


def test_every_method_is_on_the_page(client, real_votes):
    for method in ("bt", "elo", "pl", "bayes"):
        html = client.get("/leaderboard", {"method": method}).content.decode()
        assert "imagenhub_PlayGroundV2_generation" in html and f"· {method} ·" in html
        assert "<svg" in html and "Win rate" in html
    assert "P(best)" in client.get("/leaderboard", {"method": "bayes"}).content.decode()
    bad = client.get("/leaderboard", {"method": "nope"})
    assert bad.status_code == 400 and "method: must be one of" in bad.content.decode()


def test_the_page_shows_each_models_share_of_recent_battles_and_names_the_bayes_score(client, voter_api,
                                                                                         make_battle):
    # make_battle shows the first k contenders: alpha and beta in every battle, gamma in the K = 3 ones.
    vote_many(voter_api, make_battle, [{"outcome": "a"}, {"outcome": "b"}, {"outcome": "tie"}])
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
