"""python manage.py export_votes --format fastchat|jsonl [--output FILE]"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandParser

from arena.transfer.exporter import vote_records
from arena.transfer.formats import dumps_line, fastchat_row, native_row


class Command(BaseCommand):
    help = "Export every vote. fastchat: a clean_battle JSON list (pairwise votes only); jsonl: everything."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=("fastchat", "jsonl"), default="jsonl")
        parser.add_argument("--output", "-o", type=Path, default=None, help="file to write (default: stdout)")

    def handle(self, *args: Any, format: str, output: Path | None, **options: Any) -> None:
        if output is None:
            skipped = self._write(sys.stdout, format)
        else:
            with output.open("w", encoding="utf-8") as handle:
                skipped = self._write(handle, format)
        if skipped:
            self.stderr.write(f"{skipped} K-wise votes left out: the FastChat format holds pairwise votes only")

    @staticmethod
    def _write(out: TextIO, fmt: str) -> int:
        skipped = 0
        if fmt == "jsonl":
            for record in vote_records():
                out.write(dumps_line(native_row(record)) + "\n")
            return 0
        # A JSON list, streamed: one object per line so that a million votes never sit in memory at once.
        out.write("[")
        first = True
        for record in vote_records():
            row = fastchat_row(record)
            if row is None:
                skipped += 1
                continue
            out.write(("\n" if first else ",\n") + json.dumps(row, ensure_ascii=False))
            first = False
        out.write("\n]\n")
        return skipped
