"""Vote-budget simulation: how many votes a matchmaking policy and a fitting method need to rank a known truth.

Pure (numpy / scipy, the leaderboard's own fitting code and the arena's own matchmaking policies; no
Django). Everything random draws from one ``numpy.random.Generator`` per repeat,
``default_rng([seed, repeat])``; the global RNG is never touched.

Truth
-----
``spread``: the M strengths are evenly spaced on ``[-2, 2]`` (natural log scale).
``gaps``: tiers of 10 consecutive models (the last tier may be shorter), strengths 0.1 apart inside a
tier and 1.0 between the last model of a tier and the first of the next; then centred.
The strengths are assigned to model indices in a random order (so an index says nothing about the
rank, and a fit that leaves models tied can never look right by accident).
Outcomes depend only on the true *order* (see below), so ``spread`` and ``gaps`` draw identical votes
for one seed; the strengths matter once a strength-dependent noise model is added.

Votes
-----
A vote shows the K models a policy chose and returns their full ranking, best first, no ties.
Noise-free (``noise = 0``): the true order. With ``noise = P`` the ranking is drawn from the Mallows
model around the true order with dispersion ``phi = P / (1 - P)``: ``Pr(ranking) ∝ phi^d`` where ``d``
is the number of discordant pairs. Why Mallows: it is *exactly* "every pairwise comparison implied by
the vote flips independently with probability P, conditioned on the result being a ranking"
(a flip set F has weight ``P^|F| (1-P)^(n-|F|) ∝ phi^|F|``), so for K = 2 a battle flips with
probability exactly P, and for any K every pair that is adjacent in the true order of the shown models
flips with marginal probability exactly P (distant pairs flip less: about P^2 two apart). It needs no
strengths, as the issue's definition does not mention any. Drawn by repeated insertion: the i-th best
shown model (0-based) goes to position ``j <= i`` with probability ∝ ``phi^(i - j)``.

Fitting
-------
``elo``: online Elo updated after every vote (the formula of :func:`leaderboard.ratings.elo_battles`,
K-factor ``elo_k``, start 1000), a K-wise vote applied as its K(K-1)/2 implied battles, winner first,
in ranking order (1st v 2nd, 1st v 3rd, ..., 2nd v 3rd, ...).
``bt``: Bradley-Terry (``fit_objective(PairwiseObjective(pairs, "half"), l2=l2)``), a K-wise vote
entering as its K(K-1)/2 implied pairs (which over-counts its information -- the pairs of one ranking
are not independent -- but leaves the point estimate a consistent ranking).
``pl``: Plackett-Luce on the full rankings (``fit_objective(RankingObjective(...), l2=l2)``); for K = 2
it is Bradley-Terry.
``bayes``: the Laplace posterior of Plackett-Luce (``laplace_posterior(RankingObjective, prior_sd)``),
ranked by the posterior mean (not the leaderboard's conservative ``mu - 3 sigma``, which would
penalise the less-voted models in the *ranking* we test).
Noise-free data are separable, so the plain MLE does not exist: ``bt`` and ``pl`` need ``l2 > 0``
(default 0.01, a Normal(0, 10^2) prior). bt / pl / bayes are refitted from scratch at checkpoints only.
A fit that fails (``ConvergenceError``) counts as a wrong ranking at that checkpoint.

Policies that read ratings
--------------------------
A policy with ``uses_ratings`` (``active``) gets, as the live arena's leaderboard snapshot would give
it, ratings and 95 % intervals on the rating scale (``400 / ln 10`` per natural unit, centre 1000):
the Laplace posterior of Plackett-Luce (prior sd ``prior_sd``) of all votes so far, whatever
``method`` ranks the models for the test, refitted every ``policy_refit_every`` votes (default 1;
the live arena refreshes less often, which the policy's Thompson draw is there to absorb). Models
with no vote yet are NaN (absent from a snapshot); before the first refit everything is NaN.

Convergence
-----------
Checkpoints fall every ``checkpoint_every`` votes (default 1 for ``elo``, 10 otherwise) and at
``max_votes``. A checkpoint is *right* when the fitted scores order the models exactly as the truth,
strictly (ties are wrong). ``votes_to_converge`` is the vote count of the first checkpoint from which
every checkpoint up to ``max_votes`` is right (None if the last one is wrong), so its resolution is
``checkpoint_every``. Kendall's tau-b between the fitted scores and the truth is recorded at every
checkpoint (the curve).

New model
---------
With ``new_model``: M incumbents plus one new model whose true rank is uniform among the M + 1. The
arena first runs with the new model unavailable until the incumbents' fitted ranking is right at a
checkpoint (at most ``max_votes`` votes; a repeat that never gets there is reported as
``warmup_failed`` and not converged). Then the new model becomes available and up to ``max_votes``
further votes are run; a checkpoint is right when the new model's fitted score sits strictly between
those of its true neighbours (its rank is right; the incumbents' order is not tested), and
``votes_to_converge`` counts only the votes that showed the new model.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from arena.matchmaking.policies import ContenderStats, Policy, policy_from_name
from leaderboard.ratings import (  # METHODS: the rating core's list, re-exported
    METHODS,
    RATING_CENTER,
    RATING_SCALE,
    ConvergenceError,
    PairCounts,
    PairwiseObjective,
    RankingCounts,
    RankingObjective,
    fit_objective,
    laplace_posterior,
)

from .ksort import KSortPolicy

__all__ = [
    "METHODS",
    "POLICY_NAMES",
    "TRUTHS",
    "RunResult",
    "SimConfig",
    "kendall_tau",
    "make_policy",
    "mallows_ranking",
    "ranking_is_right",
    "simulate",
    "simulate_run",
    "summarize",
    "true_strengths",
    "votes_to_converge",
]

POLICY_NAMES = ("random", "weighted", "active", "ksort")
TRUTHS = ("spread", "gaps")
TIER_SIZE, TIER_STEP, TIER_GAP = 10, 0.1, 1.0


@dataclass(frozen=True)
class SimConfig:
    """One simulator configuration (the CLI options); see the module docstring for the meanings."""

    models: int = 50
    k: int = 4
    policy: str = "random"
    method: str = "pl"
    noise: float = 0.0
    truth: str = "spread"
    seed: int = 0
    max_votes: int = 2000
    repeats: int = 5
    checkpoint_every: int | None = None   # None: 1 for elo, 10 otherwise
    new_model: bool = False
    l2: float = 0.01
    prior_sd: float = 2.0
    elo_k: float = 4.0
    policy_refit_every: int = 1

    def __post_init__(self) -> None:
        checks = [
            (self.models >= 2, f"models must be >= 2, got {self.models}"),
            (2 <= self.k <= self.models, f"k must be in [2, models={self.models}], got {self.k}"),
            (self.policy in POLICY_NAMES, f"policy must be one of {POLICY_NAMES}, got {self.policy!r}"),
            (self.method in METHODS, f"method must be one of {METHODS}, got {self.method!r}"),
            (0.0 <= self.noise < 0.5, f"noise must be in [0, 0.5), got {self.noise}"),
            (self.truth in TRUTHS, f"truth must be one of {TRUTHS}, got {self.truth!r}"),
            (self.max_votes >= 1, f"max_votes must be >= 1, got {self.max_votes}"),
            (self.repeats >= 1, f"repeats must be >= 1, got {self.repeats}"),
            (self.checkpoint_every is None or self.checkpoint_every >= 1,
             f"checkpoint_every must be >= 1, got {self.checkpoint_every}"),
            (self.method not in ("bt", "pl") or self.l2 > 0, "bt and pl need l2 > 0 (noise-free data are separable)"),
            (self.prior_sd > 0, f"prior_sd must be > 0, got {self.prior_sd}"),
            (self.elo_k > 0, f"elo_k must be > 0, got {self.elo_k}"),
            (self.policy_refit_every >= 1, f"policy_refit_every must be >= 1, got {self.policy_refit_every}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def spacing(self) -> int:
        """The checkpoint spacing actually used."""
        if self.checkpoint_every is not None:
            return self.checkpoint_every
        return 1 if self.method == "elo" else 10


# ------------------------------------------------------------------------------------------- truth, votes
def true_strengths(n: int, truth: str) -> np.ndarray:
    """True strengths of ``n`` models, best first (strictly decreasing), mean 0.

    Parameters
    ----------
    n : int
        Number of models.
    truth : {"spread", "gaps"}
        Evenly spaced on [-2, 2], or tiers of 10 (0.1 apart inside, 1.0 between tiers).

    Returns
    -------
    ndarray, shape (n,)
    """
    if truth == "spread":
        return np.linspace(2.0, -2.0, n)
    if truth == "gaps":
        steps = np.where(np.arange(1, n) % TIER_SIZE == 0, TIER_GAP, TIER_STEP)
        theta = -np.r_[0.0, np.cumsum(steps)]
        return theta - theta.mean()
    raise ValueError(f"truth must be one of {TRUTHS}, got {truth!r}")


def mallows_ranking(ordered: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Perturb a true order: a Mallows draw with ``phi = noise / (1 - noise)`` (module docstring).

    Parameters
    ----------
    ordered : ndarray of int, shape (K,)
        Model indices in their true order, best first.
    noise : float
        Flip probability P of every pair adjacent in ``ordered`` (0 returns ``ordered`` unchanged).
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of int64, shape (K,)
        The voted ranking, best first.
    """
    ordered = np.asarray(ordered, dtype=np.int64)
    if noise <= 0:
        return ordered.copy()
    phi = noise / (1.0 - noise)
    out: list[int] = []
    for i, item in enumerate(ordered.tolist()):
        # Position j in 0..i puts the item above i - j better items: weight phi^(i - j).
        weights = phi ** np.arange(i, -1, -1, dtype=np.float64)
        j = int(np.searchsorted(np.cumsum(weights) / weights.sum(), rng.random(), side="right"))
        out.insert(min(j, i), item)
    return np.array(out, dtype=np.int64)


