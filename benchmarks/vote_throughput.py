"""Votes per second through the vote service on Postgres, and SQL statements per vote.

    python benchmarks/vote_throughput.py [--votes 2000] [--rounds 5] [--database arena_bench_votes]

Opens ``--votes`` battles (K = 2, five contenders, typed prompts with a language and a category), then times
``arena.services.vote_record`` on each, in one process, in ``--rounds`` alternating rounds over fresh
battles; prints the median votes/s and the statements one vote runs. The script only uses services that
exist since the foundation, so the same file runs against an older checkout for a before/after figure:

    git worktree add /tmp/before <commit> && cp benchmarks/vote_throughput.py /tmp/before/benchmarks/
    (cd /tmp/before && ../main/.venv/bin/python benchmarks/vote_throughput.py)
"""
from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path.cwd()
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=2000, help="votes per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database", default="arena_bench_votes")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    recreate = ("import psycopg, sys; c = psycopg.connect(sys.argv[1], autocommit=True); "
                f"c.execute('DROP DATABASE IF EXISTS {args.database} WITH (FORCE)'); "
                f"c.execute('CREATE DATABASE {args.database}')")
    subprocess.run([sys.executable, "-c", recreate, f"{args.pg}/postgres"], check=True)
    env = {"DATABASE_URL": f"{args.pg}/{args.database}", "SECRET_KEY": "bench-" + "x" * 60, "DEBUG": "0",
           "DJANGO_SETTINGS_MODULE": "config.settings", "ALLOWED_HOSTS": "localhost"}
    os.environ.update(env)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)

    import django

    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from arena.models import Contender, VoteKind
    from arena.services import SlotInput, battle_create, vote_record, voter_get_or_create

    try:
        from arena.verdicts import VoteChoice
    except ImportError:  # checkouts before the rename
        from arena.choices import VoteChoice  # type: ignore[no-redef]

    names = [f"model-{i}" for i in range(5)]
    for name in names:
        Contender.objects.get_or_create(name=name)
    voter = voter_get_or_create(key="anon:bench")
    outcomes = ("a", "b", "tie", "both_bad")

    pairs = list(itertools.permutations(names, 2))

    def open_battles(n: int, round_: int) -> list:
        return [battle_create(voter=voter, slots=[SlotInput(contender=pairs[i % len(pairs)][0], response="**One**."),
                                                  SlotInput(contender=pairs[i % len(pairs)][1], response="# Two\n- a")],
                              prompt_text=f"round {round_} prompt {i}", category="poetry", language="en")
                for i in range(n)]

    def cast(battles: list) -> float:
        start = time.perf_counter()
        for i, battle in enumerate(battles):
            vote_record(battle_id=battle.id, voter=voter, idempotency_key=f"k-{battle.id}",
                        choice=VoteChoice(VoteKind.PAIRWISE, outcome=outcomes[i % 4]))
        return len(battles) / (time.perf_counter() - start)

    warm = open_battles(50, -1)
    cast(warm[:49])
    with CaptureQueriesContext(connection) as queries:
        cast(warm[49:])
    rates = []
    for round_ in range(args.rounds):
        rates.append(cast(open_battles(args.votes, round_)))
        print(f"round {round_ + 1}: {rates[-1]:.0f} votes/s", flush=True)
    print(f"median {statistics.median(rates):.0f} votes/s over {args.rounds} rounds of {args.votes} votes; "
          f"{len(queries.captured_queries)} SQL statements per vote")


if __name__ == "__main__":
    main()
