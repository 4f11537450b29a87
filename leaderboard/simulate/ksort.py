"""K-Sort Arena's matchmaking, reproduced as the in-house baseline of the vote-budget simulator.

K-Sort Arena (Li et al., "K-Sort Arena: Efficient and Reliable Benchmarking for Generative Models via
K-wise Human Preferences", CVPR 2025) models each contender's capability as a normal distribution
``N(mu, sigma^2)``, updates it in closed form after every K-wise free-for-all vote (TrueSkill-style),
ranks by the conservative score ``mu - 3 sigma``, and matches contenders by exploration-exploitation:
the least-compared model is the pivot and its opponents are chosen by an upper confidence bound over
the score gap and the pair counts.

What the paper leaves open, and what :class:`KSortPolicy` does
-------------------------------------------------------------
* **Update rule.** The paper says "Bayesian updating" of a normal capability with a TrueSkill-style
  rule but no exact message schedule. We use the closed-form Thurstone-Mosteller *full-pair* update of
  Weng & Lin (JMLR 2011, Algorithm 1 with the probit link), which is the standard analytic
  approximation of TrueSkill's factor graph for a free-for-all: every pair of the K shown models is a
  Gaussian comparison, the mean shifts and variance shrink factors of all pairs are computed from the
  *pre-vote* state and applied together. It is hand-written (about 20 lines) instead of the
  ``trueskill`` package, so the project gains no dependency; it is not bit-identical to TrueSkill's
  iterated message passing, but has the same fixed points in the two-player case.
* **Constants.** TrueSkill's defaults: ``mu0 = 25``, ``sigma0 = 25/3``, performance noise
  ``beta = sigma0 / 2``, dynamics ``tau = sigma0 / 100`` added to every shown model's variance before
  its update, variance floor factor ``kappa = 1e-4``.
* **Pivot.** "Least-compared" is read as the fewest votes taken part in (``ContenderStats.votes``),
  ties broken uniformly at random with the caller's ``rng``.
* **UCB.** The paper gives the idea (close scores exploit, rarely-seen pairs explore) but not a
  formula we could check; we use, for every available ``j`` other than the pivot ``p``::

      ucb_j = -|s_p - s_j| + c * sigma0 * sqrt( ln(1 + T) / (1 + n_pj) )

  with ``s = mu - 3 sigma`` (the conservative score, as the paper ranks by it), ``T`` the votes
  observed so far, ``n_pj`` how many votes showed ``p`` and ``j`` together, and ``c = 1``. The
  ``sigma0`` factor puts the exploration bonus on the score's scale. The K - 1 opponents are the
  K - 1 highest ``ucb`` (chosen jointly, not re-scored after each pick), ties broken at random.
* **Slot order.** The chosen K are shuffled (the ``Policy`` contract: a slot says nothing about who
  sits in it).

The policy is stateful: the simulator calls :meth:`KSortPolicy.observe` with every vote's ranking.
It grows its state when ``ContenderStats`` describes more contenders than it has seen (a new model
starts at ``mu0, sigma0``).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import log_ndtr

from arena.matchmaking.policies import ContenderStats, NotEnoughContenders

__all__ = ["KSortPolicy", "weng_lin_update"]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _v_w(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Truncated-Gaussian corrections for a win margin ``t``: ``v = phi/Phi``, ``w = v (v + t)``."""
    v = np.exp(-0.5 * t * t - _LOG_SQRT_2PI - log_ndtr(t))   # log form: stable for very negative t
    return v, v * (v + t)


def weng_lin_update(
    mu: np.ndarray, sigma2: np.ndarray, *, beta: float, kappa: float = 1e-4
) -> tuple[np.ndarray, np.ndarray]:
    """One free-for-all update (Weng & Lin 2011, Thurstone-Mosteller full pair).

    Parameters
    ----------
    mu, sigma2 : ndarray, shape (K,)
        Means and variances of the K players, **in finishing order** (index 0 won).
    beta : float
        Performance noise sd.
    kappa : float
        Lower bound of the variance shrink factor.

    Returns
    -------
    mu, sigma2 : ndarray, shape (K,)
        Posterior means and variances, same order.
    """
    k = mu.size
    c = np.sqrt(sigma2[:, None] + sigma2[None, :] + 2.0 * beta * beta)     # (K, K)
    sign = np.where(np.arange(k)[:, None] < np.arange(k)[None, :], 1.0, -1.0)  # +1: row beat column
    t = sign * (mu[:, None] - mu[None, :]) / c
    v, w = _v_w(t)
    off = ~np.eye(k, dtype=bool)
    omega = np.where(off, sign * sigma2[:, None] / c * v, 0.0).sum(axis=1)
    gamma = np.sqrt(sigma2)[:, None] / c
    delta = np.where(off, gamma * sigma2[:, None] / (c * c) * w, 0.0).sum(axis=1)
    return mu + omega, sigma2 * np.maximum(1.0 - delta, kappa)


