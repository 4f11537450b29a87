"""Background refits: after votes, debounced, and for stale custom leaderboards served meanwhile."""
from __future__ import annotations

import pytest
from django.test import override_settings

from leaderboard.config import LeaderboardConfig
from leaderboard.services import leaderboard_is_stale, refit_stale_leaderboards
from tests.leaderboard.conftest import vote_many

pytestmark = pytest.mark.django_db


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


@override_settings(LEADERBOARD_REFIT_VOTES=2)
def test_a_stale_custom_leaderboard_is_served_and_refitted_in_the_background(client, voter_api, make_battle):
    from django.core.cache import cache
    from django_tasks_db.models import DBTaskResult

    cache.clear()
    vote_many(voter_api, make_battle, [{"outcome": "tie"}] * 2)
    first = client.get("/api/v1/leaderboard", {"category": "poetry"}).json()
    vote_many(voter_api, make_battle, [{"outcome": "tie"}] * 2)
    for _ in range(5):  # many readers of the stale leaderboard: one refit enqueued, not five
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
