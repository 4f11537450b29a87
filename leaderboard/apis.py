"""Leaderboard API: the latest snapshot of a configuration, its matrices, and downloads.

Snapshots are immutable, so every response carries an ETag (the snapshot's id and data hash) and a
client that sends it back in If-None-Match gets 304 Not Modified.
"""
from __future__ import annotations

import csv
import hashlib
import io
from typing import Any

from django.core.cache import cache
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import ValidationFailed
from config.schema import error_response
from config.throttling import FixedWindowScopedThrottle

from .config import CIS, METHODS, TIES, LeaderboardConfig
from .models import Snapshot
from .selectors import contender_metadata_version, snapshot_with_rows
from .tasks import snapshot_serve

CONFIG_PARAMETERS = [
    OpenApiParameter("method", str, enum=list(METHODS)),
    OpenApiParameter("ties", str, enum=list(TIES),
                     description="default: rao-kupper for bt (chosen by held-out evidence; README), half otherwise"),
    OpenApiParameter("ci", str, enum=list(CIS)),
    OpenApiParameter("bootstrap", int), OpenApiParameter("style_control", bool), OpenApiParameter("seed", int),
    OpenApiParameter("anchor", str), OpenApiParameter("category", str), OpenApiParameter("language", str),
    OpenApiParameter("date_from", str, description="YYYY-MM-DD, inclusive"),
    OpenApiParameter("date_to", str, description="YYYY-MM-DD, inclusive"),
    OpenApiParameter("exclude_ties", bool), OpenApiParameter("exclude_both_bad", bool),
    OpenApiParameter("exclude_flagged", bool),
    OpenApiParameter("include_named", bool), OpenApiParameter("aspect", str),
]


class SnapshotOutput(serializers.Serializer):
    id = serializers.IntegerField()
    method = serializers.CharField()
    config = serializers.JSONField()
    params = serializers.JSONField()
    n_votes = serializers.IntegerField()
    data_hash = serializers.CharField()
    created = serializers.DateTimeField()
    duration_ms = serializers.IntegerField()


class RowOutput(serializers.Serializer):
    rank = serializers.IntegerField(help_text="1 + the models of the same component rated strictly higher.")
    rank_ub = serializers.IntegerField(
        help_text="1 + the models of the same component whose ci_low exceeds this model's ci_high.")
    model = serializers.CharField(help_text="The contender's name when the snapshot was fitted.")
    organization = serializers.CharField(source="contender.organization")
    license = serializers.CharField(source="contender.license")
    rating = serializers.FloatField()
    ci_low = serializers.FloatField(
        allow_null=True, help_text="Lower end of the 95 % interval. null = unbounded below (-inf): in some bootstrap "
                                   "resamples the model never won (see ci_degenerate_share); method=bayes bounds it.")
    ci_high = serializers.FloatField(
        allow_null=True, help_text="Upper end of the 95 % interval. null = unbounded above (+inf): in some bootstrap "
                                   "resamples the model never lost (see ci_degenerate_share); method=bayes bounds it.")
    votes = serializers.FloatField()
    mu = serializers.FloatField(allow_null=True)
    sigma = serializers.FloatField(allow_null=True)
    p_best = serializers.FloatField(allow_null=True)
    component = serializers.IntegerField(
        help_text="Connected component of the comparison graph (models linked by battles, even indirectly): 1 = the "
                  "one with the most votes. Ratings, ranks and intervals compare models only within a component.")
    provisional = serializers.BooleanField(
        help_text="Fewer votes than the snapshot's params.provisional_votes. For bt / pl / elo the interval is then at "
                  "least the model-based (Fisher) one.")
    ci_degenerate_share = serializers.FloatField(
        allow_null=True, help_text="Bootstrap only (else null): share of resamples in which the model never won, "
                                   "never lost or had no battle, so that its strength had no finite estimate.")


class LeaderboardOutput(serializers.Serializer):
    snapshot = SnapshotOutput()
    rows = RowOutput(many=True, help_text="By component (1 first), then rank.")
    style_coefficients = serializers.JSONField()


def _config(request: Request) -> LeaderboardConfig:
    params = request.query_params.dict()
    for name, value in params.items():
        if "\x00" in value:  # a NUL reached Postgres in a filter (category=a%00b): a 500
            raise ValidationFailed("must not contain NUL characters", field=name)
    return LeaderboardConfig.from_query(params)


def _etag(content: bytes) -> str:
    """A strong validator of the bytes served: the rows carry live contender metadata (organization,
    license), so the snapshot's id alone would keep serving 304s after an edit."""
    return '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def _not_modified(request: Request, etag: str) -> bool:
    return etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]


def leaderboard_body(snapshot: Snapshot) -> dict[str, Any]:
    rows = sorted(snapshot.rows.all(), key=lambda r: (r.component, r.rank, -r.rating, r.model))
    return {"snapshot": SnapshotOutput(snapshot).data, "rows": RowOutput(rows, many=True).data,
            "style_coefficients": snapshot.style_coefficients}


CSV_COLUMNS = ["component", "rank", "rank_ub", "model", "organization", "license", "rating", "ci_low", "ci_high",
               "votes", "provisional", "ci_degenerate_share", "mu", "sigma", "p_best"]
# An interval end the data cannot bound is null in JSON; in the CSV it is written as what it means.
_UNBOUNDED = {"ci_low": "-inf", "ci_high": "inf"}


