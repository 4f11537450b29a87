"""A parametric "scripted" LLM judge and a simulator of judged arena battles (pure: numpy only, no Django).

The scripted judge is the known truth the audit is tested against: every bias it can have is a
parameter, and :func:`expected_first_position_rate` gives the value the audit should recover.
The service's scripted backend calls :func:`scripted_verdict` once per judgment, with an rng seeded
from the rendered prompt and replicate; :func:`simulate_judgments` applies the same rule to whole
arrays to write audit input rows.

The decision rule (one presentation: a FIRST and a SECOND shown response)
-------------------------------------------------------------------------
1. With probability ``unparsed_rate``: ``"unparsed"``.
2. Position: with probability ``|position_bias|``: ``"first"`` if ``position_bias > 0``, else ``"second"``.
3. Otherwise merit decides:

   a. if the human verdict is known, with probability ``human_agreement`` the judge copies it
      (``"first"`` / ``"second"`` / ``"tie"``; the caller maps both_bad to tie);
   b. else with probability ``tie_rate``: ``"tie"``;
   c. else a latent comparison: the judge picks the first response iff ``l + noise * e > 0`` with
      ``e`` standard logistic, i.e. ``P(first) = sigmoid(l / noise)``, where::

          l = s[first] - s[second]                                            (strengths)
            + length_bias   * tanh((len_first - len_second) / length_scale)
            + markdown_bias * tanh((md_first - md_second) / markdown_scale)   (0 if a count is unknown)
            + self_preference * ([family_first == judge_family] - [family_second == judge_family])
            + perturbation_effects[name] * (+1 if the first shown was perturbed, -1 if the second)

      ``noise`` is the scale of the latent noise (a temperature): at 1 every term is a logit; at 0 the
      judge is deterministic (a fair coin only when ``l == 0``); large values drown every term.

Every call draws exactly five uniforms per judgment, whatever branch is taken, so the random
stream of a simulation does not depend on the parameters.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import numpy as np

__all__ = [
    "JudgeCase",
    "ScriptedJudgeParams",
    "expected_first_position_rate",
    "merit_tie_share",
    "scripted_verdict",
    "scripted_verdicts",
    "simulate_judgments",
]

Verdict = Literal["first", "second", "tie", "unparsed"]
FIRST, SECOND, TIE, UNPARSED = 0, 1, 2, 3
_NAMES: tuple[Verdict, ...] = ("first", "second", "tie", "unparsed")
_HUMAN_SHOWN = {"first": FIRST, "second": SECOND, "tie": TIE, None: -1}


@dataclass(frozen=True)
class ScriptedJudgeParams:
    """Parameters of the scripted judge (see the module docstring for the exact rule).

    Attributes
    ----------
    position_bias : float
        In [-1, 1]. Probability of choosing the response shown FIRST outright, before merit;
        a negative value prefers the SECOND shown with probability ``|position_bias|``.
    length_bias : float
        Logit added in favour of the first shown per unit of ``tanh((len_first - len_second) / length_scale)``.
    length_scale : float
        Tokens; > 0.
    markdown_bias : float
        Logit per unit of ``tanh((md_first - md_second) / markdown_scale)``; 0 contribution when a count is unknown.
    markdown_scale : float
        Markdown elements; > 0.
    self_preference : float
        Logit added to a response whose family equals the judge's family (nothing when both or neither are).
    noise : float
        >= 0. Scale of the logistic noise on the latent comparison: ``P(first) = sigmoid(l / noise)``.
    tie_rate : float
        In [0, 1]. Probability of a tie when merit decides and the human verdict is not copied.
    human_agreement : float
        In [0, 1]. Probability of copying the known human verdict in place of the merit draw.
    strengths : Mapping[str, float]
        Latent logit strength per model; a missing model has 0.
    perturbation_effects : Mapping[str, float]
        Logit added toward the perturbed response, per perturbation name (missing: 0).
    unparsed_rate : float
        In [0, 1]. Probability of an unparseable answer.
    """

    position_bias: float = 0.0
    length_bias: float = 0.0
    length_scale: float = 200.0
    markdown_bias: float = 0.0
    markdown_scale: float = 5.0
    self_preference: float = 0.0
    noise: float = 1.0
    tie_rate: float = 0.0
    human_agreement: float = 0.0
    strengths: Mapping[str, float] = field(default_factory=dict)
    perturbation_effects: Mapping[str, float] = field(default_factory=dict)
    unparsed_rate: float = 0.0

    def __post_init__(self) -> None:
        if not -1.0 <= self.position_bias <= 1.0:
            raise ValueError(f"position_bias must be in [-1, 1], got {self.position_bias}")
        for name in ("tie_rate", "human_agreement", "unparsed_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.noise < 0.0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")
        if self.length_scale <= 0.0 or self.markdown_scale <= 0.0:
            raise ValueError("length_scale and markdown_scale must be > 0")
        # Read-only copies: a frozen dataclass should not change under its caller's feet.
        object.__setattr__(self, "strengths", MappingProxyType(dict(self.strengths)))
        object.__setattr__(self, "perturbation_effects", MappingProxyType(dict(self.perturbation_effects)))


@dataclass(frozen=True)
class JudgeCase:
    """One presentation to the judge: the FIRST and the SECOND shown response.

    Attributes
    ----------
    first_model, second_model : str
    first_family, second_family : str or None
    first_length, second_length : int
        Tokens.
    first_markdown, second_markdown : int or None
        Markdown elements; None = unknown.
    human : "first", "second", "tie" or None
        The human verdict in shown terms (both_bad given as "tie"); None = unknown.
    perturbation : str or None
        Name of the perturbation applied in this presentation, if any.
    perturbed : "first", "second" or None
        Which shown response the perturbation was applied to.
    judge_family : str or None
    """

    first_model: str
    second_model: str
    first_family: str | None = None
    second_family: str | None = None
    first_length: int = 0
    second_length: int = 0
    first_markdown: int | None = None
    second_markdown: int | None = None
    human: Literal["first", "second", "tie"] | None = None
    perturbation: str | None = None
    perturbed: Literal["first", "second"] | None = None
    judge_family: str | None = None


def scripted_verdicts(
    params: ScriptedJudgeParams,
    *,
    strength_first: np.ndarray,
    strength_second: np.ndarray,
    length_first: np.ndarray,
    length_second: np.ndarray,
    markdown_first: np.ndarray,
    markdown_second: np.ndarray,
    own_first: np.ndarray,
    own_second: np.ndarray,
    perturbation_push: np.ndarray,
    human: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """The decision rule on arrays (one entry per judgment); returns codes 0 first, 1 second, 2 tie, 3 unparsed.

    ``markdown_*`` are floats with NaN for unknown; ``own_*`` booleans (family equals the judge's);
    ``perturbation_push`` the signed logit toward the first shown response (+effect if the first was
    perturbed, -effect if the second, 0 if none); ``human`` codes 0 first / 1 second / 2 tie / -1 unknown.
    """
    n = strength_first.size
    u = rng.random((n, 5))
    logit = strength_first - strength_second
    logit = logit + params.length_bias * np.tanh((length_first - length_second) / params.length_scale)
    md = np.tanh((markdown_first - markdown_second) / params.markdown_scale)
    logit = logit + params.markdown_bias * np.nan_to_num(md, nan=0.0)
    logit = logit + params.self_preference * (own_first.astype(np.float64) - own_second)
    logit = logit + perturbation_push
    if params.noise > 0.0:
        p_first = 1.0 / (1.0 + np.exp(-np.clip(logit / params.noise, -700.0, 700.0)))
    else:
        p_first = np.where(logit > 0, 1.0, np.where(logit < 0, 0.0, 0.5))
    merit = np.where(u[:, 3] < params.tie_rate, TIE, np.where(u[:, 4] < p_first, FIRST, SECOND))
    copy = (human >= 0) & (u[:, 2] < params.human_agreement)
    merit = np.where(copy, human, merit)
    bias_side = FIRST if params.position_bias >= 0 else SECOND
    verdict = np.where(u[:, 1] < abs(params.position_bias), bias_side, merit)
    return np.where(u[:, 0] < params.unparsed_rate, UNPARSED, verdict).astype(np.int8)


def scripted_verdict(params: ScriptedJudgeParams, case: JudgeCase, rng: np.random.Generator) -> Verdict:
    """The scripted judge's verdict on one presentation (the rule of the module docstring).

    Parameters
    ----------
    params : ScriptedJudgeParams
    case : JudgeCase
    rng : numpy.random.Generator
        Exactly five uniforms are drawn from it.

    Returns
    -------
    "first", "second", "tie" or "unparsed"
    """
    s = params.strengths
    fam = case.judge_family
    effect = params.perturbation_effects.get(case.perturbation, 0.0) if case.perturbation is not None else 0.0
    push = effect if case.perturbed == "first" else -effect if case.perturbed == "second" else 0.0

    def md(x: int | None) -> float:
        return math.nan if x is None else float(x)

    code = scripted_verdicts(
        params,
        strength_first=np.array([s.get(case.first_model, 0.0)]),
        strength_second=np.array([s.get(case.second_model, 0.0)]),
        length_first=np.array([float(case.first_length)]),
        length_second=np.array([float(case.second_length)]),
        markdown_first=np.array([md(case.first_markdown)]),
        markdown_second=np.array([md(case.second_markdown)]),
        own_first=np.array([fam is not None and case.first_family == fam]),
        own_second=np.array([fam is not None and case.second_family == fam]),
        perturbation_push=np.array([push]),
        human=np.array([_HUMAN_SHOWN[case.human]]),
        rng=rng,
    )
    return _NAMES[int(code[0])]


def merit_tie_share(params: ScriptedJudgeParams, *, human_known: float = 0.0, human_tie: float = 0.0) -> float:
    """Probability of a tie when merit decides: ``c h r + (1 - c h) t``.

    ``c`` = share of judgments whose human verdict is known (``human_known``), ``h`` = human_agreement,
    ``r`` = share of ties (incl. both_bad) among those human verdicts (``human_tie``), ``t`` = tie_rate.
    """
    copied = human_known * params.human_agreement
    return copied * human_tie + (1.0 - copied) * params.tie_rate


def expected_first_position_rate(params: ScriptedJudgeParams, *, tie_share: float | None = None,
                                 merit_first: float = 0.5) -> float:
    """The first-position rate (share of decisive verdicts that chose the first shown) the audit should find.

    With ``p = position_bias``, ``tau`` the probability of a tie when merit decides (``tie_share``;
    default ``tie_rate``, see :func:`merit_tie_share` when humans are copied) and ``q`` the share of
    decisive merit verdicts that go to the first shown (``merit_first``; 1/2 whenever every battle is
    judged in both orders equally often, since the merit logit of one order is minus the other's)::

        p >= 0:  (p + (1 - p)(1 - tau) q) / (p + (1 - p)(1 - tau))
        p <  0:  ((1 - |p|)(1 - tau) q) / (|p| + (1 - |p|)(1 - tau))

    Unparsed answers do not enter (they are drawn independently of everything else). With no ties and
    ``q = 1/2`` this is ``0.5 + p / 2``.
    """
    tau = params.tie_rate if tie_share is None else tie_share
    p = params.position_bias
    merit = (1.0 - abs(p)) * (1.0 - tau)
    if p >= 0:
        return (p + merit * merit_first) / (p + merit)
    return merit * merit_first / (abs(p) + merit)


# --------------------------------------------------------------------------------------------
# Simulator


def _per_model(values: Mapping[str, float] | None, models: Sequence[str], low: float, high: float) -> np.ndarray:
    """Per-model values: the mapping's (missing models get the mean of the given values), or a
    geometric spread from ``low`` to ``high`` by model index."""
    if values is not None:
        default = float(np.mean(list(values.values()))) if values else (low * high) ** 0.5
        return np.array([float(values.get(m, default)) for m in models])
    if len(models) == 1:
        return np.array([(low * high) ** 0.5])
    return low * (high / low) ** (np.arange(len(models)) / (len(models) - 1))


def simulate_judgments(
    *,
    n_battles: int,
    models: Sequence[str],
    families: Mapping[str, str | None],
    judges: Mapping[str, tuple[str | None, ScriptedJudgeParams]],
    rng: np.random.Generator,
    replicates: int = 1,
    replicate_share: float = 1.0,
    perturbations: Sequence[str] = (),
    perturbation_share: float = 1.0,
    strengths: Mapping[str, float] | None = None,
    length_mean: Mapping[str, float] | float = 300.0,
    length_sd: float = 0.5,
    markdown_mean: Mapping[str, float] | None = None,
    human_share: float = 1.0,
    human_tie_rate: float = 0.1,
    human_both_bad_rate: float = 0.0,
    categories: Sequence[str] = ("writing", "coding", "math", "reasoning"),
    battle_prefix: str = "sim",
) -> list[dict]:
    """Rows in the audit's input format for simulated battles judged by scripted judges.

    Battles pair two distinct models uniformly at random. Each response gets a length
    ``round(lognormal(log(mean_m), length_sd))`` and a markdown count ``Poisson(md_m)``, with per-model
    means (so length and quality can be made correlated, or not, through ``strengths``). A battle has a
    human vote with probability ``human_share``: both_bad with ``human_both_bad_rate``, tie with
    ``human_tie_rate``, else A wins with ``sigmoid(s_A - s_B)`` (Bradley-Terry on ``strengths``).
    Every judge judges every battle in both orders for replicate 0; replicates 1..``replicates``-1 on a
    random ``replicate_share`` of the battles (exactly that many battles, rounded); each perturbation
    name on a random ``perturbation_share`` of the battles, both orders, replicate 0, applied to a
    random side (A or B). Lengths of perturbed rows are those of the plain rows.

    Parameters
    ----------
    n_battles : int
    models : sequence of str
        At least two.
    families : mapping
        Model -> family (missing: null).
    judges : mapping
        Judge name -> (judge family, :class:`ScriptedJudgeParams`).
    rng : numpy.random.Generator
    strengths : mapping, optional
        True (human) strengths; missing models 0. Judges use their own ``params.strengths``.
    length_mean : float or mapping
        A mapping gives each model's typical length; a float ``L`` spreads them from ``L / 2`` to ``2 L``
        by model index.
    markdown_mean : mapping, optional
        Per-model Poisson mean of the markdown count; default a spread from 1 to 8 by model index.
    categories : sequence of str
        Drawn uniformly per battle (empty: category null).

    Returns
    -------
    list of dict
        Ordered by judge, then battle, replicate, perturbation, order.
    """
    if len(models) < 2:
        raise ValueError("need at least two models")
    models = list(models)
    M = len(models)
    a = rng.integers(0, M, size=n_battles)
    b = (a + rng.integers(1, M, size=n_battles)) % M  # distinct from a
    mean_len = (_per_model(length_mean, models, 1.0, 1.0) if isinstance(length_mean, Mapping)
                else _per_model(None, models, length_mean / 2.0, length_mean * 2.0))
    md_mean = _per_model(markdown_mean, models, 1.0, 8.0)
    len_a = np.maximum(np.round(rng.lognormal(np.log(mean_len[a]), length_sd)), 1).astype(np.int64)
    len_b = np.maximum(np.round(rng.lognormal(np.log(mean_len[b]), length_sd)), 1).astype(np.int64)
    md_a, md_b = rng.poisson(md_mean[a]), rng.poisson(md_mean[b])
    true = np.array([float((strengths or {}).get(m, 0.0)) for m in models])
    u = rng.random((n_battles, 3))
    a_wins = u[:, 2] < 1.0 / (1.0 + np.exp(-(true[a] - true[b])))
    human = np.where(u[:, 1] < human_both_bad_rate, 3,
                     np.where(u[:, 1] < human_both_bad_rate + human_tie_rate, 2, np.where(a_wins, 0, 1)))
    human = np.where(u[:, 0] < human_share, human, -1)
    category = (rng.integers(0, len(categories), size=n_battles) if categories
                else np.full(n_battles, -1))
    ids = [f"{battle_prefix}-{i:06d}" for i in range(n_battles)]

    # Judgment units: (battle, order, replicate, perturbation); the same units for every judge.
    units = [(np.arange(n_battles), 0, -1)]
    for r in range(1, replicates):
        units.append((_subset(rng, n_battles, replicate_share), r, -1))
    for k in range(len(perturbations)):
        units.append((_subset(rng, n_battles, perturbation_share), 0, k))
    u_battle = np.concatenate([np.repeat(bt, 2) for bt, _, _ in units])
    u_order_ab = np.concatenate([np.tile([True, False], bt.size) for bt, _, _ in units])
    u_rep = np.concatenate([np.full(2 * bt.size, r) for bt, r, _ in units])
    u_pert = np.concatenate([np.full(2 * bt.size, k) for bt, _, k in units])
    side = rng.integers(0, 2, size=(max(len(perturbations), 1), n_battles))  # 0 = A perturbed, 1 = B
    u_side = np.where(u_pert >= 0, side[np.maximum(u_pert, 0), u_battle], -1)

    fam = [families.get(m) for m in models]
    rows: list[dict] = []
    human_names = ("a", "b", "tie", "both_bad")
    for judge, (judge_family, params) in judges.items():
        verdict_ab = _judge_units(params, judge_family, models, fam, a, b, len_a, len_b, md_a, md_b, human,
                                  u_battle, u_order_ab, u_pert, u_side, perturbations, rng)
        for i in range(u_battle.size):
            bt = int(u_battle[i])
            k = int(u_pert[i])
            rows.append({
                "battle_id": ids[bt], "judge": judge, "judge_family": judge_family,
                "model_a": models[a[bt]], "model_b": models[b[bt]], "family_a": fam[a[bt]], "family_b": fam[b[bt]],
                "order": "ab" if u_order_ab[i] else "ba", "verdict": ("a", "b", "tie", "unparsed")[verdict_ab[i]],
                "len_a": int(len_a[bt]), "len_b": int(len_b[bt]), "md_a": int(md_a[bt]), "md_b": int(md_b[bt]),
                "human": human_names[human[bt]] if human[bt] >= 0 else None, "replicate": int(u_rep[i]),
                "perturbation": perturbations[k] if k >= 0 else None,
                "perturbed": ("a", "b")[u_side[i]] if k >= 0 else None,
                "category": categories[category[bt]] if category[bt] >= 0 else None,
            })
    return rows


def _subset(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    """A sorted random subset of exactly ``round(share * n)`` of ``range(n)``."""
    return np.sort(rng.choice(n, size=round(share * n), replace=False))


def _judge_units(params: ScriptedJudgeParams, judge_family: str | None, models: list[str], fam: list,
                 a: np.ndarray, b: np.ndarray, len_a: np.ndarray, len_b: np.ndarray, md_a: np.ndarray,
                 md_b: np.ndarray, human: np.ndarray, u_battle: np.ndarray, u_order_ab: np.ndarray,
                 u_pert: np.ndarray, u_side: np.ndarray, perturbations: Sequence[str],
                 rng: np.random.Generator) -> np.ndarray:
    """One judge's verdicts on every unit, in A/B terms (0 a, 1 b, 2 tie, 3 unparsed)."""
    s = np.array([float(params.strengths.get(m, 0.0)) for m in models])
    own = np.array([judge_family is not None and f == judge_family for f in fam])
    ma, mb = a[u_battle], b[u_battle]
    ab = u_order_ab
    first, second = np.where(ab, ma, mb), np.where(ab, mb, ma)
    la, lb = len_a[u_battle], len_b[u_battle]
    da, db = md_a[u_battle].astype(np.float64), md_b[u_battle].astype(np.float64)
    h = human[u_battle]
    # Human verdict in shown terms: a -> first when A is shown first; tie and both_bad -> tie.
    h_shown = np.where(h < 0, -1, np.where(h >= 2, TIE, np.where((h == 0) == ab, FIRST, SECOND)))
    effects = np.array([float(params.perturbation_effects.get(p, 0.0)) for p in perturbations] + [0.0])
    effect = effects[np.where(u_pert >= 0, u_pert, len(perturbations))]
    perturbed_first = (u_side == 0) == ab
    push = np.where(u_side < 0, 0.0, np.where(perturbed_first, effect, -effect))
    shown = scripted_verdicts(
        params, strength_first=s[first], strength_second=s[second],
        length_first=np.where(ab, la, lb).astype(np.float64), length_second=np.where(ab, lb, la).astype(np.float64),
        markdown_first=np.where(ab, da, db), markdown_second=np.where(ab, db, da),
        own_first=own[first], own_second=own[second], perturbation_push=push, human=h_shown, rng=rng,
    )
    # Shown terms -> A/B terms: "first" is A when A was shown first.
    return np.where(shown >= TIE, shown, np.where((shown == FIRST) == ab, 0, 1)).astype(np.int8)
