"""Confidence intervals: batched multinomial bootstrap and sandwich (robust) covariance; ranks.

Bootstrap. The aggregated data are counts of i.i.d. battles over cells (pair x outcome, or one
ranking). Resampling N battles with replacement is exactly drawing new cell counts from
Multinomial(N, counts / N), so each round is a reweighting of the same small table, and all R
rounds are solved together by :func:`~leaderboard.ratings.newton.newton_batched`, warm-started at
the full-data fit. Pairwise and K-wise data are resampled as separate strata (their totals are
fixed by design).

Sandwich. ``cov = H^-1 J H^-1`` with ``H`` the (penalised) Hessian and ``J`` the sum over battles of
score outer products; it stays valid when the model is misspecified (e.g. ties as 1/2).
"""
from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ._blas import single_threaded_blas
from .estimation import Estimate, centre_theta, round_status
from .newton import newton_batched, take_weights

__all__ = [
    "BootstrapResult",
    "bootstrap_estimate",
    "multinomial_reweight",
    "normal_quantile",
    "percentile_interval",
    "rank_from_ratings",
    "rank_upper_bound",
    "sandwich_covariance",
]

# Elements per bootstrap chunk (rounds x cells); bounds memory for per-battle (style) data.
_CHUNK_ELEMENTS = 4_000_000
# Below this many Poisson draws a second thread costs more than it saves.
_THREAD_MIN_DRAWS = 200_000


