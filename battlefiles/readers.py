"""Reading pairwise battle files: FastChat JSON, LMArena releases (JSON, JSONL, gzip, Parquet) and CSV.

Formats (``fmt``):

``fastchat``
    FastChat's ``clean_battle`` file: a JSON list of objects (``model_a, model_b, winner, anony, tstamp``,
    optionally ``judge, language, turn, conversation_a/b, category_tag, conv_metadata, dedup_tag,
    is_code``).
``lmarena``
    LMArena's public releases (e.g. ``arena-human-preference-140k``): rows with ``id, model_a, model_b,
    winner`` and, when present, ``evaluation_session_id, evaluation_order, conversation_a/b,
    full_conversation, conv_metadata, category_tag, language, is_code, timestamp`` or ``tstamp``,
    ``anony``. As a JSON list (``.json``), JSON Lines (``.jsonl``, ``.ndjson``), either gzip-compressed
    (``.gz``), or Parquet (``.parquet``).
``csv``
    A header with ``model_a, model_b, winner`` and optionally ``judge, tstamp, timestamp, anony,
    language, category, id, is_code``; other columns are ignored.

:func:`detect_format` decides from the file name, and for JSON from the first row: a row with an
``id`` and no ``tstamp`` is LMArena's, a JSON list otherwise FastChat's, and JSON Lines whose rows
name their ``models`` are the arena's own export (``jsonl``, read by :mod:`arena.transfer`).

Every error names where it is: ``row N`` (1-based) in a JSON list or Parquet file, ``line N`` in a JSON
Lines file, ``row N (line M)`` in a CSV file (a quoted cell may span lines).
"""
from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .records import FileBattle, pairwise_row

__all__ = ["FORMATS", "BattleFileError", "BattleRows", "detect_format", "read_battle_file"]

FORMATS = ("fastchat", "lmarena", "csv")
CSV_REQUIRED = ("model_a", "model_b", "winner")
_PARQUET_BATCH = 20_000