# ------------------------------------------------------------------------------------------- measures
@functools.lru_cache(maxsize=8)
def _upper(m: int) -> np.ndarray:
    """Boolean (m, m) mask of the pairs i < j (cached: the simulator asks for it at every checkpoint)."""
    mask = np.triu(np.ones((m, m), dtype=bool), 1)
    mask.setflags(write=False)
    return mask


def kendall_tau(truth: np.ndarray, fitted: np.ndarray) -> float:
    """Kendall's tau-b between two score vectors (0 when either is constant; NaN scores count as ties)."""
    t = np.asarray(truth, dtype=np.float64)
    f = np.asarray(fitted, dtype=np.float64)
    f = np.where(np.isnan(f), 0.0, f)
    upper = _upper(t.size)
    dt = np.sign(t[:, None] - t[None, :])[upper]
    df = np.sign(f[:, None] - f[None, :])[upper]
    denom = math.sqrt(float(np.count_nonzero(dt)) * float(np.count_nonzero(df)))
    return float((dt * df).sum() / denom) if denom > 0 else 0.0


def ranking_is_right(truth: np.ndarray, fitted: np.ndarray, subset: np.ndarray | None = None) -> bool:
    """Whether ``fitted`` orders the models (or ``subset`` of them) strictly as ``truth`` does."""
    idx = np.arange(truth.size) if subset is None else np.asarray(subset)
    order = idx[np.argsort(-truth[idx], kind="stable")]
    return bool(np.all(np.diff(fitted[order]) < 0))


