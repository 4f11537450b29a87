"""Command line of the vote-budget simulator (see :mod:`leaderboard.simulate` for options and output).

Exit status: 0 on success, 2 for bad arguments (argparse's message on stderr).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Sequence

from .core import METHODS, POLICY_NAMES, TRUTHS, RunResult, SimConfig, simulate


def _number(convert: Callable[[str], float], ok: Callable[[float], bool], expected: str) -> Callable[[str], float]:
    """An argparse type: ``convert`` the text, then refuse values that are not ``ok``, saying what was expected."""

    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_noise = _number(float, lambda v: 0.0 <= v < 0.5, "a probability in [0, 0.5)")
_positive_float = _number(float, lambda v: v > 0, "a positive number")


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = argparse.ArgumentParser(prog="python -m leaderboard.simulate",
                                description="Votes a policy and a fitting method need to rank a known truth.")
    p.add_argument("--models", type=_positive_int, default=50, metavar="N", help="models in the arena (default 50)")
    p.add_argument("--k", type=_positive_int, default=4, metavar="K", help="models per vote, 2..N (default 4)")
    p.add_argument("--policy", choices=POLICY_NAMES, default="random")
    p.add_argument("--method", choices=METHODS, default="pl")
    p.add_argument("--noise", type=_noise, default=0.0, metavar="P",
                   help="flip probability of each adjacent implied pair (Mallows), default 0")
    p.add_argument("--truth", choices=TRUTHS, default="spread")
    p.add_argument("--seed", type=int, default=0, metavar="S")
    p.add_argument("--max-votes", type=_positive_int, default=2000, metavar="V",
                   help="votes per repeat (per phase with --new-model), default 2000")
    p.add_argument("--repeats", type=_positive_int, default=5, metavar="R", help="default 5")
    p.add_argument("--checkpoint-every", type=_positive_int, default=None, metavar="C",
                   help="votes between ranking checks (default 1 for elo, 10 otherwise)")
    p.add_argument("--new-model", action="store_true",
                   help="add one model to a converged arena; count the votes showing it until its rank is right")
    p.add_argument("--curve", metavar="FILE.csv", help="write Kendall tau at every checkpoint of every repeat")
    p.add_argument("--l2", type=_positive_float, default=0.01, help="ridge for bt / pl (default 0.01)")
    p.add_argument("--prior-sd", type=_positive_float, default=2.0, help="bayes prior sd (default 2.0)")
    p.add_argument("--elo-k", type=_positive_float, default=4.0, help="Elo K-factor (default 4)")
    p.add_argument("--policy-refit-every", type=_positive_int, default=1, metavar="R",
                   help="votes between the posterior refits that feed a ratings-using policy (active), default 1")
    return p


def write_curve(path: str, runs: list[RunResult]) -> None:
    """CSV ``repeat,votes,counted_votes,kendall_tau,right``, one row per checkpoint.

    ``counted_votes`` is the votes that showed the new model with ``--new-model`` (whose curve covers
    the phase after its arrival only; ``votes`` then counts the warm-up too), else equal to ``votes``.
    """
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["repeat", "votes", "counted_votes", "kendall_tau", "right"])
        for run in runs:
            counted = run.counted_votes or run.checkpoint_votes
            for v, c, tau, ok in zip(run.checkpoint_votes, counted, run.tau, run.right, strict=True):
                out.writerow([run.repeat, v, c, f"{tau:.6f}", int(ok)])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.k > args.models:
        parser.error(f"--k {args.k} is more than --models {args.models}")
    if args.k < 2:
        parser.error("--k must be at least 2")
    config = SimConfig(models=args.models, k=args.k, policy=args.policy, method=args.method, noise=args.noise,
                       truth=args.truth, seed=args.seed, max_votes=args.max_votes, repeats=args.repeats,
                       checkpoint_every=args.checkpoint_every, new_model=args.new_model, l2=args.l2,
                       prior_sd=args.prior_sd, elo_k=args.elo_k, policy_refit_every=args.policy_refit_every)
    summary, runs = simulate(config)
    if args.curve:
        try:
            write_curve(args.curve, runs)
        except OSError as exc:
            parser.error(f"cannot write --curve {args.curve}: {exc}")
    json.dump(summary, sys.stdout, indent=1, allow_nan=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
