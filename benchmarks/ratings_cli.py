"""Time the whole CLI process on a large CSV: python -m leaderboard.ratings FILE --method bt --bootstrap 100.

    python -m benchmarks.ratings_cli [--rows 2000000] [--models 130] [--repeat 5] [--method bt]

Generates the CSV with benchmarks/ratings_make_csv.py when it is missing, runs the CLI ``--repeat``
times as a child process, and prints min / median wall time, the CLI process's peak RSS (from
``os.wait4``, i.e. ``getrusage`` of that child), the file size, and an in-process breakdown by stage.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ensure_csv(rows: int, models: int, seed: int) -> Path:
    """Path of the benchmark CSV, generated when absent."""
    path = ROOT / "benchmarks" / "data" / f"ratings_{rows}_{models}_{seed}.csv"
    if not path.exists():
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ratings_make_csv.py"), "--rows", str(rows),
                        "--models", str(models), "--seed", str(seed)], check=True)
    return path


def breakdown(path: Path, method: str, bootstrap: int) -> str:
    """Stage timings inside one process (imports excluded)."""
    from leaderboard.ratings import leaderboard_fit
    from leaderboard.ratings.io import read_battles

    t0 = time.perf_counter()
    loaded = read_battles(path, ordered=method == "elo")
    t1 = time.perf_counter()
    pairs = loaded.battles.to_pair_counts()
    t2 = time.perf_counter()
    leaderboard_fit(pairs, method=method, bootstrap=bootstrap, battles=loaded.battles)
    t3 = time.perf_counter()
    return f"read {t1 - t0:.3f} s, aggregate {t2 - t1:.3f} s, fit {t3 - t2:.3f} s"


def main() -> None:
    """Run the CLI repeatedly and report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--models", type=int, default=130)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--method", default="bt")
    parser.add_argument("--bootstrap", type=int, default=100)
    args = parser.parse_args()
    path = ensure_csv(args.rows, args.models, args.seed)
    cmd = [sys.executable, "-m", "leaderboard.ratings", str(path), "--method", args.method,
           "--bootstrap", str(args.bootstrap)]
    walls, peaks = [], []
    out_path = ROOT / "benchmarks" / "data" / "ratings_cli_out.json"
    for _ in range(args.repeat):
        with open(out_path, "w") as out:
            t0 = time.perf_counter()
            child = subprocess.Popen(cmd, cwd=ROOT, stdout=out)
            _, status, usage = os.wait4(child.pid, 0)
            walls.append(time.perf_counter() - t0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"CLI failed with status {status}")
        peaks.append(usage.ru_maxrss / 1024)
    rows = json.loads(out_path.read_text())
    peak = max(peaks)
    size = path.stat().st_size / 2**20
    print(f"file: {path.name}, {args.rows:,} rows, {args.models} models, {size:.0f} MiB; {len(rows)} rated")
    print(f"command: {' '.join(cmd[1:])}")
    print(f"wall: min {min(walls):.3f} s, median {statistics.median(walls):.3f} s over {args.repeat} runs")
    print(f"peak RSS of the CLI process: {peak:.0f} MiB")
    sys.path.insert(0, str(ROOT))
    print(f"in-process: {breakdown(path, args.method, args.bootstrap)}")


if __name__ == "__main__":
    main()
