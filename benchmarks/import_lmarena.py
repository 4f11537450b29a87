"""Time LMArena's 140k release from the file to rated leaderboards in a fresh Postgres database.

    python benchmarks/import_lmarena.py [--repeats 3]

For each repeat: the database ``arena_bench_lmarena`` is dropped, created and migrated; then, each as a
whole ``manage.py`` process, the release is imported (adds 135,624 battles: its 10 self-battles are
skipped), imported again (must add nothing) and refitted overall, on Hard Prompts (``hard_6``) and on
Math (Bradley-Terry, sandwich intervals). Prints each step's min and median over the repeats.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "tests" / "fixtures" / "lmarena" / "arena_140k_votes.jsonl.gz"  # = shared/data's copy
DATABASE = "arena_bench_lmarena"


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed, result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--file", type=Path, default=RELEASE)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="server URL, no database")
    args = parser.parse_args()
    env = {**os.environ, "DATABASE_URL": f"{args.pg}/{DATABASE}", "SECRET_KEY": "bench", "DEBUG": "0"}
    recreate = ("import psycopg, sys; c = psycopg.connect(sys.argv[1], autocommit=True); "
                f"c.execute('DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)'); "
                f"c.execute('CREATE DATABASE {DATABASE}')")
    manage = [sys.executable, "manage.py"]
    steps = {
        "import (adds every battle)": [*manage, "import_battles", str(args.file)],
        "import again (adds nothing)": [*manage, "import_battles", str(args.file)],
        "refit overall": [*manage, "refit_leaderboard", "--ci", "sandwich"],
        "refit hard_6": [*manage, "refit_leaderboard", "--ci", "sandwich", "--category", "hard_6"],
        "refit math": [*manage, "refit_leaderboard", "--ci", "sandwich", "--category", "math"],
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    for repeat in range(args.repeats):
        subprocess.run([sys.executable, "-c", recreate, f"{args.pg}/postgres"], check=True)
        subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        for name, cmd in steps.items():
            seconds, out = timed(cmd, env)
            times[name].append(seconds)
            if repeat == 0:
                print(f"{name}: {out.splitlines()[-1]}")
    print(f"\nwhole process, {args.repeats} repeats on a fresh database each:")
    print("| step | min | median |\n|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {min(values):.2f} s | {statistics.median(values):.2f} s |")


if __name__ == "__main__":
    main()
