"""A person in a real browser: open the arena, get an anonymous battle, vote, see the names.

The demo's contenders answer only prepared prompts (the pool): "Surprise me" serves one of them.
Live contenders, typed prompts and streaming are in ``test_live_voting.py``; fixtures in ``conftest.py``.
"""
from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from arena.models import Contender, Vote

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_visitor_votes_on_an_anonymous_battle_and_sees_the_names(live_server, page, shot):
    call_command("seed_demo", stdout=StringIO())
    pool_names = list(Contender.objects.filter(source_kind="pool").values_list("name", flat=True))
    page.goto(live_server.url + "/")
    assert "2060 votes" in page.content()  # the demo file's 2061 rows less its one self-battle
    shot(page, "01-home")
    page.get_by_role("button", name="Surprise me (a prepared prompt)").click()
    page.wait_for_url("**/battles/*")
    page.get_by_text("All answers are complete: vote below.").wait_for()
    shot(page, "02-battle")
    before = page.content()
    assert "Answer A" in before and "Answer B" in before
    assert not any(name in before for name in pool_names)
    page.get_by_role("button", name="A is better").click()
    page.wait_for_selector("text=Thanks, your vote is recorded.")
    shot(page, "03-revealed")
    after = page.content()
    shown = [name for name in pool_names if name in after]
    assert len(shown) == 2
    vote = Vote.objects.get(battle__slots__contender__source_kind="pool", battle__slots__position=0)
    assert vote.outcome == "a"
    assert vote.battle.slots.get(position=0).contender.name in shown


def test_the_leaderboard_page_renders_in_a_browser(live_server, page, shot):
    call_command("seed_demo", stdout=StringIO())
    page.goto(live_server.url + "/leaderboard?method=bayes")
    assert page.locator("table.leaderboard tbody tr").count() == 13
    assert page.locator("svg.heatmap rect").count() == 13 * 13
    shot(page, "01-bayes")
    page.select_option("select[name=method]", "elo")
    page.click("text=Show")
    page.wait_for_url("**method=elo**")
    assert "· elo ·" in page.content()
    shot(page, "02-elo")
