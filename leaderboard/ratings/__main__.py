"""Command line: rate the models of a battle file without a database.

::

    python -m leaderboard.ratings FILE [--format fastchat|lmarena|csv] [--category TAG] [--method elo|bt|pl|bayes]
        [--ties half|davidson|rao-kupper] [--bootstrap R] [--ci bootstrap|sandwich] [--style-control]
        [--seed S] [--exclude-ties] [--anchor MODEL] [--include-named] [--l2 L]

Prints a JSON list of ``{model, rating, ci_low, ci_high, rank, rank_ub, votes, component, provisional,
ci_degenerate_share}`` (bayes adds ``mu, sigma, p_best``) by component of the comparison graph (1 = most
votes), then by rating, descending; ranks are within a component; unbounded interval ends are ``null``.
Skipped rows (self-battles, named battles, battles without ``--category``'s tag) are counted on stderr.
Exit status: 0 on success, 2 for a bad file or bad arguments (message on stderr naming the row),
1 when the ratings cannot be estimated (e.g. the MLE does not exist).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import numpy as np

from .bradley_terry import TieMode
from .data import BOTH_BAD, TIE, PairCounts
from .errors import ConvergenceError
from .fit import CI_METHODS, METHODS, TIE_MODES
from .io import FORMATS, BattleFile, BattleFileError, read_battles

EXIT_OK, EXIT_FIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = argparse.ArgumentParser(prog="python -m leaderboard.ratings",
                                description="Compute an arena leaderboard from a battle file.")
    p.add_argument("file", help="FastChat clean_battle JSON; an LMArena release (.json, .jsonl, .jsonl.gz, "
                                ".parquet); or CSV (model_a,model_b,winner[,judge,tstamp,anony,language,category])")
    p.add_argument("--format", choices=FORMATS,
                   help="default: from the file name, and for JSON from its first row (an 'id' and no 'tstamp': "
                        "lmarena)")
    p.add_argument("--category", default="", metavar="TAG",
                   help="rate only battles with this tag: LMArena's hard_6, coding, math, if, creative_writing, "
                        "multiturn, long_user, dedup, a language (english, chinese, ...), or a file's own category")
    p.add_argument("--method", choices=METHODS, default="bt")
    p.add_argument("--ties", choices=TIE_MODES,
                   help="default: rao-kupper for bt (the best held-out log-likelihood on arena votes; README, "
                        "'Leaderboards') when the battles hold ties and decisive outcomes, else half; half for pl, "
                        "bayes, elo. Use half for Chatbot Arena's / LMArena's numbers")
    p.add_argument("--bootstrap", type=int, default=100, metavar="R", help="bootstrap rounds (default 100)")
    p.add_argument("--ci", choices=CI_METHODS, default="bootstrap")
    p.add_argument("--style-control", action="store_true", help="needs conversations (FastChat JSON)")
    p.add_argument("--seed", type=int, default=0, metavar="S")
    p.add_argument("--exclude-ties", action="store_true", help="drop ties and both-bad ties")
    p.add_argument("--anchor", metavar="MODEL",
                   help="model pinned at rating 1000. Only its own component of the comparison graph is pinned: "
                        "models that never met it (even indirectly) keep their component centred on its own "
                        "mean at 1000, and every row says its component (ranks are within it)")
    p.add_argument("--include-named", action="store_true", help="FastChat: count non-anonymous battles too")
    p.add_argument("--l2", type=float, default=0.0, help="ridge on the strengths (bt/pl), default 0")
    return p


def _pairs_with_style(loaded: BattleFile) -> PairCounts:
    from .style import STYLE_FEATURES, style_features

    # read_battles(style=True), as main calls it with --style-control, returns both style arrays
    assert loaded.style_a is not None and loaded.style_b is not None
    x = style_features(loaded.style_a, loaded.style_b)
    return loaded.battles.to_pair_counts(features=x, feature_names=STYLE_FEATURES)


def _default_ties(args: argparse.Namespace, loaded: BattleFile) -> TieMode:
    """The service's default (``leaderboard.config.default_ties``): Rao-Kupper for bt, when there are ties to fit."""
    if args.method != "bt" or args.exclude_ties:
        return "half"
    # Without a tie (or with nothing but ties) Rao-Kupper's parameter has no finite estimate, and its ratings
    # are those of ties as 1/2 (see leaderboard.services._fit).
    tied = np.isin(loaded.battles.outcome, (TIE, BOTH_BAD))
    return "rao-kupper" if tied.any() and not tied.all() else "half"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = build_parser().parse_args(argv)
    from .fit import LeaderboardFit, leaderboard_fit

    try:
        loaded = read_battles(args.file, args.format, include_named=args.include_named, style=args.style_control,
                              ordered=args.method == "elo", category=args.category)
    except (BattleFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for count, what in ((loaded.skipped_self, "self-battle(s) (model_a == model_b)"),
                        (loaded.skipped_named, "named (non-anonymous) battle(s); see --include-named"),
                        (loaded.skipped_category, f"battle(s) without the tag {args.category!r}")):
        if count:
            print(f"note: skipped {count} {what}", file=sys.stderr)
    pairs = _pairs_with_style(loaded) if args.style_control else None
    ties = args.ties or _default_ties(args, loaded)

    def fit_with(tie_model: TieMode) -> LeaderboardFit:
        return leaderboard_fit(
            pairs, method=args.method, ties=tie_model, exclude_ties=args.exclude_ties, ci=args.ci,
            bootstrap=args.bootstrap, style_control=args.style_control, anchor=args.anchor, l2=args.l2,
            seed=args.seed, battles=loaded.battles,
        )

    try:
        try:
            fit = fit_with(ties)
        except ConvergenceError as exc:
            if args.ties is not None or ties == "half":
                raise
            # The default only (the service does it for any tie model, and says so): a few votes may leave
            # the tie parameter without a finite estimate (one tie and one win in every pair); ties as 1/2 may
            # still rate them.
            fit = fit_with("half")
            print(f"note: no finite {ties} estimate ({exc}); rated with --ties half", file=sys.stderr)
    except ConvergenceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FIT_FAILED
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    dropped = fit.params.get("style_features_dropped", [])
    assert isinstance(dropped, list)  # leaderboard_fit records the names it dropped as a list
    for name in dropped:
        print(f"note: style feature {name!r} is constant in this file; left out", file=sys.stderr)
    json.dump(fit.to_records(), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
