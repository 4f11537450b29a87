"""The CAPTCHA hook: off unless ``ARENA_CAPTCHA_VERIFIER`` names a verifier.

A verifier is any callable ``(request, token) -> bool`` (for hCaptcha, Turnstile or reCAPTCHA it posts
the token to the provider). The arena calls it before opening a battle; the page and API clients send
the token as the ``captcha`` field or the ``X-Captcha-Token`` header.
"""
from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest
from django.utils.module_loading import import_string

from config.errors import Forbidden


class CaptchaFailed(Forbidden):
    code = "captcha_failed"


def captcha_verifier() -> Callable[[HttpRequest, str], bool] | None:
    path = settings.ARENA_CAPTCHA_VERIFIER
    return import_string(path) if path else None


def captcha_enforce(request: HttpRequest, *, token: str) -> None:
    """Raise CaptchaFailed unless no CAPTCHA is configured or the verifier accepts ``token``."""
    verifier = captcha_verifier()
    if verifier is None:
        return
    if not token or not verifier(request, token):
        raise CaptchaFailed("the CAPTCHA was missing or not accepted", field="captcha")
