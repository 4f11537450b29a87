"""Battle files as the rating core's arrays: FastChat JSON, LMArena releases and CSV.

Rows are read by :func:`battlefiles.read_battle_file`, the reader the database import uses too, so the
CLI and a database refit rate the same battles from the same file: self-battles are skipped and
counted (:attr:`BattleFile.skipped_self`), a row without ``anony`` is anonymous, a row without a time is
accepted. Only anonymous battles count unless ``include_named``. Battles are returned in time order
(a stable sort by time when every counted row has one, file order otherwise).

Two fast paths through pyarrow rate exactly the rows the shared reader would, and fall back to it on
anything odd (it then names the offending row):

- a plain CSV (no ``anony`` or ``timestamp`` column): multi-threaded and dictionary-encoded, a
  2M-row file loads in ~0.3 s;
- an LMArena release as JSON Lines (plain or gzip) or Parquet whose rows carry no conversations or
  metadata (``id, model_a, model_b, winner, category_tag, language, is_code, anony, ...``, the shape of
  the 140k release without texts): the tags come from columns, 135,634 rows in ~0.3 s instead of ~3 s.
"""
from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from battlefiles import OUTCOME_CODES, WINNERS, BattleFileError, FileBattle, read_battle_file
from battlefiles.readers import CSV_REQUIRED

from .data import EloBattles

if TYPE_CHECKING:
    import pyarrow as pa  # optional at run time: the fast paths import it themselves

__all__ = ["FORMATS", "BattleFile", "BattleFileError", "read_battles"]

