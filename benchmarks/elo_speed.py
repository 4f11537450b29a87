"""Time online Elo and its permutation bootstrap: compiled (numba) vs the pure-Python reference vs FastChat.

    python -m benchmarks.elo_speed [--battles 2000000] [--models 130] [--bootstrap 100] [--repeat 3]
                                   [--fastchat-python /tmp/fschat-venv/bin/python] [--skip-reference]

Simulates ``--battles`` seeded battles (planted strengths, Davidson ties, 60 % of ties both-bad, as
``benchmarks/ratings_make_csv.py``) and times, on the same data:

- the first call in a fresh process, once with an empty numba cache (compile time counted) and once
  with the cache that run wrote (cache load counted): ``elo_battles`` then ``elo_permutations``;
- steady state in this process (min / median over ``--repeat``): ``elo_battles`` and
  ``elo_permutations(R = --bootstrap)``;
- the reference implementations (``elo._elo_battles_reference``, ``elo._elo_permutations_reference``:
  the code before the compiled path), once each, and the largest rating difference to them;
- FastChat's ``compute_elo`` (one pass; its bootstrap resamples battles, so only the plain pass is
  comparable) when ``--fastchat-python`` names an interpreter with fschat installed, on the same
  battles and on the real GenAI-Arena file in ``arena/demo/``, with the largest rating difference.

FastChat is never installed into the project's environment; make a scratch one, e.g.::

    python3.11 -m venv /tmp/fschat-venv
    /tmp/fschat-venv/bin/pip install fschat==0.2.36 numpy==2.4.6 pandas pytz plotly tqdm psutil \\
        torch transformers accelerate   # elo_analysis.py imports these at module level
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.ratings_make_csv import planted, simulate
from leaderboard.ratings import EloBattles, elo
from leaderboard.ratings.io import read_battles

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "arena" / "demo" / "genai_arena_clean_battle_20240220.json"
WINNERS = np.array(["model_a", "model_b", "tie", "tie (bothbad)"])

# Run by the FastChat interpreter: argv = [npz or json path, output json path].
FASTCHAT_SCRIPT = textwrap.dedent("""
    import json, sys, time
    import numpy as np, pandas as pd
    from fastchat.serve.monitor.elo_analysis import compute_elo
    src, dst = sys.argv[1], sys.argv[2]
    if src.endswith(".npz"):
        d = np.load(src)
        names, winners = d["names"], d["winners"]
        df = pd.DataFrame({"model_a": names[d["a"]], "model_b": names[d["b"]], "winner": winners[d["outcome"]]})
    else:  # a clean_battle JSON: anonymous battles, no self-battles, stable sort by time (as our reader)
        df = pd.read_json(src)
        df = df[df["anony"] & (df["model_a"] != df["model_b"])].sort_values("tstamp", kind="stable")
    t0 = time.perf_counter()
    rating = compute_elo(df)
    seconds = time.perf_counter() - t0
    json.dump({"seconds": seconds, "rating": {k: float(v) for k, v in rating.items()}}, open(dst, "w"))
""")


def battles_for(args: argparse.Namespace) -> EloBattles:
    """The seeded synthetic battles, in simulation (= time) order."""
    rng = np.random.default_rng(args.seed)
    theta = planted(args.models, rng)
    a, b, outcome = simulate(args.battles, theta, 0.5, rng)
    return EloBattles(tuple(f"model-{i:03d}" for i in range(args.models)), a, b, outcome)


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    """(min, median) wall seconds over ``repeat`` calls, and the last result."""
    walls = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        walls.append(time.perf_counter() - t0)
    return min(walls), statistics.median(walls), result


def first_call(args: argparse.Namespace) -> None:
    """Child process: time the first calls (numba import, compile or cache load, run) and print JSON."""
    battles = battles_for(args)
    t0 = time.perf_counter()
    elo.elo_battles(battles)
    t1 = time.perf_counter()
    elo.elo_permutations(battles, args.bootstrap, np.random.default_rng(0))
    t2 = time.perf_counter()
    print(json.dumps({"elo_battles": t1 - t0, "elo_permutations": t2 - t1}))


def run_first_call(args: argparse.Namespace, cache_dir: str) -> dict[str, float]:
    """First-call timings in a fresh interpreter whose numba cache is ``cache_dir``."""
    cmd = [sys.executable, "-m", "benchmarks.elo_speed", "--first-call", "--battles", str(args.battles),
           "--models", str(args.models), "--bootstrap", str(args.bootstrap), "--seed", str(args.seed)]
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    out = subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[-1])


def run_fastchat(python: str, src: Path, workdir: Path) -> dict:
    """FastChat's compute_elo on ``src`` (npz of our battles, or a clean_battle JSON) in its own interpreter."""
    script, dst = workdir / "fastchat_elo.py", workdir / "fastchat_out.json"
    script.write_text(FASTCHAT_SCRIPT)
    subprocess.run([python, str(script), str(src), str(dst)], check=True, capture_output=True, text=True)
    return json.loads(dst.read_text())