def leaderboard_csv(body: dict[str, Any]) -> str:
    """The rows as CSV: ``-inf`` / ``inf`` for unbounded interval ends, an empty cell for "not applicable"."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in body["rows"]:
        writer.writerow([_csv_cell(c, row[c]) for c in CSV_COLUMNS])
    return out.getvalue()


def _csv_cell(column: str, value: object) -> object:
    if value is None:
        return _UNBOUNDED.get(column, "")
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


# Long enough that a popular leaderboard is rendered once per snapshot, short enough that nothing lingers.
RENDERED_TTL_S = 600


def leaderboard_rendered(snapshot: Snapshot, fmt: str) -> tuple[bytes, str]:
    """The leaderboard of ``snapshot`` as served in ``fmt`` (json or csv), and its ETag.

    Rendered once per snapshot and contender metadata (:func:`contender_metadata_version`) into the shared cache:
    a read then costs the snapshot lookup, the metadata version and one cache GET instead of loading the rows and
    serializing them (6 statements and two renderings of the body before). The key holds the snapshot's creation
    time as well as its id: a database recreated under a cache that outlived it reuses ids.
    """
    key = (f"leaderboard:rendered:{snapshot.id}:{snapshot.created.timestamp()}:{fmt}:"
           f"{contender_metadata_version()}")
    if (cached := cache.get(key)) is not None:
        return cached
    body = leaderboard_body(snapshot_with_rows(snapshot.id))
    content = leaderboard_csv(body).encode() if fmt == "csv" else JSONRenderer().render(body)
    rendered = (content, _etag(content))
    cache.set(key, rendered, timeout=RENDERED_TTL_S)
    return rendered


# A snapshot is fitted on demand: a fit that cannot converge is a 422 (leaderboard.services.FitFailed).
NOT_MODIFIED_AND_FIT_FAILED: dict[int, Any] = {
    304: OpenApiResponse(description="Not modified: the client's If-None-Match names this ETag."),
    422: error_response("The fit did not converge on these votes (code fit_failed)."),
}


class MatrixOutput(serializers.Serializer):
    snapshot_id = serializers.IntegerField()
    kind = serializers.CharField()
    models = serializers.ListField(child=serializers.CharField())
    matrix = serializers.ListField(child=serializers.ListField(child=serializers.FloatField(allow_null=True)),
                                   help_text="(M x M) over `models`, row by row; null where undefined.")


class LeaderboardApi(APIView):
    throttle_classes = [FixedWindowScopedThrottle]
    throttle_scope = "leaderboard"

    @extend_schema(parameters=[*CONFIG_PARAMETERS, OpenApiParameter("format", str, enum=["json", "csv"])],
                   responses={(200, "application/json"): LeaderboardOutput, (200, "text/csv"): OpenApiTypes.STR,
                              **NOT_MODIFIED_AND_FIT_FAILED},
                   operation_id="leaderboard_retrieve",
                   description="Latest snapshot of this configuration (fitted on demand if there is none): rows "
                               "with contender metadata, and provenance (n_votes, data hash, created, params). Rows "
                               "come by component of the comparison graph (1 = most votes), ranked within it. A null "
                               "ci_low / ci_high means unbounded on that side. format=csv gives the same rows as "
                               "CSV (columns " + ", ".join(CSV_COLUMNS) + "), with -inf / inf for unbounded ends.")
    def get(self, request: Request) -> Response | HttpResponse:
        fmt = request.query_params.get("format", "json")
        if fmt not in ("json", "csv"):
            raise ValidationFailed("must be json or csv", field="format")
        snapshot = snapshot_serve(config=_config(request))
        content, etag = leaderboard_rendered(snapshot, fmt)
        if _not_modified(request, etag):
            return HttpResponse(status=304, headers={"ETag": etag})
        response = HttpResponse(content, content_type="text/csv; charset=utf-8" if fmt == "csv" else
                                "application/json")
        if fmt == "csv" or request.query_params.get("download"):
            response["Content-Disposition"] = f'attachment; filename="leaderboard-{snapshot.id}.{fmt}"'
        response["ETag"] = etag
        response["Cache-Control"] = "public, max-age=0, must-revalidate"
        return response


class LeaderboardMatrixApi(APIView):
    throttle_classes = [FixedWindowScopedThrottle]
    throttle_scope = "leaderboard"

    KINDS = ("winrate", "count", "predicted")

    @extend_schema(parameters=[*CONFIG_PARAMETERS, OpenApiParameter("kind", str, enum=list(KINDS))],
                   responses={200: MatrixOutput, **NOT_MODIFIED_AND_FIT_FAILED}, operation_id="leaderboard_matrix",
                   description="(M x M) matrix over `models`: empirical win rate of row over column (ties "
                               "count half), battle counts, or the fitted probability that row beats column.")
    def get(self, request: Request) -> Response | HttpResponse:
        kind = request.query_params.get("kind", "winrate")
        if kind not in self.KINDS:
            raise ValidationFailed(f"must be one of {', '.join(self.KINDS)}", field="kind")
        snapshot = snapshot_serve(config=_config(request))
        if kind not in snapshot.matrices:
            raise ValidationFailed("this leaderboard has no pairwise votes to build matrices from", field="kind")
        etag = _etag(f"{snapshot.id}:{kind}".encode())  # matrices are immutable parts of the snapshot
        if _not_modified(request, etag):
            return HttpResponse(status=304, headers={"ETag": etag})
        response = Response({"snapshot_id": snapshot.id, "kind": kind, "models": snapshot.models_order,
                             "matrix": snapshot.matrices[kind]})
        response["ETag"] = etag
        return response
