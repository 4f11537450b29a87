"""Readers for battle files: FastChat ``clean_battle`` JSON and a plain CSV.

FastChat JSON: a list of objects with ``model_a``, ``model_b``, ``winner`` (one of ``model_a``,
``model_b``, ``tie``, ``tie (bothbad)``), ``anony``, ``tstamp`` and optionally ``judge``,
``question_id``, ``language``, ``turn``, ``conversation_a`` / ``conversation_b``, ``category_tag``.
Only ``anony: true`` battles count unless ``include_named``.

CSV: a header with ``model_a,model_b,winner`` (+ optional ``judge,tstamp``; other columns are
ignored), ``winner`` as in FastChat. Read with pyarrow when it is installed (multi-threaded,
dictionary-encoded: a 2M-row file loads in ~0.3 s), else with the stdlib ``csv`` module. Errors
are located by re-reading with the stdlib parser, which knows exact line numbers.

Self-battles (``model_a == model_b``) carry no information about ratings; they are skipped and
counted in :attr:`BattleFile.skipped_self`. Battles are returned in time order (stable sort by
``tstamp`` when every counted row has one, file order otherwise).
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import OUTCOME_CODES, EloBattles
from .style import STYLE_FEATURES, conversation_style_counts

__all__ = ["BattleFile", "BattleFileError", "detect_format", "read_battles", "read_csv", "read_fastchat"]

REQUIRED_COLUMNS = ("model_a", "model_b", "winner")
_WINNERS = ", ".join(repr(w) for w in OUTCOME_CODES)


class BattleFileError(ValueError):
    """A malformed battle file; the message names the row (and line, for CSV) and the reason."""


@dataclass(frozen=True, eq=False)
class BattleFile:
    """Battles read from a file.

    Attributes
    ----------
    battles : EloBattles
        Counted battles in time order.
    style_a, style_b : ndarray, shape (n, 4), or None
        Raw style counts (tokens, headers, list items, bold) of each side, aligned with
        ``battles``; only when requested.
    skipped_self : int
        Self-battles skipped.
    skipped_named : int
        Non-anonymous FastChat battles skipped.
    """

    battles: EloBattles
    style_a: np.ndarray | None = None
    style_b: np.ndarray | None = None
    skipped_self: int = 0
    skipped_named: int = 0


def detect_format(path: str | Path) -> str:
    """``"fastchat"`` for ``.json``, ``"csv"`` for ``.csv`` (case-insensitive)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return "fastchat"
    if suffix == ".csv":
        return "csv"
    raise BattleFileError(f"{path}: cannot tell the format from the extension {suffix!r}; pass --format")


def read_battles(
    path: str | Path, fmt: str | None = None, *, include_named: bool = False, style: bool = False,
    ordered: bool = True,
) -> BattleFile:
    """Read a battle file in either format (auto-detected from the extension when ``fmt`` is None).

    ``ordered=False`` skips sorting a CSV by ``tstamp`` (only online Elo needs the time order).
    """
    fmt = fmt or detect_format(path)
    if fmt == "fastchat":
        return read_fastchat(path, include_named=include_named, style=style)
    if fmt == "csv":
        if style:
            raise BattleFileError(f"{path}: style control needs conversations (FastChat JSON with "
                                  "conversation_a/conversation_b); a CSV file has none")
        return read_csv(path, ordered=ordered)
    raise BattleFileError(f"unknown format {fmt!r}")


def _build(
    names_a: list[str] | np.ndarray, names_b: list[str] | np.ndarray, outcome: np.ndarray,
    tstamp: np.ndarray | None,
) -> tuple[EloBattles, np.ndarray]:
    models = tuple(sorted(set(names_a) | set(names_b)))
    position = {name: i for i, name in enumerate(models)}
    a = np.fromiter((position[n] for n in names_a), dtype=np.int64, count=len(names_a))
    b = np.fromiter((position[n] for n in names_b), dtype=np.int64, count=len(names_b))
    order = np.arange(a.size) if tstamp is None else np.argsort(tstamp, kind="stable")
    return EloBattles(models, a[order], b[order], outcome[order]), order


