"""The standalone CLI and the file readers."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ratings_support import REAL_FILE

from leaderboard.ratings.__main__ import main
from leaderboard.ratings.io import BattleFileError, read_battles

ROOT = Path(__file__).resolve().parents[3]
KEYS = ["model", "rating", "ci_low", "ci_high", "rank", "rank_ub", "votes", "component", "provisional",
        "ci_degenerate_share"]


def run(argv: list[str], capsys) -> tuple[int, list[dict] | None, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def _write_fastchat(path: Path, rows: list[dict]) -> Path:
    path.write_text(json.dumps(rows))
    return path


def _battles(n: int = 60, *, conversations: bool = False) -> list[dict]:
    rng = np.random.default_rng(0)
    names = ["alpha", "beta", "gamma"]
    rows = []
    for i in range(n):
        a, b = rng.choice(3, 2, replace=False)
        row = {"model_a": names[a], "model_b": names[b], "anony": True, "tstamp": 1000.0 + i, "judge": "j",
               "winner": ["model_a", "model_b", "tie", "tie (bothbad)"][int(rng.choice(4, p=[.4, .4, .1, .1]))]}
        if conversations:
            for side, model in (("a", a), ("b", b)):
                words = " ".join(["word"] * int(rng.integers(5, 50) * (1 + model)))
                row[f"conversation_{side}"] = [{"role": "user", "content": "hi"},
                                               {"role": "assistant", "content": f"# H\n- x\n**b** {words}"}]
        rows.append(row)
    return rows


@pytest.mark.parametrize("method", ["bt", "pl", "bayes", "elo"])
def test_real_fastchat_file_all_methods(method, capsys):
    code, rows, _ = run([str(REAL_FILE), "--method", method, "--bootstrap", "50", "--seed", "1"], capsys)
    assert code == 0
    assert len(rows) == 13
    expected = KEYS + (["mu", "sigma", "p_best"] if method == "bayes" else [])
    assert all(list(r) == expected for r in rows)
    # Two components (generation / edition models never met): rows by component, then by rating.
    assert [r["component"] for r in rows] == [1] * 6 + [2] * 7
    for c in (1, 2):
        ratings = [r["rating"] for r in rows if r["component"] == c]
        assert ratings == sorted(ratings, reverse=True)
    assert sum(r["votes"] for r in rows) == 2 * 1515  # anonymous battles only, each counted for both models
    if method == "bayes":
        assert sum(r["p_best"] for r in rows) == pytest.approx(1.0)


def test_real_file_ranking_is_deterministic_with_a_seed(capsys):
    args = [str(REAL_FILE), "--bootstrap", "40", "--seed", "7"]
    first = run(args, capsys)[1]
    assert run(args, capsys)[1] == first
    other = run([str(REAL_FILE), "--bootstrap", "40", "--seed", "8"], capsys)[1]
    assert [r["model"] for r in other] == [r["model"] for r in first]  # same point estimates
    assert [r["ci_low"] for r in other] != [r["ci_low"] for r in first]  # different resamples
    named = run([str(REAL_FILE), "--include-named", "--ci", "sandwich"], capsys)[1]
    assert sum(r["votes"] for r in named) == 2 * (2061 - 1)  # one named self-battle is skipped


def test_real_file_tie_models_and_no_conversations(capsys):
    for ties in ("davidson", "rao-kupper"):
        code, rows, _ = run([str(REAL_FILE), "--ties", ties, "--ci", "sandwich"], capsys)
        assert code == 0 and len(rows) == 13
    code, _, err = run([str(REAL_FILE), "--style-control"], capsys)
    assert code == 2 and "conversation" in err
    # Without ties two edition models never won: the MLE does not exist -> exit 1 with a reason.
    code, _, err = run([str(REAL_FILE), "--exclude-ties"], capsys)
    assert code == 1 and "imagenhub_SDEdit_edition" in err


def test_subprocess_entry_point(tmp_path):
    path = _write_fastchat(tmp_path / "b.json", _battles())
    proc = subprocess.run([sys.executable, "-m", "leaderboard.ratings", str(path), "--ci", "sandwich"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [list(r) for r in json.loads(proc.stdout)] == [KEYS] * 3
    bad = tmp_path / "bad.csv"
    bad.write_text("model_a,model_b,winner\nx,y,model_a\nx,y,draw\n")
    proc = subprocess.run([sys.executable, "-m", "leaderboard.ratings", str(bad)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert "row 2 (line 3)" in proc.stderr and "'draw'" in proc.stderr


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda rows: rows[2].update(winner="model_c"), "row 3: winner 'model_c'"),
        (lambda rows: rows[4].pop("model_b"), "row 5: missing 'model_b'"),
        (lambda rows: rows[0].update(model_a=""), "row 1: 'model_a' must be a non-empty string"),
        (lambda rows: rows[6].update(tstamp="yesterday"), "row 7: 'tstamp' must be a number"),
        (lambda rows: rows[3].update(anony="perhaps"), "row 4: 'anony' must be true or false"),
        (lambda rows: rows.__setitem__(1, [1, 2]), "row 2: expected a JSON object"),
    ],
)
def test_bad_fastchat_rows_exit_2_with_row_number(tmp_path, capsys, mutate, message):
    rows = _battles(10)
    mutate(rows)
    code, _, err = run([str(_write_fastchat(tmp_path / "b.json", rows))], capsys)
    assert code == 2
    assert message in err


def test_bad_fastchat_files(tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text('[{"model_a": "x",')
    code, _, err = run([str(broken)], capsys)
    assert code == 2 and "not valid JSON" in err
    named = _battles(5)
    for row in named:
        row["anony"] = False
    code, _, err = run([str(_write_fastchat(tmp_path / "named.json", named))], capsys)
    assert code == 2 and "--include-named" in err
    assert run([str(tmp_path / "missing.json")], capsys)[0] == 2
    other = tmp_path / "battles.txt"
    other.write_text("x")
    code, _, err = run([str(other)], capsys)
    assert code == 2 and "--format" in err


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("model_a,model_b,winner\nx,y,model_a\ny,x\n", "row 2 (line 3): expected 3 fields, got 2"),
        ("model_a,model_b,winner\nx,y,model_a\n,x,tie\n", "row 2 (line 3): 'model_a' must be a non-empty string"),
        ('model_a,model_b,winner\n"x\ny",z,model_a\nz,x,won\n', "row 2 (line 4): winner 'won'"),
        ("model_a,winner\nx,model_a\n", "line 1: header lacks column(s) model_b"),
        ("model_a,model_b,winner,tstamp\nx,y,tie,abc\n", "row 1 (line 2): 'tstamp' must be a number"),
        ("model_a,model_b,winner\n", "no battles to rate"),
    ],
)
def test_bad_csv_exit_2_with_line_number(tmp_path, capsys, body, message):
    path = tmp_path / "b.csv"
    path.write_text(body)
    code, _, err = run([str(path), "--method", "elo"], capsys)
    assert code == 2
    assert message in err


def test_csv_fast_and_stdlib_readers_agree(tmp_path, monkeypatch):
    rows = _battles(200)
    lines = ["model_a,model_b,winner,judge,tstamp"]
    lines += [f'{r["model_a"]},{r["model_b"]},{r["winner"]},{r["judge"]},{3000 - r["tstamp"]}' for r in rows]
    lines.append("alpha,alpha,tie,j,1")  # a self-battle is skipped
    path = tmp_path / "b.csv"
    path.write_text("\n".join(lines) + "\n")
    fast = read_battles(path, "csv")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    slow = read_battles(path, "csv")
    assert fast.battles.models == slow.battles.models == ("alpha", "beta", "gamma")
    for key in ("a", "b", "outcome"):
        np.testing.assert_array_equal(getattr(fast.battles, key), getattr(slow.battles, key))
    assert fast.skipped_self == slow.skipped_self == 1
    # Sorted by tstamp: the file lists them in reverse time order.
    first = rows[-1]
    assert fast.battles.models[fast.battles.a[0]] == first["model_a"]
    unordered = read_battles(path, "csv", ordered=False)
    assert unordered.battles.models[unordered.battles.a[0]] == rows[0]["model_a"]


def test_fastchat_style_control_from_conversations(tmp_path, capsys):
    path = _write_fastchat(tmp_path / "conv.json", _battles(300, conversations=True))
    loaded = read_battles(path, "fastchat", style=True)
    assert loaded.style_a.shape == (300, 4)
    assert (loaded.style_a[:, 1:] == [1, 1, 1]).all()  # one header, one list item, one bold span each
    code, rows, _ = run([str(path), "--style-control", "--ci", "sandwich"], capsys)
    assert code == 0 and len(rows) == 3
    partial = _battles(20, conversations=True)
    del partial[4]["conversation_b"]
    code, _, err = run([str(_write_fastchat(tmp_path / "partial.json", partial)), "--style-control"], capsys)
    assert code == 2 and "row 5" in err
    with pytest.raises(BattleFileError, match="has none"):
        read_battles(_write_fastchat(tmp_path / "none.json", _battles(5)), "fastchat", style=True)
