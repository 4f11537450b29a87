"""Vote-manipulation drill (issue 11): targeted attacks on the leaderboard against the service's own defences.

    python -m benchmarks.manipulation_drill [--models 20] [--spread 2.0] [--target-rank 6]
        [--honest-votes 50000] [--honest-mean-votes 10] [--taste 0] [--accuracy 0.95] [--attack-votes 100,300,1000,3000]
        [--few-identities 5] [--sybil-votes 4] [--attack-addresses 5] [--nat-share 0.05] [--nat-addresses 10]
        [--leak-rate 0.02] [--attacks A,B] [--identities I,J] [--no-model-habit] [--no-model-test]
        [--no-address-test] [--days 10] [--drift [--attack-days 1] [--drift-alpha 0.01]] [--seed 0] [--json]

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
Strengths ``linspace(spread/2, -spread/2, models)``; the target is the model of true rank ``--target-rank``;
``--taste`` gives each honest voter its own strengths around those (genuine preferences). Addresses: each
honest voter has its own, except a share ``--nat-share`` (5 %) drawn into ``--nat-addresses`` (10) shared
ones (a campus, a carrier NAT: ~25 honest voters each), so that the false-flag figures cover honest people
behind one address. Time: the honest traffic spans ``--days`` days (each voter votes on one
day drawn uniformly); the attack comes evenly over the last ``--attack-days`` days (default: a burst on the
last day). Time matters only for the order of an address's votes and for the drift scan.

Attacker identities (the table does not let one stand for another): ``few`` = ``--few-identities`` voter
cookies sharing the attack evenly (hundreds of votes each), each behind its own address (so the figures
are those of the per-cookie tests); ``sybil_nat`` = a fresh cookie every ``--sybil-votes`` votes (cover
votes included) behind ``--attack-addresses`` (5) addresses in turn (a home line, a few proxies);
``sybil_botnet`` = the same cookies, each behind an address of its own (one address per sybil).

Defences, exactly as the service applies them (read from the code, not re-invented):

- rate limits (``arena/ratelimit.py``, ``config/settings.py``): per voter 20 battles and 30 votes per minute,
  per address 120 battles and 300 votes per minute, fixed windows. They refuse only requests above those
  rates, so an attacker who paces itself loses no vote; the drill reports the least time the attack needs
  from one address (the attacker must open every battle it looks at, abandoned or not).
- identity-leak filter (``arena/leaks.py`` via ``arena/services.py``): flags the votes of battles in which
  an answer names its model. The classifier attack needs no leak; each battle leaks with probability
  ``--leak-rate`` whoever votes on it.
- anomalous-voter detector (``arena.moderation.voters_flag_anomalous``): the pure core ``arena.anomaly`` run
  by ``benchmarks.anomaly_simulation.detect`` as the service runs it, with the service's defaults: every
  voter, and every address shared by two or more voters (merged in time order), is one identity, judged
  against the pair histories of everyone else's votes (attackers included; ``min_pair_history`` 20) by
  ``arena.anomaly.identity_anomaly_test``: the all-votes test (checkpoints 5, 10, 20, 50, 100 at alpha 0.01,
  the values config/settings.py sets) and the per-model test (checkpoints 20 ... 5,000 judged votes at
  alpha 0.01, the defaults of ``arena.anomaly``, which settings.py does not override); one run after all
  votes; a failed address flags all its voters. ``--no-model-test`` / ``--no-address-test`` show the
  detector without them (``--no-model-test --no-address-test`` is the detector before this drill's second
  round).
- ``exclude_flagged`` (the leaderboard default): the votes of flagged voters and flagged votes are not counted.
- ``--drift`` only: the per-model drift scan ``arena.anomaly.model_drift_scan`` (each day, windows of 1, 2, 4
  and 8 days against the days before, alpha 0.01 per day), with a held model's votes of the window left out
  of the ranks. The service runs the same scan only as a report (``detect_anomalous_voters --drift``,
  ``arena.moderation.models_check_drift``): it holds nothing yet, so without ``--drift`` the drill is exactly
  the service and with it the drill shows what a hold would add.

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
IDENTITIES = ("few", "sybil_nat", "sybil_botnet")
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


def honest_voters(theta: np.ndarray, n_votes: int, mean_votes: float, rng: np.random.Generator, *,
                  taste: float = 0.0) -> list[SimVoter]:
    """Honest voters until ``n_votes`` votes: votes per voter 1 + Geometric with mean ``mean_votes``.

    ``taste`` > 0: each voter sees the models through its own strengths ``theta + taste * Z`` (Z standard normal
    per model): genuine preferences, which the per-model test cannot tell from an attacker's lean. 0 (default):
    every honest voter shares the crowd's strengths, and no extra random numbers are drawn.
    """
    voters: list[SimVoter] = []
    total = 0
    while total < n_votes:
        n = min(int(rng.geometric(1.0 / mean_votes)), n_votes - total)
        own = theta + taste * rng.standard_normal(theta.size) if taste > 0 else theta
        voters.append(voter_votes("honest", own, n, rng, nu=NU, both_bad=BOTH_BAD))
        total += n
    return voters


def honest_addresses(n_voters: int, rng: np.random.Generator, *, nat_share: float, nat_addresses: int
                     ) -> list[str]:
    """Each honest voter's address: its own, or for a share ``nat_share`` one of ``nat_addresses`` shared ones.

    The shared ones are a campus or a carrier NAT: many honest people behind one address, which the address
    test must not mistake for one attacker with many cookies.
    """
    shared = rng.random(n_voters) < nat_share
    which = rng.integers(0, max(nat_addresses, 1), n_voters)
    return [f"nat-{w}" if s else f"home-{i}" for i, (s, w) in enumerate(zip(shared, which, strict=True))]


def honest_times(honest: Sequence[SimVoter], rng: np.random.Generator, *, days: int = 1) -> list[np.ndarray]:
    """When each honest vote was cast, in days from 0: each voter on one day drawn uniformly, its votes in order."""
    return [int(rng.integers(days)) + np.sort(rng.random(v.a.size)) for v in honest]


def attack_times(end: int, *, days: int, attack_days: int) -> np.ndarray:
    """When the attack's votes were cast: evenly over the last ``attack_days`` of ``days`` days, in stream order."""
    return (days - attack_days) + attack_days * (np.arange(end) + 0.5) / end


