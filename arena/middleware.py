"""Gives every browser a stable anonymous voter id in a signed cookie."""
from __future__ import annotations

import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.signing import BadSignature
from django.http import HttpRequest, HttpResponse

SALT = "arena.voter"


class VoterCookieMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        name = settings.ARENA_VOTER_COOKIE
        try:
            anon_id = request.get_signed_cookie(name, salt=SALT)
            is_new = False
        except (KeyError, BadSignature):
            # A missing or forged cookie starts a fresh identity; a forged one never inherits a voter.
            anon_id, is_new = uuid.uuid4().hex, True
        request.arena_anon_id = anon_id  # type: ignore[attr-defined]
        response = self.get_response(request)
        if is_new:
            response.set_signed_cookie(
                name, anon_id, salt=SALT, max_age=settings.ARENA_VOTER_COOKIE_MAX_AGE, httponly=True, samesite="Lax",
                secure=not settings.DEBUG and request.is_secure(),
            )
        return response
