"""``torchrun --nproc_per_node 2 -m trainer.train JOB.json`` on the CPU (gloo) against one process.

Two processes with ``batch_size`` 4 see the same global batches of 8 as one process with ``batch_size`` 8 (the
batch plan depends on the seed and the global batch only), and each scales its loss so that DDP's averaged
gradient is the gradient of the mean over the global batch. So the final weights agree with the single
process's up to float rounding: the two processes pad their rows to their own longest row and add their
gradients in another order, which changes the last bits (about 1e-7 relative per step), and AdamW carries
those differences along. The test asserts agreement to 1e-4 after 10 steps, far below what one step moves.

The file has 8 x 9 + 1 records, so the last global batch of each epoch has a single record and the second
process has none of it (it runs a zero-weighted forward to keep DDP's collectives in step); ``grad_accum`` 2
exercises ``no_sync``; ``rao_kupper`` with ``nu: "fit"`` exercises the averaging of the one parameter outside
the DDP model.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from tests.trainer.conftest import base_job, planted_records, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = ROOT / ".venv" / "bin" / "torchrun"


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not in .venv/bin")
def test_two_processes_train_like_one_with_the_same_global_batch(run_job, tiny_lm, tmp_path):
    from safetensors.torch import load_file

    train = write_jsonl(tmp_path / "train.jsonl", planted_records(73, seed=5, ties=0.2))
    held_out = write_jsonl(tmp_path / "eval.jsonl", planted_records(24, seed=6, ties=0.2))
    common = {"loss": "rao_kupper", "nu": "fit", "grad_accum": 2, "epochs": 2, "log_every": 1, "save_every": 5,
              "eval_file": str(held_out), "learning_rate": 2e-3}

    single = run_job(base_job(tiny_lm, train, tmp_path / "single", batch_size=8, **common))
    assert single.code == 0, single.stderr

    job = base_job(tiny_lm, train, tmp_path / "ddp", batch_size=4, **common)
    path = tmp_path / "ddp.json"
    path.write_text(json.dumps(job))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "trainer.train", str(path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    out = tmp_path / "ddp"

    # Rank 0 alone writes: one metrics line per step, in order, then the final eval; one "training" log line.
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(m["split"], m["step"]) for m in lines] == [("train", s) for s in range(1, 11)] + [("eval", 10)]
    assert done.stderr.count("trainer: training:") == 1
    assert "2 process(es)" in done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["steps"] == 10

    # The same training as one process: metrics summed over both, weights equal up to rounding.
    for ours, theirs in zip(lines, single.metrics(), strict=True):
        assert ours["examples"] == theirs["examples"]
        assert ours["loss"] == pytest.approx(theirs["loss"], abs=1e-4)
        assert ours["reward_accuracy"] == pytest.approx(theirs["reward_accuracy"], abs=1e-9)
    assert lines[-1]["nu"] == pytest.approx(single.final_eval()["nu"], abs=1e-4)
    ddp_weights = load_file(out / "final" / "model.safetensors")
    single_weights = load_file(single.output_dir / "final" / "model.safetensors")
    base_weights = load_file(tiny_lm / "model.safetensors")
    moved = max(float((single_weights[k] - base_weights[k]).abs().max()) for k in single_weights)
    assert moved > 1e-2   # training did move the weights, so agreement below means something
    for key in single_weights:
        torch.testing.assert_close(ddp_weights[key], single_weights[key], atol=1e-4, rtol=0)
    state = torch.load(out / "checkpoints" / "step_5" / "state.pt", weights_only=False)
    assert state["world_size"] == 2 and len(state["rng"]) == 2
