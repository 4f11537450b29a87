"""Who is asking: the request's voter, from the logged-in user or the anonymous cookie."""
from __future__ import annotations

from django.http import HttpRequest

from .models import Voter
from .services import voter_get_or_create


def voter_key_for_request(request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"anon:{request.arena_anon_id}"  # type: ignore[attr-defined]


def voter_for_read(request: HttpRequest) -> Voter | None:
    """The request's voter if it has one: reads never create voters (a stranger's GET stores nothing)."""
    return Voter.objects.filter(key=voter_key_for_request(request)).first()


def voter_from_request(request: HttpRequest) -> Voter:
    user = getattr(request, "user", None)
    return voter_get_or_create(
        key=voter_key_for_request(request),
        user=user if user is not None and user.is_authenticated else None,
        ip=request.META.get("REMOTE_ADDR", ""),
    )
