"""Who is asking: the request's voter, from the logged-in user or the anonymous cookie."""
from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from .models import Voter
from .services import voter_get_or_create


def client_ip(request: HttpRequest) -> str:
    """The client's address, trusting X-Forwarded-For only as far as the configured proxies append to it.

    Each trusted proxy appends the address it received the request from, so with N trusted proxies the
    N-th entry from the right is the address our outermost proxy saw: anything left of it was written
    by the client and may be forged. With no trusted proxy the header is ignored altogether.
    """
    trusted = settings.ARENA_TRUSTED_PROXIES
    remote = request.META.get("REMOTE_ADDR", "")
    if trusted <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if not forwarded:
        return remote
    # Fewer entries than proxies: the request did not come through all of them, so none is trustworthy.
    return forwarded[-trusted] if len(forwarded) >= trusted else remote


def voter_key_for_request(request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"anon:{request.arena_anon_id}"  # type: ignore[attr-defined]


# The request's voter, looked up once per request: a vote request needs it for the stalled check, the vote and the
# revealed battle. Kept on the HttpRequest (a DRF Request wraps it) with the key it was found under: the key
# changes when the request logs a user in.
_VOTER_ATTR = "_arena_voter"


def _remembered(request: HttpRequest, key: str) -> tuple[bool, Voter | None]:
    """(whether this request already looked ``key`` up, the voter it found)."""
    known = getattr(getattr(request, "_request", request), _VOTER_ATTR, None)
    return (True, known[1]) if known is not None and known[0] == key else (False, None)


def _remember(request: HttpRequest, key: str, voter: Voter | None) -> None:
    setattr(getattr(request, "_request", request), _VOTER_ATTR, (key, voter))


def voter_for_read(request: HttpRequest) -> Voter | None:
    """The request's voter if it has one: reads never create voters (a stranger's GET stores nothing)."""
    key = voter_key_for_request(request)
    looked_up, voter = _remembered(request, key)
    if not looked_up:
        voter = Voter.objects.filter(key=key).first()
        _remember(request, key, voter)
    return voter


def voter_from_request(request: HttpRequest) -> Voter:
    key = voter_key_for_request(request)
    _, voter = _remembered(request, key)
    if voter is None:
        user = getattr(request, "user", None)
        voter = voter_get_or_create(
            key=key, user=user if user is not None and user.is_authenticated else None, ip=client_ip(request),
        )
        _remember(request, key, voter)
    return voter
