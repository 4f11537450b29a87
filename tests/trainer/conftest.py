"""Fixtures for the training-loop tests: a tiny model, preference files with a planted rule, job files.

The model is ``tests.support.fixtures.build_tiny_causal_lm`` (a random Llama, hidden size 32, with a BPE
tokenizer trained in-process): nothing is downloaded. The planted rule: a better answer names a "good" object
(``a short poem``, ``the blue sky``, ...), a worse one a "bad" object; in K = 3 rankings a "middling" object sits
between. Prompts and the rest of each answer are random, so the rule is the only signal, and the held-out file
(another seed) tests that it was learned rather than memorised.
"""
from __future__ import annotations

import contextlib
import io
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.support.fixtures import ENDINGS, SUBJECTS, VERBS, build_tiny_causal_lm

GOOD = ["a short poem", "the blue sky", "a prime number"]
MIDDLING = ["two answers", "the question"]
BAD = ["the weather", "the leaderboard", "a long story"]


def planted_records(n: int, *, seed: int, ties: float = 0.0, k: int = 2) -> list[dict[str, Any]]:
    """``n`` records following the rule: pairwise (``k`` = 2, a share ``ties`` of them ties) or K = 3 rankings."""
    rng = random.Random(seed)

    def answer(obj: str) -> str:
        return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {obj}{rng.choice(ENDINGS)}"

    records = []
    for i in range(n):
        prompt = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} what?"
        if k == 3:
            texts = [answer(rng.choice(GOOD)), answer(rng.choice(MIDDLING)), answer(rng.choice(BAD))]
            order = rng.sample(range(3), 3)                  # responses in random order; ranking names the best
            responses = [texts[j] for j in order]
            ranking = [[order.index(0)], [order.index(1)], [order.index(2)]]
            records.append({"prompt": prompt, "responses": responses, "ranking": ranking, "vote_ids": [i]})
        elif rng.random() < ties:
            pool = GOOD if rng.random() < 0.5 else BAD
            records.append({"prompt": prompt, "chosen": answer(rng.choice(pool)), "rejected": answer(rng.choice(pool)),
                            "p": 0.5, "tie": True, "vote_ids": [i]})
        else:
            records.append({"prompt": prompt, "chosen": answer(rng.choice(GOOD)), "rejected": answer(rng.choice(BAD)),
                            "p": 1.0, "tie": False, "vote_ids": [i]})
    return records


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One intra-op thread: on a small shared machine more threads only wait on each other (tens of times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama + tokenizer directory (no chat template: the plain ``User:`` format)."""
    return build_tiny_causal_lm(tmp_path_factory.mktemp("trainer-tiny-llama"), seed=0)


@pytest.fixture(scope="session")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Train and held-out files for each shape: ``pairs``, ``ties`` (20 % ties) and ``rank3`` (K = 3)."""
    root = tmp_path_factory.mktemp("planted")
    files = {}
    for name, kwargs in {"pairs": {}, "ties": {"ties": 0.2}, "rank3": {"k": 3}}.items():
        files[f"{name}_train"] = write_jsonl(root / f"{name}_train.jsonl", planted_records(256, seed=1, **kwargs))
        files[f"{name}_eval"] = write_jsonl(root / f"{name}_eval.jsonl", planted_records(64, seed=2, **kwargs))
    return files


@dataclass
class Run:
    code: int
    stderr: str
    output_dir: Path

    def metrics(self) -> list[dict[str, Any]]:
        path = self.output_dir / "metrics.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []

    def final_eval(self) -> dict[str, Any]:
        finals = [m for m in self.metrics() if m.get("final")]
        assert len(finals) == 1, self.metrics()
        return finals[0]

    def manifest(self) -> dict[str, Any]:
        return json.loads((self.output_dir / "manifest.json").read_text())


def base_job(tiny_lm: Path, train: Path, output_dir: Path, **overrides: Any) -> dict[str, Any]:
    """A small job that trains the tiny model well in a few seconds on one CPU core."""
    job = {"base_model": str(tiny_lm), "train_file": str(train), "output_dir": str(output_dir), "loss": "dpo",
           "beta": 0.1, "epochs": 1, "batch_size": 16, "learning_rate": 3e-3, "max_length": 64, "seed": 0,
           "device": "cpu", "log_every": 2, "save_every": None}
    job.update(overrides)
    return job


@pytest.fixture
def run_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Run]:
    """Write ``job`` next to its output and run ``main`` on it in this process, as the CLI would.

    The process-wide RNGs the trainer seeds are restored afterwards, so no other test sees them changed.
    """
    from trainer.train import main

    counter = iter(range(1000))

    def run(job: dict[str, Any], *, env: dict[str, str] | None = None, name: str | None = None) -> Run:
        path = tmp_path / f"{name or f'job{next(counter)}'}.json"
        path.write_text(json.dumps(job))
        with monkeypatch.context() as patch:
            for key, value in (env or {}).items():
                patch.setenv(key, value)
            stderr = io.StringIO()
            with _rng_kept(), contextlib.redirect_stderr(stderr):
                code = main([str(path)])
        return Run(code=code, stderr=stderr.getvalue(), output_dir=Path(job.get("output_dir", tmp_path / "out")))

    return run


@contextlib.contextmanager
def _rng_kept() -> Iterator[None]:
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
