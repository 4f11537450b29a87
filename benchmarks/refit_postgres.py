"""Time `manage.py refit_leaderboard` end to end on Postgres holding N votes.

    python benchmarks/refit_postgres.py --rows 2000000

Loads a seeded FastChat file (130 models) into a fresh database ``arena_refit`` with import_battles
(skipped when the database already holds the votes: pass --reuse), then runs the refit command
three times (BT, 100 bootstrap rounds) and prints each wall time, plus an in-process split between
the SQL aggregation and the fit.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.import_fastchat import make_file  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--models", type=int, default=130)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--reuse", action="store_true", help="keep the votes already in arena_refit")
    args = parser.parse_args()
    env = {**os.environ, "DATABASE_URL": f"{args.pg}/arena_refit", "SECRET_KEY": "bench", "DEBUG": "0"}

    if not args.reuse:
        data = ROOT / "benchmarks" / "data" / f"fastchat_{args.rows}_{args.models}_0.json"
        data.parent.mkdir(parents=True, exist_ok=True)
        if not data.exists():
            make_file(data, args.rows, args.models, 0)
        recreate = ("import psycopg, sys; c = psycopg.connect(sys.argv[1], autocommit=True); "
                    "c.execute('DROP DATABASE IF EXISTS arena_refit WITH (FORCE)'); "
                    "c.execute('CREATE DATABASE arena_refit')")
        subprocess.run([sys.executable, "-c", recreate, f"{args.pg}/postgres"], check=True)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, "manage.py", "import_battles", str(data)], cwd=ROOT, env=env, check=True)
        print(f"loaded {args.rows:,} votes in {time.perf_counter() - start:.1f} s")
        subprocess.run(["psql", f"{args.pg}/arena_refit", "-qc", "VACUUM ANALYZE"], check=True)

    for attempt in range(3):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "manage.py", "refit_leaderboard", "--method", "bt",
                                 "--bootstrap", "100"], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        print(f"refit_leaderboard #{attempt + 1}: {time.perf_counter() - start:.2f} s wall  ({result.stdout.strip()})")

    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    from leaderboard import selectors
    from leaderboard.config import LeaderboardConfig
    from leaderboard.ratings import leaderboard_fit

    config = LeaderboardConfig()
    start = time.perf_counter()
    pairs = selectors.pair_counts(config)
    aggregated = time.perf_counter()
    n_votes = selectors.counted_votes(config).count()
    counted = time.perf_counter()
    leaderboard_fit(pairs, bootstrap=100)
    fitted = time.perf_counter()
    print(f"in process: GROUP BY {aggregated - start:.2f} s ({len(pairs.weight):,} rows), "
          f"count {counted - aggregated:.2f} s, fit {fitted - counted:.2f} s; {n_votes:,} votes; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
