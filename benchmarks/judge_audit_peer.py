"""Peer for ``python -m judges.audit``: AlpacaEval's own leaderboard metrics on the same judgment JSONL.

Runs AlpacaEval's analysis code (the part that turns judge annotations into a leaderboard: ``win_rate``,
``discrete_win_rate`` and the length-controlled win rate) on our audit input, offline, so the two can be
timed on the same file. It does NOT import this project: it runs in its own virtual environment.

Setup (once, outside the project; alpaca-eval pulls in pandas, scikit-learn, patsy, datasets, openai, ...):

    python3.11 -m venv /tmp/alpaca-peer
    /tmp/alpaca-peer/bin/pip install alpaca-eval          # measured with alpaca-eval 0.6.6

Run (from the repository root):

    /tmp/alpaca-peer/bin/python benchmarks/judge_audit_peer.py FILE.jsonl [--lc auto|official|standin|off]
                                                            [--df-gamed PATH] [--timings]

Prints ``{model: {win_rate, lc_win_rate, ...}}`` as JSON on stdout (win rates in percent, as AlpacaEval reports
them); with ``--timings``, a stage breakdown on stderr.

What is called (alpaca_eval 0.6.6, ``alpaca_eval.metrics``), once per (judge, baseline, model) group, exactly as
``alpaca_eval.main.evaluate`` calls its ``fn_metric`` once per model:

* ``get_length_controlled_winrate(annotations, save_weights_dir=None)`` -- AlpacaEval 2.0's default metric. It
  calls ``get_winrate`` itself (win_rate = mean(preference - 1), discrete_win_rate = (wins + draws/2) / n) and
  then fits the ``length_controlled_v1`` GLM (``np.tanh(std_delta_len) + instruction_difficulty +
  not_gamed_baseline``, L1 ``LogisticRegressionCV`` with 5 group folds, regularised towards the baseline's
  verbose/concise variants with lambda 0.2) and predicts the win rate at zero length difference.
  ``save_weights_dir=None`` stops it writing the fitted weights into site-packages.
* ``get_winrate(annotations)`` alone with ``--lc off``.

Mapping of our rows to AlpacaEval's annotation frame:

* ``generator_1`` / ``output_1`` = model_b = the baseline, ``generator_2`` / ``output_2`` = model_a = the
  evaluated model, ``annotator`` = judge. ``preference`` is taken from the row when present (the AlpacaEval file
  carries AlpacaEval's own 1..2 value, 2 = model A better); otherwise from ``verdict``: a -> 2.0, b -> 1.0,
  tie -> 1.5, unparsed -> NaN (AlpacaEval drops NaN preferences from the win rate and from the GLM fit, as it does
  for failed annotations). ``order`` is not needed: AlpacaEval's preference is already in output_1/output_2 terms.
* A general file has no single baseline: every row's model_b is its baseline, so the groups are
  (judge, model_b, model_a) and a model judged against several baselines gets one entry per baseline. Keys are the
  model name when the file has a single (judge, baseline); otherwise ``"<judge> | <model> vs <baseline>"``.
* Every row is one annotation; both presentation orders of a battle, and replicates, are separate annotations of
  the same instruction (as when AlpacaEval is run with several seeds).
* Lengths: the GLM only uses ``output_1.str.len() - output_2.str.len()``, divided by its standard deviation within
  the group. We store whitespace token counts, not texts, so the outputs are synthesised as ``"x" * len``. Scaling
  all lengths by a constant (chars per token) leaves that standardised feature unchanged, so using tokens instead
  of characters only matters through the per-response variation of chars/token.
* Instruction: the GLM looks up a per-instruction ``instruction_difficulty`` (805 values, AlpacaEval's eval set)
  by the annotation frame's index. With battle ids ``ae2-NNN-...`` (our AlpacaEval file) each model's rows are
  sorted by NNN and numbered by position, exactly as AlpacaEval numbers a model's annotations -- so for a model
  with missing outputs (alpaca-7b_verbose, alpaca-7b_concise, text_davinci_001 here) the difficulties after the
  gap are shifted, as in AlpacaEval itself. Other battle ids are numbered in order of first appearance, modulo
  805 (arbitrary but stable: their prompts are not AlpacaEval's; AlpacaEval's lookup would fail on > 805 rows).

Offline and the length-controlled win rate. alpaca-eval does not ship the GLM's precomputed data: at every call
``_get_featurized_data`` runs ``hf_hub_download("tatsu-lab/alpaca_eval", "df_gamed.csv", repo_type="dataset")``,
a table with the instruction difficulties and the annotations of the baseline's verbose/concise variants used to
regularise the fit. This script sets ``HF_HUB_OFFLINE=1`` (it must never touch the network, and without it a missing
file costs ~25 s of retries), so ``--lc``:

* ``official``: use the real ``df_gamed.csv`` -- ``--df-gamed PATH`` to a local copy (fetched once elsewhere, by
  hand); fails without it. The hub download is replaced, never called.
* ``standin``: AlpacaEval's LC code runs unchanged on a stand-in ``df_gamed.csv`` of the same shape (805
  instructions x 2 gamed models), built from the input file: instruction difficulty = logit of the mean preference
  per instruction across all rows (the default of AlpacaEval's own ``notebooks/notebook_helpers.make_data``), gamed
  rows = expected preferences of a length-only logistic (slope -1.6 on tanh(std_delta_len), the published weights
  of the gpt4_1106_preview verbose/concise variants) with the variants' standardised length gaps (-0.73 verbose,
  +1.43 concise: their published outputs against gpt4_1106_preview). The GLM then fits the same number of rows
  as with the official file (assuming it holds 2 x 805 gamed rows, as the code's "two gamed baselines" comment
  says), so the timing is representative; the LC numbers are an approximation (``lc_source`` says which was used).
* ``auto`` (default): ``official`` when the real file is available offline, else ``standin``.
* ``off``: win rates only.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub is imported (by alpaca_eval)

import argparse
import json
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

T_START = time.perf_counter()

import alpaca_eval  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from alpaca_eval.metrics import get_winrate, glm_winrate  # noqa: E402

T_IMPORTED = time.perf_counter()

# scikit-learn >= 1.8 warns (FutureWarning) about LogisticRegressionCV's `penalty`/`l1_ratios` on every GLM fit.
warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")

N_INSTRUCTIONS = 805  # AlpacaEval's eval set; instruction_difficulty is indexed by position in it
VERDICT_TO_PREFERENCE = {"a": 2.0, "b": 1.0, "tie": 1.5}
AE2_BATTLE = re.compile(r"^ae2-(\d+)-")

# Stand-in gamed rows (see the module docstring).
GAMED_VARIANTS = {"gpt4_1106_preview_verbose": -0.73, "gpt4_1106_preview_concise": 1.43}
GAMED_LEN_SLOPE = -1.6
GAMED_DIFFICULTY_SLOPE = 0.75


def read_rows(path: Path) -> pd.DataFrame:
    with path.open() as fh:
        return pd.DataFrame.from_records([json.loads(line) for line in fh if line.strip()])


def instruction_index(battle_ids: pd.Series) -> tuple[np.ndarray, bool]:
    """Each row's instruction in AlpacaEval's 805-instruction set, and whether the ids were ``ae2-NNN-...``."""
    ae2 = battle_ids.str.extract(AE2_BATTLE, expand=False)
    if ae2.notna().all():
        return ae2.astype(int).to_numpy(), True
    codes, _ = pd.factorize(battle_ids)
    return codes % N_INSTRUCTIONS, False


def to_annotations(rows: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """AlpacaEval annotation frame (index = instruction), one row per judgment; and whether it is AlpacaEval's."""
    preference = rows["verdict"].map(VERDICT_TO_PREFERENCE).astype(float)
    if "preference" in rows:
        given = pd.to_numeric(rows["preference"], errors="coerce")
        preference = given.where(given.notna(), preference)
    index, is_ae2 = instruction_index(rows["battle_id"].astype(str))
    frame = pd.DataFrame(
        {
            "instruction": rows["battle_id"].to_numpy(),
            "output_1": ["x" * int(n) for n in rows["len_b"]],
            "output_2": ["x" * int(n) for n in rows["len_a"]],
            "generator_1": rows["model_b"].to_numpy(),
            "generator_2": rows["model_a"].to_numpy(),
            "annotator": rows["judge"].to_numpy(),
            "preference": preference.to_numpy(),
        },
        index=pd.Index(index),
    )
    return frame, is_ae2


