"""Our rating CLI against arena-rank 0.1.1 (LMArena's own rating code) on the real LMArena 140k votes.

Setup (once, outside the project; arena-rank pulls in jax, optax, pandas, datasets):

    python3.11 -m venv /tmp/arenarank-venv
    /tmp/arenarank-venv/bin/pip install arena-rank==0.1.1

Run (from the repository root):

    .venv/bin/python benchmarks/lmarena_vs_arena_rank.py [--category all|hard_6|math] [--repeats 5]
        [--warmup 1] [--ours-input lmarena|csv] [--top 10] [--tolerance 0.05]
        [--converge] [--hessian-reg 1e-5] [--arena-venv /tmp/arenarank-venv] [--ours-root .]

Both sides run as whole child processes on the same gzip JSONL file
(tests/fixtures/lmarena/arena_140k_votes.jsonl.gz, a copy of shared/data's; 135,634 votes), timed
interleaved (A B A B ...) after one untimed warm-up each, so interpreter start-up, imports (numpy /
jax), reading the file, the fit and the 95 % sandwich interval all count:

* arena-rank: a helper written to a temporary folder and run by /tmp/arenarank-venv/bin/python. It
  reads the file with the stdlib (gzip + json), filters the category, builds a pandas DataFrame of
  model_a, model_b, winner, then does exactly what arena-rank's README does for LMArena's default
  (not style-controlled) leaderboard: ``PairDataset.from_pandas(df)`` (defaults: no reweighting,
  winner mapped model_a 1, model_b 0, tie 0.5, both_bad 0.5), ``BradleyTerry(n_competitors)``
  (defaults: scale 400, base 10, init_rating 1000, hessian_reg 1e-5, L-BFGS max_iter 1000,
  ftol = gtol = 1e-9, float64) and ``compute_ratings_and_cis(dataset, significance_level=0.05)``
  (default ci_method "sandwich"). It prints JSON ``[{model, rating, ci_low, ci_high}]`` and its
  stage timings on stderr. Nothing touches the network: only a local DataFrame is passed and
  ``datasets`` / the hub are never imported (HF_HUB_OFFLINE=1 is set anyway).
* ours: ``.venv/bin/python -m leaderboard.ratings FILE --format lmarena --ci sandwich --ties half
  [--category C]`` (Bradley-Terry, ties half a win each, both_bad a tie, self-battles skipped).
  ``--ours-input csv`` is the fallback for a CLI without ``--format lmarena`` / ``--category``: the
  file is converted once, untimed, to a temporary CSV ``model_a,model_b,winner`` (both_bad written as
  ``tie (bothbad)``, rows of other categories left out) and the CLI runs with ``--format csv``. Its
  times then exclude parsing the JSONL (the conversion time is printed for reference).

Categories: ``hard_6`` keeps rows where at least 6 of the 7 ``category_tag.criteria_v0.1`` flags are
true (LMArena's "hard prompts"), ``math`` rows with ``category_tag.math_v0.1.math`` true.

Prints the timing table (min / median wall, peak RSS, ratio arena-rank / ours), the side-by-side
ratings and intervals (top N, then every model), the largest differences, and flags models whose
ratings differ by more than ``--tolerance`` points (also after removing the common shift: both sides
centre the ratings at mean 1000, so one model fitted differently moves every other one). Exits
non-zero with a message when the arena-rank venv is missing, our CLI lacks ``--format lmarena``
(use ``--ours-input csv``) or a child fails.

``--converge --hessian-reg 1e-9`` runs arena-rank's L-BFGS to convergence with a negligible Hessian
ridge (not LMArena's settings): the check that the remaining differences are those two settings.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "lmarena" / "arena_140k_votes.jsonl.gz"
ARENA_VENV = Path("/tmp/arenarank-venv")
CATEGORIES = ("all", "hard_6", "math")
VENV_HELP = ("python3.11 -m venv /tmp/arenarank-venv && "
             "/tmp/arenarank-venv/bin/pip install arena-rank==0.1.1")


def keep_row(tag: dict, category: str) -> bool:
    """Whether a vote with this ``category_tag`` belongs to ``category`` (all, hard_6, math)."""
    if category == "all":
        return True
    if category == "hard_6":
        return sum(bool(v) for v in tag["criteria_v0.1"].values()) >= 6
    if category == "math":
        return bool(tag["math_v0.1"]["math"])
    raise ValueError(f"unknown category {category!r}")


# Run by the arena-rank venv's python; keep_row's source is prepended, so both sides filter alike.
HELPER_BODY = r'''
import gzip, json, sys, time

def main():
    path, category, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    t0 = time.perf_counter()
    import pandas as pd
    from arena_rank.models.bradley_terry import BradleyTerry
    from arena_rank.utils.data_utils import PairDataset
    t1 = time.perf_counter()
    a, b, w = [], [], []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if keep_row(row["category_tag"], category):
                a.append(row["model_a"])
                b.append(row["model_b"])
                w.append(row["winner"])
    df = pd.DataFrame({"model_a": a, "model_b": b, "winner": w})
    t2 = time.perf_counter()
    dataset = PairDataset.from_pandas(df)
    t3 = time.perf_counter()
    model = BradleyTerry(n_competitors=len(dataset.competitors), **options)
    res = model.compute_ratings_and_cis(dataset, significance_level=0.05, ci_method="sandwich")
    rows = [{"model": m, "rating": float(r), "ci_low": float(lo), "ci_high": float(hi)}
            for m, r, lo, hi in zip(res["competitors"], res["ratings"], res["rating_lower"], res["rating_upper"])]
    rows.sort(key=lambda r: -r["rating"])
    t4 = time.perf_counter()
    json.dump(rows, sys.stdout, indent=1)
    print(json.dumps({"stages": {"imports": t1 - t0, "read JSONL + DataFrame": t2 - t1,
                                 "PairDataset.from_pandas": t3 - t2, "fit + sandwich": t4 - t3},
                      "rows": len(df)}), file=sys.stderr)

main()
'''


def write_helper(folder: Path) -> Path:
    """The arena-rank helper script, written into ``folder``."""
    path = folder / "arena_rank_helper.py"
    path.write_text(inspect.getsource(keep_row) + HELPER_BODY)
    return path


def write_csv(src: Path, dest: Path, category: str) -> tuple[int, float]:
    """Convert the JSONL votes of ``category`` to ``model_a,model_b,winner``; (rows, seconds)."""
    t0 = time.perf_counter()
    n = 0
    with gzip.open(src, "rt", encoding="utf-8") as fh, open(dest, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["model_a", "model_b", "winner"])
        for line in fh:
            row = json.loads(line)
            if keep_row(row["category_tag"], category):
                winner = "tie (bothbad)" if row["winner"] == "both_bad" else row["winner"]
                writer.writerow([row["model_a"], row["model_b"], winner])
                n += 1
    return n, time.perf_counter() - t0


def ours_supports(python: Path, cwd: Path, needed: list[str]) -> list[str]:
    """Which of ``needed`` (strings expected in ``--help``) our CLI's help lacks."""
    text = subprocess.run([str(python), "-m", "leaderboard.ratings", "--help"], cwd=cwd, capture_output=True,
                          text=True).stdout
    return [s for s in needed if s not in text]


