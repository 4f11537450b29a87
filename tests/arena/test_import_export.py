"""import_battles and export_votes, as an operator runs them."""
from __future__ import annotations

import json
from collections import Counter
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count

from arena.models import Battle, BattleSlot, Contender, Vote, Voter
from tests.conftest import REAL_FILE

pytestmark = pytest.mark.django_db

WINNER_OF = {"a": "model_a", "b": "model_b", "tie": "tie", "both_bad": "tie (bothbad)"}


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def db_state() -> tuple[int, int, int, int, int]:
    return (Battle.objects.count(), BattleSlot.objects.count(), Vote.objects.count(), Contender.objects.count(),
            Voter.objects.count())


def _file_rows() -> list[dict]:
    return json.loads(Path(REAL_FILE).read_text())


def test_the_real_genai_arena_file_imports_with_matching_counts():
    out = run("import_battles", REAL_FILE, "--format", "fastchat")
    # One named row shows a model against itself: skipped and counted, as the rating CLI does.
    assert "2061 rows read (fastchat): 2060 battles added" in out and "1 self-battles skipped" in out
    counts = Counter(WINNER_OF[o] for o in Vote.objects.values_list("outcome", flat=True))
    assert counts == Counter(r["winner"] for r in _file_rows() if r["model_a"] != r["model_b"])
    assert sum(counts.values()) == 2060
    assert Contender.objects.count() == 13
    assert Battle.objects.filter(anonymous=True).count() == 1515
    # The same model_a / model_b per row as in the file, in order of time.
    rows = json.loads(Path(REAL_FILE).read_text())
    first = Vote.objects.order_by("created").select_related("battle").first()
    names = [s.contender.name for s in first.battle.slots.order_by("position")]
    earliest = min(rows, key=lambda r: r["tstamp"])
    assert names == [earliest["model_a"], earliest["model_b"]]


def test_reimporting_the_same_file_adds_nothing():
    run("import_battles", REAL_FILE, "--format", "fastchat")
    before = db_state()
    out = run("import_battles", REAL_FILE, "--format", "fastchat")
    assert "0 battles added, 2060 already present" in out
    assert db_state() == before


@pytest.mark.parametrize("fmt", ["fastchat", "jsonl"])
def test_export_then_reimport_round_trips(tmp_path, fmt):
    run("import_battles", REAL_FILE, "--format", "fastchat")
    before = db_state()
    exported = tmp_path / f"votes.{fmt}"
    run("export_votes", "--format", fmt, "--output", str(exported))
    assert "0 battles added, 2060 already present" in run("import_battles", str(exported), "--format", fmt)
    assert db_state() == before
    if fmt == "fastchat":
        # Every row of the original file comes back field for field (the skipped self-battle aside).
        original = sorted(json.dumps(r, sort_keys=True) for r in _file_rows() if r["model_a"] != r["model_b"])
        again = sorted(json.dumps(r, sort_keys=True) for r in json.loads(exported.read_text()))
        assert again == original


def test_an_export_imports_into_an_empty_database_identically(tmp_path):
    run("import_battles", REAL_FILE, "--format", "fastchat")
    exported = tmp_path / "votes.jsonl"
    run("export_votes", "--format", "jsonl", "--output", str(exported))
    summary = list(Vote.objects.values("outcome", "battle__anonymous").annotate(n=Count("id")).order_by(
        "outcome", "battle__anonymous"))
    Vote.objects.all().delete()
    Battle.objects.all().delete()
    run("import_battles", str(exported))
    assert list(Vote.objects.values("outcome", "battle__anonymous").annotate(n=Count("id")).order_by(
        "outcome", "battle__anonymous")) == summary