# -------------------------------------------------------------------------------------- FastChat
def _fastchat_row(i: int, row: object, include_named: bool) -> tuple[str, str, int, float | None] | None:
    """Validate one FastChat object; None when it does not count (named battle)."""
    if not isinstance(row, dict):
        raise BattleFileError(f"row {i}: expected a JSON object, got {type(row).__name__}")
    anony = row.get("anony")
    if anony is not None and not isinstance(anony, bool):
        raise BattleFileError(f"row {i}: 'anony' must be true or false, got {anony!r}")
    for key in REQUIRED_COLUMNS:
        if key not in row:
            raise BattleFileError(f"row {i}: missing {key!r}")
    ma, mb, winner = row["model_a"], row["model_b"], row["winner"]
    for key, value in (("model_a", ma), ("model_b", mb)):
        if not isinstance(value, str) or not value:
            raise BattleFileError(f"row {i}: {key!r} must be a non-empty string, got {value!r}")
    if winner not in OUTCOME_CODES:
        raise BattleFileError(f"row {i}: winner {winner!r} is not one of {_WINNERS}")
    tstamp = row.get("tstamp")
    if tstamp is not None and (isinstance(tstamp, bool) or not isinstance(tstamp, int | float)
                               or not math.isfinite(tstamp)):
        raise BattleFileError(f"row {i}: 'tstamp' must be a number, got {tstamp!r}")
    if not include_named and anony is not True:
        return None
    return ma, mb, OUTCOME_CODES[winner], tstamp


def read_fastchat(path: str | Path, *, include_named: bool = False, style: bool = False) -> BattleFile:
    """Read a FastChat ``clean_battle`` JSON file.

    Parameters
    ----------
    path : str or Path
    include_named : bool
        Count non-anonymous battles too.
    style : bool
        Also compute per-side style counts from ``conversation_a`` / ``conversation_b``.

    Returns
    -------
    BattleFile

    Raises
    ------
    BattleFileError
        Naming the 1-based row number and the reason.
    """
    try:
        with open(path, "rb") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise BattleFileError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from exc
    except UnicodeDecodeError as exc:
        raise BattleFileError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    if not isinstance(data, list):
        raise BattleFileError(f"{path}: expected a JSON list of battle objects, got {type(data).__name__}")
    names_a: list[str] = []
    names_b: list[str] = []
    outcome: list[int] = []
    stamps: list[float | None] = []
    used: list[int] = []
    skipped_self = skipped_named = 0
    for i, row in enumerate(data, start=1):
        parsed = _fastchat_row(i, row, include_named)
        if parsed is None:
            skipped_named += 1
            continue
        if parsed[0] == parsed[1]:
            skipped_self += 1
            continue
        names_a.append(parsed[0])
        names_b.append(parsed[1])
        outcome.append(parsed[2])
        stamps.append(parsed[3])
        used.append(i)
    if not used:
        hint = "" if include_named else " (only anony: true battles count; see --include-named)"
        raise BattleFileError(f"{path}: no battles to rate{hint}")
    tstamp = None if any(t is None for t in stamps) else np.array(stamps, dtype=np.float64)
    battles, order = _build(names_a, names_b, np.array(outcome, dtype=np.int8), tstamp)
    if not style:
        return BattleFile(battles, skipped_self=skipped_self, skipped_named=skipped_named)
    style_a, style_b = _fastchat_style(path, data, used)
    return BattleFile(battles, style_a[order], style_b[order], skipped_self, skipped_named)


def _fastchat_style(path: str | Path, data: list[dict], used: list[int]) -> tuple[np.ndarray, np.ndarray]:
    if not any("conversation_a" in data[i - 1] for i in used):
        raise BattleFileError(f"{path}: style control needs conversation_a/conversation_b, and this file has none")
    style_a = np.empty((len(used), len(STYLE_FEATURES)))
    style_b = np.empty_like(style_a)
    for j, i in enumerate(used):
        row = data[i - 1]
        for key, out in (("conversation_a", style_a), ("conversation_b", style_b)):
            conv = row.get(key)
            if not isinstance(conv, list) or not all(isinstance(t, dict) for t in conv):
                raise BattleFileError(f"row {i}: style control needs {key!r} as a list of turns")
            out[j] = conversation_style_counts(conv)
    return style_a, style_b