def drift_holds(voters: Sequence[SimVoter], counted: Sequence[np.ndarray], times: Sequence[np.ndarray], m: int, *,
                days: int, alpha: float) -> tuple[list[np.ndarray], list[anomaly.DriftHold]]:
    """The daily per-model drift scan (:func:`arena.anomaly.model_drift_scan`) over the counted votes.

    A model held on day ``d`` over days ``first_day..d`` holds its votes of those days (out of the ratings until
    a review). Returns each voter's held votes and the holds.
    """
    a = np.concatenate([v.a for v in voters])
    b = np.concatenate([v.b for v in voters])
    code = np.asarray([0, 1, 2, 2])[np.concatenate([v.outcome for v in voters])]  # a, b, tie, both bad
    day = np.floor(np.concatenate(times)).astype(int)
    ok = np.concatenate(counted)
    daily = np.zeros((days, m, m, anomaly.N_OUTCOMES))
    np.add.at(daily, (day[ok], a[ok], b[ok], code[ok]), 1)
    holds = anomaly.model_drift_scan(daily, alpha=alpha)
    held = np.zeros(a.size, dtype=bool)
    for h in holds:
        held |= ok & (day >= h.first_day) & (day <= h.day) & ((a == h.model) | (b == h.model))
    return np.split(held, np.cumsum([v.a.size for v in voters])[:-1]), holds