def _new_model_is_right(truth: np.ndarray, fitted: np.ndarray, new: int) -> bool:
    """Whether the new model's fitted score lies strictly between those of its true neighbours."""
    above = truth > truth[new]
    below = truth < truth[new]
    s = fitted[new]
    return bool(np.isfinite(s) and np.all(fitted[above] > s) and np.all(fitted[below] < s))


def votes_to_converge(votes: Sequence[int], right: Sequence[bool]) -> int | None:
    """First checkpoint's vote count from which every checkpoint is right; None if the last is wrong.

    Parameters
    ----------
    votes : sequence of int
        Vote count at each checkpoint (increasing).
    right : sequence of bool
        Whether the ranking was right there.

    Returns
    -------
    int or None
    """
    if len(votes) != len(right):
        raise ValueError(f"votes ({len(votes)}) and right ({len(right)}) differ in length")
    if not right or not right[-1]:
        return None
    wrong = [i for i, ok in enumerate(right) if not ok]
    return int(votes[wrong[-1] + 1] if wrong else votes[0])


# ------------------------------------------------------------------------------------------- fitters
class _Fitter:
    """Accumulates rankings; ``fit`` returns (scores, sd or None) on the natural scale."""

    def __init__(self, m: int, k: int, capacity: int, config: SimConfig) -> None:
        self.models = tuple(f"m{i}" for i in range(m))
        self.items = np.empty((capacity, k), dtype=np.int64)
        self.n = 0
        self.config = config
        self.elo = np.full(m, RATING_CENTER)

    def add(self, ranking: np.ndarray) -> None:
        self.items[self.n] = ranking
        self.n += 1
        if self.config.method == "elo":
            self._elo_update(ranking)

    def _elo_update(self, ranking: np.ndarray) -> None:
        # The update of leaderboard.ratings.elo.elo_battles (base 10, scale 400), one implied battle at a time.
        r = ranking.tolist()
        rating, k = self.elo, self.config.elo_k
        for i in range(len(r)):
            for j in range(i + 1, len(r)):
                ra, rb = rating[r[i]], rating[r[j]]
                delta = k * (1.0 - 1.0 / (1.0 + 10.0 ** ((rb - ra) / 400.0)))
                rating[r[i]] = ra + delta
                rating[r[j]] = rb - delta

    def fit(self) -> tuple[np.ndarray, np.ndarray | None]:
        method = self.config.method
        if method == "elo":
            return (self.elo - RATING_CENTER) / RATING_SCALE, None
        items = self.items[: self.n]
        k = items.shape[1]
        try:
            if method == "bt":
                i, j = np.triu_indices(k, 1)
                a, b = items[:, i].ravel(), items[:, j].ravel()
                pairs = PairCounts.from_arrays(self.models, a, b, np.zeros(a.size, dtype=np.int64))
                return fit_objective(PairwiseObjective(pairs, "half"), l2=self.config.l2).theta.copy(), None
            rankings = RankingCounts(self.models, items, np.broadcast_to(np.arange(k), items.shape), np.ones(self.n))
            objective = RankingObjective(rankings)
            if method == "pl":
                return fit_objective(objective, l2=self.config.l2).theta.copy(), None
            post = laplace_posterior(objective, self.config.prior_sd)
            sd = np.sqrt(np.clip(np.diag(post.covariance), 0.0, None))
            return post.estimate.theta.copy(), sd
        except ConvergenceError:
            return np.full(len(self.models), np.nan), None

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """Laplace posterior of Plackett-Luce (prior sd ``prior_sd``): mean and sd, natural scale; NaN on failure."""
        items = self.items[: self.n]
        k = items.shape[1]
        rankings = RankingCounts(self.models, items, np.broadcast_to(np.arange(k), items.shape), np.ones(self.n))
        try:
            post = laplace_posterior(RankingObjective(rankings), self.config.prior_sd)
        except ConvergenceError:
            nan = np.full(len(self.models), np.nan)
            return nan, nan
        return post.estimate.theta.copy(), np.sqrt(np.clip(np.diag(post.covariance)[: len(self.models)], 0.0, None))