class BattleFileError(ValueError):
    """A malformed battle file: ``where`` (``row N``, ``line N``, ``file``) and ``reason``."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where, self.reason = where, reason


@dataclass
class BattleRows:
    """The battles of a file in file order, and what was skipped."""

    format: str
    battles: list[FileBattle] = field(default_factory=list)
    skipped_self: int = 0  # rows that pit a model against itself: they say nothing about ratings


def _suffixes(path: Path) -> tuple[str, bool]:
    """(the extension that names the format, whether the file is gzip-compressed)."""
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    if compressed:
        suffixes = suffixes[:-1]
    return (suffixes[-1] if suffixes else ""), compressed


def _open_text(path: Path, compressed: bool) -> IO[str]:
    # The wrapper owns the binary stream and closes it: callers use the result in a with-block.
    raw = gzip.open(path, "rb") if compressed else path.open("rb")  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


def _first_line_object(path: Path, compressed: bool) -> Any:
    with _open_text(path, compressed) as handle:
        for line in handle:
            if line.strip():
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    return None
    return None


def _json_kind(row: Any) -> str:
    if isinstance(row, dict) and "models" in row:
        return "jsonl"
    if isinstance(row, dict) and "id" in row and "tstamp" not in row:
        return "lmarena"
    return "fastchat"


def detect_format(path: str | Path) -> str:
    """``fastchat``, ``lmarena``, ``csv`` or (the arena's own export) ``jsonl``, from the name and first row.

    Raises
    ------
    BattleFileError
        When the extension says nothing (pass the format explicitly).
    """
    path = Path(path)
    ext, compressed = _suffixes(path)
    if ext == ".csv" and not compressed:
        return "csv"
    if ext == ".parquet" and not compressed:
        return "lmarena"
    if ext in (".jsonl", ".ndjson"):
        kind = _json_kind(_first_line_object(path, compressed))
        return "lmarena" if kind == "fastchat" else kind
    if ext == ".json":
        return "json"  # a JSON list: FastChat's or LMArena's, decided from its first row once it is read
    raise BattleFileError("file", f"cannot tell the format of {path.name} from its extension; pass "
                                  f"--format {'|'.join(FORMATS)}")


def _json_rows(path: Path, compressed: bool) -> tuple[list[Any], str]:
    try:
        with _open_text(path, compressed) as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise BattleFileError(f"line {exc.lineno}", f"not valid JSON ({exc.msg}, column {exc.colno})") from None
    if not isinstance(data, list):
        raise BattleFileError("file", f"expected a JSON list of battle objects, got {type(data).__name__}")
    return data, _json_kind(data[0]) if data else "fastchat"


def _jsonl_rows(path: Path, compressed: bool) -> Iterator[tuple[str, Any]]:
    with _open_text(path, compressed) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield f"line {number}", json.loads(line)
            except json.JSONDecodeError as exc:
                raise BattleFileError(f"line {number}", f"not valid JSON ({exc.msg})") from None


def _parquet_rows(path: Path) -> Iterator[tuple[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BattleFileError("file", f"not a Parquet file ({exc})") from None
    number = 0
    for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH):
        for row in batch.to_pylist():
            number += 1
            yield f"row {number}", row


def _csv_rows(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in reader.fieldnames or []]
        if not header:
            raise BattleFileError("line 1", f"empty file; expected a header with {', '.join(CSV_REQUIRED)}")
        if missing := [c for c in CSV_REQUIRED if c not in header]:
            raise BattleFileError("line 1", f"header lacks column(s) {', '.join(missing)}")
        if duplicated := sorted({h for h in header if header.count(h) > 1}):
            raise BattleFileError("line 1", f"duplicate column(s) {', '.join(duplicated)}")
        reader.fieldnames = header
        number = 0
        for row in reader:
            if not any(row.values()) and None not in row:  # a blank line
                continue
            number += 1
            where = f"row {number} (line {reader.line_num})"
            fields = len(header) + len(row.get(None, [])) - sum(v is None for k, v in row.items() if k is not None)
            if fields != len(header):
                raise BattleFileError(where, f"expected {len(header)} fields, got {fields}")
            # An empty optional cell is an absent value: the row parser then applies the field's default.
            yield where, {k: v for k, v in row.items() if v != "" or k in CSV_REQUIRED}


def raw_rows(path: str | Path, fmt: str | None = None) -> tuple[str, Iterator[tuple[str, Any]]]:
    """``(format, rows)``: every row of the file as ``(where, object)``, before parsing.

    With ``fmt`` given, the name only says how the file is packed: a ``.parquet`` file is Parquet, a
    ``.json`` file one JSON list, anything else JSON Lines (for ``lmarena`` and the arena's ``jsonl``;
    ``fastchat`` files are JSON lists whatever their name); ``.gz`` is decompressed.
    """
    path = Path(path)
    if fmt is not None and fmt not in (*FORMATS, "jsonl"):
        raise BattleFileError("file", f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    ext, compressed = _suffixes(path)
    fmt = fmt or detect_format(path)
    if fmt == "csv":
        return fmt, _csv_rows(path)
    if ext == ".parquet":
        return "lmarena", _parquet_rows(path)
    if fmt == "jsonl" or (fmt == "lmarena" and ext != ".json"):
        return fmt, _jsonl_rows(path, compressed)
    rows, kind = _json_rows(path, compressed)
    return (kind if fmt == "json" else fmt), ((f"row {i}", row) for i, row in enumerate(rows, start=1))


def read_battle_file(path: str | Path, fmt: str | None = None) -> BattleRows:
    """Read every pairwise battle of a file, in file order; self-battles are skipped and counted.

    Parameters
    ----------
    path : str or Path
    fmt : {"fastchat", "lmarena", "csv"} or None
        None: :func:`detect_format`.

    Raises
    ------
    BattleFileError
        At the first malformed row, naming it; or for a file of the arena's own JSONL export, which
        :mod:`arena.transfer` reads.
    """
    try:
        kind, rows = raw_rows(path, fmt)
        if kind == "jsonl":
            raise BattleFileError("file", "this is the arena's own JSONL export (rows name their models); "
                                          "import it with manage.py import_battles")
        result = BattleRows(format=kind)
        for where, row in rows:
            try:
                battle = pairwise_row(row, where=where)
            except ValueError as exc:
                raise BattleFileError(where, str(exc)) from None
            if battle.self_battle:
                result.skipped_self += 1
            else:
                result.battles.append(battle)
    except UnicodeDecodeError as exc:
        raise BattleFileError("file", f"not UTF-8 text ({exc.reason})") from None
    except (gzip.BadGzipFile, EOFError) as exc:
        raise BattleFileError("file", f"not a complete gzip file ({exc})") from None
    return result
