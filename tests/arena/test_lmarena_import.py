"""LMArena's public release, imported as it is and rated from the database, the API and the CLI."""
from __future__ import annotations

import gzip
import json
from collections import Counter
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db.models import Count

from arena.models import Battle, BattleSlot, BattleTag, Vote
from leaderboard.ratings.__main__ import main as ratings_cli

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lmarena"
RELEASE = FIXTURES / "arena_140k_votes.jsonl.gz"  # the whole 140k release, a copy of shared/data's (see README)
SAMPLE = FIXTURES / "sample_100.jsonl"
HARD = ("complexity", "creativity", "domain_knowledge", "problem_solving", "real_world", "specificity",
        "technical_accuracy")


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def _release_rows() -> list[dict]:
    with gzip.open(RELEASE, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _expected_tag_counts(rows: list[dict]) -> Counter[str]:
    """The categories counted straight from the file, independently of the reader under test."""
    counts: Counter[str] = Counter()
    for r in rows:
        if r["model_a"] == r["model_b"]:
            continue
        tags = r["category_tag"]
        counts["hard_6"] += sum(bool(tags["criteria_v0.1"][c]) for c in HARD) >= 6
        counts["math"] += bool(tags["math_v0.1"]["math"])
        counts["if"] += bool(tags["if_v0.1"]["if"])
        counts["creative_writing"] += bool(tags["creative_writing_v0.1"]["creative_writing"])
    return counts


def cli_models(rows: list[dict], category: str) -> set[str]:
    kept = [r for r in rows if r["model_a"] != r["model_b"] and (
        not category or _expected_tag_counts([r])[category])]
    return {r["model_a"] for r in kept} | {r["model_b"] for r in kept}


def _cli_ratings(args: list[str], capsys) -> dict[str, float]:
    assert ratings_cli(args) == 0
    return {r["model"]: r["rating"] for r in json.loads(capsys.readouterr().out)}


def test_the_whole_release_imports_once_and_rates_the_same_from_the_database_and_the_cli(voter_api, capsys):
    rows = _release_rows()
    out = run("import_battles", str(RELEASE))
    assert out.startswith("135634 rows read (lmarena): 135624 battles added")
    assert "53 new contenders, 10 self-battles skipped" in out
    assert "0 battles added, 135624 already present" in run("import_battles", str(RELEASE))
    assert Vote.objects.count() == 135624
    # The release's ids are the battles' identities; no prompt text, yet every category is kept.
    assert Battle.objects.filter(external_id=rows[0]["id"]).exists()
    stored = Counter(dict(BattleTag.objects.values_list("tag").annotate(n=Count("id"))))
    expected = _expected_tag_counts(rows)
    assert {t: stored[t] for t in expected} == dict(expected)
    assert Battle.objects.filter(prompt__isnull=False).count() == 0
    for category in ("", "hard_6", "math"):
        filters = ["--category", category] if category else []
        line = run("refit_leaderboard", "--ci", "sandwich", *filters)
        n_votes = expected[category] if category else 135624
        assert f"bt, {n_votes} votes, {len(cli_models(rows, category))} models" in line
        query = {"ci": "sandwich", **({"category": category} if category else {})}
        body = voter_api.get("/api/v1/leaderboard", query).json()
        assert body["snapshot"]["n_votes"] == n_votes
        database = {r["model"]: r["rating"] for r in body["rows"]}
        cli = _cli_ratings([str(RELEASE), "--ci", "sandwich", *filters], capsys)
        assert database.keys() == cli.keys()
        assert max(abs(database[m] - cli[m]) for m in cli) < 1e-6  # the same battles, the same fit


def test_the_complete_rows_keep_style_language_tags_and_conversations(tmp_path):
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    assert "100 battles added" in run("import_battles", str(SAMPLE))
    first = Battle.objects.get(external_id=rows[0]["id"])
    assert (first.language, first.turns) == ("en", 1)
    assert first.prompt.text == "Compare Tormenta20 with DnD5e"
    slots = list(first.slots.order_by("position"))
    assert [(s.style_tokens, s.style_headers, s.style_lists, s.style_bold) for s in slots] == [
        (1854, 8, 39, 65), (264, 1, 0, 5)]
    assert slots[0].response.startswith("Excellent question!")
    assert first.source_metadata["conv_metadata"]["sum_user_tokens"] == 11
    assert set(first.tags.values_list("tag", flat=True)) == {"english"} | (
        {"hard_6"} if sum(rows[0]["category_tag"]["criteria_v0.1"].values()) >= 6 else set())
    languages = Counter(Battle.objects.values_list("language", flat=True))
    assert languages == Counter(r["language"] for r in rows)
    assert BattleTag.objects.filter(tag="coding").count() == sum(r["is_code"] for r in rows)
    assert BattleSlot.objects.filter(style_tokens__isnull=True).count() == 0
    assert BattleTag.objects.filter(tag="multiturn").count() == sum(r["conv_metadata"]["turns"] >= 2 for r in rows)
    # An export in FastChat's shape keeps the release's fields and its ids: importing it again adds nothing.
    exported = tmp_path / "out.json"
    run("export_votes", "--format", "fastchat", "--output", str(exported))
    again = json.loads(exported.read_text())
    assert {r["id"] for r in again} == {r["id"] for r in rows}
    assert all("conv_metadata" in r and "category_tag" in r for r in again)
    assert "0 battles added, 100 already present" in run("import_battles", str(exported), "--format", "fastchat")


@pytest.mark.parametrize("fmt", ["csv", "fastchat", "lmarena"])
def test_categories_and_languages_survive_an_import_without_conversations(tmp_path, voter_api, fmt):
    """Regression: they used to live only on a Prompt row, made only when there was prompt text."""
    battles = [("m1", "m2", "tie", "coding", "en"), ("m2", "m3", "tie", "coding", "de"),
               ("m1", "m3", "tie", "writing", "en"), ("m3", "m1", "model_a", "coding", "en"),
               ("m1", "m2", "model_a", "coding", "en")]
    if fmt == "csv":
        path = tmp_path / "b.csv"
        path.write_text("model_a,model_b,winner,tstamp,category,language\n" + "".join(
            f"{a},{b},{w},{1.7e9 + i},{c},{lang}\n" for i, (a, b, w, c, lang) in enumerate(battles)))
    elif fmt == "fastchat":
        path = tmp_path / "b.json"
        path.write_text(json.dumps([{"model_a": a, "model_b": b, "winner": w, "anony": True, "tstamp": 1.7e9 + i,
                                     "category_tag": c, "language": lang}
                                    for i, (a, b, w, c, lang) in enumerate(battles)]))
    else:
        path = tmp_path / "b.jsonl"
        path.write_text("".join(json.dumps({"id": f"x{i}", "model_a": a, "model_b": b, "winner": w,
                                            "language": lang, "is_code": c == "coding"}) + "\n"
                                for i, (a, b, w, c, lang) in enumerate(battles)))
    assert "5 battles added" in run("import_battles", str(path), "--format", fmt)
    coding = voter_api.get("/api/v1/leaderboard", {"category": "coding", "ci": "sandwich"}).json()
    assert coding["snapshot"]["n_votes"] == 4
    english = voter_api.get("/api/v1/leaderboard", {"language": "en", "ci": "sandwich"}).json()
    assert english["snapshot"]["n_votes"] == 4
    assert set(BattleTag.objects.values_list("tag", flat=True)) >= {"coding", "english", "german"}