def normal_quantile(p: float) -> float:
    """Standard normal quantile (stdlib, so the CLI need not import scipy)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def _poisson(lam: np.ndarray, rounds: int, rng: np.random.Generator, workers: int) -> np.ndarray:
    if workers < 2 or rounds * lam.size < _THREAD_MIN_DRAWS or rounds < 2:
        return rng.poisson(lam, size=(rounds, lam.size))
    # numpy releases the GIL while sampling; independent child streams keep the result a
    # deterministic function of the parent generator whatever the thread timing.
    children = rng.spawn(workers)
    splits = np.array_split(np.arange(rounds), workers)
    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(lambda g, s: g.poisson(lam, size=(s.size, lam.size)), children, splits))
    return np.concatenate(parts, axis=0)


def multinomial_reweight(
    counts: np.ndarray, rounds: int, rng: np.random.Generator, *, workers: int = 2
) -> np.ndarray:
    """Draw ``rounds`` count vectors from Multinomial(N, counts / N), N = round(sum(counts)).

    Exact, and about twice as fast as ``Generator.multinomial`` on wide tables: draw independent
    Poisson(N p) counts (a Poisson vector conditioned on its total S is Multinomial(S, p)), then
    repair the total: add Multinomial(N - S, p) extra draws if S < N, or delete S - N of the S drawn
    battles uniformly at random if S > N (a uniform sub-sample of a multinomial sample is
    multinomial with the same p). The repair touches only O(sqrt(N)) battles per round.

    Parameters
    ----------
    counts : ndarray, shape (n,)
        Observed cell counts (non-integer weights are treated as probabilities, N rounded).
    rounds : int
        Number of resamples R.
    rng : numpy.random.Generator
        Random source.
    workers : int
        Threads for the Poisson draws.

    Returns
    -------
    ndarray of float64, shape (R, n)
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    n_total = round(float(total))
    p = counts / total
    draws = _poisson(n_total * p, rounds, rng, workers)
    cdf = np.cumsum(p)
    cdf[-1] = 1.0
    for r in range(rounds):
        s = int(draws[r].sum())
        if s < n_total:
            extra = np.searchsorted(cdf, rng.random(n_total - s), side="right")
            draws[r] += np.bincount(np.minimum(extra, p.size - 1), minlength=p.size)
        elif s > n_total:
            drop = rng.choice(s, size=s - n_total, replace=False)
            cell = np.searchsorted(np.cumsum(draws[r]), drop, side="right")
            draws[r] -= np.bincount(cell, minlength=p.size)
    return draws.astype(np.float64)


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Bootstrap replicates of an :class:`Estimate`.

    Attributes
    ----------
    samples : ndarray, shape (R, P)
        Refitted parameters; the ``theta`` block is centred per component like the point fit,
        NaN where a model had no battle in the round (or was not comparable with the main group),
        +-inf where its MLE diverged (separated resample).
    n_divergent : int
        Rounds in which some model diverged.
    n_iter : int
        Newton iterations of the slowest chunk.
    """

    samples: np.ndarray
    n_divergent: int
    n_iter: int


def bootstrap_estimate(
    estimate: Estimate, rounds: int, rng: np.random.Generator, *, workers: int = 2
) -> BootstrapResult:
    """Multinomial bootstrap of ``estimate``, all rounds fitted together.

    A resample can lose the few battles that kept a model's MLE finite (e.g. its only loss), so
    that its strength runs off to +-inf. Such rounds are detected exactly with Zermelo's condition
    and replaced by their limit: the model is recorded as +-inf (relative to the main group) and
    the others are fitted without its battles, which is exactly what the pairwise likelihood
    converges to as its strength diverges (for K-wise votes, dropping the votes that involve it is
    an approximation of that limit). Without this, the divergent model would drag the centring of
    its whole component. With a ridge (``l2 > 0``) every MLE is finite and nothing is masked.

    Parameters
    ----------
    estimate : Estimate
        Full-data fit; supplies the data, penalty and warm start.
    rounds : int
        Number of bootstrap rounds R (>= 1).
    rng : numpy.random.Generator
        Random source.
    workers : int
        Threads for the resampling draws.

    Returns
    -------
    BootstrapResult
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    obj = estimate.objective
    m = obj.n_models
    strata = obj.cell_counts()
    chunk = max(1, _CHUNK_ELEMENTS // max(1, sum(c.size for c in strata)))
    samples = np.empty((rounds, obj.n_params))
    status = np.zeros((rounds, m))
    n_iter = 0
    for start in range(0, rounds, chunk):
        stop = min(rounds, start + chunk)
        counts = [multinomial_reweight(c, stop - start, rng, workers=workers) for c in strata]
        weights = obj.weights_from_cells(counts)
        observed = obj.observed(weights) > 0
        if estimate.l2 == 0:
            status[start:stop] = round_status(obj, counts, estimate.components, estimate.roots)
            keep = status[start:stop] == 0
            if not keep.all():
                weights = obj.mask_units(weights, keep)
        status[start:stop] = np.where(observed, status[start:stop], np.nan)
        x, iterations = _newton_rounds(estimate, weights, workers)
        samples[start:stop] = x
        n_iter = max(n_iter, iterations)
    theta = np.where(status == 0, samples[:, :m], status)
    n_divergent = int(np.isinf(status).any(axis=1).sum())
    samples[:, :m] = centre_theta(theta, estimate.components)
    return BootstrapResult(samples, n_divergent, n_iter)


def _newton_rounds(estimate: Estimate, weights: tuple[np.ndarray, ...], workers: int) -> tuple[np.ndarray, int]:
    """Fit every round of ``weights``; the rounds are split over ``workers`` threads when they are many.

    Rounds are independent problems (Newton keeps a set of active rounds, each with its own line search),
    so splitting them changes nothing in the result; numpy releases the GIL in the large elementwise
    operations that dominate, so two threads on two cores take ~0.6x the time of one.
    """
    n_rounds, n_cells = weights[0].shape[0], weights[0].shape[1]
    parts = min(workers, n_rounds) if n_rounds * n_cells >= _THREAD_MIN_DRAWS else 1
    start = _chord_start(estimate, weights)
    if parts <= 1:
        result = newton_batched(estimate.objective, weights, start, estimate.penalty)
        return result.x, result.n_iter
    splits = np.array_split(np.arange(n_rounds), parts)
    start = np.broadcast_to(start, (n_rounds, start.shape[-1]))  # _chord_start may give one point for all

    def fit(rounds: np.ndarray) -> tuple[np.ndarray, int]:
        result = newton_batched(estimate.objective, take_weights(weights, rounds), start[rounds], estimate.penalty)
        return result.x, result.n_iter

    # One single-threaded-BLAS block around the threads: each newton_batched also sets and restores the
    # count, and without this the first thread to finish would restore a multithreaded BLAS under the other.
    with single_threaded_blas(), ThreadPoolExecutor(parts) as pool:
        results = list(pool.map(fit, splits))
    return np.concatenate([x for x, _ in results]), max(n for _, n in results)


def _chord_start(estimate: Estimate, weights: tuple[np.ndarray, ...]) -> np.ndarray:
    """Warm start one step ahead: ``x_hat - H_hat^-1 g_r(x_hat)`` for every round.

    The full-data Hessian stands in for each round's own (they differ by O(1/sqrt(N))), and the
    gradient at the common point ``x_hat`` is linear in the weights, so this step is nearly free
    and leaves Newton one iteration less to do. Objectives without ``gradient_at`` start at x_hat.
    """
    obj = estimate.objective
    gradient_at = getattr(obj, "gradient_at", None)
    if gradient_at is None:
        return estimate.x
    grad = gradient_at(estimate.x, weights) + estimate.x @ estimate.penalty
    start = estimate.x - np.linalg.solve(estimate.hessian, grad.T).T
    # Keep the step only where it stays inside the domain (Rao-Kupper's eta > 0).
    return np.where(obj.feasible(start)[:, None], start, estimate.x)


def sandwich_covariance(estimate: Estimate) -> np.ndarray:
    """Robust covariance ``H^-1 J H^-1`` of all parameters at the estimate, shape (P, P).

    ``theta`` entries describe the centred (per-component mean 0) strengths.
    """
    h_inv = np.linalg.inv(estimate.hessian)
    j = estimate.objective.information(estimate.x)
    cov = h_inv @ j @ h_inv
    return 0.5 * (cov + cov.T)


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed percentile interval per column, ignoring NaN (unobserved) replicates.

    Quantiles use Weibull plotting positions, so the interval has its nominal level for any
    number of replicates R (see the comment in the body).

    Parameters
    ----------
    samples : ndarray, shape (R, K)
    level : float
        Coverage, default 0.95 (2.5 % and 97.5 % quantiles).

    Returns
    -------
    low, high : ndarray, shape (K,)
    """
    alpha = (1.0 - level) / 2.0
    if samples.shape[1] == 0:
        return np.empty(0), np.empty(0)
    # Interpolating between two -inf samples gives NaN (-inf + 0 * nan), so infinities are swapped
    # for huge sentinels and swapped back; any interpolation that touches one stays beyond 1e250.
    big = 1e300
    finite = np.where(np.isposinf(samples), big, np.where(np.isneginf(samples), -big, samples))
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column: model never observed
        # Weibull plotting positions (quantile p at order statistic (R + 1) p): the interval between
        # them holds a fresh bootstrap draw with probability exactly `level`. numpy's default
        # ("linear", R - 1) is narrower: with R = 100 it covers 93.1 % instead of 95 %, which is just
        # what the coverage simulation measured before this choice (benchmarks/RESULTS.md).
        q = np.nanquantile(finite, [alpha, 1.0 - alpha], axis=0, method="weibull")
    q = np.where(q > 1e250, np.inf, np.where(q < -1e250, -np.inf, q))
    return q[0], q[1]


def rank_from_ratings(ratings: np.ndarray) -> np.ndarray:
    """``1 +`` the number of models with a strictly higher rating (ties share a rank)."""
    r = np.asarray(ratings, dtype=np.float64)
    return 1 + (r.size - np.searchsorted(np.sort(r), r, side="right"))


def rank_upper_bound(ci_low: np.ndarray, ci_high: np.ndarray) -> np.ndarray:
    """Rank (UB): ``1 +`` the number of models whose lower bound exceeds this model's upper bound.

    It is the best rank a model can claim given the intervals: only models that are
    significantly better push it down.
    """
    low = np.sort(np.asarray(ci_low, dtype=np.float64))
    high = np.asarray(ci_high, dtype=np.float64)
    return 1 + (low.size - np.searchsorted(low, high, side="right"))
