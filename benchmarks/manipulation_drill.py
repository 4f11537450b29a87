"""Vote-manipulation drill (issue 11): targeted attacks on the leaderboard against the service's own defences.

    python -m benchmarks.manipulation_drill [--models 20] [--spread 2.0] [--target-rank 6]
        [--honest-votes 50000] [--honest-mean-votes 10] [--accuracy 0.95] [--attack-votes 100,300,1000,3000]
        [--few-identities 5] [--sybil-votes 4] [--leak-rate 0.02] [--seed 0] [--json]

The attacks, after the two papers:

- ``target_only`` (Huang et al. 2025, "Exploring and Mitigating Adversarial Manipulation of Voting-Based
  Leaderboards"): the attacker opens battles, recognises the target model's answer with a classifier of
  accuracy ``--accuracy`` (each of the two answers is classified target / not target independently, right
  with that probability), votes for the answer it takes for the target when it sees exactly one, and
  abandons every other battle without voting.
- ``target_camouflaged``: the same, but on every battle without the target it votes like an honest voter
  (it is assumed to know the crowd's preferences), so that its votes look ordinary; it needs ~10x the
  battles and votes for the same number of votes for the target.
- ``rigging`` (Min et al. 2025, "omnipresent" vote rigging): votes for the target when it sees it, and on
  battles without it that show a model ranked above the target (by the public leaderboard) against that
  rival (for the lower-ranked of the two), identifying each model with the same accuracy; every other
  battle gets an honest-looking cover vote. Manipulative votes: those for the target or against a rival.

Honest traffic: ``--honest-votes`` votes from voters whose number of votes is geometric with mean
``--honest-mean-votes`` (most visitors vote a few times, a few vote a lot), each vote from the Davidson
model on a uniformly drawn pair (``benchmarks.anomaly_simulation.voter_votes``), 30 % of ties as both-bad.
Strengths ``linspace(spread/2, -spread/2, models)``; the target is the model of true rank ``--target-rank``.

Attacker identities: ``few`` = ``--few-identities`` voter cookies sharing the attack evenly (hundreds of
votes each); ``sybil`` = a fresh cookie every ``--sybil-votes`` votes (cover votes included).

Defences, exactly as the service applies them (read from the code, not re-invented):

- rate limits (``arena/ratelimit.py``, ``config/settings.py``): per voter 20 battles and 30 votes per minute,
  per address 120 battles and 300 votes per minute, fixed windows. They refuse only requests above those
  rates, so an attacker who paces itself loses no vote; the drill reports the least time the attack needs
  from one address (the attacker must open every battle it looks at, abandoned or not).
- identity-leak filter (``arena/leaks.py`` via ``arena/services.py``): flags the votes of battles in which
  an answer names its model. The classifier attack needs no leak; each battle leaks with probability
  ``--leak-rate`` whoever votes on it.
- anomalous-voter detector (``arena.moderation.voters_flag_anomalous``): the pure core ``arena.anomaly`` run
  by ``benchmarks.anomaly_simulation.detect`` as the service runs it (leave-one-voter-out pair histories of
  every voter's votes, attackers included; ``min_pair_history`` 20; checkpoints 5, 10, 20, 50, 100 at
  alpha 0.01; only the first 100 judged votes of a voter are tested; one run after all votes).
- ``exclude_flagged`` (the leaderboard default): the votes of flagged voters and flagged votes are not counted.

Ranks: ``leaderboard.ratings.leaderboard_fit`` (Bradley-Terry, Rao-Kupper ties as the leaderboard default,
sandwich intervals) on ``PairCounts`` of the counted votes; ``rank`` = 1 + models rated strictly higher.
"The attack moves the target one rank" means its rank with the attack is better than without it, on the
same honest votes and with the same defences. Everything is seeded; each scenario reuses the same honest
traffic and the same attack stream (an attack of n votes is the first n votes of the stream).
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
from benchmarks.anomaly_simulation import SimVoter, detect, voter_votes
from leaderboard.ratings import PairCounts, leaderboard_fit
from leaderboard.ratings.simulate import davidson_battles

ATTACKS = ("target_only", "target_camouflaged", "rigging")
IDENTITIES = ("few", "sybil")
# config/settings.py defaults (ARENA_BATTLE_RATE_LIMIT, ..._IP_..., ARENA_VOTE_RATE_LIMIT, ..._IP_...), per minute.
BATTLES_PER_VOTER, BATTLES_PER_ADDRESS = 20, 120
VOTES_PER_VOTER, VOTES_PER_ADDRESS = 30, 300
NU, BOTH_BAD = 0.5, 0.3


@dataclass(frozen=True)
class AttackStream:
    """An attacker's votes in time order: pair shown, outcome code, whether the vote is manipulative.

    ``battles_opened[i]`` is how many battles the attacker had opened when it cast vote ``i`` (abandoned
    ones included): what the rate limits count.
    """

    a: np.ndarray
    b: np.ndarray
    outcome: np.ndarray
    manipulative: np.ndarray
    battles_opened: np.ndarray

    def prefix(self, n_manipulative: int) -> int:
        """Number of votes (cover votes included) up to and including the ``n``-th manipulative one."""
        if n_manipulative == 0:
            return 0
        hits = np.flatnonzero(self.manipulative)
        if hits.size < n_manipulative:
            raise ValueError(f"the stream holds only {hits.size} manipulative votes")
        return int(hits[n_manipulative - 1]) + 1


def _misidentify(models: np.ndarray, m: int, accuracy: float, rng: np.random.Generator) -> np.ndarray:
    """What the attacker's classifier takes each model for: right with ``accuracy``, else another model."""
    wrong = rng.random(models.size) >= accuracy
    other = (models + rng.integers(1, m, models.size)) % m
    return np.where(wrong, other, models)


