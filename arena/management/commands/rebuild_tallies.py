"""python manage.py rebuild_tallies [--check]"""
from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from arena.tallies import tallies_rebuild, tally_snapshot


class _Rollback(Exception):
    pass


class Command(BaseCommand):
    help = ("Recompute the vote tallies that leaderboard refits read (arena.tallies) from the votes themselves. "
            "Votes stored meanwhile wait for it (Postgres) and are counted once. With --check: compare the "
            "current tallies with a rebuild, change nothing, and exit with status 1 if they differ.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true", help="compare with a rebuild; write nothing")

    def handle(self, *args: Any, check: bool = False, **options: Any) -> None:
        started = time.perf_counter()
        differences: list[str] = []
        try:
            with transaction.atomic():
                before = tally_snapshot() if check else None
                report = tallies_rebuild()
                if before is not None:
                    after = tally_snapshot()
                    differences = [f"{name}: {_describe_difference(before[name], after[name])}"
                                   for name in after if before[name] != after[name]]
                    raise _Rollback
        except _Rollback:
            pass
        seconds = time.perf_counter() - started
        if differences:
            raise CommandError("the tallies differ from the votes (run rebuild_tallies without --check to fix):\n  "
                               + "\n  ".join(differences))
        verb = "match the votes" if check else "rebuilt"
        self.stdout.write(f"tallies {verb}: {report.votes:,} votes, {report.pair_rows:,} pairwise and "
                          f"{report.ranking_rows:,} ranking rows per day ({seconds:.1f} s)")


def _describe_difference(stored: dict[tuple[Any, ...], int], rebuilt: dict[tuple[Any, ...], int]) -> str:
    keys = stored.keys() | rebuilt.keys()
    wrong = [k for k in keys if stored.get(k, 0) != rebuilt.get(k, 0)]
    example = wrong[0]
    return (f"{len(wrong):,} keys differ, e.g. {example}: stored {stored.get(example, 0)}, "
            f"from the votes {rebuilt.get(example, 0)}")
