"""The WSGI application, for servers without ASGI (the answer streams then hold a worker thread each)."""
from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from config.settings import refuse_weak_secret_key  # noqa: E402  (after setup: it reads the configured settings)

refuse_weak_secret_key()  # a server loading the site with DEBUG off on a guessable key stops here