def test_live_k_wise_votes_export_to_jsonl_and_round_trip(tmp_path, voter_api, make_battle):
    battle = make_battle(voter_api, k=4)
    voter_api.post(f"/api/v1/battles/{battle.id}/vote", {"ranking": [[2], [0, 3], [1]], "aspects": {"style": [[0],
                   [1, 2, 3]]}, "rationale": "2 is right"}, format="json")
    pairwise = make_battle(voter_api, k=2)
    voter_api.post(f"/api/v1/battles/{pairwise.id}/vote", {"outcome": "b"}, format="json")
    jsonl, fastchat = tmp_path / "v.jsonl", tmp_path / "v.json"
    run("export_votes", "--format", "jsonl", "--output", str(jsonl))
    err = StringIO()
    call_command("export_votes", "--format", "fastchat", "--output", str(fastchat), stdout=StringIO(), stderr=err)
    assert "1 K-wise votes left out" in err.getvalue()
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    ranked = next(r for r in rows if "ranking" in r["vote"])
    assert ranked["vote"] == {"ranking": [[2], [0, 3], [1]], "aspects": {"style": [[0], [1, 2, 3]]},
                              "rationale": "2 is right"}
    assert ranked["prompt"]["text"] == "Write a haiku about rain." and len(ranked["responses"]) == 4
    assert len(json.loads(fastchat.read_text())) == 1
    before = db_state()
    assert "0 battles added, 2 already present" in run("import_battles", str(jsonl))
    assert "0 battles added, 1 already present" in run("import_battles", str(fastchat))
    assert db_state() == before


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


