from __future__ import annotations

from django.apps import AppConfig


class TrainerConfig(AppConfig):
    name = "trainer"

    def ready(self) -> None:
        # After a vote the training trigger may fire; the arena calls it through its hooks, not by import.
        from arena.hooks import after_vote_subscribe

        from .tasks import training_trigger_soon

        after_vote_subscribe(training_trigger_soon)
