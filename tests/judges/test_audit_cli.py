"""``python -m judges.audit FILE``: exit codes, error lines, input forms, filtering and the output schema.

Pure: no database. Most cases call ``main(argv)`` in-process; two run the real module in a child process.
"""
from __future__ import annotations

import gzip
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from judges.audit import main
from judges.simulation import ScriptedJudgeParams, simulate_judgments

ROOT = Path(__file__).resolve().parents[2]
MODELS = ["m0", "m1", "m2", "m3"]


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    strengths = {"m0": 0.5, "m1": 0.2, "m2": -0.1, "m3": -0.6}
    judges = {"alpha": ("fa", ScriptedJudgeParams(strengths=strengths, position_bias=0.2, tie_rate=0.1)),
              "beta": (None, ScriptedJudgeParams(strengths=strengths, length_bias=1.0, unparsed_rate=0.05))}
    return simulate_judgments(n_battles=60, models=MODELS, families={"m0": "fa", "m1": "fb", "m2": "fa", "m3": "fc"},
                              judges=judges, rng=np.random.default_rng(0), replicates=2, replicate_share=0.5,
                              perturbations=("authority",), perturbation_share=0.5, strengths=strengths)


def write(path: Path, rows: list[dict], *, gz: bool = False, blank_lines: bool = False) -> Path:
    text = "".join(json.dumps(r) + ("\n\n" if blank_lines else "\n") for r in rows)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------------------------
# The output schema (the contract with the service, the report page and the plots)

EST = {"value", "ci_low", "ci_high", "n"}
TEST = EST | {"p_value"}
JUDGE_KEYS = {"judge_family", "n", "n_battles", "unparsed_rate", "position", "length", "style", "self_preference",
              "agreement", "perturbations", "corrected_ranking", "ranking_vs_human"}
RANKING_ROW = {"model", "rating", "ci_low", "ci_high", "rank", "raw_rating", "human_rating", "human_rank",
               "rank_change", "votes"}


def check_est(est: dict, *, test: bool = False) -> None:
    assert set(est) == (TEST if test else EST), est
    assert isinstance(est["n"], int)
    if est["value"] is None:
        assert est["ci_low"] is None and est["ci_high"] is None
    elif est["ci_low"] is not None:
        assert est["ci_low"] <= est["value"] + 1e-12 and est["value"] <= est["ci_high"] + 1e-12


def check_schema(report: dict) -> None:
    assert set(report) == {"meta", "judges"}
    assert set(report["meta"]) == {"n_rows", "judges", "seed", "bootstrap", "level", "length_threshold", "version"}
    assert report["meta"]["judges"] == len(report["judges"])
    for block in report["judges"].values():
        assert set(block) == JUDGE_KEYS
        check_est(block["unparsed_rate"])
        pos = block["position"]
        assert set(pos) == {"consistency", "first_position_rate", "conflict_rate"}
        check_est(pos["consistency"]), check_est(pos["conflict_rate"])
        check_est(pos["first_position_rate"], test=True)
        length = block["length"]
        assert set(length) == {"prefer_longer", "prefer_longer_human", "prefer_longer_diff", "length_coef",
                               "lc_win_rate", "curve"}
        check_est(length["prefer_longer"]), check_est(length["prefer_longer_human"])
        check_est(length["prefer_longer_diff"], test=True), check_est(length["length_coef"], test=True)
        for entry in length["lc_win_rate"].values():
            assert set(entry) == {"win_rate", "lc_win_rate", "n", "extrapolated"}
            check_est(entry["win_rate"]), check_est(entry["lc_win_rate"])
        for point in length["curve"]:
            # n_human is an addition to the schema (how many human votes the human_rate rests on).
            assert set(point) == {"bin_low", "bin_high", "n", "judge_rate", "human_rate", "n_human"}
        style = block["style"]
        assert set(style) == {"prefer_more_markdown", "prefer_more_markdown_human", "prefer_more_markdown_diff",
                              "markdown_coef"}
        check_est(style["prefer_more_markdown"]), check_est(style["prefer_more_markdown_human"])
        check_est(style["prefer_more_markdown_diff"], test=True), check_est(style["markdown_coef"], test=True)
        sp = block["self_preference"]
        assert set(sp) == {"self_preference", "own_win_rate", "human_win_rate"}
        check_est(sp["self_preference"], test=True), check_est(sp["own_win_rate"]), check_est(sp["human_win_rate"])
        agr = block["agreement"]
        assert set(agr) == {"accuracy", "accuracy_with_ties", "kappa", "inconsistent_rate", "matrix", "by_category"}
        for key in ("accuracy", "accuracy_with_ties", "kappa", "inconsistent_rate"):
            check_est(agr[key])
        assert agr["matrix"]["labels"] == ["a", "b", "tie"]
        assert agr["matrix"]["row_labels"] == ["a", "b", "tie", "inconsistent"]
        assert np.array(agr["matrix"]["counts"]).shape == (4, 3)
        for entry in agr["by_category"].values():
            assert set(entry) == {"accuracy", "kappa", "n"}
        for entry in block["perturbations"].values():
            assert set(entry) == {"robustness", "replicate_consistency", "difference", "toward_perturbed"}
            check_est(entry["robustness"]), check_est(entry["replicate_consistency"])
            check_est(entry["difference"], test=True)
            check_est(entry["toward_perturbed"], test=True)  # p_value: an addition (binomial test vs 1/2)
        ratings = [r["rating"] for r in block["corrected_ranking"]]
        assert ratings == sorted(ratings, reverse=True)
        for r in block["corrected_ranking"]:
            assert set(r) == RANKING_ROW
        vs = block["ranking_vs_human"]
        assert set(vs) == {"spearman", "kendall", "n_models", "movers"}
        assert len(vs["movers"]) <= 5
        for mover in vs["movers"]:
            assert set(mover) == {"model", "rank", "human_rank", "rank_change"}


