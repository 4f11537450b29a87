"""Which tie model do the votes support? Held-out predictive log-likelihood of half / Davidson / Rao-Kupper.

:func:`tie_model_evidence` splits the votes into K folds, fits each tie model on K - 1 folds and scores
the votes of the remaining one, so every vote is predicted exactly once by a fit that never saw it. The
score is the log-probability the model gave the outcome that happened -- A won, B won, or tie -- averaged
over votes: a proper scoring rule, so a model gains only by predicting the outcomes' frequencies better,
and it is the same three-outcome scale for all three models (see the function's Notes for ties as 1/2,
which is not a probability model for ties).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._numeric import log_sigmoid_pair, sigmoid_pair
from .bradley_terry import TIE_MODES, PairwiseObjective, TieMode
from .data import PairCounts
from .newton import newton_batched

__all__ = ["TieModelEvidence", "TieModelScore", "tie_log_probabilities", "tie_model_evidence"]

_A, _B, _T = 0, 1, 2  # weight columns of PairwiseObjective: A wins, B wins, tie
#: Display names, in the order the modes are compared.
TIE_MODE_LABELS = {"half": "half", "davidson": "Davidson", "rao-kupper": "Rao-Kupper"}
#: Ties as 1/2 with a constant tie rate ``tau``: half the tie probability is at most this share of the weaker
#: side's expected score (see :func:`tie_model_evidence`).
HALF_TIE_CAP = 0.9


@dataclass(frozen=True)
class TieModelScore:
    """Held-out score of one tie model.

    Attributes
    ----------
    ties : str
        ``"half"``, ``"davidson"`` or ``"rao-kupper"``.
    mean : float
        Mean held-out log-probability of the observed outcome (win / tie / loss), per vote (nats; <= 0).
    se : float
        Its standard error: the standard deviation of the per-vote values over ``sqrt(n_votes)``.
    decisive : float
        Mean held-out ``log P(winner | the vote was decisive)`` per decisive vote: how well the
        fitted strengths (and the tie model) predict who wins when somebody does.
    tie : float
        Mean held-out ``log P(tie)`` or ``log P(not a tie)``, per vote: the tie part.
        ``mean = tie + decisive * share of decisive votes``.
    difference : float
        ``mean`` minus the chosen model's ``mean`` (0 for the choice; negative: worse).
    difference_se : float
        Standard error of ``difference`` from the per-vote (paired) differences: much smaller than
        ``se``, since both models predict the same votes.
    """

    ties: str
    mean: float
    se: float
    decisive: float
    tie: float
    difference: float
    difference_se: float

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {"ties": self.ties, "mean": self.mean, "se": self.se, "decisive": self.decisive, "tie": self.tie,
                "difference": self.difference, "difference_se": self.difference_se}


@dataclass(frozen=True)
class TieModelEvidence:
    """Result of :func:`tie_model_evidence`.

    Attributes
    ----------
    scores : tuple of TieModelScore
        One per tie model that could be fitted, in the order of ``TIE_MODES`` (half, davidson,
        rao-kupper). Davidson and Rao-Kupper are absent when some training fold holds no tie (their
        tie parameter has no finite estimate then); see ``unavailable``.
    choice : str
        The tie model with the highest mean held-out log-likelihood.
    unavailable : dict of str to str
        Tie models left out, with the reason.
    n_votes, n_ties : float
        Votes (battles) scored, and how many of them were ties (after the tie policy).
    folds, seed : int
        The split.
    l2 : float
        Ridge on the strengths used in every training fit.
    """

    scores: tuple[TieModelScore, ...]
    choice: str
    unavailable: dict[str, str]
    n_votes: float
    n_ties: float
    folds: int
    seed: int
    l2: float

    def score(self, ties: str) -> TieModelScore | None:
        """The score of one tie model, or None when it was not fitted."""
        return next((s for s in self.scores if s.ties == ties), None)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict (what a snapshot stores as ``params["tie_model_evidence"]``)."""
        return {"choice": self.choice, "scores": {s.ties: s.to_dict() for s in self.scores},
                "unavailable": dict(self.unavailable), "n_votes": self.n_votes, "n_ties": self.n_ties,
                "folds": self.folds, "seed": self.seed, "l2": self.l2, "metric": "held-out log-likelihood per vote"}


