"""Domain errors and the one place that maps them (and DRF's own) to JSON HTTP responses.

Every API error body has the shape ``{"error": {"code", "message", "fields"?}}`` so that clients
handle one format, whatever raised it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.http import Http404

if TYPE_CHECKING:
    # Imported where used: services and management commands raise these errors, and importing DRF (with
    # drf-spectacular, django.test and jinja2 behind it) would add ~0.2 s to every command's start-up.
    from rest_framework import exceptions as drf_exceptions
    from rest_framework.response import Response


class ApplicationError(Exception):
    """Base for errors a service raises on purpose; ``status`` is the HTTP code an API maps it to."""

    status: int = 400
    code: str = "invalid"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    def as_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["fields"] = {self.field: [self.message]}
        return {"error": body}


class ValidationFailed(ApplicationError):
    status = 400
    code = "invalid_input"


class NotFound(ApplicationError):
    status = 404
    code = "not_found"


class Forbidden(ApplicationError):
    status = 403
    code = "forbidden"


class Conflict(ApplicationError):
    status = 409
    code = "conflict"


def _drf_error_body(exc: drf_exceptions.APIException) -> dict[str, Any]:
    from rest_framework import exceptions as drf_exceptions

    detail = exc.detail
    if isinstance(exc, drf_exceptions.ValidationError):
        fields = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        names = ", ".join(fields) or "request"
        return {"error": {"code": "invalid_input", "message": f"invalid fields: {names}", "fields": fields}}
    code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
    return {"error": {"code": code, "message": str(detail)}}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    from rest_framework import exceptions as drf_exceptions
    from rest_framework.response import Response
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, ApplicationError):
        response = Response(exc.as_body(), status=exc.status)
        if (retry_after := getattr(exc, "retry_after", None)) is not None:
            response["Retry-After"] = str(retry_after)
        return response
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, drf_exceptions.APIException):
        response.data = _drf_error_body(exc)
    return response


def _json_or_default(request, status: int, code: str, message: str, default):  # type: ignore[no-untyped-def]
    from django.http import JsonResponse

    if request.path.startswith("/api/"):
        return JsonResponse({"error": {"code": code, "message": message}}, status=status)
    return default


def handler404(request, exception=None):  # type: ignore[no-untyped-def]
    """Unknown URLs (including malformed battle ids) under /api/ answer in the API's JSON error shape."""
    from django.views import defaults

    return _json_or_default(request, 404, "not_found", "no such resource",
                            defaults.page_not_found(request, exception))


def handler400(request, exception=None):  # type: ignore[no-untyped-def]
    """Django-level 400s (a body over DATA_UPLOAD_MAX_MEMORY_SIZE, say) under /api/ answer in JSON too."""
    from django.views import defaults

    return _json_or_default(request, 400, "bad_request", str(exception) if exception else "bad request",
                            defaults.bad_request(request, exception))


def handler500(request):  # type: ignore[no-untyped-def]
    """A server error under /api/ still answers in the API's JSON shape (clients parse one format)."""
    from django.views import defaults

    return _json_or_default(request, 500, "server_error", "internal server error", defaults.server_error(request))