# ------------------------------------------------------------------------------------------- one run
@dataclass
class RunResult:
    """One repeat: checkpoints, convergence and the final tau (and the policy's own ranking for ksort)."""

    repeat: int
    votes_to_converge: int | None
    kendall_tau_final: float
    checkpoint_votes: list[int] = field(default_factory=list)
    counted_votes: list[int] = field(default_factory=list)   # new-model mode: votes showing the new model
    right: list[bool] = field(default_factory=list)
    tau: list[float] = field(default_factory=list)
    policy_right: list[bool] = field(default_factory=list)
    policy_votes_to_converge: int | None = None
    warmup_votes: int | None = None
    warmup_failed: bool = False
    fit_failures: int = 0


def make_policy(name: str) -> Policy:
    """A fresh policy: ``ksort`` from :mod:`.ksort` (stateful), the others from the arena's registry."""
    if name == "ksort":
        return KSortPolicy()
    return policy_from_name(name)


class _Arena:
    """The state of one simulated arena: truth, policy, fitter, vote counts."""

    def __init__(self, config: SimConfig, theta: np.ndarray, rng: np.random.Generator, capacity: int) -> None:
        self.config, self.theta, self.rng = config, theta, rng
        m = theta.size
        self.policy = make_policy(config.policy)
        self.fitter = _Fitter(m, config.k, capacity, config)
        self.votes = np.zeros(m, dtype=np.int64)
        self.available = np.ones(m, dtype=bool)
        self.rating = np.full(m, np.nan)
        self.ci_low = np.full(m, np.nan)
        self.ci_high = np.full(m, np.nan)
        self.total = 0
        self.fit_failures = 0

    def vote(self) -> np.ndarray:
        stats = ContenderStats(self.votes, np.ones(self.theta.size), self.available,
                               self.rating, self.ci_low, self.ci_high)
        shown = np.asarray(self.policy.choose(stats, self.config.k, self.rng), dtype=np.int64)
        ordered = shown[np.argsort(-self.theta[shown], kind="stable")]
        ranking = mallows_ranking(ordered, self.config.noise, self.rng)
        self.fitter.add(ranking)
        observe = getattr(self.policy, "observe", None)
        if observe is not None:
            observe(ranking)
        self.votes[shown] += 1
        self.total += 1
        if self.policy.uses_ratings and self.total % self.config.policy_refit_every == 0:
            self.refresh_ratings()
        return shown

    def refresh_ratings(self) -> None:
        """The policy's snapshot: Bayesian (Laplace PL) ratings and 95 % intervals; NaN for unvoted models.

        Whatever ``method`` ranks the models for the test, a ratings-using policy is fed the posterior
        (the live arena's snapshot carries ratings *and* intervals; a plain PL fit has no interval and,
        on noise-free data, runs off to infinity). Unvoted models are NaN, as they are absent from a
        live snapshot.
        """
        mean, sd = self.fitter.posterior()
        known = self.votes > 0
        self.rating = np.where(known, RATING_SCALE * mean + RATING_CENTER, np.nan)
        self.ci_low = np.where(known, self.rating - 1.96 * RATING_SCALE * sd, np.nan)
        self.ci_high = np.where(known, self.rating + 1.96 * RATING_SCALE * sd, np.nan)

    def checkpoint(self) -> np.ndarray:
        scores, _ = self.fitter.fit()
        if np.isnan(scores).any():
            self.fit_failures += 1
        return scores

    def policy_scores(self) -> np.ndarray | None:
        scores = getattr(self.policy, "scores", None)
        return None if scores is None else np.asarray(scores())[: self.theta.size]