def build_standin_df_gamed(annotations: pd.DataFrame, out_dir: Path, seed: int = 0) -> Path:
    """A df_gamed.csv of the official shape, from the input itself (see the docstring)."""
    p01 = (annotations["preference"].astype(float).replace({0.0: 1.5}) - 1).clip(0.01, 0.99)
    mean_p = p01.groupby(level=0).mean().reindex(range(N_INSTRUCTIONS))
    difficulty = np.log(mean_p / (1 - mean_p)).fillna(0.0).to_numpy()
    centred = difficulty - difficulty.mean()
    rng = np.random.default_rng(seed)
    frames = []
    for model, mean_gap in GAMED_VARIANTS.items():
        std_delta_len = rng.normal(mean_gap, 1.0, N_INSTRUCTIONS)
        logit = GAMED_LEN_SLOPE * np.tanh(std_delta_len) + GAMED_DIFFICULTY_SLOPE * centred
        frames.append(
            pd.DataFrame(
                {
                    "model": model,
                    "index": np.arange(N_INSTRUCTIONS),
                    "preference": 1 / (1 + np.exp(-logit)),
                    "std_delta_len": std_delta_len,
                    "instruction_difficulty": difficulty,
                    "not_gamed_baseline": False,
                }
            )
        )
    path = out_dir / "df_gamed.csv"
    pd.concat(frames, ignore_index=True).to_csv(path, index=False)
    return path