def assert_json_clean(value: object) -> None:
    """Only str/int/float/None/list/dict, and no NaN or infinity anywhere."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, str)
            assert_json_clean(v)
    elif isinstance(value, list):
        for v in value:
            assert_json_clean(v)
    elif isinstance(value, float):
        assert math.isfinite(value)
    else:
        assert value is None or isinstance(value, str | int)


# --------------------------------------------------------------------------------------------


def test_a_good_file_gives_the_schema_on_stdout(tmp_path, rows, capsys):
    path = write(tmp_path / "j.jsonl", rows)
    code, out, err = run(capsys, [str(path), "--bootstrap", "50", "--indent", "1"])
    assert (code, err) == (0, "")
    report = json.loads(out)
    check_schema(report)
    assert_json_clean(report)
    assert report["meta"] == {"n_rows": len(rows), "judges": 2, "seed": 0, "bootstrap": 50, "level": 0.95,
                              "length_threshold": 30, "version": 1}
    assert set(report["judges"]["alpha"]["perturbations"]) == {"authority"}


def test_gzip_and_plain_files_and_stdin_give_the_same_report(tmp_path, rows, capsys, monkeypatch):
    plain = run(capsys, [str(write(tmp_path / "j.jsonl", rows)), "--bootstrap", "20"])
    zipped = run(capsys, [str(write(tmp_path / "j.jsonl.gz", rows, gz=True)), "--bootstrap", "20"])
    data = (tmp_path / "j.jsonl").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    piped = run(capsys, ["-", "--bootstrap", "20"])
    assert plain[0] == zipped[0] == piped[0] == 0
    assert plain[1] == zipped[1] == piped[1]


def test_blank_lines_take_the_exact_path_and_change_nothing(tmp_path, rows, capsys):
    plain = run(capsys, [str(write(tmp_path / "a.jsonl", rows)), "--bootstrap", "20"])
    spaced = run(capsys, [str(write(tmp_path / "b.jsonl", rows, blank_lines=True)), "--bootstrap", "20"])
    assert plain == spaced


def test_judge_filter_keeps_only_the_named_judges(tmp_path, rows, capsys):
    path = write(tmp_path / "j.jsonl", rows)
    code, out, _ = run(capsys, [str(path), "--judge", "beta", "--bootstrap", "20"])
    report = json.loads(out)
    assert code == 0 and list(report["judges"]) == ["beta"]
    assert report["meta"]["n_rows"] == sum(r["judge"] == "beta" for r in rows)
    both = json.loads(run(capsys, [str(path), "--judge", "beta", "--judge", "alpha", "--bootstrap", "20"])[1])
    assert both["judges"]["beta"] == report["judges"]["beta"]  # a judge's figures do not depend on the others
    code, out, err = run(capsys, [str(path), "--judge", "gamma"])
    assert (code, out) == (2, "") and "gamma" in err


@pytest.mark.parametrize(
    ("line3", "expected"),
    [
        (lambda r: {**r, "verdict": "first"}, ":3: field 'verdict': must be one of"),
        (lambda r: {k: v for k, v in r.items() if k != "len_b"}, ":3: field 'len_b': is required"),
        (lambda r: json.dumps(r)[:-5], ":3: invalid JSON"),
        (lambda r: [r], ":3: expected a JSON object"),
    ],
)
def test_bad_input_exits_2_naming_file_line_and_field_with_nothing_on_stdout(tmp_path, rows, capsys, line3, expected):
    lines = [json.dumps(r) for r in rows[:5]]
    bad = line3(rows[2])
    lines[2] = bad if isinstance(bad, str) else json.dumps(bad)
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    code, out, err = run(capsys, [str(path)])
    assert (code, out) == (2, "")
    assert err.startswith(f"{path}{expected}"), err
    assert err.count("\n") == 1


def test_bad_input_in_a_gzip_file_names_its_line_too(tmp_path, rows, capsys):
    broken = [dict(r) for r in rows[:4]]
    broken[3]["human"] = "maybe"
    path = write(tmp_path / "bad.jsonl.gz", broken, gz=True)
    code, out, err = run(capsys, [str(path)])
    assert (code, out) == (2, "")
    assert err.startswith(f"{path}:4: field 'human':")


def test_a_missing_file_exits_2(tmp_path, capsys):
    code, out, err = run(capsys, [str(tmp_path / "absent.jsonl")])
    assert (code, out) == (2, "") and "cannot read" in err


def test_the_module_runs_as_a_program_without_django(tmp_path, rows):
    path = write(tmp_path / "j.jsonl", rows)
    env = {**os.environ, "JUDGES_AUDIT_WORKERS": "2"}
    done = subprocess.run([sys.executable, "-m", "judges.audit", str(path), "--bootstrap", "20", "--seed", "4"],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    check_schema(report)
    assert report["meta"]["seed"] == 4
    probe = subprocess.run([sys.executable, "-c", "import judges.audit, judges.audits, judges.simulation, sys; "
                            "assert 'django' not in sys.modules; assert 'scipy' not in sys.modules"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr


def test_a_bad_line_as_a_program_prints_one_line_and_exits_2(tmp_path, rows):
    lines = [json.dumps(r) for r in rows[:3]]
    lines[2] = lines[2].replace('"order": "ab"', '"order": "up"').replace('"order": "ba"', '"order": "up"')
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    done = subprocess.run([sys.executable, "-m", "judges.audit", str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"{path}:3: field 'order': must be one of \"ab\", \"ba\", got \"up\"\n"


def test_the_fast_reader_and_the_stdlib_reader_build_the_same_table(rows):
    pytest.importorskip("pyarrow")
    from dataclasses import fields

    from judges.audits import data, read_judgments

    mixed = [dict(r) for r in rows]
    mixed[0].update({"md_a": None, "preference": 1.5, "category": None})
    del mixed[1]["md_b"], mixed[1]["replicate"], mixed[1]["perturbed"]
    text = "".join(json.dumps(r) + "\n" for r in mixed).encode()
    fast = data._read_with_arrow(text)  # the path read_judgments_bytes takes for a clean file
    slow = read_judgments(text.decode().splitlines())
    for f in fields(fast):
        a, b = getattr(fast, f.name), getattr(slow, f.name)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=f.name)
        else:
            assert a == b, f.name


def test_invalid_utf8_names_its_line_and_a_byte_order_mark_is_skipped(tmp_path, rows, capsys):
    lines = [json.dumps(r).encode() for r in rows[:4]]
    lines[1] = lines[1].replace(b'"m', b'"\xff', 1)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\n".join(lines) + b"\n")
    code, out, err = run(capsys, [str(bad)])
    assert (code, out) == (2, "") and err.startswith(f"{bad}:2: not valid UTF-8")
    good = tmp_path / "bom.jsonl"
    good.write_bytes(b"\xef\xbb\xbf" + b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    assert run(capsys, [str(good), "--bootstrap", "10"])[0] == 0