def run_timed(cmd: list[str], out_path: Path, env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """Run ``cmd`` with stdout to ``out_path``; (wall seconds, peak RSS MiB, stderr). Exits 2 on failure."""
    with open(out_path, "w") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - t0
        err.seek(0)
        stderr = err.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"error: {' '.join(cmd)} failed (exit {os.waitstatus_to_exitcode(status)}):\n{stderr}")
    return wall, usage.ru_maxrss / 1024, stderr


def fmt_num(x: float | None, width: int = 8, prec: int = 2) -> str:
    return f"{'-inf/inf':>{width}}" if x is None else f"{x:{width}.{prec}f}"


def diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def side_by_side(rows: list[tuple[dict, dict]], tol: float, shift: float) -> list[str]:
    """Table lines: arena-rank and ours per model, differences (ours - arena-rank), flags.

    ``d - shift`` is the rating difference less the common shift (the median difference): both sides
    centre the ratings at a mean of 1000, so one model fitted differently moves all the others.
    """
    width = max([len(ar["model"]) for ar, _ in rows] + [5])
    lines = [f"{'#':>3} {'model':<{width}} {'votes':>6} | {'arena-rank':>8} {'[low':>8} {'high]':>8} | "
             f"{'ours':>8} {'[low':>8} {'high]':>8} | {'d rating':>9} {'d - shift':>9} {'d low':>7} {'d high':>7}"]
    for i, (ar, us) in enumerate(rows, start=1):
        d = diff(ar["rating"], us["rating"])
        rel = None if d is None else d - shift
        flag = ""
        if d is None or abs(d) > tol:
            flag = " <-- differs" + (" (also less the shift)" if rel is None or abs(rel) > tol else "")
        if us.get("provisional"):
            flag += " [provisional in ours: interval at least the Fisher one]"
        votes = us.get("votes")
        lines.append(
            f"{i:>3} {ar['model']:<{width}} {'?' if votes is None else f'{votes:.0f}':>6} | {fmt_num(ar['rating'])} "
            f"{fmt_num(ar['ci_low'])} {fmt_num(ar['ci_high'])} | {fmt_num(us['rating'])} {fmt_num(us['ci_low'])} "
            f"{fmt_num(us['ci_high'])} | {fmt_num(d, 9, 4)} {fmt_num(rel, 9, 4)} "
            f"{fmt_num(diff(ar['ci_low'], us['ci_low']), 7)} {fmt_num(diff(ar['ci_high'], us['ci_high']), 7)}{flag}")
    return lines


