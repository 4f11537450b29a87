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
import copy
import json
import math
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

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


def _own_counts(comparisons: Sequence[tuple[tuple[int, int], int]]) -> dict[Hashable, np.ndarray]:
    own: dict[Hashable, np.ndarray] = {}
    for key, code in comparisons:
        own.setdefault(key, np.zeros(anomaly.N_OUTCOMES, dtype=np.int64))[code] += 1
    return own


@dataclass(frozen=True)
class Detection:
    """:func:`detect_identities`' verdicts: one per voter (confirmed), and one per shared address tested."""

    voters: list[anomaly.AnomalyResult]
    addresses: dict[Hashable, bool]


def detect(voters: Sequence[SimVoter], rng: np.random.Generator, **kwargs: Any) -> list[anomaly.AnomalyResult]:
    """One result per voter from :func:`detect_identities` (same arguments)."""
    return detect_identities(voters, rng, **kwargs).voters


def detect_identities(voters: Sequence[SimVoter], rng: np.random.Generator, *,
                      alpha: float = anomaly.DEFAULT_ALPHA,
           checkpoints: Sequence[int] = anomaly.DEFAULT_CHECKPOINTS,
           min_pair_history: int = 20, draw_habit: bool = False,
           model_habit: bool = True, model_checkpoints: Sequence[int] = anomaly.DEFAULT_MODEL_CHECKPOINTS,
           model_alpha: float = anomaly.DEFAULT_MODEL_ALPHA,
           min_model_votes: int = anomaly.DEFAULT_MIN_MODEL_VOTES,
           addresses: Sequence[Hashable] | None = None,
           times: Sequence[np.ndarray] | None = None) -> Detection:
    """Test every voter, and every address shared by several voters, as ``voters_flag_anomalous`` does.

    Each identity — a voter, or all the voters of one address (``addresses[i]`` is voter ``i``'s) —
    is tested against everyone else's votes (leave-one-identity-out) with
    :func:`arena.anomaly.identity_anomaly_test`: the all-votes test at ``checkpoints`` and the per-model
    test at ``model_checkpoints`` (empty: off). An address's votes are merged in time order (``times[i]``:
    voter ``i``'s vote times; default: voters one after the other). An identity that fails is judged again
    against the votes of every identity that did not, and flagged only when both fail (the service's
    confirmation). Returns one result per voter: its own when its address did not fail, else its address's
    (a voter is flagged when either identity is).
    """
    per_voter = [_comparisons(v) for v in voters]
    history: dict[Hashable, np.ndarray] = {}
    owns = []
    for comparisons in per_voter:
        own = _own_counts(comparisons)
        for key, counts in own.items():
            history.setdefault(key, np.zeros(anomaly.N_OUTCOMES, dtype=np.int64))[:] += counts
        owns.append(own)
    # limit: as the service, never score votes past the last checkpoint (they are never tested).
    limit = max((*checkpoints, *model_checkpoints))

    def judge(comparisons: Sequence[tuple[tuple[int, int], int]], against: dict[Hashable, np.ndarray],
              own: dict[Hashable, np.ndarray], stream: np.random.Generator = rng) -> anomaly.AnomalyResult:
        scored = anomaly.voter_scored_votes(comparisons, against, own, min_pair_history=min_pair_history, rng=stream,
                                            draw_habit=draw_habit, limit=limit, model_habit=model_habit)
        return anomaly.identity_anomaly_test(scored, checkpoints=checkpoints, alpha=alpha,
                                             model_checkpoints=model_checkpoints, model_alpha=model_alpha,
                                             min_model_votes=min_model_votes)

    # Pass 1: every identity against everyone else's votes; suspects are (voters, comparisons, result, address,
    # the random stream as its p-values started it).
    results = []
    suspects: list[tuple[list[int], list, anomaly.AnomalyResult, Hashable | None, np.random.Generator]] = []
    for i, (comparisons, own) in enumerate(zip(per_voter, owns, strict=True)):
        stream = copy.deepcopy(rng)
        results.append(judge(comparisons, history, own))
        if results[-1].flagged:
            suspects.append(([i], comparisons, results[-1], None, stream))
    address_failed: dict[Hashable, bool] = {}
    if addresses is not None:
        members: dict[Hashable, list[int]] = {}
        for i, address in enumerate(addresses):
            members.setdefault(address, []).append(i)
        for group in members.values():
            if len(group) < 2:   # one voter: its address test is its own test
                continue
            t = np.concatenate([times[i] if times is not None else np.arange(voters[i].a.size) + 1e6 * k
                                for k, i in enumerate(group)])
            merged = [c for i in group for c in per_voter[i]]
            merged = [merged[j] for j in np.argsort(t, kind="stable")]
            stream = copy.deepcopy(rng)
            result = judge(merged, history, _own_counts(merged))
            address_failed[addresses[group[0]]] = False
            if result.flagged:
                suspects.append((group, merged, result, addresses[group[0]], stream))
    # Pass 2, as the service: each suspect against the votes of everyone not under suspicion, with the same random
    # numbers; flagged if both fail.
    suspected = {i for group, _, _, _, _ in suspects for i in group}
    cleaned = {key: counts.copy() for key, counts in history.items()}
    for i in suspected:
        for key, counts in owns[i].items():
            cleaned[key] = cleaned[key] - counts
    final = [anomaly.AnomalyResult(False, None, r.statistic, r.p_combined, r.level, r.n_pvalues, r.model)
             if r.flagged else r for r in results]
    for group, comparisons, result, address, stream in suspects:
        if judge(comparisons, cleaned, {}, stream).flagged:
            if address is not None:
                address_failed[address] = True
            for i in group:
                if not final[i].flagged:   # failed alone and with its address: its own result
                    final[i] = result
    return Detection(final, address_failed)


def _rate(hits: int, n: int) -> dict[str, float | int | None]:
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
                assert result.checkpoint is not None   # a flagged result names its checkpoint
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
