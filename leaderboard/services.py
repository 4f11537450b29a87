"""Writes for the leaderboard: fit a configuration and store the result as an immutable snapshot."""
from __future__ import annotations

import logging
import time
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from arena.models import Contender
from config.errors import ApplicationError, ValidationFailed
from leaderboard.ratings import (
    ConvergenceError,
    LeaderboardFit,
    align_models,
    battle_count_matrix,
    leaderboard_fit,
    predicted_win_matrix,
    win_rate_matrix,
)

from . import selectors
from .config import DEFAULT_CONFIGS, LeaderboardConfig
from .models import Snapshot, SnapshotRow

logger = logging.getLogger(__name__)


class NoVotes(ApplicationError):
    status = 404
    code = "no_votes"


class FitFailed(ApplicationError):
    status = 422
    code = "fit_failed"


def _matrix(values: np.ndarray) -> list[list[float | None]]:
    return [[float(x) if np.isfinite(x) else None for x in row] for row in values]


def _fit(config: LeaderboardConfig) -> tuple[LeaderboardFit, str, int, dict[str, list]]:
    """Read the counted votes, fit, and return the fit, the data hash, the vote count and the matrices."""
    if config.style_control and config.method not in ("bt", "bayes"):
        raise ValidationFailed("style control needs method bt or bayes", field="style_control")
    # Counted before the data is read: a vote arriving meanwhile makes the snapshot look stale (and so
    # refitted soon) rather than look as if it were included.
    n_votes = selectors.counted_votes(config).count()
    battles = selectors.elo_battles(config) if config.method == "elo" else None
    pairs = selectors.pair_battles_with_style(config) if config.style_control else selectors.pair_counts(config)
    rankings = selectors.ranking_counts(config) if config.method in ("pl", "bayes") else None
    if pairs is None and rankings is None:
        raise NoVotes("no votes match this leaderboard's filters")
    pairs, rankings = align_models(pairs, rankings)
    try:
        fit = leaderboard_fit(
            pairs, rankings, method=config.method, ties=config.ties, exclude_ties=config.exclude_ties,
            both_bad_as_tie=not config.exclude_both_bad,
            ci=config.ci, bootstrap=config.bootstrap, style_control=config.style_control,
            anchor=config.anchor or None, seed=config.seed, battles=battles,
        )
    except ConvergenceError as exc:
        raise FitFailed(f"the fit did not converge: {exc}") from exc
    except ValueError as exc:  # e.g. an anchor that is not among the models
        raise ValidationFailed(str(exc), field="anchor" if config.anchor and config.anchor in str(exc) else None) \
            from exc
    matrices: dict[str, list] = {}
    if pairs is not None and pairs.models == fit.models:
        matrices = {"count": _matrix(battle_count_matrix(pairs)), "winrate": _matrix(win_rate_matrix(pairs)),
                    "predicted": _matrix(predicted_win_matrix(fit))}
    return fit, selectors.data_hash(pairs, rankings, battles), n_votes, matrices


def leaderboard_refit_if_stale(*, config: LeaderboardConfig) -> Snapshot | None:
    """Refit ``config`` unless a fresh snapshot exists (several readers may have enqueued the same)."""
    return leaderboard_refit(config=config) if leaderboard_is_stale(config=config) else None


@transaction.atomic
def leaderboard_refit(*, config: LeaderboardConfig) -> Snapshot:
    """Fit ``config`` on the votes now in the database and store the snapshot with its rows."""
    started = time.perf_counter()
    fit, digest, n_votes, matrices = _fit(config)
    contenders = dict(Contender.objects.filter(name__in=fit.models).values_list("name", "id"))
    snapshot = Snapshot.objects.create(
        config_key=config.key(), config=config.as_dict(), method=config.method, params=_jsonable(fit.params),
        data_hash=digest, n_votes=n_votes, duration_ms=0, models_order=list(fit.models), matrices=matrices,
        style_coefficients=[{"name": c.name, "value": c.coef, "ci_low": c.ci_low, "ci_high": c.ci_high}
                            for c in fit.style_coefficients],
    )
    SnapshotRow.objects.bulk_create(
        SnapshotRow(snapshot=snapshot, contender_id=contenders[r.model], model=r.model, rating=r.rating,
                    ci_low=_finite(r.ci_low), ci_high=_finite(r.ci_high), rank=r.rank, rank_ub=r.rank_ub,
                    votes=r.votes, mu=r.mu, sigma=r.sigma, p_best=r.p_best, component=r.component,
                    provisional=r.provisional, ci_degenerate_share=r.ci_degenerate_share)
        for r in fit.rows
    )
    snapshot.duration_ms = round((time.perf_counter() - started) * 1000)
    snapshot.save(update_fields=["duration_ms"])
    return snapshot


def _finite(x: float | None) -> float | None:
    """An interval end the data cannot bound (+-inf) is stored as NULL: unbounded on that side."""
    return x if x is not None and np.isfinite(x) else None


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    return value


def leaderboard_current(*, config: LeaderboardConfig) -> Snapshot:
    """The latest snapshot of ``config``: fitted now if there is none, else served and refitted in the
    background when stale (a reader never waits for a refit of data it already has a fit of)."""
    snapshot = selectors.snapshot_latest(config)
    if snapshot is None:
        return leaderboard_refit(config=config)
    if leaderboard_is_stale(config=config, snapshot=snapshot):
        from .tasks import refit_leaderboard_task

        refit_leaderboard_task.enqueue(config.as_dict())
    return snapshot


def leaderboard_is_stale(*, config: LeaderboardConfig, snapshot: Snapshot | None = None) -> bool:
    """Stale when N new votes arrived since the snapshot, or T minutes passed and any vote arrived."""
    snapshot = snapshot or selectors.snapshot_latest(config)
    if snapshot is None:
        return True
    total = selectors.counted_votes(config).count()
    new = total - snapshot.n_votes
    age = timezone.now() - snapshot.created
    return new >= settings.LEADERBOARD_REFIT_VOTES or (
        new != 0 and age >= timedelta(minutes=settings.LEADERBOARD_REFIT_MINUTES))


def refit_stale_leaderboards() -> list[Snapshot]:
    """Refit each default leaderboard that is stale; the background task runs this."""
    fresh = []
    for config in DEFAULT_CONFIGS:
        if leaderboard_is_stale(config=config):
            try:
                fresh.append(leaderboard_refit(config=config))
            except (NoVotes, FitFailed) as exc:  # one leaderboard that cannot be fitted must not stop the rest
                logger.warning("leaderboard %s not refitted: %s", config.method, exc.message)
    return fresh
