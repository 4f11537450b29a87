"""python manage.py import_battles FILE [--format fastchat|lmarena|jsonl|csv]"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from arena.transfer.formats import FORMATS, RowError, read_records
from arena.transfer.importer import ImportConflict, battles_import


class Command(BaseCommand):
    help = "Import voted battles from a file. All or nothing; importing the same file twice adds nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", choices=FORMATS, default=None,
                            help="fastchat (clean_battle JSON list), lmarena (LMArena's releases: .json, .jsonl, "
                                 ".jsonl.gz, .parquet), jsonl (this arena's export) or csv; default: from the file's "
                                 "name and first row")
        parser.add_argument("--batch-size", type=int, default=100_000)

    def handle(self, *args: Any, file: Path, format: str | None, batch_size: int, **options: Any) -> None:
        if not file.is_file():
            raise CommandError(f"{file}: no such file")
        show = sys.stderr.isatty() and options["verbosity"] > 0
        try:
            read = read_records(file, format, allowed_aspects=settings.ARENA_VOTE_ASPECTS)
        except RowError as exc:
            raise CommandError(f"{file}: {exc.where}: {exc.reason}; nothing was imported") from None
        except OSError as exc:
            raise CommandError(f"{file}: cannot read ({exc}); nothing was imported") from None
        records = read.records
        with tqdm(total=len(records), desc="writing", unit=" battles", disable=not show) as bar:
            try:
                report = battles_import(records=records, batch_size=batch_size, progress=bar.update)
            except (ValueError, ImportConflict) as exc:
                raise CommandError(f"{file}: {exc}; nothing was imported") from None
        skipped = f", {read.skipped_self} self-battles skipped (a model against itself)" if read.skipped_self else ""
        self.stdout.write(
            f"{report.rows + read.skipped_self} rows read ({read.format}): {report.added} battles added, "
            f"{report.already_present} already present, {report.contenders_created} new contenders{skipped}"
        )
