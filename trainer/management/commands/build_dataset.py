"""python manage.py build_dataset --name N [filters] [--mode M] : freeze a preference dataset from the votes."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from config.errors import ApplicationError
from trainer.models import DatasetMode
from trainer.services import dataset_build, dataset_bytes, dataset_export_trl


class Command(BaseCommand):
    help = ("Build a frozen preference dataset from the arena's votes (records as canonical JSONL, with its "
            "sha256), print what happened to the votes, and optionally write the records (--output) or their "
            "TRL prompt/chosen/rejected form (--trl).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="a new, unique name (datasets are frozen)")
        parser.add_argument("--category", default="")
        parser.add_argument("--language", default="")
        parser.add_argument("--date-from", default="", help="YYYY-MM-DD, inclusive, on the vote's time")
        parser.add_argument("--date-to", default="", help="YYYY-MM-DD, inclusive")
        parser.add_argument("--contender", action="append", default=[],
                            help="only battles whose every answer comes from these contenders (repeatable)")
        parser.add_argument("--mode", default=DatasetMode.ALL_PAIRS, choices=DatasetMode.values,
                            help="how K-wise votes become records (default all_pairs)")
        parser.add_argument("--keep-ties", action="store_true", help="keep ties as tie records instead of dropping")
        parser.add_argument("--include-flagged", action="store_true",
                            help="also votes of flagged voters and votes with an anomaly flag")
        parser.add_argument("--include-leaks", action="store_true",
                            help="also votes on battles where an answer revealed its model")
        parser.add_argument("--include-named", action="store_true", help="also votes where the voter saw the names")
        parser.add_argument("--no-dedupe", action="store_true",
                            help="also votes the arena flagged as duplicate prompts")
        parser.add_argument("--output", type=Path, help="write the canonical JSONL here")
        parser.add_argument("--trl", type=Path, help="write TRL's prompt/chosen/rejected JSONL here")

    def handle(self, *args: Any, **options: Any) -> None:
        filters = {
            "category": options["category"], "language": options["language"],
            "date_from": options["date_from"], "date_to": options["date_to"], "contenders": options["contender"],
            "exclude_flagged": not options["include_flagged"],
            "exclude_identity_leaks": not options["include_leaks"],
            "dedupe_prompts": not options["no_dedupe"], "include_named": options["include_named"],
        }
        try:
            # One transaction: a file that cannot be written leaves no dataset behind either.
            with transaction.atomic():
                dataset = dataset_build(name=options["name"], filters=filters, mode=options["mode"],
                                        keep_ties=options["keep_ties"])
                if options["output"] is not None:
                    options["output"].write_bytes(dataset_bytes(dataset))
                if options["trl"] is not None:
                    options["trl"].write_bytes(dataset_export_trl(dataset))
        except ApplicationError as exc:
            raise CommandError(f"{exc.field}: {exc.message}" if exc.field else exc.message) from None
        except OSError as exc:
            raise CommandError(f"output: {exc}") from None
        counts = ", ".join(f"{key} {value}" for key, value in dataset.counts.items())
        self.stdout.write(f"dataset {dataset.pk} {dataset.name!r}: {dataset.n_records} records from "
                          f"{dataset.n_votes} votes ({dataset.mode}{', ties kept' if dataset.keep_ties else ''})")
        self.stdout.write(f"counts: {counts}")
        self.stdout.write(f"sha256 {dataset.sha256} ({dataset.size_bytes} bytes)")
