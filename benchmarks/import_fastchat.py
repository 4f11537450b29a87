"""Time `manage.py import_battles` on N FastChat rows into a fresh Postgres database.

    python benchmarks/import_fastchat.py --rows 1000000

Generates a seeded clean_battle file (130 models, 1% named self-battles, 20% ties/both bad) under
benchmarks/data/, creates the database ``arena_bench`` (dropped first), migrates it, then runs the import
twice: the first adds every row, the second must add nothing (idempotence) and shows the dedup cost.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WINNERS = np.array(["model_a", "model_b", "tie", "tie (bothbad)"])


CATEGORIES = np.array(["coding", "math", "creative_writing", "instruction", "chat", "reasoning"])
LANGUAGES = np.array(["English", "Chinese", "Russian", "German"])


def make_file(path: Path, rows: int, models: int, seed: int, *, facts: bool = False) -> None:
    """A seeded FastChat file; with ``facts`` each row also has a category and a language (80 % English)."""
    rng = np.random.default_rng(seed)
    names = [f"model-{i:03d}" for i in range(models)]
    a = rng.integers(0, models, rows)
    b = (a + rng.integers(1, models, rows)) % models
    winner = rng.choice(4, size=rows, p=[0.4, 0.4, 0.08, 0.12])
    tstamp = 1.7e9 + np.sort(rng.uniform(0, 3e7, rows))
    judges = rng.integers(0, 50_000, rows)
    category = rng.integers(0, len(CATEGORIES), rows)
    language = rng.choice(len(LANGUAGES), size=rows, p=[0.8, 0.1, 0.05, 0.05])
    with path.open("w") as out:
        out.write("[")
        for i in range(rows):
            row = {"model_a": names[a[i]], "model_b": names[b[i]], "winner": str(WINNERS[winner[i]]),
                   "judge": f"arena_user_{judges[i]}", "anony": True, "tstamp": round(float(tstamp[i]), 4)}
            if facts:
                row |= {"category_tag": str(CATEGORIES[category[i]]), "language": str(LANGUAGES[language[i]])}
            out.write(("," if i else "") + json.dumps(row))
        out.write("]")


def run(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
    print(f"  {result.stdout.strip()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=130)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="server URL, no database")
    args = parser.parse_args()

    data = ROOT / "benchmarks" / "data" / f"fastchat_{args.rows}_{args.models}_{args.seed}.json"
    data.parent.mkdir(parents=True, exist_ok=True)
    if not data.exists():
        make_file(data, args.rows, args.models, args.seed)
    print(f"file: {data.name}, {args.rows:,} rows, {args.models} models, {data.stat().st_size / 2**20:.0f} MiB")

    env = {**os.environ, "DATABASE_URL": f"{args.pg}/arena_bench", "SECRET_KEY": "bench", "DEBUG": "0"}
    admin_env = {**env, "DATABASE_URL": f"{args.pg}/postgres"}
    recreate = ("import psycopg, sys; c = psycopg.connect(sys.argv[1], autocommit=True); "
                "c.execute('DROP DATABASE IF EXISTS arena_bench WITH (FORCE)'); "
                "c.execute('CREATE DATABASE arena_bench')")
    subprocess.run([sys.executable, "-c", recreate, admin_env["DATABASE_URL"]], check=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    cmd = [sys.executable, "manage.py", "import_battles", str(data), "--format", "fastchat"]
    first = run(cmd, env)
    print(f"first import (adds every row): {first:.1f} s wall, {args.rows / first:,.0f} rows/s")
    second = run(cmd, env)
    print(f"second import (adds nothing):  {second:.1f} s wall")


if __name__ == "__main__":
    main()