def split_identities(stream: AttackStream, end: int, identities: str, *, few: int, sybil_votes: int,
                     attack_addresses: int = 5) -> tuple[list[SimVoter], list[np.ndarray], list[str]]:
    """The first ``end`` votes of the stream as attacker voters; each voter's positions in the stream; addresses.

    ``few``: ``few`` cookies, each behind its own address (so the address test adds nothing: the figures
    are those of the per-cookie test). ``sybil_nat``: a fresh cookie every ``sybil_votes`` votes, behind
    ``attack_addresses`` addresses in turn (a home line or a few proxies). ``sybil_botnet``: the same
    cookies, each behind an address of its own (one address per sybil).
    """
    index = np.arange(end)
    if identities == "few":
        groups = [index[i::few] for i in range(few)]   # round robin: every identity attacks all along
    elif identities in ("sybil_nat", "sybil_botnet"):
        groups = [index[i:i + sybil_votes] for i in range(0, end, sybil_votes)]
    else:
        raise ValueError(f"unknown identities {identities!r}")
    groups = [g for g in groups if g.size]
    if identities == "sybil_nat":
        addresses = [f"attack-{i % attack_addresses}" for i in range(len(groups))]
    else:
        addresses = [f"attack-{i}" for i in range(len(groups))]
    return ([SimVoter("attack", stream.a[g], stream.b[g], stream.outcome[g]) for g in groups], groups,
            addresses)


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
    addresses: int
    rank_off: int
    rank_on: int
    excluded_share: float
    excluded_by_detector: float
    excluded_by_leaks: float
    excluded_by_drift: float
    honest_votes_held: float
    holds: list
    honest_flagged: float
    honest_tested_flagged: float
    honest_shared_flagged: float
    attackers_flagged: int
    attackers_flagged_by_model_test: int
    minutes_one_address: float