FORMATS = ("fastchat", "lmarena", "csv")
_FAST_CSV_COLUMNS = {"model_a", "model_b", "winner", "judge", "tstamp", "language", "category", "id", "is_code"}


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
        Non-anonymous battles skipped.
    skipped_category : int
        Battles without the requested category tag.
    """

    battles: EloBattles
    style_a: np.ndarray | None = None
    style_b: np.ndarray | None = None
    skipped_self: int = 0
    skipped_named: int = 0
    skipped_category: int = 0


def read_battles(
    path: str | Path, fmt: str | None = None, *, include_named: bool = False, style: bool = False,
    ordered: bool = True, category: str = "",
) -> BattleFile:
    """Read a battle file (format detected from the name and first row when ``fmt`` is None).

    Parameters
    ----------
    path : str or Path
    fmt : {"fastchat", "lmarena", "csv"} or None
    include_named : bool
        Count non-anonymous battles too.
    style : bool
        Also return per-side style counts (from ``conv_metadata`` or the conversations).
    ordered : bool
        Sort by time; False keeps file order (only online Elo needs the time order).
    category : str
        Keep only battles carrying this tag (``hard_6``, ``math``, ``english``, a CSV ``category``, …).

    Raises
    ------
    BattleFileError
        Naming the row (and line) and the reason.
    """
    path = Path(path)
    if fmt not in (None, *FORMATS):
        raise BattleFileError("file", f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "csv" or (fmt is None and path.suffix.lower() == ".csv"):
        fast = _read_plain_csv(path, ordered) if not style and not category else None
        if fast is not None:
            return fast
        fmt = "csv"
    if not style and fmt in (None, "lmarena"):
        fast = _read_release_columns(path, ordered=ordered, category=category, include_named=include_named)
        if fast is not None:
            return fast
    rows = read_battle_file(path, fmt)
    kept = [b for b in rows.battles if include_named or b.anonymous]
    skipped_named = len(rows.battles) - len(kept)
    counted = [b for b in kept if b.tags and category in b.tags] if category else kept
    if not counted:
        hint = "" if include_named or not skipped_named else " (only anonymous battles count; see --include-named)"
        what = f" tagged {category!r}" if category else ""
        raise BattleFileError("file", f"no battles{what} to rate{hint}")
    battles, order = _build([b.model_a for b in counted], [b.model_b for b in counted],
                            np.array([b.outcome for b in counted], dtype=np.int8), _times(counted) if ordered else None)
    style_a = style_b = None
    if style:
        style_a, style_b = _style_arrays(counted, rows.format)
        style_a, style_b = style_a[order], style_b[order]
    return BattleFile(battles, style_a, style_b, rows.skipped_self, skipped_named, len(kept) - len(counted))


def _times(battles: Sequence[FileBattle]) -> np.ndarray | None:
    if any(b.time is None for b in battles):
        return None
    return np.array([b.time.timestamp() for b in battles if b.time is not None], dtype=np.float64)


def _build(
    names_a: Sequence[str], names_b: Sequence[str], outcome: np.ndarray, tstamp: np.ndarray | None,
) -> tuple[EloBattles, np.ndarray]:
    models = tuple(sorted(set(names_a) | set(names_b)))
    position = {name: i for i, name in enumerate(models)}
    a = np.fromiter((position[n] for n in names_a), dtype=np.int64, count=len(names_a))
    b = np.fromiter((position[n] for n in names_b), dtype=np.int64, count=len(names_b))
    order = np.arange(a.size) if tstamp is None else np.argsort(tstamp, kind="stable")
    return EloBattles(models, a[order], b[order], outcome[order]), order


def _style_arrays(battles: Sequence[FileBattle], fmt: str) -> tuple[np.ndarray, np.ndarray]:
    missing = next((i for i, b in enumerate(battles) if b.style is None), None)
    if missing is not None:
        if all(b.style is None for b in battles):
            raise BattleFileError("file", f"style control needs conversation_a/conversation_b or conv_metadata, and "
                                          f"this {fmt} file has none")
        raise BattleFileError(battles[missing].where, "style control needs its conversation_a and conversation_b "
                                                      "(or conv_metadata), which it lacks")
    style_a = np.array([b.style[0] for b in battles if b.style is not None], dtype=np.float64)
    style_b = np.array([b.style[1] for b in battles if b.style is not None], dtype=np.float64)
    return style_a, style_b


# ------------------------------------------------------------------------------------ fast plain CSV
def _read_plain_csv(path: Path, ordered: bool) -> BattleFile | None:
    """A CSV without ``anony`` / ``timestamp`` through pyarrow; None to let the shared reader handle it."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pcsv
    except ImportError:
        return None
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            header = [h.strip() for h in next(csv.reader(handle), [])]
    except (OSError, UnicodeDecodeError):
        return None
    if not set(CSV_REQUIRED) <= set(header) or not set(header) <= _FAST_CSV_COLUMNS or len(set(header)) != len(header):
        return None
    use_tstamp = ordered and "tstamp" in header
    names = [*CSV_REQUIRED, *(["tstamp"] if use_tstamp else [])]
    dict_type = pa.dictionary(pa.int32(), pa.string())
    types = {c: dict_type for c in CSV_REQUIRED} | ({"tstamp": pa.float64()} if use_tstamp else {})
    convert = pcsv.ConvertOptions(include_columns=names, column_types=types, strings_can_be_null=False,
                                  quoted_strings_can_be_null=False)
    # 4 MiB blocks: fewer chunks make unify_dictionaries/combine_chunks cheap (~5 ms vs ~80 ms at 1 MiB).
    read = pcsv.ReadOptions(block_size=1 << 22)
    try:
        table = pcsv.read_csv(path, read_options=read, convert_options=convert).unify_dictionaries()
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if table.num_rows == 0:
        return None
    cols = {c: table.column(c).combine_chunks() for c in CSV_REQUIRED}
    dicts = {c: cols[c].dictionary.to_pylist() for c in CSV_REQUIRED}
    if any(not n.strip() for n in dicts["model_a"] + dicts["model_b"]) or not set(dicts["winner"]) <= WINNERS.keys():
        return None
    tstamp = None
    if use_tstamp:
        column = table.column("tstamp")
        if column.null_count:
            return None
        tstamp = column.to_numpy()
        if not (np.isfinite(tstamp) & (tstamp >= 0) & (tstamp < 32503680000)).all():  # as the shared reader
            return None
    models = tuple(sorted(set(dicts["model_a"]) | set(dicts["model_b"])))
    position = {name: i for i, name in enumerate(models)}
    # Map each column's dictionary onto the shared model list, then index with the codes.
    a = np.array([position[n] for n in dicts["model_a"]], dtype=np.int64)[cols["model_a"].indices.to_numpy()]
    b = np.array([position[n] for n in dicts["model_b"]], dtype=np.int64)[cols["model_b"].indices.to_numpy()]
    winners = [OUTCOME_CODES[WINNERS[w]] for w in dicts["winner"]]
    outcome = np.array(winners, dtype=np.int8)[cols["winner"].indices.to_numpy()]
    keep = a != b
    skipped = int(a.size - keep.sum())
    a, b, outcome = a[keep], b[keep], outcome[keep]
    if not a.size:
        return None
    if tstamp is not None:
        order = np.argsort(tstamp[keep], kind="stable")
        a, b, outcome = a[order], b[order], outcome[order]
    used = np.unique(np.concatenate([a, b]))
    if used.size != len(models):  # a model seen only in self-battles: re-index without it
        models = tuple(models[i] for i in used)
        remap = np.full(len(position), -1, dtype=np.int64)
        remap[used] = np.arange(used.size)
        a, b = remap[a], remap[b]
    return BattleFile(EloBattles(models, a, b, outcome), skipped_self=skipped)