GOOD = {"model_a": "m1", "model_b": "m2", "winner": "model_a", "judge": "u1", "anony": True, "tstamp": 1.7e9}


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        ({**GOOD, "winner": "model_c"}, "winner"),
        ({k: v for k, v in GOOD.items() if k != "model_a"}, "missing 'model_a'"),
        ({**GOOD, "tstamp": "yesterday"}, "tstamp"),
        ({**GOOD, "timestamp": "last week"}, "timestamp"),
        ({**GOOD, "anony": "perhaps"}, "anony"),
        ({**GOOD, "conversation_a": "hello"}, "conversation_a"),
        ({**GOOD, "category_tag": ["math"]}, "category_tag"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_a_malformed_fastchat_row_reports_its_row_and_imports_nothing(tmp_path, bad_row, reason):
    rows = [GOOD, {**GOOD, "tstamp": 1.7e9 + 1}, bad_row]
    path = write(tmp_path, "bad.json", json.dumps(rows))
    with pytest.raises(CommandError) as error:
        run("import_battles", path, "--format", "fastchat")
    assert "row 3:" in str(error.value) and reason in str(error.value)
    assert "nothing was imported" in str(error.value)
    assert db_state() == (0, 0, 0, 0, 0)


def test_self_battles_are_skipped_and_rows_without_a_time_are_stamped_once(tmp_path):
    timeless = {k: v for k, v in GOOD.items() if k != "tstamp"}
    path = write(tmp_path, "odd.json", json.dumps([GOOD, {**GOOD, "model_b": "m1"}, timeless]))
    out = run("import_battles", path, "--format", "fastchat")
    assert "3 rows read (fastchat): 2 battles added" in out and "1 self-battles skipped" in out
    stamped = Battle.objects.get(created__gt=Vote.objects.order_by("created").first().created)
    assert stamped.source_metadata == {"time": "stamped at import"}
    # The identity of a timeless row does not depend on the day it was imported.
    assert "0 battles added, 2 already present" in run("import_battles", path, "--format", "fastchat")
    exported = tmp_path / "out.json"
    run("export_votes", "--format", "fastchat", "--output", str(exported))
    assert sorted(json.dumps(r, sort_keys=True) for r in json.loads(exported.read_text())) == sorted(
        json.dumps(r, sort_keys=True) for r in (GOOD, timeless))
    assert "0 battles added, 2 already present" in run("import_battles", str(exported), "--format", "fastchat")


def test_a_malformed_jsonl_line_reports_its_line_number(tmp_path):
    good = json.dumps({"models": ["m1", "m2", "m3"], "vote": {"best": 1}, "voter": "v", "tstamp": 1.7e9})
    bad = json.dumps({"models": ["m1", "m2", "m3"], "vote": {"ranking": [[0], [1]]}, "voter": "v", "tstamp": 1.7e9})
    path = write(tmp_path, "bad.jsonl", f"{good}\n\n{bad}\n")
    with pytest.raises(CommandError, match=r"line 3: vote.ranking: must name every position"):
        run("import_battles", path)
    assert db_state() == (0, 0, 0, 0, 0)


def test_csv_imports_and_a_bad_line_is_named(tmp_path):
    path = write(tmp_path, "ok.csv", "model_a,model_b,winner,judge,tstamp\nm1,m2,model_a,u,1700000000\n"
                                     "m2,m3,tie (bothbad),u,1700000001.5\n")
    assert "2 battles added" in run("import_battles", path, "--format", "csv")
    assert sorted(Vote.objects.values_list("outcome", flat=True)) == ["a", "both_bad"]
    bad = write(tmp_path, "bad.csv", "model_a,model_b,winner,tstamp\nm1,m2,model_a,1\nm1,m2,model_z,2\n")
    with pytest.raises(CommandError, match=r"row 2 \(line 3\): winner 'model_z'"):
        run("import_battles", bad, "--format", "csv")
    missing = write(tmp_path, "missing.csv", "model_a,model_b,tstamp\nm1,m2,1\n")
    with pytest.raises(CommandError, match=r"line 1: header lacks column.*winner"):
        run("import_battles", missing, "--format", "csv")
    assert Vote.objects.count() == 2


def test_a_file_that_is_not_json_is_refused(tmp_path):
    with pytest.raises(CommandError, match="not valid JSON"):
        run("import_battles", write(tmp_path, "x.json", "[{"), "--format", "fastchat")
    with pytest.raises(CommandError, match="no such file"):
        run("import_battles", str(tmp_path / "absent.json"))
    with pytest.raises(CommandError, match="cannot tell the format"):
        run("import_battles", write(tmp_path, "x.txt", ""))


def test_identical_rows_in_one_file_are_kept_as_separate_votes(tmp_path):
    path = write(tmp_path, "dup.json", json.dumps([GOOD, GOOD, GOOD]))
    assert "3 battles added" in run("import_battles", path)
    assert "0 battles added, 3 already present" in run("import_battles", path)


def test_conversations_become_prompt_and_responses(tmp_path):
    row = {**GOOD, "conversation_a": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello"}],
           "conversation_b": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hey"}],
           "language": "English", "category_tag": "chit-chat"}
    run("import_battles", write(tmp_path, "conv.json", json.dumps([row])))
    battle = Battle.objects.select_related("prompt").get()
    assert (battle.prompt.text, battle.prompt.language, battle.prompt.category) == ("Hi?", "English", "chit-chat")
    assert [s.response for s in battle.slots.order_by("position")] == ["Hello", "Hey"]
    exported = tmp_path / "out.json"
    run("export_votes", "--format", "fastchat", "--output", str(exported))
    assert json.loads(exported.read_text()) == [row]


@pytest.mark.postgres
def test_an_import_inside_a_transaction_turns_the_triggers_back_on(tmp_path):
    from django.db import connection, transaction

    with transaction.atomic():
        run("import_battles", write(tmp_path, "ok.json", json.dumps([GOOD])))
        with connection.cursor() as cursor:
            cursor.execute("SHOW session_replication_role")
            assert cursor.fetchone()[0] == "origin"


def test_the_importer_refuses_records_that_break_the_model_from_any_caller():
    from datetime import UTC, datetime

    from arena.transfer.formats import BattleRecord
    from arena.transfer.importer import battles_import
    from arena.verdicts import VoteChoice

    bad = BattleRecord(models=("m1", "m2", "m3"), choice=VoteChoice("pairwise", outcome="a"), voter_key="v",
                       created=datetime(2024, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="record 0: a pairwise vote does not fit a battle of 3"):
        battles_import(records=[bad])
    assert db_state() == (0, 0, 0, 0, 0)
