"""CSRF for anonymous visitors on the JSON API.

DRF checks CSRF only for session-authenticated users. An anonymous visitor acts through the signed
voter cookie, which the browser attaches to any request, so a cross-site page could open battles or
vote in their name. This authenticator runs last: when no token, session or password identified the
request, it applies Django's CSRF check to unsafe methods, then lets the request go on anonymously.
Clients that are not browsers use a token (``Authorization: Token ...``), which needs no CSRF.
"""
from __future__ import annotations

from django.conf import settings
from django.middleware.csrf import CsrfViewMiddleware
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request, reason):  # type: ignore[no-untyped-def]
        return reason  # return the reason instead of a response: we raise it as a DRF error


class VoterCookieAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> None:
        check = _CsrfCheck(lambda req: None)  # type: ignore[arg-type,return-value]
        check.process_request(request._request)
        reason = check.process_view(request._request, None, (), {})
        if reason:
            raise exceptions.PermissionDenied(f"CSRF failed: {reason}")
        return None


class VoterCookieScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes cookie voters: the signed anonymous cookie, plus the CSRF header."""

    target_class = "arena.auth.VoterCookieAuthentication"
    name = "voterCookie"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {"type": "apiKey", "in": "cookie", "name": settings.ARENA_VOTER_COOKIE,
                "description": "Signed anonymous voter cookie; unsafe methods also need the X-CSRFToken header."}
