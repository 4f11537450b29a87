"""The site's settings with one URL and no middleware (see the package docstring)."""
from __future__ import annotations

from config.settings import *  # noqa: F403  (the same database, pool and apps as the site)

ROOT_URLCONF = "benchmarks.minimal_site.urls"
MIDDLEWARE: list[str] = []
