"""Matchmaking policies: which K contenders a battle shows, and in which slot order.

Pure (NumPy only, no Django) so that the same policies run in the arena, where a selector builds
``ContenderStats`` from the database, and in the vote-budget simulator, which builds it from arrays.
A policy sees indices, never names or ids: index ``i`` means the ``i``-th entry of every array in the
stats, and the caller maps indices back to its contenders.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = [
    "POLICIES",
    "ActivePolicy",
    "ContenderStats",
    "NotEnoughContenders",
    "Policy",
    "RandomPolicy",
    "WeightedPolicy",
    "policy_from_name",
]


class NotEnoughContenders(Exception):
    """Fewer than ``k`` contenders can be chosen (the rest are unavailable or weigh nothing)."""

    def __init__(self, available: int, k: int) -> None:
        super().__init__(f"{available} contender(s) available, {k} needed")
        self.available = available
        self.k = k


def _frozen_array(values: object, dtype: type, name: str) -> np.ndarray:
    array = np.array(values, dtype=dtype)  # a copy: freezing it must not freeze the caller's array
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    array.setflags(write=False)
    return array


@dataclass(frozen=True)
class ContenderStats:
    """What a policy knows of the M contenders it may choose from; every array has length M.

    Parameters
    ----------
    votes : array_like of int, shape (M,)
        Voted battles each contender has appeared in so far (non-negative).
    weight : array_like of float, shape (M,)
        Sampling weight (finite, non-negative); 0 means never chosen by the weighted policy.
    available : array_like of bool, shape (M,)
        Whether the contender may be chosen now: active, its response source healthy, and able to
        answer this prompt. No policy ever returns an unavailable contender.
    rating, ci_low, ci_high : array_like of float, shape (M,), optional
        The current leaderboard's rating and interval of each contender; NaN where unknown (not in the
        snapshot, or no snapshot). Left out, they are all NaN.

    Raises
    ------
    ValueError
        If the arrays differ in length, are not one-dimensional, or hold negative votes or weights.

    Notes
    -----
    The arrays are copied and made read-only: a policy cannot change the stats it was given. Use
    ``dataclasses.replace`` to derive new stats (the simulator does after each vote).
    """

    votes: np.ndarray
    weight: np.ndarray
    available: np.ndarray
    rating: np.ndarray | None = None
    ci_low: np.ndarray | None = None
    ci_high: np.ndarray | None = None

    def __post_init__(self) -> None:
        m = len(np.atleast_1d(self.votes))
        set_ = object.__setattr__  # frozen: the normalised arrays replace the given ones once, here
        set_(self, "votes", _frozen_array(self.votes, np.int64, "votes"))
        set_(self, "weight", _frozen_array(self.weight, np.float64, "weight"))
        set_(self, "available", _frozen_array(self.available, np.bool_, "available"))
        for name in ("rating", "ci_low", "ci_high"):
            value = getattr(self, name)
            set_(self, name, _frozen_array(np.full(m, np.nan) if value is None else value, np.float64, name))
        lengths = {name: len(getattr(self, name))
                   for name in ("votes", "weight", "available", "rating", "ci_low", "ci_high")}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"ContenderStats arrays must have one length, got {lengths}")
        if (self.votes < 0).any():
            raise ValueError("votes must be non-negative")
        if not np.isfinite(self.weight).all() or (self.weight < 0).any():
            raise ValueError("weight must be finite and non-negative")

    @property
    def size(self) -> int:
        """M, the number of contenders described."""
        return len(self.votes)


class Policy(Protocol):
    """Chooses the contenders of one battle.

    Attributes
    ----------
    name : str
        The registry name (``POLICIES``), as the settings and the simulator's ``--policy`` spell it.
    uses_ratings : bool
        Whether ``choose`` reads ``rating`` / ``ci_low`` / ``ci_high``: only then does the arena read
        the current leaderboard snapshot to fill them (an uncertainty-driven policy will set it).
    """

    name: str
    uses_ratings: bool

    def choose(self, stats: ContenderStats, k: int, rng: np.random.Generator) -> np.ndarray:
        """Choose ``k`` distinct available contenders.

        Parameters
        ----------
        stats : ContenderStats
            The M contenders to choose from.
        k : int
            How many to choose (at least 1).
        rng : numpy.random.Generator
            The only source of randomness.

        Returns
        -------
        numpy.ndarray of int64, shape (k,)
            Indices into ``stats``, distinct, in slot order: element 0 is shown as A, element 1 as B, and
            so on. The order is uniformly random whatever the contenders' weights or ratings, so that a
            position says nothing about which model sits in it.

        Raises
        ------
        NotEnoughContenders
            If fewer than ``k`` contenders can be chosen.
        ValueError
            If ``k`` is less than 1.
        """
        ...


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


@dataclass(frozen=True)
class RandomPolicy:
    """Uniform over the available contenders: every k-subset and every slot order equally likely."""

    name = "random"
    uses_ratings = False

    def choose(self, stats: ContenderStats, k: int, rng: np.random.Generator) -> np.ndarray:
        """See ``Policy.choose``; weights and vote counts are ignored."""
        _check_k(k)
        candidates = np.flatnonzero(stats.available)
        if len(candidates) < k:
            raise NotEnoughContenders(len(candidates), k)
        # The head of a uniform permutation is a uniform ordered sample: already in random slot order.
        return rng.permutation(candidates)[:k].astype(np.int64)


@dataclass(frozen=True)
class WeightedPolicy:
    """Probability proportional to the sampling weight, boosted for new contenders.

    Contender ``i`` is drawn with probability proportional to
    ``weight[i] * (new_boost if votes[i] < new_until_votes else 1)`` among the available contenders
    not drawn yet (successive draws without replacement). Contenders of weight 0 are never chosen.
    The first draw follows these proportions exactly; for ``k > 1`` the chance of appearing in a
    battle is, as with any draw without replacement, flatter than the weights (a heavy contender
    cannot appear twice). The drawn contenders are then shuffled, so their slot order does not depend
    on the weights (successive draws tend to pick the heavy ones first).

    Parameters
    ----------
    new_boost : float
        Factor on the weight of a contender with fewer than ``new_until_votes`` votes (positive,
        finite; 1 turns the boost off). New models need votes before their rating means anything.
    new_until_votes : int
        Votes after which a contender is no longer new (non-negative; 0 turns the boost off).

    Raises
    ------
    ValueError
        If a parameter is out of range.
    """

    new_boost: float = 3.0
    new_until_votes: int = 300
    name = "weighted"  # class attributes, not fields: they describe the policy, not configure it
    uses_ratings = False

    def __post_init__(self) -> None:
        if not (np.isfinite(self.new_boost) and self.new_boost > 0):
            raise ValueError(f"new_boost must be positive and finite, got {self.new_boost!r}")
        if isinstance(self.new_until_votes, bool) or not isinstance(self.new_until_votes, int | np.integer) \
                or self.new_until_votes < 0:
            raise ValueError(f"new_until_votes must be a non-negative integer, got {self.new_until_votes!r}")

    def effective_weights(self, stats: ContenderStats) -> np.ndarray:
        """The unnormalised draw weights: boosted weights, 0 for unavailable contenders."""
        boost = np.where(stats.votes < self.new_until_votes, self.new_boost, 1.0)
        return np.where(stats.available, stats.weight * boost, 0.0)

    def choose(self, stats: ContenderStats, k: int, rng: np.random.Generator) -> np.ndarray:
        """See ``Policy.choose``."""
        _check_k(k)
        weights = self.effective_weights(stats)
        eligible = int(np.count_nonzero(weights > 0))
        if eligible < k:
            raise NotEnoughContenders(eligible, k)
        chosen = np.empty(k, dtype=np.int64)
        for slot, u in enumerate(rng.random(k)):
            # Inverse CDF, as Generator.choice does without its per-call checks. cdf[-1] is exactly 1 > u,
            # and cdf only rises at positive weights, so the first cdf > u is a live contender.
            cumulative = np.cumsum(weights)
            chosen[slot] = np.searchsorted(cumulative / cumulative[-1], u, side="right")
            weights[chosen[slot]] = 0.0  # without replacement: a drawn contender leaves the urn
        return rng.permutation(chosen)


_Z95 = 1.959963984540054  # the leaderboard's intervals are 95 %: sd = (ci_high - ci_low) / (2 * _Z95)
_PROBIT_LOGIT = 1.702     # Phi(x) ~ 1 / (1 + exp(-1.702 x)), within 0.01 everywhere (NumPy has no erf)


@dataclass(frozen=True)
class ActivePolicy:
    """Uncertainty sampling on the leaderboard's posterior: show the K contenders whose order is least sure.

    For each battle:

    1. **Exploration / no starvation.** With probability ``min_share`` the pivot is drawn uniformly
       among the available contenders (so every available contender appears with probability at
       least ``min_share / M`` in every battle, M the number available, whatever the ratings say).
    2. **Unrated first.** Otherwise, if some available contender has no rating (NaN: not in the
       snapshot yet, e.g. a new model), the pivot is the unrated one with the fewest votes.
       If the pivot is unrated and so are the others (the arena's first battles), the battle is the
       pivot plus the K - 1 others with the fewest votes (ties at random): fewest-votes-first.
    3. **Thompson ordering.** Every available contender gets a posterior draw
       ``r_i + draw_scale * sd_i * z_i`` (``z`` standard normal; ``sd_i = (ci_high - ci_low) / 3.92``,
       or ``default_sd / sqrt(1 + votes_i)`` when the interval is missing; an unrated contender sits at
       the mean rating with sd ``default_sd``), and the contenders are sorted by the draws. The draw
       makes successive battles differ while the ratings are stale (the arena refreshes its snapshot
       periodically, not after every vote) and explores orders the posterior still allows.
    4. **Most ambiguous window.** A pair ``a, b`` gets the *ambiguity*
       ``Phi(-|r_a - r_b| / sqrt(sd_a^2 + sd_b^2))``: the posterior probability that the order of
       their ratings is wrong (1/2 when unknown; Phi by its logistic approximation, within 0.01).
       The battle shows the K consecutive contenders of the sorted order (a window) with the largest
       summed ambiguity over its K (K - 1) / 2 pairs -- the window containing the pivot when step 1
       or 2 chose one, any window otherwise (ties at random). The slot order is then shuffled.

    What it optimises, in short: the expected number of pairs a vote shows whose order the
    leaderboard still has wrong, among sets that are contiguous in a posterior draw of the order
    (the only pairs that can be ambiguous are near neighbours, so nothing is lost by the contiguity,
    and it keeps the search linear).

    Only which contenders are shown is decided here: the policy reads ratings and intervals, never
    votes' contents, so it serves best-of-K votes, full rankings and ties alike. Cost: one sort and
    K - 1 sliding sums, O(M log M + M K) for M contenders (about 0.2 ms for M = 200, K = 4).

    Parameters
    ----------
    min_share : float
        In [0, 1]: probability that a battle's pivot is uniform over the available contenders, so
        each available contender's chance of appearing in a battle is at least ``min_share / M``.
        Default 0.1.
    default_sd : float
        Rating-scale sd assumed for a contender without an interval (positive, finite): a rated one
        gets ``default_sd / sqrt(1 + votes)``, an unrated one ``default_sd``. Default 350 (2 natural
        units, the leaderboard's Bayesian prior sd, on the 400 / ln 10 rating scale).
    draw_scale : float
        Factor on the sd of the Thompson draw (non-negative; 0 sorts by the ratings themselves).
        Default 1 (plain Thompson sampling). In the vote-budget simulator (50 models, K = 4, 6-10
        seeds) 0.5 needs fewer votes when the ratings are refitted after every vote (median 110 v.
        125) but far more when they are 50 votes stale (685 v. 265; 2.0: 240): the live snapshot is
        stale, so the default favours robustness.

    Raises
    ------
    ValueError
        If a parameter is out of range.
    """

    min_share: float = 0.1
    default_sd: float = 350.0
    draw_scale: float = 1.0
    name = "active"
    uses_ratings = True

    def __post_init__(self) -> None:
        if not (isinstance(self.min_share, int | float | np.floating) and 0.0 <= self.min_share <= 1.0):
            raise ValueError(f"min_share must be in [0, 1], got {self.min_share!r}")
        if not (np.isfinite(self.default_sd) and self.default_sd > 0):
            raise ValueError(f"default_sd must be positive and finite, got {self.default_sd!r}")
        if not (np.isfinite(self.draw_scale) and self.draw_scale >= 0):
            raise ValueError(f"draw_scale must be non-negative and finite, got {self.draw_scale!r}")

    def posterior(self, stats: ContenderStats) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd the policy assumes for every contender (rating scale), shape (M,) each."""
        rating = stats.rating
        rated = np.isfinite(rating)
        width = stats.ci_high - stats.ci_low
        has_ci = rated & np.isfinite(width) & (width > 0)
        sd = np.where(has_ci, np.where(has_ci, width, 1.0) / (2.0 * _Z95),
                      self.default_sd / np.sqrt(1.0 + stats.votes))
        sd = np.where(rated, sd, self.default_sd)
        centre = float(rating[rated].mean()) if rated.any() else 0.0
        return np.where(rated, rating, centre), sd

    def choose(self, stats: ContenderStats, k: int, rng: np.random.Generator) -> np.ndarray:
        """See ``Policy.choose``."""
        _check_k(k)
        # Weights do not steer this policy, but a zero weight still means "never draw" (an operator's off switch).
        candidates = np.flatnonzero(stats.available & (stats.weight > 0))
        m = candidates.size
        if m < k:
            raise NotEnoughContenders(m, k)
        votes = stats.votes[candidates]
        unrated = ~np.isfinite(stats.rating[candidates])
        jitter = rng.random(m)  # random tie-breaking everywhere below
        pivot = -1  # a position in candidates; -1: none, take the best window anywhere
        if rng.random() < self.min_share:
            pivot = int(rng.integers(m))
        elif unrated.any():
            pivot = int(np.lexsort((jitter, votes, ~unrated))[0])  # unrated first, then fewest votes
        if pivot >= 0 and unrated[pivot] and unrated.all():
            others = np.lexsort((jitter, votes))
            others = others[others != pivot][: k - 1]
            return rng.permutation(candidates[np.r_[pivot, others]]).astype(np.int64)
        mean, sd = self.posterior(stats)
        mean, sd = mean[candidates], sd[candidates]
        order = np.argsort(mean + self.draw_scale * sd * rng.standard_normal(m), kind="stable")
        if k == 1:  # no pair to order: the pivot, else the least certain contender
            one = pivot if pivot >= 0 else int(np.lexsort((jitter, -sd))[0])
            return candidates[[one]].astype(np.int64)
        window = np.zeros(m - k + 1)  # window j: order[j : j + k]
        for d in range(1, k):  # pairs d apart in the order; a window holds k - d of them
            a, b = order[:-d], order[d:]
            gap = np.abs(mean[a] - mean[b]) / np.sqrt(sd[a] ** 2 + sd[b] ** 2)
            ambiguity = 1.0 / (1.0 + np.exp(np.minimum(_PROBIT_LOGIT * gap, 700.0)))  # ~ Phi(-gap)
            window += np.convolve(ambiguity, np.ones(k - d), mode="valid")
        window = window + 1e-9 * jitter[: window.size]                   # random ties
        if pivot >= 0:
            at = int(np.flatnonzero(order == pivot)[0])
            lo, hi = max(0, at - k + 1), min(at, m - k)
            start = lo + int(np.argmax(window[lo: hi + 1]))
        else:
            start = int(np.argmax(window))
        return rng.permutation(candidates[order[start: start + k]]).astype(np.int64)


POLICIES: dict[str, Callable[..., Policy]] = {
    "random": RandomPolicy,
    "weighted": WeightedPolicy,
    "active": ActivePolicy,
}


def policy_from_name(name: str, **params: object) -> Policy:
    """Build a registered policy.

    Parameters
    ----------
    name : str
        A key of ``POLICIES``.
    **params
        Keyword arguments of that policy's constructor (``new_boost``, ``new_until_votes`` for
        ``weighted``; ``min_share``, ``default_sd`` for ``active``; none for ``random``).

    Returns
    -------
    Policy

    Raises
    ------
    ValueError
        If ``name`` is not registered, or ``params`` do not fit its constructor.
    """
    try:
        factory = POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown matchmaking policy {name!r}; known: {', '.join(sorted(POLICIES))}") from None
    try:
        return factory(**params)
    except TypeError as exc:  # an unexpected parameter: name the policy, as a caller's config is at fault
        raise ValueError(f"bad parameters for policy {name!r}: {exc}") from exc
