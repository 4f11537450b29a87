"""The ``scripted`` judge backend: a parametric fake judge with planted biases (see :mod:`judges.simulation`).

Its config is the fields of :class:`judges.simulation.ScriptedJudgeParams` (all optional), for example::

    {"position_bias": 0.2, "length_bias": 1.0, "self_preference": 0.8, "human_agreement": 0.5,
     "strengths": {"plain-7b": 0.5}, "perturbation_effects": {"authority": 1.5}}

Two answers are decided by :func:`judges.simulation.scripted_verdict`, the rule the audit's own statistical
tests are checked against. More answers are ranked by a Plackett-Luce draw on the same utilities (strength,
length, markdown, own family, perturbation, plus the position bias as a bonus for the first shown), or copied
from the human ranking with probability ``human_agreement``.

Every answer is deterministic given the call: the random draws are seeded from the call's cache key (which
covers the rendered prompt and the replicate), so a judgment made again is the same judgment.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from judges.prompts import LABELS
from judges.simulation import JudgeCase, ScriptedJudgeParams, scripted_verdict

from . import JudgeCompletion, JudgeHints, JudgeParams, Messages, ShownAnswer


class ScriptedConfigError(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


_MAPPINGS = {"strengths", "perturbation_effects"}


def scripted_params(config: Any) -> ScriptedParams:
    """Validated parameters from a JSON config; unknown keys and non-numbers are refused by name."""
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise ScriptedConfigError("", "must be a JSON object")
    known = {f.name for f in dataclasses.fields(ScriptedJudgeParams)}
    values: dict[str, Any] = {}
    for key, value in config.items():
        if key not in known:
            raise ScriptedConfigError(key, f"unknown key (allowed: {', '.join(sorted(known))})")
        if key in _MAPPINGS:
            if not isinstance(value, Mapping) or not all(isinstance(k, str) and _finite(v) for k, v in value.items()):
                raise ScriptedConfigError(key, "must map names to numbers")
            values[key] = {k: float(v) for k, v in value.items()}
        elif not _finite(value):
            raise ScriptedConfigError(key, "must be a finite number")
        else:
            values[key] = float(value)
    try:
        return ScriptedParams(ScriptedJudgeParams(**values))
    except (TypeError, ValueError) as exc:
        raise ScriptedConfigError("", str(exc)) from None


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclasses.dataclass(frozen=True)
class ScriptedParams:
    params: ScriptedJudgeParams

    def as_config(self) -> dict[str, Any]:
        """The non-default settings, as JSON (what the judge row stores)."""
        defaults = ScriptedJudgeParams()
        out: dict[str, Any] = {}
        for f in dataclasses.fields(ScriptedJudgeParams):
            value = getattr(self.params, f.name)
            if value != getattr(defaults, f.name):
                out[f.name] = dict(value) if f.name in _MAPPINGS else value
        return out


def _rng(hints: JudgeHints) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(hints.key.encode()).digest()[:8], "big"))


class ScriptedJudge:
    def __init__(self, config: dict[str, Any]) -> None:
        self.params = scripted_params(config).params

    def complete(self, messages: Messages, params: JudgeParams, hints: JudgeHints) -> JudgeCompletion:
        started = time.monotonic()
        rng = _rng(hints)
        text = self._pairwise(hints, rng) if len(hints.shown) == 2 else self._ranking(hints, rng)
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        return JudgeCompletion(text=text, prompt_tokens=prompt_tokens, completion_tokens=len(text.split()),
                               latency_ms=round((time.monotonic() - started) * 1000))

    def _pairwise(self, hints: JudgeHints, rng: np.random.Generator) -> str:
        first, second = hints.shown
        verdict = scripted_verdict(self.params, _case(hints, first, second), rng)
        tag = {"first": "[[A]]", "second": "[[B]]", "tie": "[[C]]"}.get(verdict)
        if tag is None:
            return "I cannot decide between these answers."
        return f"Scripted judge: compared the two answers. {tag}"

    def _ranking(self, hints: JudgeHints, rng: np.random.Generator) -> str:
        p = self.params
        k = len(hints.shown)
        if rng.random() < p.unparsed_rate:
            return "I cannot rank these answers."
        if hints.human_ranking is not None and rng.random() < p.human_agreement:
            groups = hints.human_ranking
        else:
            utility = np.array([_utility(p, answer, hints, shown_first=i == 0) for i, answer in enumerate(hints.shown)])
            order = np.argsort(-(utility + rng.gumbel(size=k) * p.noise))   # a Plackett-Luce draw
            groups = [[int(i)] for i in order]
        ranking = " > ".join(" = ".join(LABELS[i] for i in group) for group in groups)
        return f"Scripted judge: ranked the answers. [[RANKING: {ranking}]]"


def _utility(p: ScriptedJudgeParams, answer: ShownAnswer, hints: JudgeHints, *, shown_first: bool) -> float:
    mean_tokens = sum(a.tokens for a in hints.shown) / len(hints.shown)
    mean_md = sum(a.markdown for a in hints.shown) / len(hints.shown)
    u = p.strengths.get(answer.model, 0.0)
    u += p.length_bias * math.tanh((answer.tokens - mean_tokens) / p.length_scale)
    u += p.markdown_bias * math.tanh((answer.markdown - mean_md) / p.markdown_scale)
    if hints.judge_family and answer.family == hints.judge_family:
        u += p.self_preference
    if answer.perturbed:
        u += p.perturbation_effects.get(hints.perturbation, 0.0)
    if shown_first:   # a K-wise stand-in for the pairwise rule's "pick the first shown outright"
        u += 4.0 * p.position_bias
    return u


def _case(hints: JudgeHints, first: ShownAnswer, second: ShownAnswer) -> JudgeCase:
    human = None
    if hints.human_ranking is not None:
        top = list(hints.human_ranking[0])
        human = "tie" if len(top) == 2 else ("first" if top == [0] else "second")
    perturbed = None
    if first.perturbed:
        perturbed = "first"
    elif second.perturbed:
        perturbed = "second"
    return JudgeCase(
        first_model=first.model, first_family=first.family or None, first_length=first.tokens,
        first_markdown=first.markdown, second_model=second.model, second_family=second.family or None,
        second_length=second.tokens, second_markdown=second.markdown, human=human,
        perturbation=hints.perturbation or None, perturbed=perturbed, judge_family=hints.judge_family or None,
    )
