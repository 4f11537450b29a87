"""python manage.py load_contenders contenders.toml -- create or update contenders and their response sources."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from arena.sources.services import SpecsInvalid, contenders_load


class Command(BaseCommand):
    help = ("Create or update contenders by name from the [[contender]] tables of a TOML file "
            "(see arena/demo/contenders.example.toml). All or nothing.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        try:
            with file.open("rb") as handle:
                document = tomllib.load(handle)
        except FileNotFoundError:
            raise CommandError(f"{file}: no such file") from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CommandError(f"{file}: cannot read ({exc}); nothing was loaded") from None
        unknown = sorted(set(document) - {"contender"})
        if unknown:
            raise CommandError(f"{file}: unknown top-level key(s) {', '.join(unknown)}; expected [[contender]] "
                               f"tables; nothing was loaded")
        tables = document.get("contender", [])
        if not isinstance(tables, list):
            raise CommandError(f"{file}: 'contender' must be an array of tables ([[contender]]); nothing was loaded")
        try:
            report = contenders_load(specs=tables)
        except SpecsInvalid as exc:
            raise CommandError(f"{file}: {exc.message}\nnothing was loaded") from None
        for label, names in (("created", report.created), ("updated", report.updated),
                             ("unchanged", report.unchanged)):
            for name in names:
                self.stdout.write(f"{label}: {name}")
        self.stdout.write(f"{len(report.created)} created, {len(report.updated)} updated, "
                          f"{len(report.unchanged)} unchanged")