def tie_log_probabilities(d: np.ndarray, ties: str, eta: np.ndarray | float | None = None,
                          tie_rate: np.ndarray | float | None = None) -> np.ndarray:
    """Log-probabilities of (A wins, B wins, tie) stacked on the last axis.

    Parameters
    ----------
    d : ndarray
        ``theta_a - theta_b``.
    ties : {"half", "davidson", "rao-kupper"}
    eta : float or ndarray, optional
        Log tie parameter (Davidson's ``log nu``, Rao-Kupper's ``log theta``), broadcast against ``d``.
    tie_rate : float or ndarray, optional
        ``half`` only: the constant tie probability ``tau`` (see :func:`tie_model_evidence`).

    Returns
    -------
    ndarray, shape ``d.shape + (3,)``
        ``log P``; for ``half``: ``log(sigmoid(+-d) - t / 2)`` and ``log t``, with the tie probability
        ``t = min(tau, 2 HALF_TIE_CAP sigmoid(-|d|))``.
    """
    d = np.asarray(d, dtype=np.float64)
    if ties == "half":
        tau = np.broadcast_to(np.asarray(tie_rate, dtype=np.float64), d.shape)
        s_a, s_b = sigmoid_pair(d)
        # The expected score sigma(d) = P(win) + P(tie) / 2, with P(tie) = tau where that leaves the weaker
        # side some wins (see tie_model_evidence's Notes for the cap).
        tie = np.minimum(tau, 2.0 * HALF_TIE_CAP * np.minimum(s_a, s_b))
        with np.errstate(divide="ignore"):  # log 0 = -inf for ties when tau = 0 (no ties in the data)
            return np.log(np.stack([s_a - 0.5 * tie, s_b - 0.5 * tie, tie], axis=-1))
    eta = np.broadcast_to(np.asarray(eta, dtype=np.float64), d.shape)
    if ties == "davidson":
        half = 0.5 * d
        log_norm = np.logaddexp(np.logaddexp(half, -half), eta)
        return np.stack([half - log_norm, -half - log_norm, eta - log_norm], axis=-1)
    if ties == "rao-kupper":
        la, _ = log_sigmoid_pair(d - eta)
        lb, _ = log_sigmoid_pair(-d - eta)
        # P(tie) = (e^{2 eta} - 1) P(A) P(B), with log(e^{2 eta} - 1) = 2 eta + log(1 - e^{-2 eta}).
        return np.stack([la, lb, 2.0 * eta + np.log(-np.expm1(-2.0 * eta)) + la + lb], axis=-1)
    raise ValueError(f"ties must be one of {TIE_MODES}, got {ties!r}")


