"""Vote-budget simulator: votes a matchmaking policy + fitting method need to rank a known truth exactly.

Pure (numpy / scipy, :mod:`leaderboard.ratings` and :mod:`arena.matchmaking.policies`; no Django).

CLI::

    python -m leaderboard.simulate [--models N] [--k K] [--policy random|weighted|active|ksort]
        [--method elo|bt|pl|bayes] [--noise P] [--truth spread|gaps] [--seed S] [--max-votes V]
        [--repeats R] [--checkpoint-every C] [--new-model] [--curve FILE.csv]
        [--l2 L] [--prior-sd SD] [--elo-k K] [--policy-refit-every R]

prints JSON::

    {"votes_to_converge": {"median", "p10", "p90"},   # over converged repeats only (null if none)
     "converged_fraction", "kendall_tau_final",       # tau: median over repeats of the last checkpoint
     "unit", "checkpoint_every", "information_bound_votes", "config", "fit_failures",
     "repeats": [{"repeat", "votes_to_converge", "kendall_tau_final", ...}],
     "warmup_failed"    (--new-model only),
     "policy_ranking"   (ksort only: the same measure for the policy's own mu - 3 sigma ranking)}

The definitions (truth, noise on K-wise votes, fitting, checkpoints, convergence, new-model mode)
are in :mod:`leaderboard.simulate.core`; the K-Sort baseline in :mod:`leaderboard.simulate.ksort`.
"""
from __future__ import annotations

from .core import (
    METHODS,
    POLICY_NAMES,
    TRUTHS,
    RunResult,
    SimConfig,
    kendall_tau,
    make_policy,
    mallows_ranking,
    ranking_is_right,
    simulate,
    simulate_run,
    summarize,
    true_strengths,
    votes_to_converge,
)
from .ksort import KSortPolicy, weng_lin_update

__all__ = [
    "METHODS",
    "POLICY_NAMES",
    "TRUTHS",
    "KSortPolicy",
    "RunResult",
    "SimConfig",
    "kendall_tau",
    "make_policy",
    "mallows_ranking",
    "ranking_is_right",
    "simulate",
    "simulate_run",
    "summarize",
    "true_strengths",
    "votes_to_converge",
    "weng_lin_update",
]