class KSortPolicy:
    """K-Sort Arena's matchmaking with its own TrueSkill-style state (see the module docstring).

    Parameters
    ----------
    mu0, sigma0 : float
        Prior mean and sd of a new contender.
    beta, tau : float, optional
        Performance noise and dynamics sd; default ``sigma0 / 2`` and ``sigma0 / 100``.
    c : float
        Weight of the exploration bonus (in units of ``sigma0``).
    """

    name = "ksort"
    uses_ratings = False  # it keeps its own mu / sigma and never reads the leaderboard's

    def __init__(self, *, mu0: float = 25.0, sigma0: float = 25.0 / 3.0, beta: float | None = None,
                 tau: float | None = None, c: float = 1.0) -> None:
        if not (sigma0 > 0 and c >= 0):
            raise ValueError(f"need sigma0 > 0 and c >= 0, got sigma0={sigma0!r}, c={c!r}")
        self.mu0, self.sigma0, self.c = float(mu0), float(sigma0), float(c)
        self.beta = self.sigma0 / 2.0 if beta is None else float(beta)
        self.tau = self.sigma0 / 100.0 if tau is None else float(tau)
        self.mu = np.zeros(0)
        self.sigma2 = np.zeros(0)
        self.pair_counts = np.zeros((0, 0), dtype=np.int64)
        self.n_votes = 0

    def _ensure(self, m: int) -> None:
        old = self.mu.size
        if m <= old:
            return
        self.mu = np.r_[self.mu, np.full(m - old, self.mu0)]
        self.sigma2 = np.r_[self.sigma2, np.full(m - old, self.sigma0**2)]
        counts = np.zeros((m, m), dtype=np.int64)
        counts[:old, :old] = self.pair_counts
        self.pair_counts = counts

    def scores(self) -> np.ndarray:
        """Conservative scores ``mu - 3 sigma`` (the paper's leaderboard), shape (M,)."""
        return self.mu - 3.0 * np.sqrt(self.sigma2)

    def observe(self, ranking: Sequence[int]) -> None:
        """Update the state with one vote: ``ranking`` lists the shown contenders, best first (no ties)."""
        r = np.asarray(ranking, dtype=np.int64)
        self._ensure(int(r.max()) + 1)
        sigma2 = self.sigma2[r] + self.tau**2
        self.mu[r], self.sigma2[r] = weng_lin_update(self.mu[r], sigma2, beta=self.beta)
        self.pair_counts[np.ix_(r, r)] += 1
        self.pair_counts[r, r] -= 1  # the diagonal is not a pair
        self.n_votes += 1

    def ucb(self, pivot: int) -> np.ndarray:
        """The opponent scores of every contender against ``pivot``, shape (M,) (``-inf`` at the pivot)."""
        s = self.scores()
        bonus = self.c * self.sigma0 * np.sqrt(math.log1p(self.n_votes) / (1.0 + self.pair_counts[pivot]))
        out = -np.abs(s[pivot] - s) + bonus
        out[pivot] = -np.inf
        return out

    def choose(self, stats: ContenderStats, k: int, rng: np.random.Generator) -> np.ndarray:
        """See ``Policy.choose``: the least-voted available contender plus its K - 1 best UCB opponents."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        m = stats.size
        self._ensure(m)
        candidates = np.flatnonzero(stats.available)
        if candidates.size < k:
            raise NotEnoughContenders(int(candidates.size), k)
        votes = stats.votes[candidates]
        least = candidates[votes == votes.min()]
        pivot = int(rng.choice(least))
        ucb = self.ucb(pivot)[:m]
        others = candidates[candidates != pivot]
        order = np.lexsort((rng.random(others.size), -ucb[others]))  # highest ucb first, random ties
        chosen = np.r_[pivot, others[order[: k - 1]]].astype(np.int64)
        return rng.permutation(chosen)
