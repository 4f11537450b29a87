"""Project-wide request guards: limits checked before any view reads the request, and answers for failures
that no view can handle itself."""
from __future__ import annotations

import html
import logging
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from config.errors import _json_or_default

logger = logging.getLogger(__name__)

# What a client is told to wait while the database is unreachable: a Postgres restart or fail-over takes seconds.
DATABASE_RETRY_AFTER_S = 5


class RequestBodyLimitMiddleware:
    """Refuse a body declared larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE`` with 413, before anything reads it.

    Django enforces that setting only when ``request.body`` or ``request.POST`` is read; DRF's JSON
    parser reads the stream instead, so without this an API request of any size would be read into
    memory and parsed. The check uses the declared ``Content-Length``: Django's WSGI request never
    reads past it (a body without one, e.g. chunked, is read as empty), so it bounds what is read.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django reads a malformed Content-Length as no body at all
        if limit is not None and length > limit:
            message = f"the request body is {length} bytes; the limit is {limit} bytes"
            return _json_or_default(request, 413, "request_too_large", message,
                                    HttpResponse(message, status=413, content_type="text/plain; charset=utf-8"))
        return self.get_response(request)


class DatabaseUnavailableMiddleware:
    """Answer 503 with ``Retry-After`` (not 500) when a view cannot reach the database.

    Django raises ``OperationalError`` or ``InterfaceError`` for a refused, lost or closed connection (a restart,
    a fail-over, the network), and for the other failures that sending the same request again may cure (a
    deadlock, a cancelled statement). A 503 with ``Retry-After`` tells clients and load balancers just that; a
    vote sent again with its ``Idempotency-Key`` is stored at most once, even if the first attempt committed
    before the connection broke. API requests get the API's JSON error body; pages get a short page built without
    a template, whose context processors would query the database again.

    ``process_exception`` sees what views raise, DRF views included (DRF re-raises what its own handler does not
    map). The failed connection is not reused: Django closes a connection that had errors at the end of the
    request, and ``CONN_HEALTH_CHECKS`` (config/settings.py) tests a kept-open one before a request uses it, so
    the service recovers as soon as the database is back, without a restart.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        # One line, no traceback: an outage fails every request, and the first line names the cause.
        cause = (str(exception).strip().splitlines() or [type(exception).__name__])[0]
        logger.warning("database unavailable: %s %s answered 503: %s", request.method, request.path, cause)
        message = f"The service is briefly unavailable. Try again in {DATABASE_RETRY_AFTER_S} s."
        page = HttpResponse(f"<!doctype html><title>Temporarily unavailable</title><h1>Temporarily unavailable</h1>"
                            f"<p>{html.escape(message)}</p>", status=503, content_type="text/html; charset=utf-8")
        response = _json_or_default(request, 503, "service_unavailable", message, page)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
        return response
