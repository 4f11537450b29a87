"""Project-wide request guards that must run before any view reads the request."""
from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from config.errors import _json_or_default


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