def official_df_gamed(df_gamed: str | None) -> str | None:
    """Path of the real df_gamed.csv when a local copy is given (never looked up on the hub)."""
    return df_gamed if df_gamed and Path(df_gamed).is_file() else None


def use_df_gamed(path: str | Path) -> None:
    """Make AlpacaEval's GLM read df_gamed.csv from ``path``; any other hub file is an error, never a download."""

    def hf_hub_download(*args, filename=None, **kwargs):
        if filename == "df_gamed.csv":
            return str(path)
        raise RuntimeError(f"{filename}: this benchmark never downloads from the hub")

    glm_winrate.hf_hub_download = hf_hub_download


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path, help="judgment JSONL (the judges.audit input)")
    parser.add_argument("--lc", choices=["auto", "official", "standin", "off"], default="auto")
    parser.add_argument("--df-gamed", help="local copy of AlpacaEval's df_gamed.csv (Hugging Face dataset file)")
    parser.add_argument("--timings", action="store_true", help="stage timings on stderr")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    rows = read_rows(args.file)
    t_read = time.perf_counter()
    annotations, is_ae2 = to_annotations(rows)
    del rows
    t_convert = time.perf_counter()

    lc_source = None
    if args.lc != "off":
        found = official_df_gamed(args.df_gamed) if args.lc in ("auto", "official") else None
        if found:
            use_df_gamed(found)
            lc_source = "official"
        elif args.lc == "official":
            print(
                "df_gamed.csv is not available offline: pass --df-gamed PATH or put it in the Hugging Face cache",
                file=sys.stderr,
            )
            return 2
        else:
            use_df_gamed(build_standin_df_gamed(annotations, Path(tempfile.mkdtemp(prefix="alpaca-peer-"))))
            lc_source = "standin"
    t_prep = time.perf_counter()

    groups = annotations.groupby(["annotator", "generator_1", "generator_2"], sort=True)
    single = annotations[["annotator", "generator_1"]].drop_duplicates().shape[0] == 1
    summary = {}
    for (judge, baseline, model), frame in groups:
        if is_ae2:  # AlpacaEval numbers a model's annotations by position in its (instruction-ordered) list
            frame = frame.sort_index(kind="stable").reset_index(drop=True)
        if lc_source is None:
            metrics = get_winrate(frame)
        else:
            metrics = glm_winrate.get_length_controlled_winrate(frame, save_weights_dir=None)
        key = model if single else f"{judge} | {model} vs {baseline}"
        lc = metrics.get("length_controlled_winrate")
        summary[key] = {
            "win_rate": float(metrics["win_rate"]),
            "lc_win_rate": None if lc is None else float(lc),
            "discrete_win_rate": float(metrics["discrete_win_rate"]),
            "standard_error": float(metrics["standard_error"]),
            "n_total": int(metrics["n_total"]),
            "judge": judge,
            "baseline": baseline,
            "lc_source": lc_source,
        }
    t_metrics = time.perf_counter()

    json.dump(summary, sys.stdout, indent=1)
    sys.stdout.write("\n")
    if args.timings:
        stages = {
            "alpaca_eval": alpaca_eval.__version__,
            "import_s": T_IMPORTED - T_START,
            "read_s": t_read - t0,
            "convert_s": t_convert - t_read,
            "lc_prep_s": t_prep - t_convert,
            "metrics_s": t_metrics - t_prep,
            "groups": len(summary),
            "annotations": len(annotations),
            "lc_source": lc_source,
        }
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in stages.items()}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