# ------------------------------------------------------------------------------------------- CSV
def _csv_header(path: str | Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError as exc:
        raise BattleFileError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    if not header:
        raise BattleFileError(f"{path}: line 1: empty file, expected a header with {', '.join(REQUIRED_COLUMNS)}")
    header = [h.strip() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise BattleFileError(f"{path}: line 1: header lacks column(s) {', '.join(missing)}")
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise BattleFileError(f"{path}: line 1: duplicate column(s) {', '.join(dup)}")
    return header


def read_csv(path: str | Path, *, ordered: bool = True) -> BattleFile:
    """Read a battle CSV (see the module docstring).

    Parameters
    ----------
    path : str or Path
    ordered : bool
        Sort by the ``tstamp`` column when there is one; False skips parsing it (faster, and
        enough for every method but Elo).

    Raises
    ------
    BattleFileError
        Naming the 1-based data row, the file line number and the reason.
    """
    header = _csv_header(path)
    use_tstamp = ordered and "tstamp" in header
    try:
        import pyarrow  # noqa: F401  (optional fast path)
    except ImportError:
        return _read_csv_stdlib(path, header, use_tstamp)
    fast = _read_csv_arrow(path, use_tstamp)
    # Anything odd (bad field count, unknown winner, empty name, bad tstamp): the stdlib reader
    # finds the first offending line exactly and raises with it.
    return fast if fast is not None else _read_csv_stdlib(path, header, use_tstamp)


def _read_csv_arrow(path: str | Path, use_tstamp: bool) -> BattleFile | None:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    names = [*REQUIRED_COLUMNS, *(["tstamp"] if use_tstamp else [])]
    dict_type = pa.dictionary(pa.int32(), pa.string())
    types = {c: dict_type for c in REQUIRED_COLUMNS} | ({"tstamp": pa.float64()} if use_tstamp else {})
    convert = pcsv.ConvertOptions(include_columns=names, column_types=types, strings_can_be_null=False,
                                  quoted_strings_can_be_null=False)
    # 4 MiB blocks: fewer chunks make unify_dictionaries/combine_chunks cheap (~5 ms vs ~80 ms at 1 MiB).
    read = pcsv.ReadOptions(block_size=1 << 22)
    try:
        table = pcsv.read_csv(path, read_options=read, convert_options=convert).unify_dictionaries()
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if table.num_rows == 0:
        raise BattleFileError(f"{path}: no data rows after the header")
    cols = {c: table.column(c).combine_chunks() for c in REQUIRED_COLUMNS}
    dicts = {c: cols[c].dictionary.to_pylist() for c in REQUIRED_COLUMNS}
    if "" in dicts["model_a"] or "" in dicts["model_b"] or not set(dicts["winner"]) <= OUTCOME_CODES.keys():
        return None
    tstamp = None
    if use_tstamp:
        column = table.column("tstamp")
        if column.null_count:
            return None
        tstamp = column.to_numpy()
        if not np.isfinite(tstamp).all():
            return None
    models = tuple(sorted(set(dicts["model_a"]) | set(dicts["model_b"])))
    position = {name: i for i, name in enumerate(models)}
    # Map each column's dictionary onto the shared model list, then index with the codes.
    a = np.array([position[n] for n in dicts["model_a"]], dtype=np.int64)[cols["model_a"].indices.to_numpy()]
    b = np.array([position[n] for n in dicts["model_b"]], dtype=np.int64)[cols["model_b"].indices.to_numpy()]
    code = np.array([OUTCOME_CODES[w] for w in dicts["winner"]], dtype=np.int8)[cols["winner"].indices.to_numpy()]
    return _finish_csv(models, a, b, code, tstamp)


def _finish_csv(
    models: tuple[str, ...], a: np.ndarray, b: np.ndarray, outcome: np.ndarray, tstamp: np.ndarray | None
) -> BattleFile:
    keep = a != b
    skipped = int(a.size - keep.sum())
    if skipped:
        a, b, outcome = a[keep], b[keep], outcome[keep]
        tstamp = None if tstamp is None else tstamp[keep]
    if tstamp is not None:
        order = np.argsort(tstamp, kind="stable")
        a, b, outcome = a[order], b[order], outcome[order]
    return BattleFile(EloBattles(models, a, b, outcome), skipped_self=skipped)


def _read_csv_stdlib(path: str | Path, header: list[str], use_tstamp: bool) -> BattleFile:
    col = {name: header.index(name) for name in header}
    names_a: list[str] = []
    names_b: list[str] = []
    outcome: list[int] = []
    stamps: list[float] = []
    has_t = use_tstamp
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader)
        row_no = 0
        for fields in reader:
            if not fields:  # blank line
                continue
            row_no += 1
            where = f"{path}: row {row_no} (line {reader.line_num})"
            if len(fields) != len(header):
                raise BattleFileError(f"{where}: expected {len(header)} fields, got {len(fields)}")
            ma, mb, winner = (fields[col[c]] for c in REQUIRED_COLUMNS)
            if not ma or not mb:
                raise BattleFileError(f"{where}: empty model name")
            if winner not in OUTCOME_CODES:
                raise BattleFileError(f"{where}: winner {winner!r} is not one of {_WINNERS}")
            if has_t:
                try:
                    stamp = float(fields[col["tstamp"]])
                except ValueError:
                    stamp = math.nan
                if not math.isfinite(stamp):
                    raise BattleFileError(f"{where}: tstamp {fields[col['tstamp']]!r} is not a number")
                stamps.append(stamp)
            names_a.append(ma)
            names_b.append(mb)
            outcome.append(OUTCOME_CODES[winner])
    if not names_a:
        raise BattleFileError(f"{path}: no data rows after the header")
    models = tuple(sorted(set(names_a) | set(names_b)))
    position = {name: i for i, name in enumerate(models)}
    a = np.array([position[n] for n in names_a], dtype=np.int64)
    b = np.array([position[n] for n in names_b], dtype=np.int64)
    return _finish_csv(models, a, b, np.array(outcome, dtype=np.int8),
                       np.array(stamps) if has_t else None)
