"""A person in a real browser: open the arena, get an anonymous battle, vote, see the names."""
from __future__ import annotations

import os
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections

from arena.models import Contender, Vote

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("REQUIRE_BROWSER"),
                       reason="needs Debian's chromium (apt-get install chromium)"),
]


@pytest.fixture
def page(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the live server's DB access is in its own.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield browser.new_page()
        browser.close()
        # With Playwright's loop running, Django keys connections by that context: the queries the test
        # made opened a connection that Django's own teardown will not see. Close it here, inside.
        connections.close_all()


def test_a_visitor_votes_on_an_anonymous_battle_and_sees_the_names(live_server, page):
    call_command("seed_demo", stdout=StringIO())
    pool_names = list(Contender.objects.filter(source_kind="pool").values_list("name", flat=True))
    page.goto(live_server.url + "/")
    assert "2061 votes" in page.content()
    page.click("text=Vote on two anonymous answers")
    page.wait_for_url("**/battles/*")
    before = page.content()
    assert "Response A" in before and "Response B" in before
    assert not any(name in before for name in pool_names)
    page.click("text=A is better")
    page.wait_for_selector("text=Thanks, your vote is recorded.")
    after = page.content()
    shown = [name for name in pool_names if name in after]
    assert len(shown) == 2
    vote = Vote.objects.get(battle__slots__contender__source_kind="pool", battle__slots__position=0)
    assert vote.outcome == "a"
    assert vote.battle.slots.get(position=0).contender.name in shown


def test_the_leaderboard_page_renders_in_a_browser(live_server, page):
    call_command("seed_demo", stdout=StringIO())
    page.goto(live_server.url + "/leaderboard?method=bayes")
    assert page.locator("table.leaderboard tbody tr").count() == 13
    assert page.locator("svg.heatmap rect").count() == 13 * 13
    page.select_option("select[name=method]", "elo")
    page.click("text=Show")
    page.wait_for_url("**method=elo**")
    assert "· elo ·" in page.content()

