"""Matchmaking against the database and the cache: health, activity, vote counts, settings, snapshots."""
from __future__ import annotations

import itertools
import time
from io import StringIO

import numpy as np
import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from arena.matchmaking import POLICIES, ContenderStats
from arena.matchmaking.health import source_failing, source_failure_record, source_success_record
from arena.matchmaking.selectors import contender_stats
from arena.matchmaking.services import contenders_choose
from arena.models import Battle, Contender
from arena.services import SlotInput, battle_create, vote_record, voter_get_or_create
from arena.verdicts import VoteChoice
from config.errors import ValidationFailed
from leaderboard.models import Snapshot

pytestmark = pytest.mark.django_db
LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "matchmaking-tests"}}
_keys = itertools.count()


@pytest.fixture(autouse=True)
def empty_cache():
    """Source health lives in the cache: no test may see another's failures."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(params=["configured", "locmem"])
def any_cache(request, settings):
    """The configured cache (Redis when REDIS_URL is set) and the local-memory one of the demo."""
    if request.param == "locmem":
        settings.CACHES = LOCMEM
        cache.clear()
    return request.param


def battle_between(*contenders: Contender, outcome: str | None = "a") -> Battle:
    """A battle of the given contenders, voted with ``outcome`` (pairwise) or left open when None."""
    voter = voter_get_or_create(key=f"anon:mm-{next(_keys)}")
    slots = [SlotInput(contender=c.name, response=f"answer {i}") for i, c in enumerate(contenders)]
    battle = battle_create(voter=voter, prompt_text=f"Prompt {next(_keys)}", slots=slots)
    if outcome is not None:
        vote_record(battle_id=battle.id, voter=voter, choice=VoteChoice("pairwise", outcome=outcome),
                    idempotency_key=f"key-{next(_keys)}")
    return battle


def chosen_sets(candidates, k: int, n: int = 40, **kwargs) -> list[frozenset[str]]:
    rng = np.random.default_rng(2024)
    return [frozenset(c.name for c in contenders_choose(candidates=candidates, k=k, rng=rng, **kwargs))
            for _ in range(n)]


def names(contenders) -> frozenset[str]:
    return frozenset(c.name for c in contenders)


# --- availability ---------------------------------------------------------------------------------------

def test_a_failing_source_is_left_out_until_it_succeeds(contenders, settings, any_cache):
    settings.ARENA_SOURCE_FAILURE_LIMIT = 2
    trio = contenders[:3]
    failing = trio[0]
    assert source_failure_record(failing.id) == 1
    assert source_failing([c.id for c in trio]) == set()  # one failure is not a failing source
    assert set(itertools.chain.from_iterable(chosen_sets(trio, k=2))) >= names(trio)

    assert source_failure_record(failing.id) == 2
    assert source_failing([c.id for c in trio]) == {failing.id}
    assert not contender_stats(candidates=trio).available[0]
    assert set(chosen_sets(trio, k=2)) == {names(trio[1:])}
    with pytest.raises(ValidationFailed):
        contenders_choose(candidates=trio, k=3)

    source_success_record(failing.id)
    assert source_failing([c.id for c in trio]) == set()
    assert names(contenders_choose(candidates=trio, k=3)) == names(trio)
    assert source_failure_record(failing.id) == 1  # the success reset the run of failures


def test_the_failure_count_expires_after_the_cooldown(contenders, settings, any_cache):
    settings.ARENA_SOURCE_COOLDOWN_S = 1
    failing = contenders[0]
    assert [source_failure_record(failing.id) for _ in range(3)] == [1, 2, 3]  # default limit: 3
    assert source_failing([failing.id, contenders[1].id]) == {failing.id}
    time.sleep(1.2)
    assert source_failing([failing.id]) == set()  # a server that came back gets tried again
    assert source_failure_record(failing.id) == 1


def test_health_reads_the_cache_once_per_call(contenders, django_assert_num_queries, monkeypatch):
    calls = []
    real_get_many = cache.get_many
    monkeypatch.setattr(cache, "get_many", lambda keys: calls.append(keys) or real_get_many(keys))
    with django_assert_num_queries(0):
        source_failing([c.id for c in contenders])
    assert len(calls) == 1 and len(calls[0]) == len(contenders)


def test_inactive_contenders_are_left_out(contenders):
    trio = contenders[:3]
    Contender.objects.filter(id=trio[2].id).update(active=False)
    trio = list(Contender.objects.filter(id__in=[c.id for c in trio]).order_by("id"))
    assert contender_stats(candidates=trio).available.tolist() == [True, True, False]
    assert set(chosen_sets(trio, k=2)) == {names(trio[:2])}


# --- vote counts and the new-contender boost -------------------------------------------------------------

def test_vote_counts_come_from_voted_battles_in_one_query(contenders, django_assert_num_queries):
    a, b, c, d = contenders[:4]
    battle_between(a, b)
    battle_between(a, b, outcome="tie")
    battle_between(b, c, outcome="both_bad")
    battle_between(d, a, outcome=None)  # open: not a vote yet
    with django_assert_num_queries(1):
        stats = contender_stats(candidates=[a, b, c, d])
    assert isinstance(stats, ContenderStats)
    assert stats.votes.tolist() == [2, 3, 1, 0]
    assert stats.weight.tolist() == [1.0, 1.0, 1.0, 1.0]
    assert np.isnan(stats.rating).all()  # no snapshot asked for, none read


def test_vote_counts_are_shared_through_the_cache_for_seconds(contenders, django_assert_num_queries):
    from arena.matchmaking.selectors import VOTE_COUNTS_CACHE_KEY

    a, b = contenders[:2]
    battle_between(a, b)
    assert contender_stats(candidates=[a, b]).votes.tolist() == [1, 1]
    battle_between(a, b)
    with django_assert_num_queries(0):  # within the time-to-live: the cached counts, no query
        assert contender_stats(candidates=[a, b]).votes.tolist() == [1, 1]
    cache.delete(VOTE_COUNTS_CACHE_KEY)  # what expiry does
    with django_assert_num_queries(1):
        assert contender_stats(candidates=[b, a]).votes.tolist() == [2, 2]


def test_vote_counts_from_the_database_drive_the_new_contender_boost(contenders, settings):
    a, b, c, d = contenders[:4]
    battle_between(a, b)
    battle_between(a, b)
    battle_between(b, c)
    # votes: a 2, b 3, c 1, d 0. Contenders under 2 votes (c, d) are new and weigh 1000 times more.
    settings.ARENA_MATCHMAKING_NEW_UNTIL_VOTES = 2
    settings.ARENA_MATCHMAKING_NEW_BOOST = 1000.0
    boosted = chosen_sets([a, b, c, d], k=2)
    assert boosted.count(names([c, d])) >= 38
    settings.ARENA_MATCHMAKING_NEW_UNTIL_VOTES = 0  # nobody is new
    plain = chosen_sets([a, b, c, d], k=2)
    assert plain.count(names([c, d])) <= 15 and len(set(plain)) >= 4


# --- the policy from the settings ---------------------------------------------------------------------------

def test_settings_select_the_policy(contenders, settings):
    trio = contenders[:3]
    Contender.objects.filter(id=trio[0].id).update(sampling_weight=0.0)
    trio = list(Contender.objects.filter(id__in=[c.id for c in trio]).order_by("id"))

    settings.ARENA_MATCHMAKING_POLICY = "weighted"
    assert set(chosen_sets(trio, k=2)) == {names(trio[1:])}  # weight 0: never chosen
    settings.ARENA_MATCHMAKING_POLICY = "random"
    assert any(trio[0].name in s for s in chosen_sets(trio, k=2))  # random ignores weights
    # A caller's explicit policy wins over the setting.
    assert set(chosen_sets(trio, k=2, policy="weighted")) == {names(trio[1:])}


def test_an_unknown_policy_is_refused(contenders, settings):
    with pytest.raises(ValidationFailed) as error:
        contenders_choose(candidates=contenders, k=2, policy="clairvoyant")
    assert error.value.field == "policy"
    settings.ARENA_MATCHMAKING_POLICY = "clairvoyant"
    with pytest.raises(ImproperlyConfigured, match="clairvoyant"):
        contenders_choose(candidates=contenders, k=2)
    settings.ARENA_MATCHMAKING_POLICY = "weighted"
    settings.ARENA_MATCHMAKING_NEW_BOOST = -1.0
    with pytest.raises(ImproperlyConfigured, match="new_boost"):
        contenders_choose(candidates=contenders, k=2)


def test_not_enough_contenders_is_a_validation_error_on_k(contenders):
    Contender.objects.filter(id=contenders[0].id).update(active=False)
    trio = list(Contender.objects.filter(id__in=[c.id for c in contenders[:3]]))
    with pytest.raises(ValidationFailed) as error:
        contenders_choose(candidates=trio, k=3)
    assert error.value.field == "k" and error.value.code == "not_enough_contenders"
    assert error.value.message == "only 2 models can answer this prompt right now; choose k ≤ 2"
    assert error.value.as_body()["error"]["fields"] == {"k": [error.value.message]}
    with pytest.raises(ValidationFailed, match="no model can answer") as error:
        contenders_choose(candidates=[], k=2)
    assert error.value.code == "not_enough_contenders"


@pytest.mark.parametrize("k", [1, 7])
def test_k_outside_the_battle_sizes_is_refused(contenders, k):
    with pytest.raises(ValidationFailed) as error:
        contenders_choose(candidates=contenders, k=k)
    assert error.value.field == "k"


def test_a_candidate_listed_twice_is_a_programming_error(contenders):
    with pytest.raises(ValueError, match="once"):
        contenders_choose(candidates=[contenders[0], contenders[0], contenders[1]], k=2)


def test_contenders_come_back_in_an_unpredictable_slot_order(contenders):
    """Without an rng the draw is seeded from the OS: both orders of a pair turn up."""
    pair = contenders[:2]
    orders = {tuple(c.name for c in contenders_choose(candidates=pair, k=2)) for _ in range(60)}
    assert orders == {(pair[0].name, pair[1].name), (pair[1].name, pair[0].name)}


def test_a_seeded_choice_is_reproducible(contenders):
    first = contenders_choose(candidates=contenders, k=4, rng=np.random.default_rng(9))
    second = contenders_choose(candidates=contenders, k=4, rng=np.random.default_rng(9))
    assert first == second and len(set(first)) == 4


# --- the leaderboard snapshot --------------------------------------------------------------------------------

@pytest.fixture
def snapshot(contenders) -> Snapshot:
    """The default leaderboard fitted on a few votes among the first three contenders."""
    a, b, c = contenders[:3]
    # Mixed outcomes in every pair: the fit and its bootstrap intervals stay finite.
    for pair, outcome in itertools.product(((a, b), (b, c), (a, c)), ["a", "b", "tie"] * 2 + ["a"]):
        battle_between(*pair, outcome=outcome)
    call_command("refit_leaderboard", stdout=StringIO())
    return Snapshot.objects.get()


def test_snapshot_ratings_are_read_when_asked_for(contenders, snapshot):
    candidates = contenders[:4]  # the fourth has no votes, so no row
    rows = {r.contender_id: r for r in snapshot.rows.all()}
    stats = contender_stats(candidates=candidates, with_snapshot=True)
    for i, contender in enumerate(candidates[:3]):
        row = rows[contender.id]
        assert None not in (row.ci_low, row.ci_high)
        assert stats.rating[i] == pytest.approx(row.rating)
        assert stats.ci_low[i] == pytest.approx(row.ci_low) and stats.ci_high[i] == pytest.approx(row.ci_high)
    assert np.isnan([stats.rating[3], stats.ci_low[3], stats.ci_high[3]]).all()
    assert np.isnan(contender_stats(candidates=candidates).rating).all()


def test_without_a_snapshot_ratings_are_unknown(contenders):
    stats = contender_stats(candidates=contenders[:3], with_snapshot=True)
    assert np.isnan(stats.rating).all() and np.isnan(stats.ci_low).all() and np.isnan(stats.ci_high).all()


def test_a_policy_that_uses_ratings_gets_the_snapshot(contenders, snapshot, settings, monkeypatch):
    """The interface a later, uncertainty-driven policy needs: the service fills ratings when it asks."""
    seen: list[ContenderStats] = []

    class TopRatedPolicy:
        name = "top-rated"
        uses_ratings = True

        def choose(self, stats: ContenderStats, k: int, rng: np.random.Generator) -> np.ndarray:
            seen.append(stats)
            order = np.argsort(-np.nan_to_num(stats.rating, nan=-np.inf), kind="stable")
            return rng.permutation(order[:k])

    monkeypatch.setitem(POLICIES, "top-rated", TopRatedPolicy)
    settings.ARENA_MATCHMAKING_POLICY = "top-rated"
    chosen = contenders_choose(candidates=contenders[:4], k=2, rng=np.random.default_rng(0))
    top_two = snapshot.rows.order_by("-rating").values_list("contender__name", flat=True)[:2]
    assert names(chosen) == frozenset(top_two)
    assert np.isfinite(seen[0].rating[:3]).all() and np.isnan(seen[0].rating[3])


def test_the_active_policy_is_chosen_by_settings_with_its_minimum_share(settings):
    from arena.matchmaking.policies import ActivePolicy
    from arena.matchmaking.services import matchmaking_policy

    settings.ARENA_MATCHMAKING_POLICY = "active"
    settings.ARENA_MATCHMAKING_MIN_SHARE = 0.25
    policy = matchmaking_policy()
    assert isinstance(policy, ActivePolicy) and policy.uses_ratings and policy.min_share == 0.25
