"""Time `manage.py refit_leaderboard` end to end on Postgres holding N votes.

    python benchmarks/refit_postgres.py --rows 2000000 [--reuse]

Loads a seeded FastChat file (130 models; each row with one of 6 categories and one of 4 languages) into a
fresh database ``arena_refit`` with import_battles (skipped with --reuse), then runs, each three times as a
separate process: the default refit (BT, 100 bootstrap rounds), a refit filtered by a category and a
quarter's dates, and the process start-up alone (``django.setup()``); then ``rebuild_tallies`` once. In
process it splits a refit into reading the counts (from the tallies, and from the votes as before them)
and the fit.
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

FILTERED = ["--category", "math", "--date-from", "2024-01-01", "--date-to", "2024-03-31"]


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--models", type=int, default=130)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--reuse", action="store_true", help="keep the votes already in arena_refit")
    args = parser.parse_args()
    env = {**os.environ, "DATABASE_URL": f"{args.pg}/arena_refit", "SECRET_KEY": "bench", "DEBUG": "0"}

    if not args.reuse:
        data = ROOT / "benchmarks" / "data" / f"fastchat_{args.rows}_{args.models}_0_facts.json"
        data.parent.mkdir(parents=True, exist_ok=True)
        if not data.exists():
            make_file(data, args.rows, args.models, 0, facts=True)
        recreate = ("import psycopg, sys; c = psycopg.connect(sys.argv[1], autocommit=True); "
                    "c.execute('DROP DATABASE IF EXISTS arena_refit WITH (FORCE)'); "
                    "c.execute('CREATE DATABASE arena_refit')")
        subprocess.run([sys.executable, "-c", recreate, f"{args.pg}/postgres"], check=True)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        seconds, _ = timed([sys.executable, "manage.py", "import_battles", str(data)], env)
        print(f"loaded {args.rows:,} votes in {seconds:.1f} s")
        subprocess.run(["psql", f"{args.pg}/arena_refit", "-qc", "VACUUM ANALYZE"], check=True)

    manage = [sys.executable, "manage.py"]
    runs = {
        "process start-up (django.setup)": [sys.executable, "-c", "import django, os; os.environ.setdefault("
                                            "'DJANGO_SETTINGS_MODULE', 'config.settings'); django.setup()"],
        "default refit (bt, 100 bootstrap)": [*manage, "refit_leaderboard", "--method", "bt", "--bootstrap", "100"],
        "refit filtered: math, 2024-01-01..03-31": [*manage, "refit_leaderboard", *FILTERED],
    }
    for name, cmd in runs.items():
        walls, out = [], ""
        for _ in range(3):
            seconds, out = timed(cmd, env)
            walls.append(seconds)
        print(f"{name}: {', '.join(f'{w:.2f}' for w in walls)} s wall  ({out})")
    seconds, out = timed([*manage, "rebuild_tallies"], env)
    print(f"rebuild_tallies: {seconds:.1f} s wall ({out})")

    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    from django.db.models import Count

    from leaderboard import selectors
    from leaderboard.config import LeaderboardConfig
    from leaderboard.ratings import leaderboard_fit

    for label, config in (("default", LeaderboardConfig()),
                          ("filtered", LeaderboardConfig(category="math", date_from="2024-01-01",
                                                         date_to="2024-03-31"))):
        start = time.perf_counter()
        pairs = selectors.pair_counts(config)
        n_votes = selectors.counted_vote_total(config)
        read = time.perf_counter()
        scanned = list(selectors._pairwise_rows(config).values_list("contender_a_id", "contender_b_id", "verdict")
                       .annotate(n=Count("id")).order_by())
        scan = time.perf_counter()
        leaderboard_fit(pairs, bootstrap=100, ties=config.ties)
        fitted = time.perf_counter()
        assert pairs is not None and sum(r[3] for r in scanned) == int(pairs.weight.sum()) == n_votes
        print(f"in process, {label}: counts from the tallies {read - start:.3f} s ({len(pairs.weight):,} rows, "
              f"{n_votes:,} votes); GROUP BY over the votes {scan - read:.2f} s; fit {fitted - scan:.2f} s; "
              f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
