"""Coverage of the 95 % intervals against planted truth, over many simulated arenas.

    python -m benchmarks.ratings_coverage [--reps 500] [--models 10] [--battles 4000] [--bootstrap 200]

For each scenario, data are simulated ``--reps`` times from fixed planted strengths; each time the
leaderboard is fitted with bootstrap and with sandwich intervals, and we record whether each model's
interval contains its true centred rating (400 theta / ln 10 + 1000 with mean-0 theta). Reported:
coverage pooled over models (with its Monte-Carlo standard error), the worst and best model, and
the mean interval width.

Scenarios
---------
bt/bt            plain BT data (no ties), BT fit                  -> should cover ~95 %
davidson/davidson Davidson data (nu = 0.6), Davidson fit            -> should cover ~95 %
davidson/half    the same data, ties counted as 1/2 (Chatbot Arena) -> estimates a compressed
                 scale, so it does *not* cover the Davidson strengths; "slope" shows by how much
davidson/excl    the same data, ties excluded, BT on decisive games -> unbiased under Davidson
rk/rk            Rao-Kupper data (eta = 0.5), Rao-Kupper fit (the BT default) -> should cover ~95 %
rk/half          the same data, ties counted as 1/2
rk/davidson      the same data, Davidson fit
davidson/rk      Davidson data fitted with Rao-Kupper: a tie model's intervals cover its own truth
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

from leaderboard.ratings import PairCounts, leaderboard_fit
from leaderboard.ratings.simulate import davidson_battles, rao_kupper_battles

SCALE = 400 / math.log(10)


RK_ETA = 0.5


def simulate(theta: np.ndarray, n: int, nu: float | str, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Random pairings; Davidson outcomes (nu = 0: plain BT), or Rao-Kupper ones when ``nu`` is "rk"."""
    if nu == "rk":
        return rao_kupper_battles(theta, n, rng, eta=RK_ETA)
    return davidson_battles(theta, n, rng, nu=float(nu))


SCENARIOS: dict[str, tuple[float | str, dict[str, object]]] = {
    "bt/bt": (0.0, {"ties": "half"}),
    "davidson/davidson": (0.6, {"ties": "davidson"}),
    "davidson/half": (0.6, {"ties": "half"}),
    "davidson/excl": (0.6, {"ties": "half", "exclude_ties": True}),
    "rk/rk": ("rk", {"ties": "rao-kupper"}),
    "rk/half": ("rk", {"ties": "half"}),
    "rk/davidson": ("rk", {"ties": "davidson"}),
    "davidson/rk": (0.6, {"ties": "rao-kupper"}),
}


def run(name: str, theta: np.ndarray, args: argparse.Namespace) -> None:
    """Simulate one scenario and print its coverage lines."""
    nu, opts = SCENARIOS[name]
    rng = np.random.default_rng(args.seed)
    truth = SCALE * (theta - theta.mean()) + 1000
    models = [f"m{i:02d}" for i in range(theta.size)]
    hits = {"bootstrap": [], "sandwich": []}
    widths = {"bootstrap": [], "sandwich": []}
    slopes = []
    t0 = time.perf_counter()
    for _ in range(args.reps):
        pairs = PairCounts.from_arrays(models, *simulate(theta, args.battles, nu, rng))
        for ci in hits:
            fit = leaderboard_fit(pairs, ci=ci, bootstrap=args.bootstrap, seed=int(rng.integers(1 << 31)), **opts)
            order = {r.model: r for r in fit.rows}
            rows = [order[m] for m in models]
            hits[ci].append([r.ci_low <= t <= r.ci_high for r, t in zip(rows, truth, strict=True)])
            widths[ci].append([r.ci_high - r.ci_low for r in rows])
            if ci == "sandwich":
                slopes.append(np.polyfit(truth, [r.rating for r in rows], 1)[0])
    elapsed = time.perf_counter() - t0
    for ci in hits:
        h = np.array(hits[ci], dtype=float)
        per_model = h.mean(axis=0)
        pooled = h.mean()
        se = math.sqrt(pooled * (1 - pooled) / h.size)
        print(f"{name:<18} {ci:<9} coverage {pooled:.3f} (MC se {se:.3f}); per model {per_model.min():.3f}.."
              f"{per_model.max():.3f}; mean width {np.mean(widths[ci]):.1f} pts")
    print(f"{name:<18} slope of fitted vs true rating {np.mean(slopes):.3f}; {elapsed:.0f} s")


def main() -> None:
    """Run every scenario."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=500)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--battles", type=int, default=4000)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), action="append")
    args = parser.parse_args()
    theta = np.random.default_rng(args.seed).normal(0, 0.8, args.models)
    print(f"{args.reps} reps, {args.models} models, {args.battles} battles each, bootstrap R = {args.bootstrap}, "
          f"true ratings {np.round(SCALE * (theta - theta.mean()) + 1000).astype(int).tolist()}")
    for name in args.scenario or SCENARIOS:
        run(name, theta, args)


if __name__ == "__main__":
    main()