def _split(counts: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """Held-out counts per fold, shape ``(folds,) + counts.shape``: each vote to a uniformly random fold."""
    whole = np.floor(counts)
    flat = whole.astype(np.int64).ravel()
    out = rng.multinomial(flat, np.full(folds, 1.0 / folds)).astype(np.float64)  # (cells, folds)
    rest = (counts - whole).ravel()
    if rest.any():  # a fractional weight goes, as one piece, to one random fold
        out[np.arange(flat.size), rng.integers(0, folds, flat.size)] += rest
    return np.moveaxis(out, -1, 0).reshape((folds, *counts.shape))


def _fit_folds(objective: PairwiseObjective, train: np.ndarray, l2: float) -> np.ndarray:
    """Penalised MLE on each training fold at once: parameters, shape (folds, P)."""
    m = objective.n_models
    penalty = np.zeros((objective.n_params, objective.n_params))
    penalty[np.arange(m), np.arange(m)] = l2
    weights = tuple(np.ascontiguousarray(train[:, :, c]) for c in range(3))
    return newton_batched(objective, weights, objective.x0(), penalty, stop_on_flat=False).x


def _weighted_mean_se(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    total = float(weights.sum())
    mean = float((weights * values).sum() / total)
    var = float((weights * (values - mean) ** 2).sum() / max(total - 1.0, 1.0))
    return mean, math.sqrt(var / total)


def tie_model_evidence(
    pairs: PairCounts, *, folds: int = 5, seed: int = 0, both_bad_as_tie: bool = True, l2: float = 0.01,
) -> TieModelEvidence:
    """K-fold held-out predictive log-likelihood per vote of the three tie models; the best is the choice.

    Parameters
    ----------
    pairs : PairCounts
        Aggregated pairwise outcomes without style covariates (aggregated rows are split, see Notes).
    folds : int
        Number of folds K (>= 2).
    seed : int
        Seed of the ``numpy.random.Generator`` that assigns votes to folds.
    both_bad_as_tie : bool
        Count "both bad" (outcome 3) as a tie (True, the leaderboard's default) or drop it.
    l2 : float
        Ridge on the strengths in every training fit (a Normal(0, 1/l2) prior; 0.01: sd 10 logits).
        It keeps a fold's fit finite when a thin model never loses (or never wins) in the K - 1 training
        folds, and moves a model with hundreds of votes by a negligible amount. Must be > 0.

    Returns
    -------
    TieModelEvidence

    Raises
    ------
    ValueError
        For bad arguments, no votes, or style covariates in ``pairs``.
    ConvergenceError
        If a training fit does not converge.

    Notes
    -----
    The split. An aggregated cell of ``n`` identical votes (same pair, same outcome) is split by
    multinomial thinning, ``Multinomial(n, (1/K, ..., 1/K))``: exactly the distribution of the fold
    counts when each vote is sent to a uniformly random fold, so this *is* a vote-level K-fold split
    (folds of random, nearly equal size), at the cost of one draw per cell rather than per vote -- a
    refit of 2M votes has a few thousand cells. Votes, not pairs, are held out: the question is how
    well a model predicts the next vote between models it has seen, which is what a leaderboard is
    used for. A fractional weight's fractional part goes whole to one random fold.

    The score. Each held-out vote scores ``log P(observed outcome)`` under the fit of the other
    folds, with three outcomes: A wins, B wins, tie. Davidson and Rao-Kupper are probability models
    for the three. Ties as 1/2 (Chatbot Arena's rule) is not: it counts a tie as half a win and half
    a loss and gives ties no probability (:func:`~.bradley_terry.pair_probabilities` says
    ``P(tie) = 0``, which would score every held-out tie ``-inf``). What its fit does estimate is the
    expected score: its likelihood equations match each model's wins + ties / 2 to the sum of
    ``sigmoid(d)`` (and :func:`~.bradley_terry.expected_score` reads it so). It is completed here
    with the one assumption it implicitly makes, that ties are independent of strength:
    ``P(tie) = tau``, ``P(A wins) = sigmoid(d) - tau / 2``, ``P(B wins) = sigmoid(-d) - tau / 2``,
    with ``d`` from the ties-as-1/2 fit (the ratings the page shows) and ``tau`` the training folds'
    tie share (smoothed by half a pseudo-tie, ``(ties + 1/2) / (votes + 1)``, so a training fold
    without a tie does not give held-out ties probability 0; exactly 0 when the data have no tie).
    When ties really are independent of strength this is (nearly) the true model: ``sigmoid(d)``
    then fits the true expected score ``(1 - tau) P(A wins | decisive) + tau / 2``, exactly but for
    the Bradley-Terry form of ``d`` (the logit of that score is not quite a difference of strengths),
    and in simulation ties as 1/2 is the choice on such data (tests). Where ``sigmoid(-|d|) < tau / 2``
    a constant rate is impossible (the weaker side's expected score is below half the tie rate);
    there ties are capped at ``2 * HALF_TIE_CAP * sigmoid(-|d|)`` (0.9: the weaker side keeps a
    tenth of its expected score as wins). Reading ``sigmoid(d)`` instead as ``P(A wins | decisive)``,
    ``P(A wins) = (1 - tau) sigmoid(d)``, is not what the fit estimates: its ratings are compressed
    towards 0 by the ties, so that reading scores ties as 1/2 lower still, even on simulated data
    whose ties are independent of strength, and would make the comparison unfair to it. (On the
    arena's files the verdict does not hinge on these choices: with caps from 0.5 to 0.99, or with
    that reading, ties as 1/2 still scores last; README, "Leaderboards".) The comparison thus asks:
    do the votes' ties depend on the strengths as Davidson or Rao-Kupper say, and do their strengths
    predict the outcomes better, than ratings fitted with ties as 1/2 plus a flat tie rate? The
    score splits exactly into the tie part (``tie``: tie or not) and the decisive part
    (``decisive``: who won, given somebody did).

    The standard error of each mean is that of a mean of independent per-vote values (the folds'
    fits are treated as fixed, as is usual for cross-validation); ``difference_se`` uses the paired
    per-vote differences from the chosen model, which is what decides whether two models differ.
    With no tie in the data (or in some training fold) Davidson and Rao-Kupper cannot be fitted and
    ties as 1/2 is the choice.
    """
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    if not l2 > 0:
        raise ValueError(f"l2 must be > 0 (it keeps every training fold's fit finite), got {l2}")
    if pairs.features is not None:
        raise ValueError("tie_model_evidence takes aggregated pairs without style covariates")
    half = PairwiseObjective(pairs, "half", both_bad_as_tie=both_bad_as_tie)
    counts = np.stack([w[0] for w in half.base_weights()], axis=1)  # (n, 3): A wins, B wins, ties
    n_votes = float(counts.sum())
    if n_votes <= 0:
        raise ValueError("no votes to score")
    rng = np.random.default_rng(seed)
    test = _split(counts, folds, rng)  # (K, n, 3)
    train = counts[None] - test
    train_ties = train[:, :, _T].sum(axis=1)  # (K,)
    log_p: dict[TieMode, np.ndarray] = {}
    unavailable: dict[str, str] = {}
    for mode in TIE_MODES:
        if mode != "half" and not (train_ties > 0).all():
            unavailable[mode] = "no ties in the data" if counts[:, _T].sum() == 0 else \
                "too few ties: a training fold has none"
            continue
        objective = half if mode == "half" else PairwiseObjective(pairs, mode, both_bad_as_tie=both_bad_as_tie)
        x = _fit_folds(objective, train, l2)
        d = np.take(x, objective.pa, axis=1) - np.take(x, objective.pb, axis=1)  # (K, n)
        if mode == "half":
            n_train = train.sum(axis=(1, 2))
            tau = np.where(counts[:, _T].sum() > 0, (train_ties + 0.5) / (n_train + 1.0), 0.0)
            log_p[mode] = tie_log_probabilities(d, mode, tie_rate=tau[:, None])
        else:
            log_p[mode] = tie_log_probabilities(d, mode, eta=x[:, -1:])
    # Only the (fold, row, outcome) cells that hold votes are scored: elsewhere log P may be -inf
    # (ties as 1/2 with no tie in the data), and 0 * -inf would be NaN.
    used = test > 0
    held = test[used]
    is_decisive = np.zeros(test.shape, dtype=bool)
    is_decisive[..., :_T] = True
    is_decisive = is_decisive[used]
    parts: dict[TieMode, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for mode, lp in log_p.items():
        log_decisive = np.logaddexp(lp[..., _A], lp[..., _B])[..., None]  # log P(not a tie)
        tie_part = np.concatenate([np.repeat(log_decisive, 2, axis=-1), lp[..., _T:]], axis=-1)
        parts[mode] = (lp[used], tie_part[used], (lp - log_decisive)[used])  # total, tie, log P(winner | decisive)
    means = {mode: _weighted_mean_se(total, held) for mode, (total, _, _) in parts.items()}
    choice = max(means, key=lambda mode: means[mode][0])
    n_decisive = float(held[is_decisive].sum())
    scores = []
    for mode, (total, tie_part, conditional) in parts.items():
        d_mean, d_se = _weighted_mean_se(total - parts[choice][0], held)
        scores.append(TieModelScore(
            ties=mode, mean=means[mode][0], se=means[mode][1],
            decisive=float((held * conditional)[is_decisive].sum() / n_decisive) if n_decisive else math.nan,
            tie=float((held * tie_part).sum() / n_votes), difference=d_mean, difference_se=d_se))
    return TieModelEvidence(tuple(scores), choice, unavailable, n_votes, float(counts[:, _T].sum()), folds, seed,
                            l2)