def attack_stream(kind: str, theta: np.ndarray, target: int, n_manipulative: int, rng: np.random.Generator, *,
                  accuracy: float) -> AttackStream:
    """Battles the attacker opens (uniform pairs, as an honest visitor gets) and the votes it casts on them.

    Parameters
    ----------
    kind : {"target_only", "target_camouflaged", "rigging"}
        The strategy (module docstring).
    theta : ndarray, shape (M,)
        True strengths; the attacker ranks models by them (the public leaderboard) for ``rigging``.
    target : int
        Index of the target model.
    n_manipulative : int
        Stop once this many manipulative votes are cast.
    rng : numpy.random.Generator
    accuracy : float
        Probability that the classifier is right about one answer.

    Returns
    -------
    AttackStream
    """
    if kind not in ATTACKS:
        raise ValueError(f"unknown attack {kind!r}")
    m = theta.size
    # Enough battles for the target-only attacks, which use ~2/M of them, with a margin.
    n_battles = int(n_manipulative * m * 0.75) + 1000 if kind != "rigging" else 4 * n_manipulative + 1000
    a, b, honest = davidson_battles(theta, n_battles, rng, nu=NU, both_bad=BOTH_BAD)
    # Each answer is classified target / not target on its own, right with probability `accuracy`.
    says_a = (a == target) ^ (rng.random(n_battles) >= accuracy)
    says_b = (b == target) ^ (rng.random(n_battles) >= accuracy)
    sees_one = says_a ^ says_b
    outcome = np.where(says_a, 0, 1)
    manipulative = sees_one.copy()
    cast = sees_one.copy()
    if kind == "target_camouflaged":
        outcome = np.where(sees_one, outcome, honest)
        cast[:] = True
    elif kind == "rigging":
        seen_a, seen_b = _misidentify(a, m, accuracy, rng), _misidentify(b, m, accuracy, rng)
        rival = ~sees_one & ((theta[seen_a] > theta[target]) | (theta[seen_b] > theta[target]))
        # Against the rival: a vote for the lower-ranked of the two models it takes them for.
        lower = np.where(theta[seen_a] < theta[seen_b], 0, 1)
        outcome = np.where(sees_one, outcome, np.where(rival, lower, honest))
        manipulative = sees_one | rival
        cast[:] = True
    opened = np.cumsum(np.ones(n_battles, dtype=np.int64))
    keep = np.flatnonzero(cast)
    stream = AttackStream(a[keep], b[keep], outcome[keep], manipulative[keep], opened[keep])
    if int(stream.manipulative.sum()) < n_manipulative:
        raise RuntimeError("attack stream too short: raise the battle margin")
    end = stream.prefix(n_manipulative)
    return AttackStream(*(x[:end] for x in (stream.a, stream.b, stream.outcome, stream.manipulative,
                                            stream.battles_opened)))


def honest_voters(theta: np.ndarray, n_votes: int, mean_votes: float, rng: np.random.Generator) -> list[SimVoter]:
    """Honest voters until ``n_votes`` votes: votes per voter 1 + Geometric with mean ``mean_votes``."""
    voters: list[SimVoter] = []
    total = 0
    while total < n_votes:
        n = min(int(rng.geometric(1.0 / mean_votes)), n_votes - total)
        voters.append(voter_votes("honest", theta, n, rng, nu=NU, both_bad=BOTH_BAD))
        total += n
    return voters


def split_identities(stream: AttackStream, end: int, identities: str, *, few: int, sybil_votes: int
                     ) -> tuple[list[SimVoter], list[np.ndarray]]:
    """The first ``end`` votes of the stream as attacker voters; also each voter's positions in the stream."""
    index = np.arange(end)
    if identities == "few":
        groups = [index[i::few] for i in range(few)]   # round robin: every identity attacks all along
    elif identities == "sybil":
        groups = [index[i:i + sybil_votes] for i in range(0, end, sybil_votes)]
    else:
        raise ValueError(f"unknown identities {identities!r}")
    groups = [g for g in groups if g.size]
    return [SimVoter("attack", stream.a[g], stream.b[g], stream.outcome[g]) for g in groups], groups