def max_diff(models: tuple[str, ...], ours: np.ndarray, theirs: dict[str, float]) -> float:
    """Largest |ours - theirs| over the models, which must be the same set."""
    assert set(theirs) == set(models), "FastChat rated a different set of models"
    return max(abs(float(r) - theirs[m]) for m, r in zip(models, ours, strict=True))


def main() -> None:
    """Run the timings and print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--battles", type=int, default=2_000_000)
    parser.add_argument("--models", type=int, default=130)
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fastchat-python", default="/tmp/fschat-venv/bin/python")
    parser.add_argument("--skip-reference", action="store_true", help="skip the ~80 s pure-Python bootstrap")
    parser.add_argument("--first-call", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first_call:
        first_call(args)
        return
    if elo._kernel() is None:
        raise SystemExit("numba is not installed: nothing to compare (pip install -r requirements.txt)")
    import numba

    battles = battles_for(args)
    r = args.bootstrap
    print(f"data: {args.battles:,} battles, {args.models} models, seed {args.seed}; R = {r} permutations; "
          f"numba {numba.__version__}, numpy {np.__version__}; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")

    with tempfile.TemporaryDirectory() as cache_dir:
        cold = run_first_call(args, cache_dir)
        warm = run_first_call(args, cache_dir)
    print(f"first call, fresh process, empty numba cache (compile counted): elo_battles {cold['elo_battles']:.2f} s "
          f"(numba import + compile), elo_permutations {cold['elo_permutations']:.2f} s")
    print(f"first call, fresh process, numba cache written: elo_battles {warm['elo_battles']:.2f} s "
          f"(numba import + cache load), elo_permutations {warm['elo_permutations']:.2f} s")

    elo.elo_battles(battles)  # warm-up: numba import and cache load (timed above)
    elo.elo_permutations(battles, 1, np.random.default_rng(0))
    single, single_med, rating = timed(lambda: elo.elo_battles(battles), args.repeat)
    boot, boot_med, replays = timed(lambda: elo.elo_permutations(battles, r, np.random.default_rng(0)), args.repeat)
    print(f"compiled, steady state: elo_battles min {single:.3f} s (median {single_med:.3f}); "
          f"elo_permutations(R={r}) min {boot:.3f} s (median {boot_med:.3f})")

    if not args.skip_reference:
        t0 = time.perf_counter()
        ref_rating = elo._elo_battles_reference(battles)
        ref_single = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref_replays = elo._elo_permutations_reference(battles, r, np.random.default_rng(0))
        ref_boot = time.perf_counter() - t0
        print(f"reference (pure Python / numpy): elo_battles {ref_single:.3f} s, elo_permutations(R={r}) "
              f"{ref_boot:.1f} s")
        print(f"speed-up: elo_battles x{ref_single / single:.0f}, elo_permutations x{ref_boot / boot:.0f} "
              f"(x{ref_boot / cold['elo_permutations']:.0f} counting the compile)")
        print(f"max |compiled - reference|: ratings {np.abs(rating - ref_rating).max():.2e}, "
              f"replays {np.abs(replays - ref_replays).max():.2e}")

    if not Path(args.fastchat_python).exists():
        print(f"FastChat: skipped ({args.fastchat_python} not found; see this module's docstring)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        npz = work / "battles.npz"
        np.savez(npz, a=battles.a, b=battles.b, outcome=battles.outcome, names=np.array(battles.models),
                 winners=WINNERS)
        synthetic = run_fastchat(args.fastchat_python, npz, work)
        demo = run_fastchat(args.fastchat_python, DEMO, work)
    print(f"FastChat compute_elo, one pass: {synthetic['seconds']:.2f} s -> compiled elo_battles is "
          f"x{synthetic['seconds'] / single:.0f} faster; max |ours - FastChat| "
          f"{max_diff(battles.models, rating, synthetic['rating']):.2e}")
    demo_battles = read_battles(DEMO).battles
    demo_rating = elo.elo_battles(demo_battles)
    print(f"real file {DEMO.name} ({demo_battles.a.size:,} anonymous battles, {len(demo_battles.models)} models): "
          f"max |ours - FastChat| {max_diff(demo_battles.models, demo_rating, demo['rating']):.2e}")


if __name__ == "__main__":
    main()