# ------------------------------------------------------------------------- fast LMArena columns
# Columns whose meaning the columnar path reproduces exactly; any other column (conversations,
# conv_metadata, dedup_tag, turn, ...) can add tags or need row-wise parsing: the shared reader does it.
_RELEASE_COLUMNS = {"id", "model_a", "model_b", "winner", "category_tag", "language", "is_code", "anony",
                    "evaluation_session_id", "evaluation_order", "timestamp", "tstamp"}
_FLAG_TAGS = {"math": ("math_v0.1", "math"), "if": ("if_v0.1", "if"),
              "creative_writing": ("creative_writing_v0.1", "creative_writing")}


def _release_columns(path: Path) -> set[str] | None:
    """The columns of a release file, from its schema or its first row: cheap, before anything is parsed."""
    import gzip
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            return set(pq.read_schema(path).names)
        if name.endswith((".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")):
            with (gzip.open(path, "rt", encoding="utf-8") if name.endswith(".gz")
                  else path.open(encoding="utf-8")) as handle:
                first = next((line for line in handle if line.strip()), "")
            row = json.loads(first) if first else None
            return set(row) if isinstance(row, dict) else None
    except (pa.ArrowInvalid, OSError, EOFError, UnicodeDecodeError, ValueError):
        return None
    return None


def _release_table(path: Path) -> pa.Table | None:
    import pyarrow as pa
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    try:
        if path.name.lower().endswith(".parquet"):
            return pq.read_table(path)
        compression = "gzip" if path.name.lower().endswith(".gz") else None
        with pa.input_stream(path, compression=compression) as stream:
            return pj.read_json(stream, read_options=pj.ReadOptions(block_size=1 << 22))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, EOFError):
        return None


def _numpy(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A null-free integer or boolean arrow array as NumPy, read from its buffer.

    ``Array.to_numpy`` would be simpler, but its first call imports pandas (~0.2 s, more than the
    whole read) to check for pandas types this path never meets; so does turning a Python value into
    an arrow scalar (``fill_null(False)``), hence the Kleene logic in the callers.
    """
    import pyarrow as pa

    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    if array.null_count:
        raise ValueError("nulls must be resolved first")
    return _numpy_unchecked(array)


def _numpy_unchecked(array: pa.Array) -> np.ndarray:
    """As :func:`_numpy`, leaving whatever the buffer holds at null positions (the caller masks them)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_boolean(array.type):
        array = pc.cast(array, pa.uint8())
    dtype = np.dtype(array.type.to_pandas_dtype())
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)