def fitted_ranks(models: tuple[str, ...], voters: Sequence[SimVoter], counted: Sequence[np.ndarray]) -> np.ndarray:
    """Rank of every model (1 = best) from the real leaderboard fit of the counted votes."""
    a = np.concatenate([v.a[c] for v, c in zip(voters, counted, strict=True)])
    b = np.concatenate([v.b[c] for v, c in zip(voters, counted, strict=True)])
    outcome = np.concatenate([v.outcome[c] for v, c in zip(voters, counted, strict=True)])
    fit = leaderboard_fit(PairCounts.from_arrays(models, a, b, outcome), method="bt", ties="rao-kupper",
                          ci="sandwich")
    ranks = np.zeros(len(models), dtype=int)
    for row in fit.rows:
        ranks[models.index(row.model)] = row.rank
    return ranks


@dataclass(frozen=True)
class Outcome:
    """One attack size under one scenario, defences off and on."""

    attack_votes: int
    votes_cast: int
    battles_opened: int
    identities: int
    rank_off: int
    rank_on: int
    excluded_share: float
    excluded_by_detector: float
    excluded_by_leaks: float
    honest_flagged: float
    honest_tested_flagged: float
    attackers_flagged: int
    minutes_one_address: float


def run_scenario(kind: str, identities: str, *, theta: np.ndarray, target: int, honest: list[SimVoter],
                 honest_leaks: list[np.ndarray], sizes: Sequence[int], accuracy: float, few: int,
                 sybil_votes: int, leak_rate: float, seed: int, detect_kwargs: dict | None = None
                 ) -> tuple[dict[str, int], list[Outcome]]:
    """Every attack size of one (attack, identities) scenario; also the baseline ranks without attack."""
    models = tuple(f"m{i:02d}" for i in range(theta.size))
    rng = np.random.default_rng([seed, ATTACKS.index(kind), IDENTITIES.index(identities)])
    stream = attack_stream(kind, theta, target, max(sizes), rng, accuracy=accuracy)
    attack_leaks = rng.random(stream.a.size) < leak_rate
    all_counted = [np.ones(v.a.size, dtype=bool) for v in honest]
    base_off = int(fitted_ranks(models, honest, all_counted)[target])
    base_detect = detect(honest, np.random.default_rng([seed, 1]), **(detect_kwargs or {}))
    counted_on = [~leak & (not r.flagged) for leak, r in zip(honest_leaks, base_detect, strict=True)]
    base_on = int(fitted_ranks(models, honest, counted_on)[target])
    outcomes = []
    for n in sizes:
        end = stream.prefix(n)
        attackers, groups = split_identities(stream, end, identities, few=few, sybil_votes=sybil_votes)
        masks = [stream.manipulative[g] for g in groups]
        voters = honest + attackers
        rank_off = int(fitted_ranks(models, voters, [np.ones(v.a.size, dtype=bool) for v in voters])[target])
        results = detect(voters, np.random.default_rng([seed, 2, n]), **(detect_kwargs or {}))
        honest_results, attack_results = results[:len(honest)], results[len(honest):]
        leaks = honest_leaks + [attack_leaks[g] for g in groups]
        counted = [~leak & (not r.flagged) for leak, r in zip(leaks, results, strict=True)]
        rank_on = int(fitted_ranks(models, voters, counted)[target])
        manip = np.concatenate(masks)
        flagged_votes = np.concatenate([np.full(m.size, r.flagged) for m, r in zip(masks, attack_results,
                                                                                    strict=True)])
        leaked = np.concatenate([attack_leaks[g] for g in groups])
        tested = [r for r in honest_results if r.n_pvalues >= anomaly.DEFAULT_CHECKPOINTS[0]]
        battles = int(stream.battles_opened[end - 1])
        outcomes.append(Outcome(
            attack_votes=n, votes_cast=end, battles_opened=battles, identities=len(attackers),
            rank_off=rank_off, rank_on=rank_on,
            excluded_share=float((manip & (flagged_votes | leaked)).sum() / manip.sum()),
            excluded_by_detector=float((manip & flagged_votes).sum() / manip.sum()),
            excluded_by_leaks=float((manip & leaked).sum() / manip.sum()),
            honest_flagged=sum(r.flagged for r in honest_results) / len(honest_results),
            honest_tested_flagged=sum(r.flagged for r in tested) / max(len(tested), 1),
            attackers_flagged=sum(r.flagged for r in attack_results),
            minutes_one_address=_minutes_at_limits(battles, end, len(attackers)),
        ))
    return {"off": base_off, "on": base_on}, outcomes


