"""python manage.py import_battles FILE --format fastchat|jsonl|csv"""
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
                            help="fastchat (clean_battle JSON list), jsonl (this arena's export) or csv; "
                                 "default: from the file's extension")
        parser.add_argument("--batch-size", type=int, default=100_000)

    def handle(self, *args: Any, file: Path, format: str | None, batch_size: int, **options: Any) -> None:
        fmt = format or {".json": "fastchat", ".jsonl": "jsonl", ".csv": "csv"}.get(file.suffix.lower())
        if fmt is None:
            raise CommandError(f"cannot tell the format of {file}; pass --format {'|'.join(FORMATS)}")
        if not file.is_file():
            raise CommandError(f"{file}: no such file")
        show = sys.stderr.isatty() and options["verbosity"] > 0
        try:
            records = list(tqdm(read_records(file, fmt, allowed_aspects=settings.ARENA_VOTE_ASPECTS),
                                desc="reading", unit=" rows", disable=not show))
        except RowError as exc:
            raise CommandError(f"{file}: {exc.where}: {exc.reason}; nothing was imported") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{file}: cannot read ({exc}); nothing was imported") from None
        with tqdm(total=len(records), desc="writing", unit=" battles", disable=not show) as bar:
            try:
                report = battles_import(records=records, batch_size=batch_size, progress=bar.update)
            except (ValueError, ImportConflict) as exc:
                raise CommandError(f"{file}: {exc}; nothing was imported") from None
        self.stdout.write(
            f"{report.rows} rows read: {report.added} battles added, {report.already_present} already present, "
            f"{report.contenders_created} new contenders"
        )