def largest(rows: list[tuple[dict, dict]], key: str, shift: float = 0.0) -> tuple[float, str]:
    """Largest |ours - arena-rank - shift| of ``key`` and its model (inf when one side is unbounded)."""
    best = (-1.0, "")
    for ar, us in rows:
        d = diff(ar[key], us[key])
        value = float("inf") if d is None else abs(d - shift)
        if value > best[0]:
            best = (value, ar["model"])
    return best


def main() -> None:
    """Time both CLIs and compare their leaderboards."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="LMArena votes as gzip JSONL (default: %(default)s)")
    parser.add_argument("--category", choices=CATEGORIES, default="all")
    parser.add_argument("--repeats", type=int, default=5, help="timed A/B pairs, at least 3 (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of each before timing (default 1)")
    parser.add_argument("--ours-input", choices=("lmarena", "csv"), default="lmarena",
                        help="lmarena: our CLI reads the .jsonl.gz itself (--format lmarena); csv: fallback for a "
                             "CLI without it, the file converted once (untimed) to a temporary CSV")
    parser.add_argument("--ours-root", type=Path, default=ROOT,
                        help="checkout whose leaderboard.ratings runs (default: this one)")
    parser.add_argument("--arena-venv", type=Path, default=ARENA_VENV, help="venv with arena-rank 0.1.1")
    parser.add_argument("--hessian-reg", type=float, default=1e-5,
                        help="arena-rank BradleyTerry hessian_reg (default 1e-5, its own; times the number of votes, "
                             "it is added to the Hessian's diagonal in the sandwich)")
    parser.add_argument("--converge", action="store_true",
                        help="run arena-rank's L-BFGS to convergence (ftol 0, gtol 1e-13, max_iter 100000) instead "
                             "of its defaults (ftol = gtol = 1e-9, max_iter 1000); not LMArena's default")
    parser.add_argument("--top", type=int, default=10, help="rows of the first table (default 10)")
    parser.add_argument("--tolerance", type=float, default=0.05, help="flag |rating difference| above this (points)")
    args = parser.parse_args()
    if args.repeats < 3:
        parser.error("--repeats must be at least 3")
    arena_python = args.arena_venv / "bin" / "python"
    if not arena_python.exists():
        sys.exit(f"error: {arena_python} is missing; create the arena-rank venv first:\n    {VENV_HELP}")
    probe = subprocess.run([str(arena_python), "-c", "import importlib.metadata as m; print(m.version('arena-rank'))"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        sys.exit(f"error: arena-rank is not installed in {args.arena_venv}:\n    {VENV_HELP}")
    arena_version = probe.stdout.strip()
    if not args.data.exists():
        sys.exit(f"error: {args.data} is missing")
    ours_python = ROOT / ".venv" / "bin" / "python"
    if not ours_python.exists():
        ours_python = Path(sys.executable)

    with tempfile.TemporaryDirectory(prefix="lmarena_vs_arena_rank_") as tmp_name:
        tmp = Path(tmp_name)
        helper = write_helper(tmp)
        options: dict[str, float] = {"hessian_reg": args.hessian_reg}
        if args.converge:
            options.update(ftol=0.0, gtol=1e-13, max_iter=100_000)
        arena_cmd = [str(arena_python), str(helper), str(args.data), args.category, json.dumps(options)]
        ours_cmd = [str(ours_python), "-m", "leaderboard.ratings"]
        if args.ours_input == "lmarena":
            needed = ["lmarena"] + (["--category"] if args.category != "all" else [])
            missing = ours_supports(ours_python, args.ours_root, needed)
            if missing:
                sys.exit(f"error: our CLI's --help has no {', '.join(missing)} yet; rerun with --ours-input csv "
                         "(fallback: converts the file to a temporary CSV first)")
            ours_cmd += [str(args.data), "--format", "lmarena", "--ci", "sandwich", "--ties", "half"]  # as arena-rank
            if args.category != "all":
                ours_cmd += ["--category", args.category]
            conversion = ""
        else:
            csv_path = tmp / f"lmarena_{args.category}.csv"
            n_csv, seconds = write_csv(args.data, csv_path, args.category)
            ours_cmd += [str(csv_path), "--format", "csv", "--ci", "sandwich", "--ties", "half"]
            conversion = (f"fallback --ours-input csv: {n_csv:,} rows converted once to a CSV in {seconds:.2f} s "
                          "(stdlib, untimed below: our times exclude parsing the JSONL)")
        env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONHASHSEED="0")
        arena_out, ours_out = tmp / "arena_rank.json", tmp / "ours.json"
        for _ in range(args.warmup):
            run_timed(arena_cmd, arena_out, env, tmp)
            run_timed(ours_cmd, ours_out, env, args.ours_root)
        walls: dict[str, list[float]] = {"arena-rank": [], "ours": []}
        peaks: dict[str, list[float]] = {"arena-rank": [], "ours": []}
        for _ in range(args.repeats):
            wall, peak, arena_err = run_timed(arena_cmd, arena_out, env, tmp)
            walls["arena-rank"].append(wall)
            peaks["arena-rank"].append(peak)
            wall, peak, ours_err = run_timed(ours_cmd, ours_out, env, args.ours_root)
            walls["ours"].append(wall)
            peaks["ours"].append(peak)
        arena_rows = json.loads(arena_out.read_text())
        ours_rows = json.loads(ours_out.read_text())

    info = json.loads(arena_err.strip().splitlines()[-1])
    print(f"data: {args.data.name}, category {args.category}: {info['rows']:,} votes "
          f"(arena-rank gets every row, self-battles included); arena-rank {arena_version}, "
          f"BradleyTerry options {options} (the rest its defaults)")
    print(f"arena-rank: {arena_python} <helper> {' '.join(arena_cmd[2:4])} '{arena_cmd[4]}'")
    print(f"ours:       {' '.join(ours_cmd)}  (in {args.ours_root})")
    if conversion:
        print(conversion)
    for line in ours_err.strip().splitlines():
        print(f"ours stderr: {line}")
    print()
    print(f"wall time, whole process, {args.repeats} interleaved runs each (after {args.warmup} warm-up):")
    print(f"| {'':<10} | {'min':>8} | {'median':>8} | {'peak RSS':>9} |")
    print(f"|{'-' * 12}|{'-' * 10}|{'-' * 10}|{'-' * 11}|")
    for name in ("arena-rank", "ours"):
        print(f"| {name:<10} | {min(walls[name]):7.3f}s | {statistics.median(walls[name]):7.3f}s | "
              f"{max(peaks[name]):5.0f} MiB |")
    ratio_min = min(walls["arena-rank"]) / min(walls["ours"])
    ratio_med = statistics.median(walls["arena-rank"]) / statistics.median(walls["ours"])
    print(f"| {'ratio a/o':<10} | {ratio_min:7.2f}x | {ratio_med:7.2f}x | {'':>9} |")
    print("all runs (s): " + "; ".join(f"{n} " + ", ".join(f"{w:.3f}" for w in ws) for n, ws in walls.items()))
    print("arena-rank in-process split (last run): "
          + ", ".join(f"{k} {v:.3f} s" for k, v in info["stages"].items()))

    ours_by_model = {r["model"]: r for r in ours_rows}
    arena_models = {r["model"] for r in arena_rows}
    pairs = [(ar, ours_by_model[ar["model"]]) for ar in arena_rows if ar["model"] in ours_by_model]
    only_arena = sorted(arena_models - ours_by_model.keys())
    only_ours = sorted(ours_by_model.keys() - arena_models)
    deltas = [us["rating"] - ar["rating"] for ar, us in pairs if us["rating"] is not None]
    shift = statistics.median(deltas) if deltas else 0.0
    print()
    print(f"top {args.top} by arena-rank rating (d = ours - arena-rank, points; shift = median d = {shift:+.4f}):")
    print("\n".join(side_by_side(pairs[:args.top], args.tolerance, shift)))
    print()
    print(f"all {len(pairs)} models:")
    print("\n".join(side_by_side(pairs, args.tolerance, shift)))
    print()
    for key in ("rating", "ci_low", "ci_high"):
        value, model = largest(pairs, key)
        print(f"max |d {key}|: {value:.4f} ({model})")
    value, model = largest(pairs, "rating", shift)
    print(f"max |d rating - shift|: {value:.4f} ({model})")
    widths = [((us["ci_high"] - us["ci_low"]) / (ar["ci_high"] - ar["ci_low"]), ar["model"]) for ar, us in pairs
              if us["ci_low"] is not None and us["ci_high"] is not None and ar["ci_high"] > ar["ci_low"]]
    if widths:
        lo, hi = min(widths), max(widths)
        print(f"interval width ours / arena-rank: median {statistics.median(w for w, _ in widths):.4f}, "
              f"min {lo[0]:.4f} ({lo[1]}), max {hi[0]:.4f} ({hi[1]})")
    flagged = [ar["model"] for ar, us in pairs
               if us["rating"] is None or abs(us["rating"] - ar["rating"]) > args.tolerance]
    flagged_rel = [ar["model"] for ar, us in pairs
                   if us["rating"] is None or abs(us["rating"] - ar["rating"] - shift) > args.tolerance]
    print(f"models with |d rating| > {args.tolerance} pt: {len(flagged)} of {len(pairs)}")
    print(f"models with |d rating - shift| > {args.tolerance} pt: {len(flagged_rel)}"
          + (f" ({', '.join(flagged_rel)})" if flagged_rel else ""))
    if only_arena or only_ours:
        print(f"only in arena-rank: {only_arena or '-'}; only in ours: {only_ours or '-'}")


if __name__ == "__main__":
    main()
