"""Time `manage.py refit_leaderboard --style-control` on N votes whose answers carry style counts.

    python benchmarks/refit_style.py --rows 200000 [--repeats 5]

Generates a seeded FastChat clean_battle file WITH conversations (130 models; each model answers
with its own habits: length, markdown headers, list items, bold spans; the verdict depends on the
models' strengths and on the style difference) and the same battles without conversations, under
benchmarks/data/. Imports each with ``manage.py import_battles`` into a fresh database
(``arena_bench_style``, ``arena_bench_style_plain``; dropped first and dropped at the end unless
--keep): the difference is the cost of counting style on import. Then, on the database with
conversations, runs ``refit_leaderboard --style-control --ci sandwich`` and ``--ci bootstrap
--bootstrap 100`` --repeats times each as whole processes and prints min and median, plus an
in-process split of one refit: reading the battles (SQL + arrays) vs the fit.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WINNERS = np.array(["model_a", "model_b", "tie", "tie (bothbad)"])
DATABASE = "arena_bench_style"
WORDS = np.array(["the", "a", "model", "answer", "data", "value", "result", "method", "step", "case", "point",
                  "list", "code", "test", "note", "idea", "plan", "time", "part", "form", "rule", "term", "line",
                  "text", "view", "fact", "kind", "sort"])
PROMPTS = 5_000  # distinct prompts: battles share them, as real traffic does


def _answer(rng: np.random.Generator, words: int, headers: int, items: int, bold: int) -> str:
    """A short markdown answer: ``headers`` sections, ``items`` list items, ``bold`` bold spans, ~``words`` words."""
    filler = WORDS[rng.integers(0, len(WORDS), max(words, 1))].tolist()
    for k in range(bold):  # bold spans replace words in the prose
        filler[(k * 7) % len(filler)] = f"**{filler[(k * 7) % len(filler)]}**"
    lines, cut = [], 0
    per_block = max(1, len(filler) // (headers + 1))
    for h in range(headers + 1):
        if h:
            lines.append(f"## Part {h}")
        lines.append(" ".join(filler[cut:cut + per_block]))
        cut += per_block
    lines.append(" ".join(filler[cut:]))
    lines.extend(f"- item {i + 1}" for i in range(items))
    return "\n".join(line for line in lines if line)


def make_file(path: Path, rows: int, models: int, seed: int, *, conversations: bool) -> None:
    """Write ``rows`` FastChat battles; the same seed gives the same battles with or without conversations."""
    rng = np.random.default_rng(seed)
    names = [f"model-{i:03d}" for i in range(models)]
    strength = rng.normal(0.0, 0.6, models)
    # Each model's habits: mean words, headers, list items, bold spans per answer.
    habits = np.column_stack([rng.uniform(20, 120, models), rng.uniform(0, 3, models),
                              rng.uniform(0, 5, models), rng.uniform(0, 4, models)])
    a = rng.integers(0, models, rows)
    b = (a + rng.integers(1, models, rows)) % models
    counts_a = rng.poisson(habits[a]).astype(np.int64)
    counts_b = rng.poisson(habits[b]).astype(np.int64)
    style = (counts_a - counts_b) / (counts_a + counts_b + 1.0)
    logit = strength[a] - strength[b] + style @ np.array([0.8, 0.2, 0.3, 0.2])
    decided = rng.uniform(size=rows) < 0.8
    winner = np.where(decided, np.where(rng.uniform(size=rows) < 1 / (1 + np.exp(-logit)), 0, 1),
                      rng.choice([2, 3], size=rows, p=[0.4, 0.6]))
    tstamp = 1.7e9 + np.sort(rng.uniform(0, 3e7, rows))
    judges = rng.integers(0, 50_000, rows)
    prompt = rng.integers(0, PROMPTS, rows)
    text_rng = np.random.default_rng(seed + 1)
    with path.open("w") as out:
        out.write("[")
        for i in range(rows):
            row = {"model_a": names[a[i]], "model_b": names[b[i]], "winner": str(WINNERS[winner[i]]),
                   "judge": f"arena_user_{judges[i]}", "anony": True, "tstamp": round(float(tstamp[i]), 4)}
            # Drawn for every row, so that both files describe the same battles.
            answers = [_answer(text_rng, *map(int, counts_a[i])), _answer(text_rng, *map(int, counts_b[i]))]
            if conversations:
                question = {"role": "user", "content": f"Question {prompt[i]}: explain the topic."}
                row["conversation_a"] = [question, {"role": "assistant", "content": answers[0]}]
                row["conversation_b"] = [question, {"role": "assistant", "content": answers[1]}]
            out.write(("," if i else "") + json.dumps(row))
        out.write("]")


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed, result.stdout.strip()


def recreate(pg: str, database: str, *, drop_only: bool = False) -> None:
    script = ("import psycopg, sys; c = psycopg.connect(sys.argv[1], autocommit=True); "
              f"c.execute('DROP DATABASE IF EXISTS {database} WITH (FORCE)')"
              + ("" if drop_only else f"; c.execute('CREATE DATABASE {database}')"))
    subprocess.run([sys.executable, "-c", script, f"{pg}/postgres"], check=True)


def load(pg: str, database: str, data: Path) -> float:
    """Fresh database, migrated, ``data`` imported by a whole ``manage.py`` process; returns the import's seconds."""
    env = {**os.environ, "DATABASE_URL": f"{pg}/{database}", "SECRET_KEY": "bench", "DEBUG": "0"}
    recreate(pg, database)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    seconds, out = timed([sys.executable, "manage.py", "import_battles", str(data), "--format", "fastchat"], env)
    print(f"  {out.splitlines()[-1] if out else ''}")
    subprocess.run(["psql", f"{pg}/{database}", "-qc", "VACUUM ANALYZE"], check=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--models", type=int, default=130)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="server URL, no database")
    parser.add_argument("--reuse", action="store_true", help=f"refit the votes already in {DATABASE}")
    parser.add_argument("--no-plain", action="store_true", help="skip the import without conversations")
    parser.add_argument("--keep", action="store_true", help="keep the databases (for --reuse or psql)")
    args = parser.parse_args()
    env = {**os.environ, "DATABASE_URL": f"{args.pg}/{DATABASE}", "SECRET_KEY": "bench", "DEBUG": "0"}

    if not args.reuse:
        stem = f"fastchat_style_{args.rows}_{args.models}_{args.seed}"
        styled, plain = (ROOT / "benchmarks" / "data" / f"{stem}{tail}.json" for tail in ("", "_plain"))
        styled.parent.mkdir(parents=True, exist_ok=True)
        for path, conversations in ((styled, True), (plain, False)):
            if not path.exists():
                make_file(path, args.rows, args.models, args.seed, conversations=conversations)
        print(f"files: {styled.name} {styled.stat().st_size / 2**20:.0f} MiB, "
              f"{plain.name} {plain.stat().st_size / 2**20:.0f} MiB; {args.rows:,} rows, {args.models} models")
        if not args.no_plain:
            seconds = load(args.pg, f"{DATABASE}_plain", plain)
            print(f"import without conversations: {seconds:.1f} s wall ({args.rows / seconds:,.0f} rows/s)")
            recreate(args.pg, f"{DATABASE}_plain", drop_only=True)
        seconds = load(args.pg, DATABASE, styled)
        print(f"import with conversations (style counted): {seconds:.1f} s wall ({args.rows / seconds:,.0f} rows/s)")

    manage = [sys.executable, "manage.py", "refit_leaderboard", "--method", "bt", "--style-control"]
    for label, flags in (("sandwich", ["--ci", "sandwich"]), ("bootstrap 100", ["--ci", "bootstrap",
                                                                                  "--bootstrap", "100"])):
        walls = []
        for repeat in range(args.repeats):
            seconds, out = timed([*manage, *flags], env)
            walls.append(seconds)
            if repeat == 0:
                print(f"  {out}")
        print(f"refit --style-control --ci {label}: min {min(walls):.2f} s, median {statistics.median(walls):.2f} s "
              f"wall over {args.repeats} runs ({', '.join(f'{w:.2f}' for w in walls)})")

    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    from leaderboard import selectors
    from leaderboard.config import LeaderboardConfig
    from leaderboard.ratings import leaderboard_fit

    config = LeaderboardConfig(style_control=True, ci="sandwich")
    start = time.perf_counter()
    n_votes = selectors.counted_votes(config).count()
    counted = time.perf_counter()
    pairs = selectors.pair_battles_with_style(config)
    read = time.perf_counter()
    leaderboard_fit(pairs, method="bt", ci="sandwich", style_control=True)
    fitted = time.perf_counter()
    print(f"in process: count {counted - start:.2f} s, read {read - counted:.2f} s ({len(pairs.a):,} battles, "
          f"{pairs.features.shape[1]} features), sandwich fit {fitted - read:.2f} s; {n_votes:,} votes; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

    if not args.keep:
        recreate(args.pg, DATABASE, drop_only=True)


if __name__ == "__main__":
    main()
