"""Detection and false-flag rates of the anomalous-voter test (arena.anomaly) on simulated arenas.

    python -m benchmarks.anomaly_simulation [--honest 1000] [--random 50] [--always-a 50]
        [--votes-per-voter 50] [--models 8] [--spread 3.0] [--nu-sigma 0] [--draw-habit] [--seed 0] [--reps 5]

Each repetition draws an arena with planted strengths ``theta = linspace(-spread/2, spread/2, models)``:
honest voters vote from the Davidson model (``--nu`` tie parameter, times ``exp(nu_sigma * Z)`` per
voter when ``--nu-sigma`` > 0, so that honest voters differ in how often they tie; a share
``--both-bad`` of ties reported as "both bad"), random voters pick a, b, tie or both-bad uniformly,
always-A voters always pick position A; every voter votes ``--votes-per-voter`` times on uniformly
drawn pairs in random positions. Everyone's votes form the pair histories (the planted voters contaminate them, as in a
real database); each voter is then tested against the histories without its own votes, exactly as
``arena.moderation.voters_flag_anomalous`` does, with pairwise votes only. Printed as JSON: the rate
of flagged voters per kind with its Monte-Carlo standard error, and the median checkpoint at which
the flagged ones were caught.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from arena import anomaly
from leaderboard.ratings.simulate import davidson_battles

KINDS = ("honest", "random", "always_a")
OUTCOMES = ("a", "b", "tie", "both_bad")  # davidson_battles' codes 0..3


@dataclass(frozen=True)
class SimVoter:
    """One simulated voter: its kind and its votes in time order (positions' model indices, outcome codes)."""

    kind: str
    a: np.ndarray
    b: np.ndarray
    outcome: np.ndarray


def voter_votes(kind: str, theta: np.ndarray, n: int, rng: np.random.Generator, *, nu: float,
                both_bad: float, nu_sigma: float = 0.0) -> SimVoter:
    """``n`` votes of one voter of ``kind`` ("honest", "random" or "always_a") on uniformly drawn pairs.

    An honest voter's tie parameter is ``nu * exp(nu_sigma * Z)``, Z standard normal (drawn only when
    ``nu_sigma`` > 0).
    """
    nu_voter = nu * math.exp(nu_sigma * rng.standard_normal()) if nu_sigma > 0 else nu
    a, b, outcome = davidson_battles(theta, n, rng, nu=nu_voter, both_bad=both_bad)
    if kind == "random":
        outcome = rng.integers(0, len(OUTCOMES), n)
    elif kind == "always_a":
        outcome = np.zeros(n, dtype=int)
    elif kind != "honest":
        raise ValueError(f"unknown voter kind {kind!r}")
    return SimVoter(kind, a, b, outcome)


def simulate_arena(counts: dict[str, int], votes_per_voter: int, theta: np.ndarray, rng: np.random.Generator, *,
                   nu: float = 0.5, both_bad: float = 0.3, nu_sigma: float = 0.0) -> list[SimVoter]:
    """Voters of each kind (``counts``: kind -> number), shuffled so that kinds are not grouped by index."""
    voters = [voter_votes(kind, theta, votes_per_voter, rng, nu=nu, both_bad=both_bad, nu_sigma=nu_sigma)
              for kind in KINDS for _ in range(counts.get(kind, 0))]
    return [voters[i] for i in rng.permutation(len(voters))]


def _comparisons(voter: SimVoter) -> list[tuple[tuple[int, int], int]]:
    out = []
    for a, b, o in zip(voter.a, voter.b, voter.outcome, strict=True):
        first, second, code = anomaly.pairwise_comparison(int(a), int(b), OUTCOMES[int(o)])
        out.append(((first, second), code))
    return out


def detect(voters: Sequence[SimVoter], rng: np.random.Generator, *, alpha: float = anomaly.DEFAULT_ALPHA,
           checkpoints: Sequence[int] = anomaly.DEFAULT_CHECKPOINTS,
           min_pair_history: int = 20, draw_habit: bool = False,
           model_habit: bool = True) -> list[anomaly.AnomalyResult]:
    """Test every voter against everyone else's votes (leave-one-voter-out); one result per voter."""
    per_voter = [_comparisons(v) for v in voters]
    history: dict[tuple[int, int], np.ndarray] = {}
    owns = []
    for comparisons in per_voter:
        own: dict[tuple[int, int], np.ndarray] = {}
        for key, code in comparisons:
            own.setdefault(key, np.zeros(anomaly.N_OUTCOMES, dtype=np.int64))[code] += 1
            history.setdefault(key, np.zeros(anomaly.N_OUTCOMES, dtype=np.int64))[code] += 1
        owns.append(own)
    results = []
    for comparisons, own in zip(per_voter, owns, strict=True):
        # limit: as the service, never score votes past the last checkpoint (they are never tested).
        pvalues = anomaly.voter_pvalues(comparisons, history, own, min_pair_history=min_pair_history, rng=rng,
                                        draw_habit=draw_habit, limit=max(checkpoints), model_habit=model_habit)
        results.append(anomaly.voter_anomaly_test(pvalues, checkpoints=checkpoints, alpha=alpha))
    return results


def _rate(hits: int, n: int) -> dict[str, float | int]:
    rate = hits / n if n else float("nan")
    return {"rate": round(rate, 4), "se": round(math.sqrt(rate * (1 - rate) / n), 4) if n else None,
            "flagged": hits, "voters": n}


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--honest", type=int, default=1000)
    parser.add_argument("--random", type=int, default=50)
    parser.add_argument("--always-a", type=int, default=50, dest="always_a")
    parser.add_argument("--votes-per-voter", type=int, default=50, dest="votes_per_voter")
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--spread", type=float, default=3.0,
                        help="strongest minus weakest strength, natural-log scale (3.0 = 521 Elo points)")
    parser.add_argument("--nu", type=float, default=0.5, help="Davidson tie parameter of honest voters")
    parser.add_argument("--both-bad", type=float, default=0.3, dest="both_bad",
                        help="share of honest ties reported as both bad")
    parser.add_argument("--nu-sigma", type=float, default=0.0, dest="nu_sigma",
                        help="spread of honest voters' own tie parameters (log scale); 0: all alike")
    parser.add_argument("--draw-habit", action="store_true", dest="draw_habit",
                        help="score draws with the voter's own draw share (arena.anomaly, draw_habit=True)")
    parser.add_argument("--alpha", type=float, default=anomaly.DEFAULT_ALPHA)
    parser.add_argument("--checkpoints", default=",".join(map(str, anomaly.DEFAULT_CHECKPOINTS)))
    parser.add_argument("--min-pair-history", type=int, default=20, dest="min_pair_history")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    checkpoints = anomaly.validate_checkpoints([int(c) for c in args.checkpoints.split(",")])
    rng = np.random.default_rng(args.seed)
    theta = np.linspace(-args.spread / 2, args.spread / 2, args.models)
    counts = {"honest": args.honest, "random": args.random, "always_a": args.always_a}
    flagged = {k: 0 for k in KINDS}
    total = {k: 0 for k in KINDS}
    caught_at: dict[str, list[int]] = {k: [] for k in KINDS}
    t0 = time.perf_counter()
    for _ in range(args.reps):
        voters = simulate_arena(counts, args.votes_per_voter, theta, rng, nu=args.nu, both_bad=args.both_bad,
                                nu_sigma=args.nu_sigma)
        results = detect(voters, rng, alpha=args.alpha, checkpoints=checkpoints,
                         min_pair_history=args.min_pair_history, draw_habit=args.draw_habit)
        for voter, result in zip(voters, results, strict=True):
            total[voter.kind] += 1
            if result.flagged:
                flagged[voter.kind] += 1
                caught_at[voter.kind].append(result.checkpoint)
    report = {
        "params": {**vars(args), "checkpoints": list(checkpoints)},
        "detection_random": _rate(flagged["random"], total["random"]),
        "detection_always_a": _rate(flagged["always_a"], total["always_a"]),
        "false_flag_honest": _rate(flagged["honest"], total["honest"]),
        "median_checkpoint": {k: (float(np.median(v)) if v else None) for k, v in caught_at.items()},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
