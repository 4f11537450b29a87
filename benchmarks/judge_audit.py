"""Time the whole judge-audit CLI process on 100,000 simulated judgments: python -m judges.audit FILE.

    python benchmarks/judge_audit.py [--repeat 5] [--battles 2000] [--judges 20] [--seed 0]
                                     [--peer-command CMD] [--keep]

Generates (seeded, with :func:`judges.simulation.simulate_judgments`) 20 scripted judges, each judging
2,000 battles in both orders (80,000 rows), a second replicate of 250 battles (10,000 rows) and one
perturbation on 250 battles (10,000 rows): 100,000 judgments with human votes on 80% of the battles,
markdown counts and categories. Writes them to a temporary JSONL, runs ``python -m judges.audit FILE``
(default settings: 200 bootstrap rounds, every interval) ``--repeat`` times as a child process and
prints min / median wall time and the child's peak RSS (``os.wait4``).

Peer hook (``--peer-command``): another engineer is preparing an AlpacaEval analyzer peer run
(benchmarks/judge_audit_peer.py). ``--peer-command "CMD"`` also times ``CMD FILE`` on the same file,
alternating ours and the peer's (A B A B ...) so that machine noise hits both alike, and prints the
ratio of medians (peer / ours).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Model -> (family, true strength, typical length in tokens). Length and strength are only loosely
# related, so the length-controlled figures have something to separate.
MODELS = {
    "gpt-4o": ("openai", 1.2, 420), "gpt-4o-mini": ("openai", 0.6, 300), "claude-3.5-sonnet": ("anthropic", 1.1, 380),
    "claude-3-haiku": ("anthropic", 0.3, 260), "llama-3-70b": ("meta", 0.7, 520), "llama-3-8b": ("meta", -0.2, 450),
    "mistral-large": ("mistral", 0.5, 350), "mixtral-8x7b": ("mistral", 0.0, 330),
    "gemini-1.5-pro": ("google", 0.9, 600),
    "gemma-2-9b": ("google", -0.1, 280), "qwen-2-72b": ("alibaba", 0.6, 400), "phi-3-mini": ("microsoft", -0.6, 220),
}
FAMILIES = ["openai", "anthropic", "meta", "mistral", "google", None]


def judge_panel(n_judges: int):
    """``n_judges`` scripted judges with a spread of planted biases (all seeded, no randomness here)."""
    from judges.simulation import ScriptedJudgeParams

    strengths = {m: s for m, (_, s, _) in MODELS.items()}
    panel = {}
    for j in range(n_judges):
        panel[f"judge-{j:02d}"] = (FAMILIES[j % len(FAMILIES)], ScriptedJudgeParams(
            position_bias=(j % 5 - 2) * 0.05, length_bias=(j % 4) * 0.4, markdown_bias=(j % 3) * 0.3,
            self_preference=(j % 2) * 0.5, noise=1.0 + 0.1 * (j % 3), tie_rate=0.05 + 0.02 * (j % 4),
            human_agreement=0.2 * (j % 3), strengths=strengths, perturbation_effects={"authority": 0.3 * (j % 4)},
            unparsed_rate=0.01 * (j % 3)))
    return panel


def write_file(path: Path, *, battles: int, judges: int, seed: int) -> int:
    """Simulate and write the benchmark JSONL; returns the number of rows."""
    import numpy as np

    from judges.simulation import simulate_judgments

    extra = battles // 8  # 250 of 2,000: one replicate and one perturbation on an eighth of the battles each
    rows = simulate_judgments(
        n_battles=battles, models=list(MODELS), families={m: f for m, (f, _, _) in MODELS.items()},
        judges=judge_panel(judges), rng=np.random.default_rng(seed), replicates=2,
        replicate_share=extra / battles, perturbations=("authority",), perturbation_share=extra / battles,
        strengths={m: s for m, (_, s, _) in MODELS.items()},
        length_mean={m: n for m, (_, _, n) in MODELS.items()}, human_share=0.8, human_tie_rate=0.15,
        human_both_bad_rate=0.05, battle_prefix="bench")
    with open(path, "w") as out:
        for row in rows:
            out.write(json.dumps(row))
            out.write("\n")
    return len(rows)


def run_once(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one child process; its stdout is discarded."""
    with open(os.devnull, "w") as sink:
        t0 = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=ROOT, stdout=sink)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{shlex.join(cmd)} failed with status {os.waitstatus_to_exitcode(status)}")
    return wall, usage.ru_maxrss / 1024


def summary(name: str, walls: list[float], peaks: list[float]) -> str:
    return (f"{name}: wall min {min(walls):.3f} s, median {statistics.median(walls):.3f} s over {len(walls)} runs; "
            f"peak RSS {max(peaks):.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--battles", type=int, default=2000)
    parser.add_argument("--judges", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the generated file (its path is printed)")
    # --- peer hook: the AlpacaEval analyzer peer run (benchmarks/judge_audit_peer.py) plugs in here ---
    parser.add_argument("--peer-command", default=None, metavar="CMD",
                        help="also time `CMD FILE` (shell-split), alternating with ours, and print the ratio")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="judge_audit_bench_"))
    path = tmp / "judgments.jsonl"
    t0 = time.perf_counter()
    n_rows = write_file(path, battles=args.battles, judges=args.judges, seed=args.seed)
    print(f"file: {path} ({n_rows:,} judgments, {args.judges} judges, {args.battles:,} battles, "
          f"{path.stat().st_size / 2**20:.1f} MiB; generated in {time.perf_counter() - t0:.1f} s)")
    ours = [sys.executable, "-m", "judges.audit", str(path)]
    peer = [*shlex.split(args.peer_command), str(path)] if args.peer_command else None
    print(f"command: {shlex.join(ours[1:])}  (cwd {ROOT})")
    if peer:
        print(f"peer: {shlex.join(peer)}")
    run_once(ours)  # warm the page cache and the .pyc files; not counted
    walls, peaks, peer_walls, peer_peaks = [], [], [], []
    for _ in range(args.repeat):
        wall, peak = run_once(ours)
        walls.append(wall)
        peaks.append(peak)
        if peer:
            wall, peak = run_once(peer)
            peer_walls.append(wall)
            peer_peaks.append(peak)
    print(summary("judges.audit", walls, peaks))
    report = json.loads(subprocess.run(ours, cwd=ROOT, capture_output=True, check=True).stdout)
    print(f"report: {report['meta']['judges']} judges, {len(json.dumps(report)) / 2**10:.0f} KiB of JSON")
    if peer:
        print(summary("peer", peer_walls, peer_peaks))
        print(f"ratio of medians (peer / ours): {statistics.median(peer_walls) / statistics.median(walls):.2f}")
    if args.keep:
        print(f"kept: {path}")
    else:
        path.unlink()
        tmp.rmdir()


if __name__ == "__main__":
    main()