def _truth(config: SimConfig, rng: np.random.Generator) -> np.ndarray:
    n = config.models + (1 if config.new_model else 0)
    return rng.permutation(true_strengths(n, config.truth))


def simulate_run(config: SimConfig, repeat: int) -> RunResult:
    """Run one repeat (seeded by ``[config.seed, repeat]``) and return its checkpoints and convergence."""
    rng = np.random.default_rng([config.seed, repeat])
    theta = _truth(config, rng)
    spacing = config.spacing
    capacity = config.max_votes * (2 if config.new_model else 1)
    arena = _Arena(config, theta, rng, capacity)
    result = RunResult(repeat, None, float("nan"))
    if not config.new_model:
        for v in range(1, config.max_votes + 1):
            arena.vote()
            if v % spacing == 0 or v == config.max_votes:
                scores = arena.checkpoint()
                result.checkpoint_votes.append(v)
                result.right.append(ranking_is_right(theta, scores))
                result.tau.append(kendall_tau(theta, scores))
                own = arena.policy_scores()
                if own is not None:
                    result.policy_right.append(ranking_is_right(theta, own))
        result.votes_to_converge = votes_to_converge(result.checkpoint_votes, result.right)
        if result.policy_right:
            result.policy_votes_to_converge = votes_to_converge(result.checkpoint_votes, result.policy_right)
    else:
        _run_new_model(config, arena, theta, rng, result)
    result.kendall_tau_final = result.tau[-1] if result.tau else float("nan")
    result.fit_failures = arena.fit_failures
    return result


