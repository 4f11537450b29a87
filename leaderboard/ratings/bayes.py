"""Bayesian ratings: Laplace (Gaussian) approximation of the BT / PL posterior.

Prior ``theta_i ~ Normal(0, prior_sd^2)`` independently (tie and style parameters get a flat prior).
The posterior mode is found by Newton and the posterior covariance is the inverse Hessian of the
negative log posterior there. Because the likelihood only sees differences, the mode has mean 0
in each component; we report the posterior of these centred strengths (or of the differences
to the anchor), so sigma does not include the prior's uncertainty about the overall level.

``P(model is best)`` is the Monte-Carlo frequency of each model being the argmax of a posterior
draw; the frequencies sum to 1 exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .estimation import Estimate, RatingObjective, fit_objective

__all__ = ["Posterior", "laplace_posterior", "probability_best"]


@dataclass(frozen=True, eq=False)
class Posterior:
    """Gaussian approximation of the posterior.

    Attributes
    ----------
    estimate : Estimate
        The posterior mode (MAP) and its Hessian.
    covariance : ndarray, shape (P, P)
        Inverse Hessian of the negative log posterior.
    prior_sd : float
        Prior standard deviation of each strength (natural scale).
    """

    estimate: Estimate
    covariance: np.ndarray
    prior_sd: float


def laplace_posterior(objective: RatingObjective, prior_sd: float = 2.0) -> Posterior:
    """Fit the MAP under a Normal(0, prior_sd^2) prior and return its Laplace approximation.

    Parameters
    ----------
    objective : RatingObjective
        Likelihood (pairwise, K-wise or mixed).
    prior_sd : float
        Prior sd of each strength on the natural scale (2.0 ~ 347 rating points: weakly
        informative for arena ratings, which rarely span more than +-2).

    Returns
    -------
    Posterior
    """
    if not prior_sd > 0:
        raise ValueError(f"prior_sd must be > 0, got {prior_sd}")
    estimate = fit_objective(objective, l2=1.0 / prior_sd**2, identify=False)
    cov = np.linalg.inv(estimate.hessian)
    return Posterior(estimate, 0.5 * (cov + cov.T), prior_sd)


def probability_best(
    mean: np.ndarray, cov: np.ndarray, rng: np.random.Generator, *, draws: int = 20_000
) -> np.ndarray:
    """Monte-Carlo ``P(argmax = i)`` under ``Normal(mean, cov)``.

    Parameters
    ----------
    mean : ndarray, shape (M,)
    cov : ndarray, shape (M, M)
        Positive semi-definite (a centred covariance is singular, hence the eigen-factorisation).
    rng : numpy.random.Generator
    draws : int
        Monte-Carlo sample size; the standard error of each probability is at most
        ``0.5 / sqrt(draws)``.

    Returns
    -------
    ndarray, shape (M,)
        Sums to 1.
    """
    vals, vecs = np.linalg.eigh(0.5 * (cov + cov.T))
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))
    sample = mean + rng.standard_normal((draws, mean.size)) @ root.T
    best = np.argmax(sample, axis=1)
    return np.bincount(best, minlength=mean.size) / draws
