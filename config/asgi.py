"""The ASGI application: what `make serve` (gunicorn with uvicorn workers) serves; streamed answers need it."""
from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_asgi_application()

from config.settings import refuse_weak_secret_key  # noqa: E402  (after setup: it reads the configured settings)

refuse_weak_secret_key()  # a server loading the site with DEBUG off on a guessable key stops here
