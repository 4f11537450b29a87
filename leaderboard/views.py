"""The leaderboard page: the same snapshots as the API, with interval bars and the win-rate heatmap."""
from __future__ import annotations

import math
from itertools import groupby
from types import SimpleNamespace

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from arena.selectors import contender_recent_shares
from config.errors import ApplicationError
from config.throttling import FixedWindowScopedThrottle

from . import charts
from .config import CIS, METHODS, TIES, LeaderboardConfig
from .ratings.separation import votes_to_separate_top
from .ratings.tie_selection import TIE_MODE_LABELS
from .selectors import categories, snapshot_with_rows
from .tasks import snapshot_serve

CELL = 34


def _tie_evidence_line(params: dict, ties: str) -> dict[str, object] | None:
    """The held-out log-likelihoods of the tie models, for the line beside the snapshot's provenance."""
    evidence = params.get("tie_model_evidence") or {}
    scores = evidence.get("scores") or {}
    if len(scores) < 2:  # no ties among the votes: nothing to compare
        return None
    best = evidence["choice"]

    def number(x: float) -> str:
        return f"{x:.4f}".replace("-", "\u2212")  # a minus sign, not a hyphen

    return {
        "scores": [{"label": TIE_MODE_LABELS[mode], "value": number(s["mean"]),
                    "title": "" if mode == best else (f"{number(s['difference'])} \u00b1 {number(s['difference_se'])}"
                                                      f" per vote against {TIE_MODE_LABELS[best]}"),
                    "chosen": mode == ties}
                   for mode, s in scores.items()],
        "current": TIE_MODE_LABELS.get(ties, ties), "best": TIE_MODE_LABELS.get(best, best),
        "folds": evidence.get("folds"),
    }


# The page, like the API, may start a fit: it counts against the API's per-client "leaderboard" limit.
_THROTTLED_VIEW = SimpleNamespace(throttle_scope="leaderboard")


def leaderboard_page(request: HttpRequest) -> HttpResponse:
    context: dict[str, object] = {"methods": METHODS, "ties_modes": TIES, "cis": CIS, "categories": categories()}
    if not (throttle := FixedWindowScopedThrottle()).allow_request(request, _THROTTLED_VIEW):
        wait = math.ceil(throttle.wait() or 1)
        context.update(config=LeaderboardConfig(), error=f"Too many leaderboard requests: try again in {wait} s.")
        response = render(request, "leaderboard/leaderboard.html", context, status=429)
        response["Retry-After"] = str(wait)
        return response
    try:
        config = LeaderboardConfig.from_query(request.GET.dict())
        snapshot = snapshot_with_rows(snapshot_serve(config=config).id)
    except ApplicationError as exc:
        context.update(config=LeaderboardConfig(), error=exc.message, field=exc.field)
        return render(request, "leaderboard/leaderboard.html", context, status=exc.status)
    rows = sorted(snapshot.rows.all(), key=lambda r: (r.component, r.rank, -r.rating, r.model))
    order = [r.model for r in rows]
    shares, recent_battles = contender_recent_shares()
    # One table per component of the comparison graph, largest first (the fit numbers them so): ratings
    # share no scale across components, so each table has its own interval axis.
    component_votes = snapshot.params.get("component_votes") or []
    groups = []
    for number, members in groupby(rows, key=lambda r: r.component):
        members = list(members)
        votes = component_votes[number - 1] if number <= len(component_votes) else sum(r.votes for r in members) / 2
        groups.append({"number": number, "size": len(members), "votes": votes,
                       "rows": [(row, bar, shares.get(row.contender_id, 0.0))
                                for row, bar in zip(members, charts.interval_bars(members), strict=True)]})
    # Across components ratings share no scale: no separation figure there.
    to_separate = None if snapshot.params.get("components", 1) > 1 else votes_to_separate_top(
        [r.rating for r in rows], [r.ci_low for r in rows], [r.ci_high for r in rows], [r.votes for r in rows],
        top=min(10, len(rows))) if len(rows) >= 2 else None
    matrix = snapshot.matrices.get("winrate")
    context.update(
        config=config, snapshot=snapshot, groups=groups, provisional_votes=snapshot.params.get("provisional_votes"),
        recent_battles=recent_battles, to_separate=to_separate, separate_top=min(10, len(rows)),
        heatmap=charts.heatmap_cells(snapshot.models_order, matrix, order, cell=CELL) if matrix else None,
        heatmap_breaks=charts.component_breaks([r.component for r in rows], cell=CELL),
        heatmap_size=CELL * len(order), heatmap_labels=[(i * CELL + CELL / 2, name) for i, name in enumerate(order)],
        cell=CELL, query=request.GET.urlencode(),
        tie_evidence=_tie_evidence_line(snapshot.params, snapshot.params.get("ties", config.ties)),
        ties_fallback=snapshot.params.get("ties_fallback"),
        ties_explicit=bool(request.GET.get("ties")),  # else the form offers the method's default, not its value
    )
    return render(request, "leaderboard/leaderboard.html", context)