def run_scenario(kind: str, identities: str, *, theta: np.ndarray, target: int, honest: list[SimVoter],
                 honest_leaks: list[np.ndarray], sizes: Sequence[int], accuracy: float, few: int,
                 sybil_votes: int, leak_rate: float, seed: int, detect_kwargs: dict | None = None,
                 honest_addresses: Sequence[str] | None = None, honest_times: Sequence[np.ndarray] | None = None,
                 attack_addresses: int = 5, by_address: bool = True, days: int = 1, attack_days: int = 1,
                 drift_alpha: float | None = None,
                 ) -> tuple[dict[str, int], list[Outcome]]:
    """Every attack size of one (attack, identities) scenario; also the baseline ranks without attack.

    ``honest_addresses`` (default: one address per voter) and ``honest_times`` (days from 0; default: voters
    one after the other on day 0) say who shares an address and when each vote came; ``by_address`` runs the
    address test (every address shared by several voters is tested as one identity) besides the per-voter
    one. The attack comes evenly over the last ``attack_days`` of ``days``. ``drift_alpha``: also run the
    per-model drift check on every day (None: not).
    """
    models = tuple(f"m{i:02d}" for i in range(theta.size))
    rng = np.random.default_rng([seed, ATTACKS.index(kind), IDENTITIES.index(identities)])
    stream = attack_stream(kind, theta, target, max(sizes), rng, accuracy=accuracy)
    attack_leaks = rng.random(stream.a.size) < leak_rate
    h_addresses = list(honest_addresses) if honest_addresses is not None else [f"home-{i}" for i in
                                                                                  range(len(honest))]
    h_times = (list(honest_times) if honest_times is not None
               else [k * 1e-6 + np.arange(v.a.size) * 1e-9 for k, v in enumerate(honest)])
    shared = [h_addresses.count(a) > 1 for a in h_addresses] if by_address else [False] * len(honest)

    def held_by_drift(voters: list[SimVoter], counted: list[np.ndarray], times: list[np.ndarray]
                      ) -> tuple[list[np.ndarray], list[anomaly.DriftHold]]:
        if drift_alpha is None:
            return [np.zeros(v.a.size, dtype=bool) for v in voters], []
        return drift_holds(voters, counted, times, theta.size, days=days, alpha=drift_alpha)

    all_counted = [np.ones(v.a.size, dtype=bool) for v in honest]
    base_off = int(fitted_ranks(models, honest, all_counted)[target])
    base_detect = detect(honest, np.random.default_rng([seed, 1]), **(detect_kwargs or {}),
                         addresses=h_addresses if by_address else None, times=h_times)
    counted_on = [~leak & (not r.flagged) for leak, r in zip(honest_leaks, base_detect, strict=True)]
    base_held, _ = held_by_drift(honest, counted_on, h_times)
    base_on = int(fitted_ranks(models, honest, [c & ~h for c, h in zip(counted_on, base_held, strict=True)])[target])
    outcomes = []
    for n in sizes:
        end = stream.prefix(n)
        attackers, groups, a_addresses = split_identities(stream, end, identities, few=few, sybil_votes=sybil_votes,
                                                          attack_addresses=attack_addresses)
        masks = [stream.manipulative[g] for g in groups]
        voters = honest + attackers
        when = attack_times(end, days=days, attack_days=attack_days)
        times = h_times + [when[g] for g in groups]
        rank_off = int(fitted_ranks(models, voters, [np.ones(v.a.size, dtype=bool) for v in voters])[target])
        results = detect(voters, np.random.default_rng([seed, 2, n]), **(detect_kwargs or {}),
                         addresses=h_addresses + a_addresses if by_address else None, times=times)
        honest_results, attack_results = results[:len(honest)], results[len(honest):]
        leaks = honest_leaks + [attack_leaks[g] for g in groups]
        counted = [~leak & (not r.flagged) for leak, r in zip(leaks, results, strict=True)]
        held, holds = held_by_drift(voters, counted, times)
        rank_on = int(fitted_ranks(models, voters, [c & ~h for c, h in zip(counted, held, strict=True)])[target])
        manip = np.concatenate(masks)
        flagged_votes = np.concatenate([np.full(m.size, r.flagged) for m, r in zip(masks, attack_results,
                                                                                    strict=True)])
        leaked = np.concatenate([attack_leaks[g] for g in groups])
        held_attack = np.concatenate(held[len(honest):])
        honest_counted = np.concatenate(counted[:len(honest)])
        honest_held = np.concatenate(held[:len(honest)])
        tested = [r for r in honest_results if r.n_pvalues >= anomaly.DEFAULT_CHECKPOINTS[0]]
        on_shared = [r for r, s in zip(honest_results, shared, strict=True) if s]
        battles = int(stream.battles_opened[end - 1])
        outcomes.append(Outcome(
            attack_votes=n, votes_cast=end, battles_opened=battles, identities=len(attackers),
            addresses=len(set(a_addresses)), rank_off=rank_off, rank_on=rank_on,
            excluded_share=float((manip & (flagged_votes | leaked | held_attack)).sum() / manip.sum()),
            excluded_by_detector=float((manip & flagged_votes).sum() / manip.sum()),
            excluded_by_leaks=float((manip & leaked).sum() / manip.sum()),
            excluded_by_drift=float((manip & held_attack).sum() / manip.sum()),
            honest_votes_held=float((honest_counted & honest_held).sum() / honest_counted.size),
            holds=[(h.first_day, h.day, h.model, round(h.z, 1)) for h in holds],
            honest_flagged=sum(r.flagged for r in honest_results) / len(honest_results),
            honest_tested_flagged=sum(r.flagged for r in tested) / max(len(tested), 1),
            honest_shared_flagged=sum(r.flagged for r in on_shared) / max(len(on_shared), 1),
            attackers_flagged=sum(r.flagged for r in attack_results),
            attackers_flagged_by_model_test=sum(r.flagged and r.model is not None for r in attack_results),
            minutes_one_address=_minutes_at_limits(battles, end, len(attackers), len(set(a_addresses))),
        ))
    return {"off": base_off, "on": base_on}, outcomes