def _flags(column: pa.Array, names: tuple[str, ...]) -> np.ndarray | None:
    """``column[names[0]][names[1]] is True`` per row, or None when the column does not have that shape."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for name in names:
        if not pa.types.is_struct(column.type) or column.type.get_field_index(name) < 0:
            return np.zeros(len(column), dtype=bool) if pa.types.is_struct(column.type) else None
        column = pc.struct_field(column, name)
    if not pa.types.is_boolean(column.type):
        return None
    return _numpy(pc.and_kleene(column, pc.is_valid(column))).astype(bool)  # null -> False


def _release_tag_mask(table: pa.Table, tag: str) -> np.ndarray | None:
    """Rows carrying ``tag`` as battlefiles.categories.release_tags gives it, from columns; None: cannot tell."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from battlefiles.categories import HARD_CRITERIA, language_tag

    rows = table.num_rows
    names = set(table.column_names)
    mask = np.zeros(rows, dtype=bool)
    if "category_tag" in names:
        column = table.column("category_tag").combine_chunks()
        if pa.types.is_string(column.type):  # an old-style single category string
            mask |= np.asarray(column.to_pylist(), dtype=object) == tag
        elif tag == "hard_6":
            flags = [_flags(column, ("criteria_v0.1", c)) for c in HARD_CRITERIA]
            known = [f for f in flags if f is not None]
            if len(known) != len(flags):
                return None
            mask |= np.sum(known, axis=0) >= 6
        elif tag in _FLAG_TAGS:
            flag = _flags(column, _FLAG_TAGS[tag])
            if flag is None:
                return None
            mask |= flag
        elif not pa.types.is_struct(column.type) and column.null_count != rows:
            return None
    if tag == "coding" and "is_code" in names:
        column = table.column("is_code")
        if not pa.types.is_boolean(column.type):
            return None
        mask |= _numpy(pc.and_kleene(column, pc.is_valid(column))).astype(bool)
    if "language" in names:
        column = table.column("language").combine_chunks()
        if not pa.types.is_string(column.type):
            return None
        languages = column.dictionary_encode()
        hits = np.array([language_tag(v or "") == tag for v in languages.dictionary.to_pylist()] + [False])
        valid = _numpy(pc.is_valid(languages.indices)).astype(bool)
        mask |= hits[np.where(valid, _numpy_unchecked(languages.indices), len(hits) - 1)]
    return mask


def _read_release_columns(path: Path, *, ordered: bool, category: str, include_named: bool) -> BattleFile | None:
    """An LMArena release without texts, read by columns; None to let the shared reader handle it."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:
        return None
    # A release with conversations or metadata goes to the row-wise reader: decide from the first row or the
    # schema, so that such a file (gigabytes, for a full release) is not parsed twice.
    columns = _release_columns(path)
    if columns is None or not {"id", "model_a", "model_b", "winner"} <= columns or not columns <= _RELEASE_COLUMNS:
        return None
    table = _release_table(path)
    if table is None or table.num_rows == 0:
        return None
    names = set(table.column_names)
    if not {"id", "model_a", "model_b", "winner"} <= names or not names <= _RELEASE_COLUMNS:
        return None
    if ordered and names & {"timestamp", "tstamp"}:
        return None  # time order needs the shared reader's time parsing
    arrays = {c: table.column(c).combine_chunks() for c in ("model_a", "model_b", "winner")}
    if not all(pa.types.is_string(c.type) and c.null_count == 0 for c in arrays.values()):
        return None
    encoded = {c: arrays[c].dictionary_encode() for c in arrays}
    dicts = {c: encoded[c].dictionary.to_pylist() for c in arrays}
    if any(not n.strip() for n in dicts["model_a"] + dicts["model_b"]) or not set(dicts["winner"]) <= WINNERS.keys():
        return None
    anonymous = np.ones(table.num_rows, dtype=bool)
    if "anony" in names:
        column = table.column("anony")
        if not pa.types.is_boolean(column.type):
            return None
        anonymous = _numpy(pc.or_kleene(column, pc.is_null(column))).astype(bool)  # null -> True
    tagged = np.ones(table.num_rows, dtype=bool)
    if category:
        mask = _release_tag_mask(table, category)
        if mask is None:
            return None
        tagged = mask
    models = tuple(sorted(set(dicts["model_a"]) | set(dicts["model_b"])))
    position = {name: i for i, name in enumerate(models)}
    a = np.array([position[n] for n in dicts["model_a"]], dtype=np.int64)[_numpy(encoded["model_a"].indices)]
    b = np.array([position[n] for n in dicts["model_b"]], dtype=np.int64)[_numpy(encoded["model_b"].indices)]
    winners = [OUTCOME_CODES[WINNERS[w]] for w in dicts["winner"]]
    outcome = np.array(winners, dtype=np.int8)[_numpy(encoded["winner"].indices)]
    pairwise = a != b
    named_out = pairwise & ~anonymous & (not include_named)
    kept = pairwise & ~named_out
    counted = kept & tagged
    if not counted.any():
        return None  # the shared reader says why
    used = np.unique(np.concatenate([a[counted], b[counted]]))
    remap = np.full(len(models), -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    battles = EloBattles(tuple(models[i] for i in used), remap[a[counted]], remap[b[counted]], outcome[counted])
    return BattleFile(battles, skipped_self=int((~pairwise).sum()), skipped_named=int(named_out.sum()),
                      skipped_category=int((kept & ~tagged).sum()))
