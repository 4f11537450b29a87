"""Writes for the leaderboard: fit a configuration and store the result as an immutable snapshot."""
from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import cast

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from arena.models import Contender
from config.errors import ApplicationError, ValidationFailed
from leaderboard.ratings import (
    ConvergenceError,
    LeaderboardFit,
    PairCounts,
    align_models,
    battle_count_matrix,
    leaderboard_fit,
    predicted_win_matrix,
    win_rate_matrix,
)
from leaderboard.ratings.data import TIE
from leaderboard.ratings.tie_selection import tie_model_evidence

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
    """JSON-ready rows: NaN / inf (pairs that never met) as None. Vectorised: per-element checks of three
    130 x 130 matrices took 60 ms of each refit."""
    cells = values.astype(object)
    cells[~np.isfinite(values)] = None
    return cast("list[list[float | None]]", cells.tolist())


def _tie_evidence(config: LeaderboardConfig, pairs: PairCounts | None) -> dict[str, object] | None:
    """Held-out log-likelihood per vote of the three tie models on this leaderboard's votes (README, "Leaderboards").

    Only for Bradley-Terry without style control and with ties counted: the aggregated counts then are
    the fitted data, and the comparison costs ~15 fits of a few thousand rows (56 ms for 2M votes over
    130 models). Auxiliary: a failure is recorded, never raised -- the leaderboard itself was fitted.
    """
    if config.method != "bt" or config.style_control or config.exclude_ties or pairs is None:
        return None
    started = time.perf_counter()
    try:
        evidence = tie_model_evidence(pairs, seed=config.seed, both_bad_as_tie=not config.exclude_both_bad).to_dict()
    except (ConvergenceError, ValueError) as exc:
        logger.warning("tie-model evidence not computed: %s", exc)
        return {"error": str(exc)}
    evidence["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return evidence


def _tie_parameter_missing(config: LeaderboardConfig, pairs: PairCounts) -> str | None:
    """Why a tie model's parameter has no finite estimate on these votes (no tie, or nothing but ties), or None."""
    if config.exclude_ties:
        return "ties are excluded"
    kept = pairs.select_outcomes(both_bad_as_tie=not config.exclude_both_bad)
    ties = float(kept.weight[kept.outcome == TIE].sum())
    if ties == 0:
        return "no ties among the counted votes"
    return "no decisive votes among the counted votes" if ties == kept.total else None


def _fit(config: LeaderboardConfig) -> tuple[LeaderboardFit, str, int, dict[str, list], dict[str, object]]:
    """Read the counted votes, fit, and return the fit, the data hash, the vote count, the matrices and the
    extra parameters for the snapshot (tie-model evidence, tie-model fallback)."""
    if config.style_control and config.method not in ("bt", "bayes"):
        raise ValidationFailed("style control needs method bt or bayes", field="style_control")
    # Counted before the data is read: a vote arriving meanwhile makes the snapshot look stale (and so
    # refitted soon) rather than look as if it were included.
    n_votes = selectors.counted_vote_total(config)
    battles = selectors.pair_battles_in_time_order(config) if config.method == "elo" else None
    pairs = selectors.pair_battles_with_style(config) if config.style_control else selectors.pair_counts(config)
    rankings = selectors.ranking_counts(config) if config.method in ("pl", "bayes") else None
    if pairs is None and rankings is None:
        raise NoVotes("no votes match this leaderboard's filters")
    pairs, rankings = align_models(pairs, rankings)
    ties, extra = config.ties, {}
    if ties != "half" and pairs is not None and (reason := _tie_parameter_missing(config, pairs)):
        # With no tie (a young arena, or ties excluded) a tie model's parameter has its maximum-likelihood value
        # on the boundary (Davidson's nu = 0, Rao-Kupper's theta = 1), where its ratings are plain Bradley-Terry's:
        # what ties as 1/2 fits on votes without ties. With nothing but ties it goes to infinity, and every tie
        # model (ties as 1/2 too) rates all models equal. Either way ties as 1/2 gives the tie model's ratings.
        ties = "half"
        extra["ties_fallback"] = {"requested": config.ties, "reason": reason}

    def fit_with(tie_model: str) -> LeaderboardFit:
        return leaderboard_fit(
            pairs, rankings, method=config.method, ties=tie_model, exclude_ties=config.exclude_ties,
            both_bad_as_tie=not config.exclude_both_bad,
            ci=config.ci, bootstrap=config.bootstrap, style_control=config.style_control,
            anchor=config.anchor or None, seed=config.seed, battles=battles,
        )

    try:
        try:
            fit = fit_with(ties)
        except ConvergenceError as exc:
            if ties == "half" or rankings is not None:
                raise
            # A few votes can leave the tie parameter without a finite estimate even with ties and wins (one tie
            # and one win in every pair: nu and the gaps grow without bound); ties as 1/2 may still rate them.
            fit = fit_with("half")
            extra["ties_fallback"] = {"requested": config.ties, "detail": str(exc),
                                      "reason": "its tie parameter has no finite estimate on these few votes"}
    except ConvergenceError as exc:
        raise FitFailed(f"the fit did not converge: {exc}") from exc
    except ValueError as exc:  # e.g. an anchor that is not among the models
        raise ValidationFailed(str(exc), field="anchor" if config.anchor and config.anchor in str(exc) else None) \
            from exc
    matrices: dict[str, list] = {}
    if pairs is not None and pairs.models == fit.models:
        matrices = {"count": _matrix(battle_count_matrix(pairs)), "winrate": _matrix(win_rate_matrix(pairs)),
                    "predicted": _matrix(predicted_win_matrix(fit))}
    if (evidence := _tie_evidence(config, pairs)) is not None:
        extra["tie_model_evidence"] = evidence
    return fit, selectors.data_hash(pairs, rankings, battles), n_votes, matrices, extra


def leaderboard_refit_if_stale(*, config: LeaderboardConfig) -> Snapshot | None:
    """Refit ``config`` unless a fresh snapshot exists (several readers may have enqueued the same)."""
    return leaderboard_refit(config=config) if leaderboard_is_stale(config=config) else None


@transaction.atomic
def leaderboard_refit(*, config: LeaderboardConfig) -> Snapshot:
    """Fit ``config`` on the votes now in the database and store the snapshot with its rows."""
    started = time.perf_counter()
    fit, digest, n_votes, matrices, extra = _fit(config)
    contenders = dict(Contender.objects.filter(name__in=fit.models).values_list("name", "id"))
    snapshot = Snapshot.objects.create(
        config_key=config.key(), config=config.as_dict(), method=config.method,
        params=_jsonable({**fit.params, **extra}),
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


def leaderboard_is_stale(*, config: LeaderboardConfig, snapshot: Snapshot | None = None) -> bool:
    """Stale when N new votes arrived since the snapshot, or T minutes passed and any vote arrived."""
    snapshot = snapshot or selectors.snapshot_latest(config)
    if snapshot is None:
        return True
    total = selectors.counted_vote_total(config)
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
