"""Time leaderboard_fit alone, from aggregated counts (no file reading).

    python -m benchmarks.ratings_fit [--battles 2000000] [--models 130] [--bootstrap 100] [--repeat 7]

Simulates planted strengths with Davidson ties, aggregates with PairCounts.from_arrays (timed
separately), then times ``leaderboard_fit`` for BT (bootstrap and sandwich) and, for reference, the
other tie models, Plackett-Luce on the same pairs and the Bayesian method. Reports min and median
wall time over ``--repeat`` runs, CPU time, the data size and peak RSS.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable

import numpy as np

from benchmarks.ratings_make_csv import planted, simulate
from leaderboard.ratings import PairCounts, leaderboard_fit


def measure(fn: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """(min wall, median wall, min CPU) seconds over ``repeat`` calls."""
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return min(walls), statistics.median(walls), min(cpus)


def main() -> None:
    """Run the timings and print one line per configuration."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--battles", type=int, default=2_000_000)
    parser.add_argument("--models", type=int, default=130)
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    theta = planted(args.models, rng)
    a, b, outcome = simulate(args.battles, theta, 0.5, rng)
    names = [f"model-{i:03d}" for i in range(args.models)]
    t0 = time.perf_counter()
    pairs = PairCounts.from_arrays(names, a, b, outcome)
    aggregate = time.perf_counter() - t0
    print(f"data: {args.battles:,} battles, {args.models} models -> {pairs.a.size:,} aggregated rows "
          f"(aggregation {aggregate * 1e3:.0f} ms); bootstrap R = {args.bootstrap}")
    runs: list[tuple[str, Callable[[], object]]] = [
        ("bt half, bootstrap", lambda: leaderboard_fit(pairs, bootstrap=args.bootstrap)),
        ("bt half, sandwich", lambda: leaderboard_fit(pairs, ci="sandwich")),
        ("bt davidson, bootstrap", lambda: leaderboard_fit(pairs, ties="davidson", bootstrap=args.bootstrap)),
        ("bt rao-kupper, bootstrap", lambda: leaderboard_fit(pairs, ties="rao-kupper", bootstrap=args.bootstrap)),
        ("pl (pairs), bootstrap", lambda: leaderboard_fit(pairs, method="pl", bootstrap=args.bootstrap)),
        ("bayes", lambda: leaderboard_fit(pairs, method="bayes")),
    ]
    for label, fn in runs:
        fn()  # warm-up: first-call allocations and imports
        best, median, cpu = measure(fn, args.repeat)
        print(f"{label:<26} min {best:.3f} s  median {median:.3f} s  cpu {cpu:.3f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
