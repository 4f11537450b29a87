"""python manage.py import_responses FILE.jsonl -- pre-generated answers for the 'pool' response source."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from arena.sources.services import SpecsInvalid, pool_records_from_jsonl, pool_responses_import


class Command(BaseCommand):
    help = ("Import pre-generated answers, one JSON object per line: {prompt, model, response} and optionally "
            "category, language, token_count. Models must exist (load_contenders). All or nothing; an answer "
            "already stored for the same prompt and model is replaced.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        try:
            with file.open(encoding="utf-8") as handle:
                records = pool_records_from_jsonl(handle)
        except FileNotFoundError:
            raise CommandError(f"{file}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{file}: cannot read ({exc}); nothing was imported") from None
        except SpecsInvalid as exc:
            raise CommandError(f"{file}: {exc.message}\nnothing was imported") from None
        try:
            report = pool_responses_import(records=records)
        except SpecsInvalid as exc:
            raise CommandError(f"{file}: {exc.message}\nnothing was imported") from None
        self.stdout.write(
            f"{report.records} answers read: {report.responses_created} created, {report.responses_updated} updated, "
            f"{report.responses_unchanged} unchanged; {report.prompts_created} new prompts"
        )
        if report.not_pool_contenders:
            self.stdout.write("note: these contenders do not use the pool source, so their answers are stored but not "
                              f"served: {', '.join(report.not_pool_contenders)}")
