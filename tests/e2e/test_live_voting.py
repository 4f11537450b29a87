"""A visitor in a real browser asks live models, watches them answer, votes, and only then sees who they are.

The arena's background threads generate the answers by calling the ``openai_server`` test double
(a real OpenAI-compatible HTTP server on 127.0.0.1), exactly as the site calls a model server.
Fixtures (``page``, ``phone_page``, ``shot``) are in ``conftest.py``; each step's screenshot is kept
under the test's ``tmp_path`` and in ``/tmp/e2e-shots/<test>/``.
"""
from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from arena.models import Battle, Contender, Vote

# The live server's thread, the generation threads and the test all use the database at once: SQLite's
# shared in-memory test database answers "table is locked" to that, so these need Postgres.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

COMPLETE = "All answers are complete: vote below."
WRITING = "The models are writing their answers…"
VOID = "This battle is void and will not count."
BATTLE_URL = re.compile(r".*/battles/[0-9a-f-]{36}$")


# Records, on each change of answer A, its length and the status line then.
WATCH_GROWTH = """
window.__growth = [];
document.addEventListener("DOMContentLoaded", () => {
  const answer = document.getElementById("response-0"), status = document.getElementById("status");
  if (!answer) return;
  new MutationObserver(() => window.__growth.push([answer.textContent.length, status.textContent]))
    .observe(answer, {childList: true, subtree: true, characterData: true});
});
"""


def live_contender(server, name: str, organization: str, model: str) -> Contender:
    return Contender.objects.create(
        name=name, organization=organization, family=name.split("-")[0], license="apache-2.0",
        source_kind="openai",
        source_config={"base_url": server.base_url, "model": model, "timeout_s": 5, "max_retries": 0})


def identity_terms(contenders: list[Contender]) -> list[str]:
    """Everything that would tell a visitor who answered: names, organizations, model ids."""
    terms = []
    for c in contenders:
        terms += [c.name, c.organization, c.source_config["model"]]
    return [t.lower() for t in terms]


def assert_anonymous(text: str, contenders: list[Contender], where: str) -> None:
    found = [t for t in identity_terms(contenders) if t in text.lower()]
    assert not found, f"{where} names a contender before the vote: {found}"


def ask(page, live_server, prompt: str, *, k: int = 2) -> None:  # type: ignore[no-untyped-def]
    """Type a prompt on the home page and ask; lands on the new battle's page."""
    page.goto(live_server.url + "/")
    page.get_by_label("Your prompt").fill(prompt)
    if k != 2:
        page.get_by_label("Answers to compare").select_option(str(k))
    page.get_by_role("button", name="Ask the models").click()
    page.wait_for_url(BATTLE_URL)


def battle_of(page) -> Battle:  # type: ignore[no-untyped-def]
    return Battle.objects.get(id=page.url.rstrip("/").rsplit("/", 1)[-1])


def wait_complete(page) -> None:  # type: ignore[no-untyped-def]
    expect(page.get_by_role("status")).to_have_text(COMPLETE)


# --- 1. a typed prompt, two streaming models, a vote with the mouse ------------------------------------------

def test_a_typed_prompt_is_streamed_voted_with_the_mouse_and_then_named(live_server, page, shot, openai_server):
    answers = {"ans-quick": "Rain taps the roof: a **soft** drum that keeps time while the kettle warms. " * 2,
               "ans-steady": "Grey clouds lean low and the street shines like a river after the rain. " * 2}
    # The first word waits half a second: the page is listening before any text is released.
    for model, text in answers.items():
        openai_server.script(model, text=text, chunk_size=4, delay_s=0.02, first_token_delay_s=0.5)
    contenders = [live_contender(openai_server, "quokka-7b", "Quokka Research", "ans-quick"),
                  live_contender(openai_server, "wombat-13b", "Wombat Systems", "ans-steady")]

    page.add_init_script(WATCH_GROWTH)
    page.goto(live_server.url + "/")
    page.get_by_label("Your prompt").fill("Write two lines about rain.")
    shot(page, "01-typed-prompt")
    page.get_by_role("button", name="Ask the models").click()
    page.wait_for_url(BATTLE_URL)
    shot(page, "02-streaming")
    wait_complete(page)
    shot(page, "03-complete")
    # The visitor saw the answers grow while the models were still writing: it streamed.
    final = len(page.locator("#response-0").text_content())
    growth = page.evaluate("window.__growth")
    assert any(0 < n < final and status == WRITING for n, status in growth), growth

    shown = sorted(page.locator(f"#response-{i}").inner_text().strip() for i in range(2))
    assert shown == sorted(t.replace("**", "").strip() for t in answers.values())
    assert page.locator("#response-0 strong, #response-1 strong").count() == 2  # markdown rendered (the text twice)
    assert_anonymous(page.content(), contenders, "the battle page")

    page.get_by_role("button", name="A is better").click()
    expect(page.locator("#your-vote")).to_have_text("A is better")
    shot(page, "04-revealed")
    content = page.content()
    assert "quokka-7b" in content and "wombat-13b" in content
    expect(page.get_by_role("link", name="New round")).to_be_visible()
    battle = Battle.objects.get(prompt__text="Write two lines about rain.")
    assert battle.status == "voted" and battle.prompt_source == "typed"
    assert Vote.objects.get(battle=battle).outcome == "a"
    # Both models were asked the visitor's prompt, exactly.
    for model in answers:
        (request,) = openai_server.chat_requests(model)
        assert request.body["messages"] == [{"role": "user", "content": "Write two lines about rain."}]


