"""Write a seeded battle CSV from planted Bradley-Terry strengths with Davidson ties.

    python benchmarks/ratings_make_csv.py --rows 2000000 --models 130 --seed 0

Writes ``benchmarks/data/ratings_<rows>_<models>_<seed>.csv`` with columns
``model_a,model_b,winner,judge,tstamp`` (the optional columns too, so the reader is timed on a
realistic width) and ``.._truth.json`` with the planted strengths. Strengths ~ Normal(0, 1)
(about +-350 rating points); tie parameter nu = 0.5 (~20 % ties at equal strength), 60 % of ties
are "tie (bothbad)".
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from leaderboard.ratings.simulate import davidson_battles

DATA = Path(__file__).resolve().parent / "data"
WINNERS = np.array(["model_a", "model_b", "tie", "tie (bothbad)"])


def planted(models: int, rng: np.random.Generator) -> np.ndarray:
    """Centred planted strengths."""
    theta = rng.normal(0.0, 1.0, models)
    return theta - theta.mean()


def simulate(rows: int, theta: np.ndarray, nu: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Random pairings and Davidson outcomes, 60 % of ties "both bad" (0 A, 1 B, 2 tie, 3 both bad)."""
    return davidson_battles(theta, rows, rng, nu=nu, both_bad=0.6)


def main() -> None:
    """Write the CSV and the truth file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--models", type=int, default=130)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nu", type=float, default=0.5)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    theta = planted(args.models, rng)
    a, b, outcome = simulate(args.rows, theta, args.nu, rng)
    names = np.array([f"vendor-{i % 17:02d}/model-{i:03d}-chat" for i in range(args.models)])
    judges = rng.integers(0, 50_000, args.rows)
    tstamp = 1.7e9 + np.sort(rng.random(args.rows)) * 3e7
    DATA.mkdir(exist_ok=True)
    stem = DATA / f"ratings_{args.rows}_{args.models}_{args.seed}"
    lines = [f"{x},{y},{w},judge-{j},{t:.3f}" for x, y, w, j, t in
             zip(names[a].tolist(), names[b].tolist(), WINNERS[outcome].tolist(), judges.tolist(), tstamp.tolist(),
                 strict=True)]
    stem.with_suffix(".csv").write_text("model_a,model_b,winner,judge,tstamp\n" + "\n".join(lines) + "\n")
    truth = {"models": names.tolist(), "theta": theta.tolist(), "nu": args.nu, "seed": args.seed}
    Path(f"{stem}_truth.json").write_text(json.dumps(truth))
    size = stem.with_suffix(".csv").stat().st_size
    print(f"wrote {stem.with_suffix('.csv')} ({args.rows:,} rows, {args.models} models, {size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