def _minutes_at_limits(battles: int, votes: int, identities: int) -> float:
    """Least minutes to open ``battles`` and cast ``votes`` from one address within the per-minute limits.

    Fixed windows (``arena/ratelimit.py``): a paced attacker is never refused, it only waits; the per-voter
    limits bind while ``identities`` cookies cannot fill the per-address ones.
    """
    battle_rate = min(identities * BATTLES_PER_VOTER, BATTLES_PER_ADDRESS)
    vote_rate = min(identities * VOTES_PER_VOTER, VOTES_PER_ADDRESS)
    return max(battles / battle_rate, votes / vote_rate)


def _votes_to_move(base: int, outcomes: Sequence[Outcome], which: str) -> int | None:
    """Smallest attack size in the grid whose target rank is better than without the attack."""
    for o in outcomes:
        if getattr(o, f"rank_{which}") < base:
            return o.attack_votes
    return None


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--spread", type=float, default=2.0,
                        help="strongest minus weakest strength, natural-log scale (2.0 = 347 Elo, 18 Elo a rank)")
    parser.add_argument("--target-rank", type=int, default=6, dest="target_rank")
    parser.add_argument("--honest-votes", type=int, default=50_000, dest="honest_votes")
    parser.add_argument("--honest-mean-votes", type=float, default=10.0, dest="honest_mean_votes")
    parser.add_argument("--accuracy", type=float, default=0.95)
    parser.add_argument("--attack-votes", default="100,300,1000,3000", dest="attack_votes")
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--identities", default=",".join(IDENTITIES))
    parser.add_argument("--few-identities", type=int, default=5, dest="few_identities")
    parser.add_argument("--sybil-votes", type=int, default=4, dest="sybil_votes")
    parser.add_argument("--leak-rate", type=float, default=0.02, dest="leak_rate")
    parser.add_argument("--no-model-habit", action="store_false", dest="model_habit",
                        help="the detector before this drill: position habit only (arena.anomaly, model_habit=False)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.attack_votes.split(","))
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    theta = np.linspace(args.spread / 2, -args.spread / 2, args.models)   # index = true rank - 1
    target = args.target_rank - 1
    honest = honest_voters(theta, args.honest_votes, args.honest_mean_votes, rng)
    honest_leaks = [rng.random(v.a.size) < args.leak_rate for v in honest]
    scenarios = []
    for kind in args.attacks.split(","):
        for identities in args.identities.split(","):
            base, outcomes = run_scenario(kind, identities, theta=theta, target=target, honest=honest,
                                          honest_leaks=honest_leaks, sizes=sizes, accuracy=args.accuracy,
                                          few=args.few_identities, sybil_votes=args.sybil_votes,
                                          leak_rate=args.leak_rate, seed=args.seed,
                                          detect_kwargs={"model_habit": args.model_habit})
            scenarios.append({
                "attack": kind, "identities": identities, "baseline_rank": base,
                "votes_to_move_one_rank": {"off": _votes_to_move(base["off"], outcomes, "off"),
                                           "on": _votes_to_move(base["on"], outcomes, "on")},
                "sizes": [o.__dict__ for o in outcomes],
            })
    report = {"params": vars(args), "honest_voters": len(honest), "scenarios": scenarios,
              "seconds": round(time.perf_counter() - t0, 1)}
    if args.json:
        print(json.dumps(report, indent=1, default=float))
    else:
        print(_table(report, sizes))
    return report


def _table(report: dict, sizes: Sequence[int]) -> str:
    lines = ["| Attack | Identities | Votes to move 1 rank, off / on | At 1,000 votes: rank off / on (base) | "
             "Attack votes excluded (detector, leaks) | Honest voters flagged (of tested) | "
             "Minutes at the limits, one address |", "|---|---|---|---|---|---|---|"]
    for s in report["scenarios"]:
        at = next((o for o in s["sizes"] if o["attack_votes"] == 1000), s["sizes"][-1])
        move = s["votes_to_move_one_rank"]
        lines.append(
            f"| {s['attack']} | {s['identities']} ({at['identities']}) | {move['off'] or '>' + str(max(sizes))} / "
            f"{move['on'] or '>' + str(max(sizes))} | {at['rank_off']} / {at['rank_on']} "
            f"({s['baseline_rank']['off']} / {s['baseline_rank']['on']}) | {at['excluded_share']:.1%} "
            f"({at['excluded_by_detector']:.1%}, {at['excluded_by_leaks']:.1%}) | {at['honest_flagged']:.2%} "
            f"({at['honest_tested_flagged']:.2%}) | {math.ceil(at['minutes_one_address'])} |")
    lines.append(f"\n{report['honest_voters']} honest voters; {report['seconds']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