def _minutes_at_limits(battles: int, votes: int, identities: int, addresses: int = 1) -> float:
    """Least minutes to open ``battles`` and cast ``votes`` from ``addresses`` addresses within the per-minute limits.

    Fixed windows (``arena/ratelimit.py``): a paced attacker is never refused, it only waits; the per-voter
    limits bind while ``identities`` cookies cannot fill the per-address ones.
    """
    battle_rate = min(identities * BATTLES_PER_VOTER, addresses * BATTLES_PER_ADDRESS)
    vote_rate = min(identities * VOTES_PER_VOTER, addresses * VOTES_PER_ADDRESS)
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
    parser.add_argument("--nat-share", type=float, default=0.05, dest="nat_share",
                        help="share of honest voters behind a shared address (campus, carrier NAT)")
    parser.add_argument("--nat-addresses", type=int, default=10, dest="nat_addresses",
                        help="how many shared addresses those honest voters are spread over")
    parser.add_argument("--taste", type=float, default=0.0,
                        help="spread of honest voters' own strengths around the crowd's (0: all alike)")
    parser.add_argument("--accuracy", type=float, default=0.95)
    parser.add_argument("--attack-votes", default="100,300,1000,3000", dest="attack_votes")
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--identities", default=",".join(IDENTITIES))
    parser.add_argument("--few-identities", type=int, default=5, dest="few_identities")
    parser.add_argument("--sybil-votes", type=int, default=4, dest="sybil_votes")
    parser.add_argument("--attack-addresses", type=int, default=5, dest="attack_addresses",
                        help="addresses behind which sybil_nat's cookies vote")
    parser.add_argument("--leak-rate", type=float, default=0.02, dest="leak_rate")
    parser.add_argument("--no-model-habit", action="store_false", dest="model_habit",
                        help="position habit only in the p-values (arena.anomaly, model_habit=False)")
    parser.add_argument("--no-model-test", action="store_false", dest="model_test",
                        help="the all-votes test only, as before the per-model test (model_checkpoints=())")
    parser.add_argument("--no-address-test", action="store_false", dest="address_test",
                        help="test voters (cookies) only, as before the address test")
    parser.add_argument("--days", type=int, default=10,
                        help="days the honest traffic spans (each voter votes on one day); the drift check's windows")
    parser.add_argument("--attack-days", type=int, default=1, dest="attack_days",
                        help="the attack comes evenly over the last N days (1: a burst on the last day)")
    parser.add_argument("--drift", action="store_true",
                        help="add the per-model drift scan (arena.anomaly.model_drift_scan): pure core only, NOT run "
                             "by the service yet, so off by default")
    parser.add_argument("--drift-alpha", type=float, default=anomaly.DEFAULT_DRIFT_ALPHA, dest="drift_alpha",
                        help="probability per day of holding some model when nothing changed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.attack_votes.split(","))
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    theta = np.linspace(args.spread / 2, -args.spread / 2, args.models)   # index = true rank - 1
    target = args.target_rank - 1
    honest = honest_voters(theta, args.honest_votes, args.honest_mean_votes, rng, taste=args.taste)
    honest_leaks = [rng.random(v.a.size) < args.leak_rate for v in honest]
    # Drawn from their own generators, so that the honest votes and leaks stay those of earlier versions.
    addresses = honest_addresses(len(honest), np.random.default_rng([args.seed, 7]), nat_share=args.nat_share,
                                 nat_addresses=args.nat_addresses)
    times = honest_times(honest, np.random.default_rng([args.seed, 8]), days=args.days)
    detect_kwargs: dict = {"model_habit": args.model_habit}
    if not args.model_test:
        detect_kwargs["model_checkpoints"] = ()
    scenarios = []
    for kind in args.attacks.split(","):
        for identities in args.identities.split(","):
            base, outcomes = run_scenario(kind, identities, theta=theta, target=target, honest=honest,
                                          honest_leaks=honest_leaks, sizes=sizes, accuracy=args.accuracy,
                                          few=args.few_identities, sybil_votes=args.sybil_votes,
                                          leak_rate=args.leak_rate, seed=args.seed, detect_kwargs=detect_kwargs,
                                          honest_addresses=addresses, honest_times=times,
                                          attack_addresses=args.attack_addresses, by_address=args.address_test,
                                          days=args.days, attack_days=args.attack_days,
                                          drift_alpha=args.drift_alpha if args.drift else None)
            scenarios.append({
                "attack": kind, "identities": identities, "baseline_rank": base,
                "votes_to_move_one_rank": {"off": _votes_to_move(base["off"], outcomes, "off"),
                                           "on": _votes_to_move(base["on"], outcomes, "on")},
                "sizes": [o.__dict__ for o in outcomes],
            })
    shared = [a for a in addresses if addresses.count(a) > 1]
    # The drift check on the honest votes alone (all counted): its false holds, (day, model, z).
    _, holds = drift_holds(honest, [np.ones(v.a.size, dtype=bool) for v in honest], times, args.models,
                           days=args.days, alpha=args.drift_alpha) if args.drift else (None, [])
    baseline_holds = [(h.first_day, h.day, h.model, round(h.z, 1)) for h in holds]
    report = {"params": vars(args), "honest_voters": len(honest), "honest_voters_sharing_an_address": len(shared),
              "shared_addresses": len(set(shared)), "baseline_holds": baseline_holds, "scenarios": scenarios,
              "seconds": round(time.perf_counter() - t0, 1)}
    if args.json:
        print(json.dumps(report, indent=1, default=float))
    else:
        print(_table(report, sizes))
    return report


def _table(report: dict, sizes: Sequence[int]) -> str:
    others = [n for n in sizes if n != 1000]
    lines = ["| Attack | Identities (cookies / addresses at 1,000) | Votes to move 1 rank, off / on | "
             "At 1,000 votes: rank off / on (base) | Attack votes excluded at 1,000 (detector, leaks, drift) | "
             f"Excluded at {' / '.join(f'{n:,}' for n in others)} | "
             "Attacker cookies flagged (by the per-model test) | "
             "Honest voters flagged (of tested; behind shared addresses) | Honest votes held by drift | "
             "Minutes at the limits |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in report["scenarios"]:
        at = next((o for o in s["sizes"] if o["attack_votes"] == 1000), s["sizes"][-1])
        rest = " / ".join(f"{o['excluded_share']:.0%}" for o in s["sizes"] if o["attack_votes"] != 1000)
        move = s["votes_to_move_one_rank"]
        lines.append(
            f"| {s['attack']} | {s['identities']} ({at['identities']} / {at['addresses']}) | "
            f"{move['off'] or '>' + str(max(sizes))} / {move['on'] or '>' + str(max(sizes))} | "
            f"{at['rank_off']} / {at['rank_on']} ({s['baseline_rank']['off']} / {s['baseline_rank']['on']}) | "
            f"{at['excluded_share']:.1%} ({at['excluded_by_detector']:.1%}, {at['excluded_by_leaks']:.1%}, "
            f"{at['excluded_by_drift']:.1%}) | {rest} | "
            f"{at['attackers_flagged']} of {at['identities']} ({at['attackers_flagged_by_model_test']}) | "
            f"{at['honest_flagged']:.2%} ({at['honest_tested_flagged']:.2%}; {at['honest_shared_flagged']:.2%}) | "
            f"{at['honest_votes_held']:.1%} | {math.ceil(at['minutes_one_address'])} |")
    lines.append(f"\n{report['honest_voters']} honest voters, {report['honest_voters_sharing_an_address']} of them "
                 f"behind {report['shared_addresses']} shared addresses; drift holds without any attack: "
                 f"{report['baseline_holds']}; {report['seconds']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
