"""The one battle-file reader: formats, detection, and the edge cases both of its users must agree on."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.conf import settings

from arena.transfer.formats import RowError, read_records
from battlefiles import BattleFileError, detect_format, read_battle_file
from leaderboard.ratings.io import read_battles

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SAMPLE = FIXTURES / "lmarena" / "sample_100.jsonl"
EDGE_CASES = json.loads((FIXTURES / "battle_file_edge_cases.json").read_text())
WINNER = {"a": "model_a", "b": "model_b", "tie": "tie", "both_bad": "both_bad"}
CODE_WINNER = ["model_a", "model_b", "tie", "both_bad"]


def _write_case(tmp_path: Path, case: dict) -> tuple[Path, str]:
    fmt = case["format"]
    if fmt == "csv":
        path = tmp_path / "case.csv"
        path.write_text(case["csv"])
    elif fmt == "lmarena-jsonl":
        path, fmt = tmp_path / "case.jsonl", "lmarena"
        path.write_text("".join(json.dumps(r) + "\n" for r in case["rows"]))
    else:
        path = tmp_path / "case.json"
        path.write_text(json.dumps(case["rows"]))
    return path, fmt


@pytest.mark.parametrize("case", EDGE_CASES, ids=[c["name"] for c in EDGE_CASES])
def test_the_database_import_and_the_rating_cli_read_the_same_battles(tmp_path, case):
    path, fmt = _write_case(tmp_path, case)
    if "error" in case:
        with pytest.raises(BattleFileError, match=case["error"].replace("(", r"\(").replace(")", r"\)")):
            read_battles(path, fmt, include_named=True)
        with pytest.raises(RowError, match=case["error"].replace("(", r"\(").replace(")", r"\)")):
            read_records(path, fmt, allowed_aspects=settings.ARENA_VOTE_ASPECTS)
        return
    expected = [tuple(row) for row in case["counted"]]
    imported = read_records(path, fmt, allowed_aspects=settings.ARENA_VOTE_ASPECTS)
    assert [(*r.models, WINNER[r.choice.outcome], r.anonymous) for r in imported.records] == expected
    assert imported.skipped_self == case["skipped_self"]
    rated = read_battles(path, fmt, include_named=True, ordered=False)
    battles = rated.battles
    assert [(battles.models[a], battles.models[b], CODE_WINNER[o])
            for a, b, o in zip(battles.a, battles.b, battles.outcome, strict=True)] == [e[:3] for e in expected]
    assert rated.skipped_self == case["skipped_self"]
    # Without --include-named the CLI counts exactly the anonymous ones.
    anonymous = [e for e in expected if e[3]]
    if anonymous:
        assert read_battles(path, fmt, ordered=False).battles.a.size == len(anonymous)


def test_every_container_of_a_release_reads_the_same(tmp_path):
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    (tmp_path / "r.json").write_text(json.dumps(rows))
    with gzip.open(tmp_path / "r.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)
    # Parquet with real nested structs and a timestamp column, as the release is published.
    table = pa.Table.from_pylist([{**r, "timestamp": pa.scalar(r["timestamp"]).cast(pa.string()).as_py()}
                                  for r in rows])
    pq.write_table(table, tmp_path / "r.parquet")
    reference = read_battle_file(SAMPLE)
    assert reference.format == "lmarena" and len(reference.battles) == 100
    for name in ("r.json", "r.jsonl.gz", "r.parquet"):
        assert detect_format(tmp_path / name) in ("lmarena", "json")
        read = read_battle_file(tmp_path / name)
        assert read.format == "lmarena"
        assert [(b.battle_id, b.winner, b.tags, b.style, b.time, b.prompt_text) for b in read.battles] == [
            (b.battle_id, b.winner, b.tags, b.style, b.time, b.prompt_text) for b in reference.battles], name


def test_a_release_row_keeps_its_categories_style_and_non_text_parts(tmp_path):
    row = json.loads(SAMPLE.read_text().splitlines()[0])
    row["conversation_a"][0]["content"].append({"type": "image", "image": None, "mimeType": "image/png"})
    (tmp_path / "one.jsonl").write_text(json.dumps(row) + "\n")
    battle = read_battle_file(tmp_path / "one.jsonl").battles[0]
    assert battle.battle_id == "c4b9710c-8d64-4bee-a0b0-94637ae4cc65"
    assert battle.language == "en" and "english" in battle.tags
    assert battle.style == ((1854, 8, 39, 65), (264, 1, 0, 5))  # conv_metadata, summed over h1-h6 etc.
    assert battle.conversations[0][0]["content"] == "Compare Tormenta20 with DnD5e\n[image: image/png]"
    assert battle.time is not None and battle.time.isoformat() == "2025-05-29T14:48:41.602925+00:00"
    assert set(battle.metadata) >= {"category_tag", "conv_metadata", "evaluation_session_id", "is_code"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": "1", "model_a": "x", "model_b": "y", "winner": "model_a", "timestamp": "yesterday"}',
         "line 1: timestamp 'yesterday'"),
        ('{"id": "1", "model_a": "x", "model_b": "y", "winner": "model_a", "conv_metadata": {"turns": -1}}',
         "line 1: conv_metadata.turns"),
        ('{"id": "1", "model_a": "x", "model_b": "y", "winner": "model_a", "is_code": "maybe"}', "line 1: 'is_code'"),
        ('{"id": "1", "model_a": "x", "model_b": "y", "winner": "model_a", "conversation_a": [{"role": "user", '
         '"content": [3]}], "conversation_b": []}', "line 1: conversation_a[0]"),
        ('{"id": "1", "model_a": "x"', "line 1: not valid JSON"),
    ],
)
def test_a_bad_release_row_is_named(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content + "\n")
    with pytest.raises(BattleFileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_battle_file(path)


def test_files_that_are_not_what_they_say(tmp_path):
    with pytest.raises(BattleFileError, match="not a complete gzip file"):
        (tmp_path / "x.jsonl.gz").write_bytes(b"not gzip")
        read_battle_file(tmp_path / "x.jsonl.gz")
    with pytest.raises(BattleFileError, match="not a Parquet file"):
        (tmp_path / "x.parquet").write_bytes(b"PAR1 nope")
        read_battle_file(tmp_path / "x.parquet")
    with pytest.raises(BattleFileError, match="--format"):
        read_battle_file(tmp_path / "x.txt")
    (tmp_path / "own.jsonl").write_text('{"models": ["a", "b", "c"], "vote": {"best": 0}}\n')
    with pytest.raises(BattleFileError, match="import_battles"):
        read_battle_file(tmp_path / "own.jsonl")


RELEASE = FIXTURES / "lmarena" / "arena_140k_votes.jsonl.gz"


@pytest.mark.parametrize("category", ["", "hard_6", "math", "if", "creative_writing", "coding", "english"])
def test_the_columnar_fast_path_rates_exactly_the_rows_of_the_shared_reader(category, monkeypatch):
    import leaderboard.ratings.io as ratings_io

    calls = []
    columnar = ratings_io._read_release_columns
    monkeypatch.setattr(ratings_io, "_read_release_columns", lambda *a, **k: calls.append(1) or columnar(*a, **k))
    try:
        fast = read_battles(RELEASE, ordered=False, category=category)
    except BattleFileError as exc:  # no row has the tag (no language or is_code in this file): both must say so
        fast = exc
    assert calls == [1]
    monkeypatch.setattr(ratings_io, "_read_release_columns", lambda *a, **k: None)
    try:
        slow = read_battles(RELEASE, ordered=False, category=category)
    except BattleFileError as exc:
        assert isinstance(fast, BattleFileError) and str(fast) == str(exc)
        return
    assert not isinstance(fast, BattleFileError)
    assert fast.battles.models == slow.battles.models
    for key in ("a", "b", "outcome"):
        np.testing.assert_array_equal(getattr(fast.battles, key), getattr(slow.battles, key))
    assert (fast.skipped_self, fast.skipped_named, fast.skipped_category) == (
        slow.skipped_self, slow.skipped_named, slow.skipped_category)
    assert fast.skipped_self == 10


@pytest.mark.parametrize("category", ["", "coding", "english", "german", "hard_6", "math"])
@pytest.mark.parametrize("include_named", [False, True])
def test_the_columnar_path_treats_missing_values_as_the_shared_reader_does(tmp_path, monkeypatch, category,
                                                                            include_named):
    import leaderboard.ratings.io as ratings_io

    rng = np.random.default_rng(3)
    rows = []
    for i in range(400):
        a, b = rng.choice(["m1", "m2", "m3", "m4"], 2, replace=bool(i % 50 == 0))
        row = {"id": f"r{i}", "model_a": str(a), "model_b": str(b),
               "winner": str(rng.choice(["model_a", "model_b", "tie", "both_bad", "tie (bothbad)"])),
               "anony": [True, False, None][i % 3], "is_code": [True, False, None][i % 4 % 3],
               "language": ["en", "de", None, "und", "English"][i % 5],
               "category_tag": None if i % 7 == 0 else {
                   "criteria_v0.1": {c: bool(rng.random() < 0.8) if i % 11 else None for c in (
                       "complexity", "creativity", "domain_knowledge", "problem_solving", "real_world", "specificity",
                       "technical_accuracy")},
                   "math_v0.1": {"math": [True, False, None][i % 3]}}}
        rows.append(row)
    path = tmp_path / "release.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)
    assert ratings_io._read_release_columns(path, ordered=False, category=category,
                                            include_named=include_named) is not None  # the fast path is taken
    fast = read_battles(path, ordered=False, category=category, include_named=include_named)
    monkeypatch.setattr(ratings_io, "_read_release_columns", lambda *a, **k: None)
    slow = read_battles(path, ordered=False, category=category, include_named=include_named)
    assert fast.battles.models == slow.battles.models
    for key in ("a", "b", "outcome"):
        np.testing.assert_array_equal(getattr(fast.battles, key), getattr(slow.battles, key))
    assert (fast.skipped_self, fast.skipped_named, fast.skipped_category) == (
        slow.skipped_self, slow.skipped_named, slow.skipped_category)


def test_a_given_format_reads_a_file_whatever_its_name(tmp_path):
    line = json.dumps({"id": "z1", "model_a": "m1", "model_b": "m2", "winner": "both_bad"}) + "\n"
    (tmp_path / "votes.txt").write_text(line)
    (tmp_path / "votes.json").write_text(json.dumps([json.loads(line)]))
    assert [b.winner for b in read_battle_file(tmp_path / "votes.txt", "lmarena").battles] == ["both_bad"]
    assert [b.battle_id for b in read_battle_file(tmp_path / "votes.json", "lmarena").battles] == ["z1"]
    with pytest.raises(BattleFileError, match="unknown format 'xml'"):
        read_battle_file(tmp_path / "votes.txt", "xml")