def _run_new_model(config: SimConfig, arena: _Arena, theta: np.ndarray, rng: np.random.Generator,
                   result: RunResult) -> None:
    spacing = config.spacing
    new = int(rng.integers(theta.size))
    incumbents = np.flatnonzero(np.arange(theta.size) != new)
    arena.available[new] = False
    for v in range(1, config.max_votes + 1):
        arena.vote()
        if (v % spacing == 0 or v == config.max_votes) and ranking_is_right(theta, arena.checkpoint(), incumbents):
            result.warmup_votes = v
            break
    if result.warmup_votes is None:
        result.warmup_failed = True
        return
    arena.available[new] = True
    counted = 0
    for v in range(1, config.max_votes + 1):
        shown = arena.vote()
        counted += int(new in shown)
        if v % spacing == 0 or v == config.max_votes:
            scores = arena.checkpoint()
            result.checkpoint_votes.append(arena.total)
            result.counted_votes.append(counted)
            result.right.append(_new_model_is_right(theta, scores, new))
            result.tau.append(kendall_tau(theta, scores))
            own = arena.policy_scores()
            if own is not None:
                result.policy_right.append(_new_model_is_right(theta, own, new))
    # Reported in votes that showed the new model: its count at the first checkpoint of the final right run.
    result.votes_to_converge = votes_to_converge(result.counted_votes, result.right)
    if result.policy_right:
        result.policy_votes_to_converge = votes_to_converge(result.counted_votes, result.policy_right)


# ------------------------------------------------------------------------------------------- summary
def _quantiles(values: list[int]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p10": None, "p90": None}
    q = np.percentile(np.asarray(values, dtype=np.float64), [50, 10, 90])
    return {"median": float(q[0]), "p10": float(q[1]), "p90": float(q[2])}


def _finite_median(values: list[float]) -> float | None:
    """Median of the finite values (a repeat whose warm-up failed has no tau); None if there are none."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.median(finite)) if finite else None


def information_bound(models: int, k: int) -> float:
    """``log2(M!) / log2(K!)``: votes a perfect K-wise oracle would need to order M models."""
    return math.lgamma(models + 1) / math.lgamma(k + 1)


def summarize(config: SimConfig, runs: list[RunResult]) -> dict[str, object]:
    """The JSON report of a set of repeats (keys documented in :mod:`leaderboard.simulate`)."""
    done = [r.votes_to_converge for r in runs if r.votes_to_converge is not None]
    out: dict[str, object] = {
        "votes_to_converge": _quantiles(done),
        "converged_fraction": len(done) / len(runs),
        "kendall_tau_final": _finite_median([r.kendall_tau_final for r in runs]),
        "unit": "votes showing the new model" if config.new_model else "votes",
        "checkpoint_every": config.spacing,
        "information_bound_votes": None if config.new_model else information_bound(config.models, config.k),
        "config": asdict(config),
        "fit_failures": sum(r.fit_failures for r in runs),
        "repeats": [{"repeat": r.repeat, "votes_to_converge": r.votes_to_converge,
                     "kendall_tau_final": r.kendall_tau_final if math.isfinite(r.kendall_tau_final) else None,
                     **({"warmup_votes": r.warmup_votes, "warmup_failed": r.warmup_failed}
                        if config.new_model else {}),
                     **({"policy_votes_to_converge": r.policy_votes_to_converge} if r.policy_right else {})}
                    for r in runs],
    }
    if config.new_model:
        out["warmup_failed"] = sum(r.warmup_failed for r in runs)
    if any(r.policy_right for r in runs):
        own = [r.policy_votes_to_converge for r in runs if r.policy_votes_to_converge is not None]
        out["policy_ranking"] = {"votes_to_converge": _quantiles(own), "converged_fraction": len(own) / len(runs),
                                 "score": "the policy's own mu - 3 sigma"}
    return out


def simulate(config: SimConfig) -> tuple[dict[str, object], list[RunResult]]:
    """Run ``config.repeats`` repeats; returns the summary and the per-repeat results (for the curve)."""
    runs = [simulate_run(config, r) for r in range(config.repeats)]
    return summarize(config, runs), runs