# --- 2. K = 4 ranked with the keyboard only; the digit shortcut -------------------------------------------------

def four_live_contenders(server) -> list[Contender]:
    animals = [("quokka", "Quokka Research"), ("wombat", "Wombat Systems"), ("numbat", "Numbat Works"),
               ("bilby", "Bilby Collective")]
    return [live_contender(server, f"{animal}-{i + 1}b", org, f"echo-{animal}")  # unscripted: echoes the prompt
            for i, (animal, org) in enumerate(animals)]


def tab_to(page, selector: str, *, limit: int = 40) -> None:  # type: ignore[no-untyped-def]
    """Press Tab until ``selector`` has the focus (only the keyboard moves it; the script just looks)."""
    for _ in range(limit):
        if page.evaluate("(s) => document.activeElement === document.querySelector(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def test_four_answers_are_ranked_with_the_keyboard_alone(live_server, page, shot, openai_server):
    four_live_contenders(openai_server)
    ask(page, live_server, "Rank us, please.", k=4)
    wait_complete(page)
    assert [page.locator(f"#response-{i}").inner_text().strip() for i in range(4)] == ["Echo: Rank us, please."] * 4
    shot(page, "01-four-answers")

    tab_to(page, "select[data-rank='0']")
    for i, rank in enumerate(("2", "1", "2", "3")):  # A=2, B=1, C=2 (ties A), D=3
        if i:
            page.keyboard.press("Tab")
        page.keyboard.type(rank)
    shot(page, "02-ranked")
    page.keyboard.press("Enter")
    expect(page.locator("#your-vote")).to_have_text("B > A = C > D")
    shot(page, "03-revealed")
    vote = Vote.objects.get(battle__prompt__text="Rank us, please.")
    assert vote.kind == "ranking" and vote.ranking == [[1], [0, 2], [3]]

    # The digit shortcut: in a battle of three, "2" picks answer B as the best. N opens a new round.
    page.keyboard.press("n")
    page.wait_for_url(live_server.url + "/")
    ask(page, live_server, "Pick the best of three.", k=3)
    wait_complete(page)
    page.keyboard.press("2")
    expect(page.locator("#your-vote")).to_have_text("B is best")
    shot(page, "04-digit-shortcut")
    vote = Vote.objects.get(battle__prompt__text="Pick the best of three.")
    assert vote.kind == "best_of_k" and vote.best_position == 1


# --- 3. nothing the browser receives names a model before the vote ------------------------------------------

# Records the data of every server-sent event the page's EventSource receives (Chromium keeps no body
# of an event stream for Playwright to read back).
RECORD_EVENTS = """
window.__events = [];
const Native = window.EventSource;
window.EventSource = class extends Native {
  constructor(...args) {
    super(...args);
    for (const name of ["update", "done", "void"]) {
      this.addEventListener(name, (e) => window.__events.push(name + " " + e.data));
    }
  }
};
"""


def test_nothing_the_browser_receives_names_a_model_before_the_vote(live_server, page, shot, openai_server):
    openai_server.script("qk-chat-v1", text="Tides follow the moon's pull on the oceans, twice a day. " * 2,
                         chunk_size=4, delay_s=0.01, first_token_delay_s=0.5)  # the page listens before it streams
    openai_server.script("wb-instruct-v2", text="The moon and sun tug the sea, making high and low tides. " * 2,
                         chunk_size=4, delay_s=0.01)
    contenders = [live_contender(openai_server, "quokka-7b", "Quokka Research", "qk-chat-v1"),
                  live_contender(openai_server, "wombat-13b", "Wombat Systems", "wb-instruct-v2")]
    # Every API and battle response passes through here on its way to the page, and is kept. (The event
    # stream is left alone, so that it streams: the page's own record of it is read below.)
    bodies: list[tuple[str, str]] = []

    def keep(route):  # type: ignore[no-untyped-def]
        response = route.fetch()
        bodies.append((f"{route.request.method} {route.request.url}", response.text()))
        route.fulfill(response=response)

    page.route(re.compile(r"/(api/v1/battles|battles/)(?!.*/stream$)"), keep)
    page.add_init_script(RECORD_EVENTS)

    ask(page, live_server, "Why are there tides?")
    wait_complete(page)
    shot(page, "01-complete")
    battle = battle_of(page)
    assert [what.split(" ")[0] for what, _ in bodies] == ["POST", "GET"]  # the API's answer, the battle page
    for what, body in bodies:
        assert_anonymous(body, contenders, what)
    events = page.evaluate("window.__events")
    assert events[-1].startswith("done ") and any(e.startswith("update ") for e in events)
    assert_anonymous("\n".join(events), contenders, "the event stream the page read")
    assert_anonymous(page.content(), contenders, "the battle page")
    # What a curious visitor could fetch with the same cookies: the stream again, the battle's JSON.
    stream = page.request.get(f"{live_server.url}/api/v1/battles/{battle.id}/stream")
    assert stream.ok and "event: done" in stream.text()
    assert_anonymous(stream.text(), contenders, "the event stream")
    detail = page.request.get(f"{live_server.url}/api/v1/battles/{battle.id}")
    assert detail.ok and "contender" not in detail.text()
    assert_anonymous(detail.text(), contenders, "the battle API")

    seen = len(bodies)
    page.get_by_role("button", name="B is better").click()
    expect(page.locator("#your-vote")).to_be_visible()
    shot(page, "02-revealed")
    expect(page.locator(".model-name")).to_have_count(2)
    assert sorted(page.locator(".model-name").all_inner_texts()) == ["quokka-7b", "wombat-13b"]
    assert any("quokka-7b" in body and "wombat-13b" in body for _, body in bodies[seen:])  # the vote's answer
    revealed = page.request.get(f"{live_server.url}/api/v1/battles/{battle.id}").json()
    assert {s["contender"]["organization"] for s in revealed["slots"]} == {"Quokka Research", "Wombat Systems"}


# --- 4. a model's server fails: the battle is void ------------------------------------------------------------

def test_a_source_error_voids_the_battle_and_offers_a_new_round(live_server, page, shot, openai_server):
    openai_server.script("fine-model", text="A perfectly fine answer.", chunk_size=4, delay_s=0.01)
    openai_server.script("broken-model", status=500)
    contenders = [live_contender(openai_server, "quokka-7b", "Quokka Research", "fine-model"),
                  live_contender(openai_server, "wombat-13b", "Wombat Systems", "broken-model")]
    ask(page, live_server, "Say something nice.")
    alert = page.get_by_role("alert").filter(has_text=VOID)
    expect(alert).to_be_visible()
    shot(page, "01-void")
    expect(alert.get_by_role("link", name="New round")).to_be_visible()
    expect(alert).to_contain_text("One of the models could not answer")
    for name in ("A is better", "B is better", "Tie", "Both are bad"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)  # hidden or gone: not offered
    expect(page.get_by_role("button", name="Send follow-up")).to_have_count(0)
    assert_anonymous(page.content(), contenders, "the void battle's page")  # a void battle names nobody
    battle = battle_of(page)
    assert battle.status == "void" and battle.generation == "failed"
    assert not Vote.objects.exists()

    page.reload()  # the page as rendered by the server says the same
    expect(page.get_by_role("alert").filter(has_text=VOID)).to_be_visible()
    expect(page.get_by_role("button", name="A is better")).to_have_count(0)
    shot(page, "02-void-reloaded")
    page.get_by_role("link", name="New round").click()
    page.wait_for_url(live_server.url + "/")


# --- 5. the rate limit, said plainly ---------------------------------------------------------------------------

def test_a_rate_limited_visitor_is_told_so_on_the_home_page(live_server, page, shot, openai_server, settings):
    # Per hour, not per minute: three requests must not straddle the window's end (fixed windows).
    settings.ARENA_BATTLE_RATE_LIMIT = "2/hour"
    live_contender(openai_server, "quokka-7b", "Quokka Research", "echo-a")
    live_contender(openai_server, "wombat-13b", "Wombat Systems", "echo-b")
    for n in (1, 2):
        ask(page, live_server, f"Question number {n}.")
        wait_complete(page)
    page.goto(live_server.url + "/")
    page.get_by_label("Your prompt").fill("Question number 3.")
    page.get_by_role("button", name="Ask the models").click()
    error = page.locator("#new-battle-error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("role", "alert")
    expect(error).to_contain_text("Too many new battles")
    shot(page, "01-rate-limited")
    assert page.url == live_server.url + "/"  # no navigation
    expect(page.get_by_label("Your prompt")).to_have_value("Question number 3.")  # the prompt is kept
    expect(page.get_by_role("button", name="Ask the models")).to_be_enabled()
    assert Battle.objects.count() == 2


# --- 6. votes reach the leaderboard ---------------------------------------------------------------------------

def test_the_leaderboard_shows_the_new_votes_after_a_refit(live_server, page, shot, openai_server):
    contenders = [live_contender(openai_server, "quokka-7b", "Quokka Research", "echo-a"),
                  live_contender(openai_server, "wombat-13b", "Wombat Systems", "echo-b")]
    for n, button in enumerate(["A is better", "B is better", "A is better"]):
        ask(page, live_server, f"Leaderboard question {n}.")
        wait_complete(page)
        page.get_by_role("button", name=button).click()
        expect(page.locator("#your-vote")).to_be_visible()
    assert Vote.objects.count() == 3

    call_command("refit_leaderboard", "--method", "bayes", stdout=StringIO())
    page.goto(live_server.url + "/leaderboard?method=bayes")
    shot(page, "01-leaderboard")
    expect(page.locator("table.leaderboard tbody tr")).to_have_count(2)
    expect(page.locator(".provenance")).to_contain_text("3 votes")
    for contender in contenders:
        row = page.locator("table.leaderboard tbody tr").filter(has_text=contender.name)
        expect(row).to_contain_text(contender.organization)
        expect(row.locator("td.num").nth(-2)).to_have_text("3")  # the Votes column: in all three battles
        expect(row.locator("td.num").nth(-1)).to_have_text("100 %")  # and in all recent battles



# --- 7. on a phone ------------------------------------------------------------------------------------------------

def assert_no_horizontal_scroll(page) -> None:  # type: ignore[no-untyped-def]
    width = page.viewport_size["width"]
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"the page is {scroll} px wide on a {width} px screen"


def test_on_a_phone_the_answers_stack_and_the_vote_buttons_fit(live_server, phone_page, shot, openai_server):
    page = phone_page
    openai_server.script("phone-a", text="Short answer: yes, and here is a reason why it holds. " * 3)
    openai_server.script("phone-b", text="A longer answer with a list:\n\n- one point\n- another point\n\n"
                                         "`some_inline_code_that_is_rather_long_and_unbroken()`")
    live_contender(openai_server, "quokka-7b", "Quokka Research", "phone-a")
    live_contender(openai_server, "wombat-13b", "Wombat Systems", "phone-b")

    page.goto(live_server.url + "/")
    shot(page, "01-home")
    assert_no_horizontal_scroll(page)
    ask(page, live_server, "Is this readable on a phone?")
    wait_complete(page)
    shot(page, "02-battle")
    first, second = (page.locator(f"#response-{i}").locator("xpath=..").bounding_box() for i in range(2))
    assert second["y"] >= first["y"] + first["height"], (first, second)  # below, not beside
    assert abs(second["x"] - first["x"]) < 1
    assert_no_horizontal_scroll(page)
    for name in ("A is better", "B is better", "Tie", "Both are bad"):
        box = page.get_by_role("button", name=name).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= page.viewport_size["width"], (name, box)
    page.get_by_role("button", name="B is better").tap()
    expect(page.locator("#your-vote")).to_be_visible()
    shot(page, "03-revealed")
    assert_no_horizontal_scroll(page)


# --- 8. only prepared prompts: said up front, explained inline ---------------------------------------------------

def test_with_only_pool_models_a_typed_prompt_is_explained_and_surprise_me_works(live_server, page, shot):
    call_command("seed_demo", stdout=StringIO())
    imported = Battle.objects.count()  # the demo's GenAI-Arena battles
    page.goto(live_server.url + "/")
    note = page.locator("#pool-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("answer only prepared prompts")
    page.get_by_label("Your prompt").fill("What is the capital of Australia?")
    page.get_by_role("button", name="Ask the models").click()
    error = page.locator("#new-battle-error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("role", "alert")
    expect(error).to_contain_text("answer only prepared prompts")
    expect(error).to_contain_text("Surprise me")
    shot(page, "01-typed-prompt-explained")
    assert page.url == live_server.url + "/"
    expect(page.get_by_role("heading", name="Model arena")).to_be_visible()  # the home page, not an error page
    assert Battle.objects.count() == imported

    page.get_by_role("button", name="Surprise me (a prepared prompt)").click()
    page.wait_for_url(BATTLE_URL)
    wait_complete(page)
    shot(page, "02-surprise-battle")
    battle = battle_of(page)
    assert battle.prompt_source == "sampled" and battle.generation == "done"
    expect(page.locator(".prompt")).to_contain_text(battle.prompt.text)
    assert all(page.locator(f"#response-{i}").inner_text().strip() for i in range(2))
