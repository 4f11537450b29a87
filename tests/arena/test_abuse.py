"""Abuse protection: rate limits (429 + Retry-After), client addresses behind proxies, CSRF for cookie
voters, the CAPTCHA hook, expiry and stalled generation. Through the API as a client would."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import RequestFactory
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from arena.identity import client_ip
from arena.models import Battle, Contender, PoolResponse, Vote
from arena.ratelimit import _hit
from tests.support.arena_data import pool_contenders

pytestmark = pytest.mark.django_db


# Limits in these tests are per hour: counting windows are fixed, and a per-minute window could end
# between two requests of a test and let the third one through.


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def pool(db) -> list[Contender]:
    """Two pool contenders that answered five prompts: enough for five sampled battles per voter."""
    return pool_contenders(5)


def accept_good_tokens(request, token: str) -> bool:
    return token == "good"


def test_votes_past_the_limit_get_429_with_retry_after_and_nothing_is_stored(settings, voter_api, make_battle):
    settings.ARENA_VOTE_RATE_LIMIT = "2/hour"
    battles = [make_battle(voter_api) for _ in range(3)]
    for battle in battles[:2]:
        assert voter_api.post(f"/api/v1/battles/{battle.id}/vote", {"outcome": "a"}, format="json").status_code == 201
    refused = voter_api.post(f"/api/v1/battles/{battles[2].id}/vote", {"outcome": "a"}, format="json")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited" and "Too many votes" in refused.json()["error"]["message"]
    # Retry-After is the time left in the hour's counting window (fixed windows start on the hour).
    assert abs(int(refused["Retry-After"]) - (3600 - int(time.time()) % 3600)) <= 2
    assert Vote.objects.count() == 2 and Battle.objects.get(id=battles[2].id).status == "open"


def test_opening_battles_is_limited_per_voter(settings, pool):
    settings.ARENA_BATTLE_RATE_LIMIT = "3/hour"
    visitor = APIClient()
    codes = [visitor.post("/api/v1/battles", {"k": 2}, format="json").status_code for _ in range(4)]
    assert codes == [201, 201, 201, 429]
    assert Battle.objects.count() == 3


def test_opening_battles_is_limited_per_address_across_cookies(settings, pool):
    # A bot that drops its cookie every time is still one address.
    settings.ARENA_BATTLE_IP_RATE_LIMIT = "4/hour"
    codes = [APIClient().post("/api/v1/battles", {"k": 2}, format="json", REMOTE_ADDR="203.0.113.9").status_code
             for _ in range(5)]
    assert codes == [201, 201, 201, 201, 429]
    other_address = APIClient().post("/api/v1/battles", {"k": 2}, format="json", REMOTE_ADDR="203.0.113.10")
    assert other_address.status_code == 201


def test_a_rate_limited_visitor_of_the_page_sees_a_message(settings, pool, client):
    settings.ARENA_BATTLE_RATE_LIMIT = "1/hour"
    assert client.post("/battles/new", {"k": "2", "action": "sample"}).status_code == 302
    page = client.post("/battles/new", {"k": "2", "action": "sample"})
    assert page.status_code == 429 and page["Retry-After"]
    assert "Too many new battles" in page.content.decode()


@pytest.mark.parametrize(("trusted", "forwarded", "remote", "expected"), [
    (0, "198.51.100.7", "10.0.0.2", "10.0.0.2"),                    # no proxy trusted: the header is ignored
    (1, "198.51.100.7", "10.0.0.2", "198.51.100.7"),                # one proxy: the address it saw
    (1, "6.6.6.6, 198.51.100.7", "10.0.0.2", "198.51.100.7"),       # a forged entry left of it is ignored
    (2, "6.6.6.6, 198.51.100.7, 10.0.0.3", "10.0.0.2", "198.51.100.7"),
    (2, "198.51.100.7", "10.0.0.2", "10.0.0.2"),                    # fewer entries than proxies: bypassed them
    (1, "", "10.0.0.2", "10.0.0.2"),                                # no header: the socket
])
def test_the_client_address_trusts_only_the_configured_proxies(settings, trusted, forwarded, remote, expected):
    settings.ARENA_TRUSTED_PROXIES = trusted
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


def test_forged_forwarded_for_headers_do_not_escape_the_address_limit(settings, pool):
    settings.ARENA_TRUSTED_PROXIES = 1
    settings.ARENA_BATTLE_IP_RATE_LIMIT = "2/hour"
    codes = [APIClient().post("/api/v1/battles", {"k": 2}, format="json", REMOTE_ADDR="10.0.0.2",
                              HTTP_X_FORWARDED_FOR=f"7.7.7.{i}, 198.51.100.7").status_code for i in range(3)]
    assert codes == [201, 201, 429]


def test_the_counter_is_atomic_under_concurrent_requests():
    # 8 threads x 25 hits against a limit of 100: exactly 100 are let through (on Redis, across processes too).
    allowed = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            ok = _hit("test:atomic", limit=100, window=3600, now=1_000_000.0) is None
            with lock:
                allowed.append(ok)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 100 and len(allowed) == 200


def test_a_cookie_voter_needs_the_csrf_token_to_write(pool):
    browser = APIClient(enforce_csrf_checks=True)
    home = browser.get("/")
    token = home.cookies["csrftoken"].value
    refused = browser.post("/api/v1/battles", {"k": 2}, format="json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
    assert not Battle.objects.exists()
    opened = browser.post("/api/v1/battles", {"k": 2}, format="json", HTTP_X_CSRFTOKEN=token)
    assert opened.status_code == 201
    battle_id = opened.json()["id"]
    no_token_vote = browser.post(f"/api/v1/battles/{battle_id}/vote", {"outcome": "a"}, format="json")
    assert no_token_vote.status_code == 403 and not Vote.objects.exists()
    vote = browser.post(f"/api/v1/battles/{battle_id}/vote", {"outcome": "a"}, format="json",
                        HTTP_X_CSRFTOKEN=token)
    assert vote.status_code == 201


def test_a_token_client_needs_no_csrf(pool, django_user_model):
    user = django_user_model.objects.create_user(username="script", password="pw")
    token = Token.objects.create(user=user)
    script = APIClient(enforce_csrf_checks=True)
    script.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    opened = script.post("/api/v1/battles", {"k": 2}, format="json")
    assert opened.status_code == 201
    assert Battle.objects.get(id=opened.json()["id"]).voter.key == f"user:{user.pk}"
    assert script.post(f"/api/v1/battles/{opened.json()['id']}/vote", {"outcome": "tie"},
                       format="json").status_code == 201


def test_the_captcha_hook_is_off_by_default_and_enforced_when_set(settings, pool):
    assert APIClient().post("/api/v1/battles", {"k": 2}, format="json").status_code == 201
    settings.ARENA_CAPTCHA_VERIFIER = "tests.arena.test_abuse.accept_good_tokens"
    missing = APIClient().post("/api/v1/battles", {"k": 2}, format="json")
    wrong = APIClient().post("/api/v1/battles", {"k": 2, "captcha": "bad"}, format="json")
    assert missing.status_code == wrong.status_code == 403
    assert missing.json()["error"]["code"] == "captcha_failed" and "captcha" in missing.json()["error"]["fields"]
    assert APIClient().post("/api/v1/battles", {"k": 2, "captcha": "good"}, format="json").status_code == 201
    assert APIClient().post("/api/v1/battles", {"k": 2}, format="json",
                            HTTP_X_CAPTCHA_TOKEN="good").status_code == 201
    assert Battle.objects.count() == 3


def test_an_expired_battle_takes_no_vote(settings, voter_api, make_battle):
    battle = make_battle(voter_api)
    Battle.objects.filter(id=battle.id).update(created=timezone.now() - timedelta(
        minutes=settings.ARENA_BATTLE_TTL_MINUTES + 1))
    response = voter_api.post(f"/api/v1/battles/{battle.id}/vote", {"outcome": "a"}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "battle_expired"
    assert not Vote.objects.exists()


def test_a_generation_that_outlived_its_timeout_voids_the_battle_on_read(settings, voter_api, make_battle):
    # The web process running it died: nothing will ever finish the turn.
    battle = make_battle(voter_api)
    Battle.objects.filter(id=battle.id).update(
        generation="running",
        generation_started=timezone.now() - timedelta(seconds=settings.ARENA_GENERATION_TIMEOUT_S + 60))
    detail = voter_api.get(f"/api/v1/battles/{battle.id}").json()
    assert detail["status"] == "void" and detail["generation"] == "failed"
    assert "not completed in time" in detail["void_reason"]


def test_a_long_prompt_is_refused_naming_the_field(settings, voter_api):
    settings.ARENA_PROMPT_MAX_CHARS = 10
    response = voter_api.post("/api/v1/battles", {"prompt": "x" * 11, "k": 2}, format="json")
    assert response.status_code == 400 and "prompt" in response.json()["error"]["fields"]


def test_model_markup_is_rendered_as_markdown_and_never_as_html(staff_api, contenders):
    body = {"prompt": "Show a table", "slots": [
        {"contender": "alpha-7b", "response": "| a | b |\n|---|---|\n| 1 | 2 |\n\n<script>alert('x')</script>"},
        {"contender": "beta-13b", "response": "[click](javascript:alert(1)) <img src=x onerror=alert(1)> `code`"},
    ]}
    battle_id = staff_api.post("/api/v1/battles", body, format="json").json()["id"]
    page = staff_api.get(f"/battles/{battle_id}").content.decode()
    assert "<table>" in page and "<code>code</code>" in page
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert 'href="javascript:' not in page
    assert "<img" not in page


def test_a_nul_character_in_a_prompt_is_refused_not_a_500(client, voter_api, pool):
    page = client.post("/battles/new", {"k": "2", "action": "ask", "prompt": "hello\x00there"})
    assert page.status_code == 400 and "NUL" in page.content.decode()
    api = voter_api.post("/api/v1/battles", {"prompt": "hello\x00there", "k": 2}, format="json")
    assert api.status_code == 400 and "prompt" in api.json()["error"]["fields"]
    assert not Battle.objects.exists()


def test_pooled_answers_of_a_contender_without_a_pool_source_are_never_drawn(pool):
    # import_responses accepts answers for any contender; only pool contenders serve them.
    silent = Contender.objects.create(name="imported-only", source_kind="none")
    for response in PoolResponse.objects.filter(contender=pool[0]):
        PoolResponse.objects.create(contender=silent, prompt=response.prompt, text="never shown")
    for _ in range(5):
        battle_id = APIClient().post("/api/v1/battles", {"k": 2}, format="json").json()["id"]
        assert set(Battle.objects.get(id=battle_id).slots.values_list("contender__name", flat=True)) == {
            "pool-a", "pool-b"}


def test_the_address_limit_counts_an_ipv6_subscriber_by_its_64(settings, pool):
    settings.ARENA_BATTLE_IP_RATE_LIMIT = "2/hour"
    codes = [APIClient().post("/api/v1/battles", {"k": 2}, format="json",
                              REMOTE_ADDR=f"2001:db8:1:2::{i:x}").status_code for i in range(3)]
    assert codes == [201, 201, 429]
    elsewhere = APIClient().post("/api/v1/battles", {"k": 2}, format="json", REMOTE_ADDR="2001:db8:1:3::1")
    assert elsewhere.status_code == 201


def test_voters_of_one_ipv6_64_share_their_address_hash_and_no_address_is_stored(pool):
    """The anomalous-voter test groups voters by ``ip_hash``: a subscriber rotating through its /64 stays one place."""
    from arena.models import Voter

    for address in ("2001:db8:1:2::1", "2001:db8:1:2::ff", "2001:db8:1:3::1", "198.51.100.7", "198.51.100.8"):
        assert APIClient().post("/api/v1/battles", {"k": 2}, format="json", REMOTE_ADDR=address).status_code == 201
    hashes = list(Voter.objects.order_by("id").values_list("ip_hash", flat=True))
    assert hashes[0] == hashes[1] and len(set(hashes)) == 4
    assert all(len(h) == 64 and "2001" not in h and "198.51" not in h for h in hashes)
