"""Judgment rows -> :class:`JudgmentTable` (numpy arrays), with validation that names line and field.

The row format is the contract in the audit schema (one judgment per JSONL line)::

    battle_id, judge (str, required); judge_family (str|null); model_a, model_b (str, required, distinct);
    family_a, family_b (str|null); order ("ab"|"ba"); verdict ("a"|"b"|"tie"|"unparsed", in A/B terms);
    len_a, len_b (int >= 0); md_a, md_b (int >= 0 | null | absent); human ("a"|"b"|"tie"|"both_bad"|null);
    replicate (int >= 0, default 0); perturbation (str|null); perturbed ("a"|"b"|null); category (str|null);
    cluster (str|null: battles sharing a cluster are resampled together -- e.g. the answer pairs of one K-wise
    battle; null = the battle is its own cluster)

Unknown fields are ignored. The first error by line number is reported (within a line, the first
field in the order above), as :class:`AuditInputError`; nothing partial is returned.

Three entry points share one validator working on whole columns (a Python loop per row and field
would cost more than the whole audit): :func:`judgments_from_records` (dicts, e.g. from the
database), :func:`read_judgments` (JSONL lines) and :func:`read_judgments_bytes` (a whole file;
uses pyarrow's multithreaded JSON reader when it is installed and falls back to the stdlib path,
which is authoritative, for the exact error of a bad file).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import cast

import numpy as np

__all__ = [
    "HUMAN_CODES",
    "ORDER_CODES",
    "VERDICT_CODES",
    "AuditInputError",
    "JudgmentTable",
    "judgments_from_records",
    "read_judgments",
    "read_judgments_bytes",
]

VERDICT_CODES = {"a": 0, "b": 1, "tie": 2, "unparsed": 3}
HUMAN_CODES = {"a": 0, "b": 1, "tie": 2, "both_bad": 3}
ORDER_CODES = {"ab": 1, "ba": 0}  # 1 = A shown first
PERTURBED_CODES = {"a": 0, "b": 1}

A, B, TIE, UNPARSED = 0, 1, 2, 3
BOTH_BAD = 3
NONE = -1

# Field order = the order errors within one line are reported in.
FIELDS = (
    "battle_id", "judge", "judge_family", "model_a", "model_b", "family_a", "family_b", "order", "verdict",
    "len_a", "len_b", "md_a", "md_b", "human", "replicate", "perturbation", "perturbed", "category", "cluster",
)
_REQUIRED_STR = ("battle_id", "judge", "model_a", "model_b")
_OPTIONAL_STR = ("judge_family", "family_a", "family_b", "perturbation", "category", "cluster")
_ENUMS = {"order": (ORDER_CODES, True), "verdict": (VERDICT_CODES, True),
          "human": (HUMAN_CODES, False), "perturbed": (PERTURBED_CODES, False)}
_REQUIRED_INT = ("len_a", "len_b")
_OPTIONAL_INT = ("md_a", "md_b", "replicate")
_INT_LIMIT = 2**53  # counts beyond this are not token counts; also keeps int64 arithmetic safe


class AuditInputError(ValueError):
    """A judgment row is malformed.

    Attributes
    ----------
    line : int
        1-based line (JSONL) or record number.
    field : str or None
        The offending field; None when the row itself is unreadable (invalid JSON, not an object).
    message : str
    """

    def __init__(self, line: int, field: str | None, message: str) -> None:
        self.line = line
        self.field = field
        self.message = message
        where = f"field '{field}': " if field is not None else ""
        super().__init__(f"line {line}: {where}{message}")

    def describe(self, source: str) -> str:
        """``SOURCE:LINE: field 'x': message`` (the CLI's error line)."""
        where = f" field '{self.field}':" if self.field is not None else ""
        return f"{source}:{self.line}:{where} {self.message}"


@dataclass(frozen=True, eq=False)
class JudgmentTable:
    """Validated judgments as parallel arrays (one entry per row) plus vocabularies.

    String fields are integer codes into the matching tuple (``-1`` = null); families of judges
    and of models share one vocabulary so that they can be compared by code.

    Attributes
    ----------
    battle, judge, model_a, model_b : ndarray of int32
        Codes into ``battle_ids``, ``judges``, ``models``.
    judge_family, family_a, family_b : ndarray of int32
        Codes into ``families`` (-1 = null).
    order_ab : ndarray of bool
        True when A was shown first.
    verdict : ndarray of int8
        0 a, 1 b, 2 tie, 3 unparsed.
    len_a, len_b : ndarray of int64
    md_a, md_b : ndarray of int64
        -1 = unknown.
    human : ndarray of int8
        0 a, 1 b, 2 tie, 3 both_bad, -1 null.
    replicate : ndarray of int32
    perturbation : ndarray of int32
        Codes into ``perturbations``; -1 = plain judgment.
    perturbed : ndarray of int8
        0 a, 1 b, -1 unknown.
    category : ndarray of int32
        Codes into ``categories`` (-1 = null).
    cluster : ndarray of int32
        Codes into ``clusters`` (-1 = null: the battle is its own cluster).
    line : ndarray of int64
        Source line (or record) number of each row, for messages.
    """

    battle: np.ndarray
    judge: np.ndarray
    judge_family: np.ndarray
    model_a: np.ndarray
    model_b: np.ndarray
    family_a: np.ndarray
    family_b: np.ndarray
    order_ab: np.ndarray
    verdict: np.ndarray
    len_a: np.ndarray
    len_b: np.ndarray
    md_a: np.ndarray
    md_b: np.ndarray
    human: np.ndarray
    replicate: np.ndarray
    perturbation: np.ndarray
    perturbed: np.ndarray
    category: np.ndarray
    cluster: np.ndarray
    line: np.ndarray
    battle_ids: tuple[str, ...]
    judges: tuple[str, ...]
    models: tuple[str, ...]
    families: tuple[str, ...]
    perturbations: tuple[str, ...]
    categories: tuple[str, ...]
    clusters: tuple[str, ...]

    @property
    def n_rows(self) -> int:
        return int(self.battle.size)

    def select(self, mask: np.ndarray) -> JudgmentTable:
        """The rows where ``mask`` is true (vocabularies unchanged)."""
        values = {}
        for f in fields(self):
            v = getattr(self, f.name)
            values[f.name] = v[mask] if isinstance(v, np.ndarray) else v
        return JudgmentTable(**values)

    def for_judges(self, names: Iterable[str]) -> JudgmentTable:
        """Only the rows of the named judges (unknown names select nothing)."""
        wanted = [self.judges.index(n) for n in names if n in self.judges]
        return self.select(np.isin(self.judge, np.asarray(wanted, dtype=self.judge.dtype)))


# --------------------------------------------------------------------------------------------
# Column validation (shared by every entry point)


class _Problems:
    """Collects the earliest (row, field order) problem over all checks."""

    def __init__(self) -> None:
        self.best: tuple[int, int, str | None, str] | None = None

    def add(self, row: int, field: str | None, message: str) -> None:
        rank = -1 if field is None else FIELDS.index(field)
        key = (row, rank, field, message)
        if self.best is None or key[:2] < self.best[:2]:
            self.best = key


def _first(mask: np.ndarray) -> int | None:
    return int(np.argmax(mask)) if mask.any() else None


def _first_known(mask: np.ndarray) -> int:
    """:func:`_first` of a mask the caller knows has a true element."""
    row = _first(mask)
    assert row is not None
    return row


def _describe(value: object) -> str:
    return json.dumps(value, default=str)[:60]


def _codes(values: list, field: str, problems: _Problems, expected: str) -> tuple[np.ndarray, dict]:
    """Dictionary-encode a column of str/None; a value of another type is a problem (and becomes None)."""
    vocab: dict = {}
    try:
        codes = np.fromiter((vocab.setdefault(v, len(vocab)) for v in values), dtype=np.int32, count=len(values))
    except TypeError:  # an unhashable value (list, dict): certainly not a string
        codes = None
    if codes is None or any(not isinstance(k, str | None) for k in vocab):
        row = next(i for i, v in enumerate(values) if not isinstance(v, str | None))
        problems.add(row, field, f"must be {expected}, got {_describe(values[row])}")
        return _codes([v if isinstance(v, str | None) else None for v in values], field, _Problems(), expected)
    return codes, vocab


def _factorize(values: list, field: str, problems: _Problems, *, required: bool) -> tuple[np.ndarray, list[str]]:
    """String column -> (codes, -1 for None; vocabulary in first-seen order); records problems."""
    codes, vocab = _codes(values, field, problems, "a string" if required else "a string or null")
    if "" in vocab:
        problems.add(_first_known(codes == vocab[""]), field, "must be a non-empty string")
    if required and None in vocab:
        problems.add(_first_known(codes == vocab[None]), field, "is required")
    keys = list(vocab)
    dense = np.cumsum([k is not None for k in keys]) - 1
    remap = np.array([-1 if k is None else int(d) for k, d in zip(keys, dense, strict=True)] + [-1], dtype=np.int32)
    return remap[codes], [k for k in keys if k is not None]


def _enum(values: list, field: str, allowed: dict, problems: _Problems, *, required: bool) -> np.ndarray:
    """Enumerated string column -> int8 codes (-1 for None); records problems."""
    choices = ", ".join(f'"{c}"' for c in allowed) + ("" if required else " or null")
    codes, vocab = _codes(values, field, problems, f"one of {choices}")
    lookup = np.full(len(vocab) + 1, NONE, dtype=np.int8)
    for key, i in vocab.items():
        if key in allowed:
            lookup[i] = allowed[key]
        elif key is None and required:
            problems.add(_first_known(codes == i), field, f"is required (one of {choices})")
        elif key is not None:
            problems.add(_first_known(codes == i), field, f"must be one of {choices}, got {_describe(key)}")
    return lookup[codes]


def _integers(values: list, field: str, problems: _Problems, *, required: bool, default: int | None) -> np.ndarray:
    """Int column (null -> ``default``, or -1 when optional); records type and range problems."""
    fill = -1 if default is None else default
    ok_kinds = {int} if required else {int, type(None)}
    kinds = set(map(type, values))  # type(), not isinstance: True is not a count
    if not kinds <= ok_kinds:
        row = next(i for i, v in enumerate(values) if type(v) not in ok_kinds)
        if values[row] is None:
            problems.add(row, field, "is required (an integer >= 0)")
        else:
            what = "an integer >= 0" + ("" if required else " or null")
            problems.add(row, field, f"must be {what}, got {_describe(values[row])}")
        values = [v if type(v) is int else None for v in values]
        kinds.add(type(None))
    null = np.zeros(len(values), dtype=bool)
    if type(None) in kinds:
        null = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
        values = [fill if v is None else v for v in values]
    try:
        arr = np.array(values, dtype=np.int64)
    except OverflowError:
        arr = np.array([v if abs(v) < _INT_LIMIT else _INT_LIMIT for v in values], dtype=np.int64)
    bad = (np.abs(arr) >= _INT_LIMIT) | ((arr < 0) & ~null)
    bad_row = _first(bad)
    if bad_row is not None:
        problems.add(bad_row, field, f"must be an integer >= 0, got {values[bad_row]}")
    return arr


def _columns_to_table(columns: dict[str, list], line_numbers: Sequence[int] | np.ndarray) -> JudgmentTable:
    """Validate plain-Python columns (lists, one per field) and build the table; raise the first problem."""
    problems = _Problems()
    n = len(columns["battle_id"])
    codes: dict[str, np.ndarray] = {}
    vocabs: dict[str, list[str]] = {}
    for f in _REQUIRED_STR:
        codes[f], vocabs[f] = _factorize(columns[f], f, problems, required=True)
    # Judge and model families share one vocabulary: factorize the three columns together; only if
    # that finds a bad value are they factorized one by one, to name the right field.
    fam_probe = _Problems()
    fam_codes, families = _factorize(
        columns["judge_family"] + columns["family_a"] + columns["family_b"], "judge_family", fam_probe, required=False)
    for k, f in enumerate(("judge_family", "family_a", "family_b")):
        codes[f] = fam_codes[k * n:(k + 1) * n]
        if fam_probe.best is not None:
            _factorize(columns[f], f, problems, required=False)
    for f in ("perturbation", "category", "cluster"):
        codes[f], vocabs[f] = _factorize(columns[f], f, problems, required=False)
    for f, (allowed, required) in _ENUMS.items():
        codes[f] = _enum(columns[f], f, allowed, problems, required=required)
    for f in _REQUIRED_INT:
        codes[f] = _integers(columns[f], f, problems, required=True, default=None)
    for f in _OPTIONAL_INT:
        codes[f] = _integers(columns[f], f, problems, required=False, default=0 if f == "replicate" else None)
    return _assemble(codes, vocabs, families, np.asarray(line_numbers, dtype=np.int64), problems)


def _assemble(codes: dict[str, np.ndarray], vocabs: dict[str, list[str]], families: list[str],
              lines: np.ndarray, problems: _Problems) -> JudgmentTable:
    """Unify the model vocabulary, raise the first per-row problem, run the cross-row checks, build the table."""
    models = list(dict.fromkeys(vocabs["model_a"] + vocabs["model_b"]))
    index = {m: i for i, m in enumerate(models)}
    map_a = np.array([index[m] for m in vocabs["model_a"]] + [-1], dtype=np.int32)
    map_b = np.array([index[m] for m in vocabs["model_b"]] + [-1], dtype=np.int32)
    model_a = map_a[codes["model_a"]]  # a null code (-1, already a problem) picks the trailing -1
    model_b = map_b[codes["model_b"]]
    row = _first((model_a == model_b) & (model_a >= 0))
    if row is not None:
        problems.add(row, "model_b", f"must differ from model_a (both '{models[model_a[row]]}')")
    if problems.best is not None:
        row, _, field, message = problems.best
        raise AuditInputError(int(lines[row]), field, message)
    table = JudgmentTable(
        battle=codes["battle_id"], judge=codes["judge"], judge_family=codes["judge_family"],
        model_a=model_a, model_b=model_b, family_a=codes["family_a"], family_b=codes["family_b"],
        order_ab=codes["order"] == 1, verdict=codes["verdict"], len_a=codes["len_a"], len_b=codes["len_b"],
        md_a=codes["md_a"], md_b=codes["md_b"], human=codes["human"],
        replicate=codes["replicate"].astype(np.int32), perturbation=codes["perturbation"],
        perturbed=codes["perturbed"], category=codes["category"], cluster=codes["cluster"], line=lines,
        battle_ids=tuple(vocabs["battle_id"]), judges=tuple(vocabs["judge"]), models=tuple(models),
        families=tuple(families), perturbations=tuple(vocabs["perturbation"]), categories=tuple(vocabs["category"]),
        clusters=tuple(vocabs["cluster"]),
    )
    _check_rows_agree(table)
    return table


def _first_disagreement(group: np.ndarray, value: np.ndarray, considered: np.ndarray) -> tuple[int, int] | None:
    """Earliest row (among ``considered``) whose ``value`` differs from its group's first considered row.

    Returns (row, reference_row) or None.
    """
    rows = np.flatnonzero(considered)
    if rows.size == 0:
        return None
    g = group[rows]
    first_of = np.full(int(group.max()) + 1, -1, dtype=np.int64)
    # Reverse assignment: the earliest row of each group is written last and wins.
    first_of[g[::-1]] = rows[::-1]
    ref = first_of[g]
    bad = value[rows] != value[ref]
    if not bad.any():
        return None
    k = int(np.argmax(bad))
    return int(rows[k]), int(ref[k])


def _check_rows_agree(t: JudgmentTable) -> None:
    """Cross-row consistency: one model pair and one human vote per battle, one family per judge, no duplicates."""
    n = t.n_rows
    if n == 0:
        return
    problems = _Problems()
    everything = np.ones(n, dtype=bool)
    for field, values in (("model_a", t.model_a), ("model_b", t.model_b)):
        hit = _first_disagreement(t.battle, values, everything)
        if hit:
            row, ref = hit
            problems.add(row, field, f"battle '{t.battle_ids[t.battle[row]]}' has {field} "
                                     f"'{t.models[values[ref]]}' on line {t.line[ref]}")
    hit = _first_disagreement(t.battle, t.human, t.human >= 0)
    if hit:
        row, ref = hit
        names = {v: k for k, v in HUMAN_CODES.items()}
        problems.add(row, "human", f"battle '{t.battle_ids[t.battle[row]]}' has human '{names[int(t.human[ref])]}' "
                                   f"on line {t.line[ref]} (one human vote per battle)")
    hit = _first_disagreement(t.judge, t.judge_family, t.judge_family >= 0)
    if hit:
        row, ref = hit
        problems.add(row, "judge_family", f"judge '{t.judges[t.judge[row]]}' has judge_family "
                                          f"'{t.families[t.judge_family[ref]]}' on line {t.line[ref]}")
    # Duplicates: same judge, battle, order, replicate and perturbation.
    keys = (t.perturbation, t.replicate, t.order_ab, t.battle, t.judge)
    order = np.lexsort(keys)
    same = np.ones(n - 1, dtype=bool)
    for k in keys:
        sk = k[order]
        same &= sk[1:] == sk[:-1]
    if same.any():
        pos = np.flatnonzero(same)
        first_rows, later_rows = order[pos], order[pos + 1]
        # lexsort is stable, so within a run of equal keys rows are in file order.
        at = int(np.argmin(later_rows))
        problems.add(int(later_rows[at]), "replicate",
                     f"duplicate judgment: same judge, battle_id, order, replicate and perturbation as line "
                     f"{t.line[first_rows[at]]}")
    if problems.best is not None:
        row, _, bad_field, message = problems.best
        raise AuditInputError(int(t.line[row]), bad_field, message)


# --------------------------------------------------------------------------------------------
# Entry points


def _records_to_table(records: list, line_numbers: Sequence[int]) -> JudgmentTable:
    bad = next((i for i, r in enumerate(records) if not isinstance(r, dict)), None)
    if bad is not None:
        if bad > 0:
            _records_to_table(records[:bad], line_numbers[:bad])  # an earlier line's error comes first
        raise AuditInputError(line_numbers[bad], None, f"expected a JSON object, got {type(records[bad]).__name__}")
    columns = {f: [r.get(f) for r in records] for f in FIELDS}
    return _columns_to_table(columns, line_numbers)


def judgments_from_records(records: Iterable[dict]) -> JudgmentTable:
    """Validate judgment dicts (the input row format) and build a :class:`JudgmentTable`.

    Raises
    ------
    AuditInputError
        Naming the 1-based record number and the field of the first problem.
    """
    records = list(records)
    return _records_to_table(records, list(range(1, len(records) + 1)))


def read_judgments(lines: Iterable[str | bytes]) -> JudgmentTable:
    """Parse JSONL lines (blank lines skipped, line numbers kept) into a :class:`JudgmentTable`.

    Raises
    ------
    AuditInputError
        Naming the 1-based line and the field of the first problem (invalid JSON has field None).
    """
    texts, numbers = [], []
    for i, line in enumerate(lines, start=1):
        if line.strip():
            texts.append(line)
            numbers.append(i)
    records = None
    if texts and isinstance(texts[0], str):
        # One parse of the whole array is faster than a call per line; any oddity (a line holding
        # two values, invalid JSON) falls back to per-line parsing for the exact line number.
        try:
            # cast: the lines of one input are all str or all bytes, and the first is a str
            records = json.loads("[" + ",".join(cast("list[str]", texts)) + "]")
            if len(records) != len(texts):
                records = None
        except ValueError:
            records = None
    if records is None:
        records = []
        for text, number in zip(texts, numbers, strict=True):
            try:
                records.append(json.loads(text))
            except ValueError as exc:
                if records:
                    _records_to_table(records, numbers[:len(records)])
                raise AuditInputError(number, None, f"invalid JSON: {exc}") from None
    return _records_to_table(records, numbers)


def read_judgments_bytes(data: bytes) -> JudgmentTable:
    """Parse a whole JSONL file (already decompressed).

    Uses pyarrow's JSON reader when it is importable (about twice as fast as the stdlib on 100k rows,
    and multithreaded); any file it rejects or that fails validation is re-read by
    :func:`read_judgments`, whose error (or result) is authoritative. A leading UTF-8 byte-order mark
    is skipped.

    Raises
    ------
    AuditInputError
    """
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark, as some editors write
        data = data[3:]
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return read_judgments(_decode_lines(data))
    try:
        return _read_with_arrow(data)
    except (AuditInputError, _ArrowRejected):
        return read_judgments(_decode_lines(data))


def _decode_lines(data: bytes) -> list[str]:
    """UTF-8 text split into lines; invalid UTF-8 is an :class:`AuditInputError` naming its line."""
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        for number, line in enumerate(data.split(b"\n"), start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise AuditInputError(number, None, f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
        raise


class _ArrowRejected(Exception):
    """The fast reader declines the file; the stdlib path decides."""


_TWO_OBJECTS = re.compile(rb"\}[ \t\r]*\{")


def _read_with_arrow(data: bytes) -> JudgmentTable:
    import pyarrow as pa
    import pyarrow.json as pj

    string_fields = (*_REQUIRED_STR, *_OPTIONAL_STR, *_ENUMS)
    schema = pa.schema([(f, pa.string() if f in string_fields else pa.int64()) for f in FIELDS])
    try:
        arrow = pj.read_json(pa.BufferReader(data), parse_options=pj.ParseOptions(
            explicit_schema=schema, unexpected_field_behavior="ignore"))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise _ArrowRejected(str(exc)) from None
    n = arrow.num_rows
    # Line numbers are the row numbers only if every line holds exactly one object. pyarrow skips blank
    # lines and reads '{..} {..}' on one line as two rows (the stdlib: an error). Equal counts and no
    # '}{' on a line prove it; anything else takes the stdlib path (exact, slower). '}{' inside a
    # string value is a false alarm that costs only time.
    n_lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    if n != n_lines or _TWO_OBJECTS.search(data):
        raise _ArrowRejected("not one JSON object per line")
    lines = np.arange(1, n + 1, dtype=np.int64)
    problems = _Problems()
    codes: dict[str, np.ndarray] = {}
    vocabs: dict[str, list[str]] = {}

    def dictionary(name: str) -> tuple[np.ndarray, list[str]]:
        col = arrow.column(name).combine_chunks()
        enc = col.dictionary_encode()
        idx = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
        return idx, enc.dictionary.to_pylist()

    for f in (*_REQUIRED_STR, "perturbation", "category", "cluster"):
        idx, vocab = dictionary(f)
        required = f in _REQUIRED_STR
        if (required and (idx < 0).any()) or "" in vocab:
            raise _ArrowRejected(f)
        codes[f], vocabs[f] = idx, vocab
    families: dict[str, int] = {}
    for f in ("judge_family", "family_a", "family_b"):
        idx, vocab = dictionary(f)
        if "" in vocab:
            raise _ArrowRejected(f)
        lookup = np.array([families.setdefault(v, len(families)) for v in vocab] + [-1], dtype=np.int32)
        codes[f] = lookup[idx]  # idx -1 picks the trailing -1
    for f, (allowed, required) in _ENUMS.items():
        idx, vocab = dictionary(f)
        if any(v not in allowed for v in vocab) or (required and (idx < 0).any()):
            raise _ArrowRejected(f)
        lookup = np.array([allowed[v] for v in vocab] + [NONE], dtype=np.int8)
        codes[f] = lookup[idx]
    for f in (*_REQUIRED_INT, *_OPTIONAL_INT):
        col = arrow.column(f).combine_chunks()
        if f in _REQUIRED_INT and col.null_count:
            raise _ArrowRejected(f)
        arr = col.fill_null(0 if f == "replicate" else -1).to_numpy(zero_copy_only=False).astype(np.int64)
        if ((arr < 0) & ~col.is_null().to_numpy(zero_copy_only=False)).any() or (np.abs(arr) >= _INT_LIMIT).any():
            raise _ArrowRejected(f)
        codes[f] = arr
    return _assemble(codes, vocabs, list(families), np.asarray(lines, dtype=np.int64), problems)
