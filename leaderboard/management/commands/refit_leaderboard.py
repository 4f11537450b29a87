"""python manage.py refit_leaderboard [--method bt] [--ties half] ... : fit and store a snapshot."""
from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.errors import ApplicationError
from leaderboard.config import DEFAULT_CONFIGS, LeaderboardConfig
from leaderboard.services import leaderboard_refit


class Command(BaseCommand):
    help = "Fit a leaderboard from the votes in the database and store it as a snapshot."
    # A refit is run from cron and the task loop many times a day; Django's system checks (URLs, admin,
    # models) cost ~0.2 s of each run and belong to deploys and `manage.py check`, which CI runs.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        for f in fields(LeaderboardConfig):
            flag = "--" + f.name.replace("_", "-")
            if f.type == "bool":  # --exclude-flagged / --no-exclude-flagged; unset keeps the default
                parser.add_argument(flag, action=argparse.BooleanOptionalAction, dest=f.name, default=None)
            else:
                parser.add_argument(flag, dest=f.name, type=int if f.type == "int" else str, default=None)
        parser.add_argument("--defaults", action="store_true", help="refit every default leaderboard of the page")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            configs = list(DEFAULT_CONFIGS) if options["defaults"] else [LeaderboardConfig.from_query(
                {f.name: options[f.name] for f in fields(LeaderboardConfig)
                 if options[f.name] is not None})]
            for config in configs:
                snapshot = leaderboard_refit(config=config)
                top = snapshot.rows.select_related("contender").order_by("rank").first()
                self.stdout.write(
                    f"snapshot {snapshot.id}: {config.method}, {snapshot.n_votes} votes, "
                    f"{snapshot.rows.count()} models, {snapshot.duration_ms} ms; top: "
                    f"{top.contender.name if top else '-'}"
                )
        except ApplicationError as exc:
            raise CommandError(f"{exc.field + ': ' if exc.field else ''}{exc.message}") from None
