from __future__ import annotations

from django.apps import AppConfig


class LeaderboardConfig(AppConfig):
    name = "leaderboard"

    def ready(self) -> None:
        # The leaderboard reads the arena; the arena reaches the leaderboard only through these hooks.
        from arena.hooks import after_vote_subscribe, contender_ratings_provide

        from .providers import latest_default_ratings
        from .tasks import leaderboard_refit_soon

        after_vote_subscribe(leaderboard_refit_soon)
        contender_ratings_provide(latest_default_ratings)
