"""Votes to converge with 50 models: the vote-budget simulator's baseline configurations as one table.

    python -m benchmarks.vote_budget [--repeats R] [--workers W] [--seed S] [--quick] [--active]

Runs :func:`leaderboard.simulate.simulate_run` (noise-free, ``truth=spread``, 50 models) for

* random pairs (K = 2) with online Elo, K-factor 4 (the project's default) and 32;
* random K = 4 with Plackett-Luce (l2 = 0.01) and with the Bayesian (Laplace) fit;
* the ``ksort`` baseline, K = 4, fitted by Plackett-Luce and by bayes -- plus the convergence of
  K-Sort's *own* ranking (its ``mu - 3 sigma``), which is what the paper's 716 measures;

or, with ``--active``, the ``active`` policy (issue 9, part 2) fitted by Plackett-Luce at K = 4 and
K = 2, noise 0 and 0.05, plus new-model mode (K = 4, noise-free: votes showing the new model until
its rank is right), the policy fed a Bayesian posterior refitted after every vote -- and, as the live
arena's snapshot is refreshed less often, K = 4 with that posterior refitted every 10 and every 50
votes (about 6 minutes on 2 cores);

with the repeats spread over ``--workers`` processes, and prints a markdown table policy x method x
K x noise -> votes to converge (median, p10, p90 over converged repeats) and converged fraction.
Defaults (3 repeats for Elo, 5 for the rest; about 4 minutes on 2 cores) keep the total runtime well
under 10 minutes; ``--quick`` is a smoke run (1 repeat, shorter budgets). Checkpoints: every vote for
Elo, every 10 votes otherwise (the resolution of the figures).
"""
from __future__ import annotations

import argparse
import math
import time
from concurrent.futures import ProcessPoolExecutor

from leaderboard.simulate import SimConfig, simulate_run, summarize

# (label suffix, config overrides, max votes, repeats): noise-free, 50 models, spread truth.
CONFIGS: list[tuple[str, dict[str, object], int, int]] = [
    ("elo k=4", {"policy": "random", "method": "elo", "k": 2, "elo_k": 4.0}, 100_000, 3),
    ("elo k=32", {"policy": "random", "method": "elo", "k": 2, "elo_k": 32.0}, 100_000, 3),
    ("pl", {"policy": "random", "method": "pl", "k": 4}, 3_000, 5),
    ("bayes", {"policy": "random", "method": "bayes", "k": 4}, 4_000, 5),
    ("pl", {"policy": "ksort", "method": "pl", "k": 4}, 2_000, 5),
    ("bayes", {"policy": "ksort", "method": "bayes", "k": 4}, 2_000, 5),
]

# The active policy (--active): budgets about 2.5x the converged figures, so "stays right" means something.
ACTIVE_CONFIGS: list[tuple[str, dict[str, object], int, int]] = [
    ("pl", {"policy": "active", "method": "pl", "k": 4}, 400, 20),
    ("pl", {"policy": "active", "method": "pl", "k": 2}, 1_000, 20),
    ("pl", {"policy": "active", "method": "pl", "k": 4, "noise": 0.05}, 800, 20),
    ("pl", {"policy": "active", "method": "pl", "k": 2, "noise": 0.05}, 1_500, 20),
    ("pl, new model", {"policy": "active", "method": "pl", "k": 4, "new_model": True}, 300, 20),
    ("pl, ratings 10 votes stale", {"policy": "active", "method": "pl", "k": 4, "policy_refit_every": 10}, 400, 20),
    ("pl, ratings 50 votes stale", {"policy": "active", "method": "pl", "k": 4, "policy_refit_every": 50}, 800, 20),
]


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}"


def _row(policy: str, method: str, config: SimConfig, stats: dict[str, object], repeats: int) -> str:
    q = stats["votes_to_converge"]
    return (f"| {policy} | {method} | {config.k} | {config.noise:g} | {_fmt(q['median'])} | {_fmt(q['p10'])} | "
            f"{_fmt(q['p90'])} | {stats['converged_fraction']:.2f} | {config.max_votes:,} | {repeats} | "
            f"{config.spacing} |")


def main() -> None:
    """Run the configurations and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None,
                        help="repeats per configuration (default 3 / 5; 20 with --active)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="1 repeat, budgets / 4: a smoke run")
    parser.add_argument("--active", action="store_true", help="the active policy's configurations instead")
    args = parser.parse_args()

    configs = []
    for label, overrides, max_votes, repeats in ACTIVE_CONFIGS if args.active else CONFIGS:
        r = 1 if args.quick else (args.repeats or repeats)
        votes = max_votes // 4 if args.quick else max_votes
        options: dict[str, object] = {"models": 50, "noise": 0.0, "truth": "spread", "seed": args.seed,
                                      "max_votes": votes, "repeats": r, **overrides}
        configs.append((label, SimConfig(**options)))  # type: ignore[arg-type]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [[pool.submit(simulate_run, config, r) for r in range(config.repeats)] for _, config in configs]
        results = [[f.result() for f in fs] for fs in futures]
    elapsed = time.perf_counter() - start

    notes: list[str] = []
    print("| policy | method | K | noise | median | p10 | p90 | converged | max votes | repeats | checkpoint |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (label, config), runs in zip(configs, results, strict=True):
        summary = summarize(config, runs)
        print(_row(config.policy, label, config, summary, config.repeats))
        if "policy_ranking" in summary:
            print(_row(config.policy, "own mu-3sigma", config, summary["policy_ranking"], config.repeats))
        if config.new_model:
            notes.append(f"new model: counted in votes that showed it, after a warm-up until the 50 incumbents "
                         f"were ranked right ({summary['warmup_failed']} warm-up failures)")
    print(f"\n50 models, truth=spread, seed {args.seed}; median/p10/p90 over converged repeats only; "
          f"information bound log2(50!)/log2(K!): K=2 {math.lgamma(51) / math.log(2):.0f}, "
          f"K=4 {math.lgamma(51) / math.lgamma(5):.0f} votes; {elapsed:.0f} s with {args.workers} workers.")
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
