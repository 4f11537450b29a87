"""Settings for the arena service: one module, every knob read from the environment.

Unset variables fall back to development defaults only where that is safe; a production start
(DEBUG off) without SECRET_KEY refuses to boot rather than run with a guessable key, and the site is not
served (config.asgi / config.wsgi) on a weak one.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(f"environment variable {name} is required")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    try:
        return default if raw in (None, "") else int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from exc


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", default=False)
DEV_SECRET_KEY = "dev-only-insecure-secret-key"
SECRET_KEY = env_str("SECRET_KEY", default=DEV_SECRET_KEY if DEBUG else None)
# Django's own deploy check (security.W009) asks for this much: a key an attacker cannot guess lets them
# forge voter cookies and sessions. Generate one with `python -c "import secrets; print(secrets.token_urlsafe(50))"`.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5


def secret_key_weakness(key: str) -> str | None:
    """Why ``key`` is too weak to sign a public site's cookies, or None when it is strong enough."""
    if key == DEV_SECRET_KEY or key.startswith("django-insecure-"):
        return "it is a published development key"
    if len(key) < SECRET_KEY_MIN_LENGTH:
        return f"it has {len(key)} characters (at least {SECRET_KEY_MIN_LENGTH} are needed)"
    if len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS:
        return f"it uses fewer than {SECRET_KEY_MIN_UNIQUE_CHARACTERS} different characters"
    return None


def refuse_weak_secret_key() -> None:
    """Raise ImproperlyConfigured when the site is about to be served with DEBUG off on a guessable key.

    Called by config.asgi and config.wsgi (what gunicorn, uvicorn or runserver load to serve the site), not at
    settings import: management commands, benchmarks and the test suite run with DEBUG off on throwaway keys
    and serve no visitor, and refusing them would only make every script invent a long key.
    """
    from django.conf import settings

    if not settings.DEBUG and (why := secret_key_weakness(settings.SECRET_KEY)):
        raise ImproperlyConfigured(f"SECRET_KEY is too weak to serve the site with DEBUG off: {why}. Generate one "
                                   'with: python -c "import secrets; print(secrets.token_urlsafe(50))"')


ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
# Behind a TLS-terminating proxy, trust its X-Forwarded-Proto so request.is_secure() (and so the
# voter cookie's Secure flag) is right. Only set this when the proxy overwrites the header.
if env_bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Served over HTTPS (the default with DEBUG off): session and CSRF cookies only over HTTPS, plain-HTTP requests
# redirected to HTTPS, and browsers told to use nothing else (HSTS). SECURE_COOKIES=0 turns all three off at once
# for a plain-HTTP site on a trusted network (and the test suite's live server); each may be set on its own too.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", default=not DEBUG)
# Behind a TLS-terminating proxy the redirect needs TRUST_X_FORWARDED_PROTO=1, or every request looks like plain
# HTTP and is redirected forever; turn it off (SECURE_SSL_REDIRECT=0) where the proxy itself redirects port 80.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=SESSION_COOKIE_SECURE)
# HSTS is sent only on HTTPS responses. A year is what browsers' preload lists ask for; the preload directive only
# allows a submission to hstspreload.org, it submits nothing. Set SECURE_HSTS_INCLUDE_SUBDOMAINS=0 if subdomains
# of the arena's host name must stay reachable over plain HTTP.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if SESSION_COOKIE_SECURE else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_tasks",
    "django_tasks_db",
    "arena",
    "leaderboard",
    "judges",
    "trainer",
]

MIDDLEWARE = [
    # First: an over-long body is refused (413) before any other middleware or view can read it.
    "config.middleware.RequestBodyLimitMiddleware",
    # A view that cannot reach the database answers 503 + Retry-After instead of 500 (its process_exception).
    "config.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files from STATIC_ROOT (collectstatic) straight from the web process: right after the security
    # middleware (so HTTPS redirects and HSTS still apply), before anything that reads sessions or the database.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "arena.middleware.VoterCookieMiddleware",
]
# Largest request body accepted, in bytes (413 above it, config.middleware). The largest legitimate body is a
# staff battle with given responses: a 100,000-character prompt and 6 answers of 200,000 characters, 1.3 M
# characters, which JSON clients that escape non-ASCII (Python's json, requests) send as up to ~7.8 MB.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BODY_BYTES", 8 * 1024 * 1024)

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite file in the project folder when DATABASE_URL is unset (the demo); Postgres for anything concurrent.
# A connection is kept open for DB_CONN_MAX_AGE seconds and tested before each request reuses it (health checks):
# after a database restart a kept-open connection is dead, and without the test the first request of every web
# process would fail on it before Django replaced it.
#
# DB_POOL_MAX_SIZE > 0 (Postgres only; `make serve` sets 4) keeps a pool of that many connections per process
# instead (psycopg_pool, through Django's OPTIONS["pool"]). Under ASGI every request runs in a thread of its own,
# so a thread-local persistent connection is never reused: without a pool each request pays a new Postgres
# session (~7 ms of its ~10 ms on a small read, measured). The pool hands a connection to the request and takes it
# back at its end; it tests the connection first (health checks), so a database restart costs the requests in
# flight only. A request that finds every pooled connection busy waits up to DB_POOL_TIMEOUT_S for one, then fails
# with 503 (OperationalError): the pool bounds the connections a web process holds, so web processes x
# DB_POOL_MAX_SIZE (+ the tasks worker's) must stay below Postgres's max_connections.
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 0)
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=0 if DB_POOL_MAX_SIZE > 0 else env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # An unreachable host (not a refused port) would otherwise hold each request for the TCP timeout, minutes.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", env_int("DB_CONNECT_TIMEOUT_S", 5))
    if DB_POOL_MAX_SIZE > 0:
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": min(env_int("DB_POOL_MIN_SIZE", 1), DB_POOL_MAX_SIZE), "max_size": DB_POOL_MAX_SIZE,
            # Short: a request that waited seconds for a connection is better answered 503 (load shedding, and
            # quickly while the database is down) than held.
            "timeout": env_int("DB_POOL_TIMEOUT_S", 3),
            # A pool connection not used for this long is closed (down to min_size): idle processes give theirs back.
            "max_idle": 60,
            # A failed reconnection is retried after 1 s, then 2 s, ... until this many seconds have passed; then the
            # next request starts over at once. Short, so that the wait after a long outage stays a few seconds.
            "reconnect_timeout": 4,
        }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo's generation threads write while requests read: take the write lock when a transaction
    # starts (instead of failing "database is locked" on upgrade) and wait for it rather than erroring.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
# Redis down: the cache answers "nothing there" instead of raising (django-redis's IGNORE_EXCEPTIONS), so what
# only uses it as a cache or a throttle keeps working (pages, leaderboard, battle reads); the vote and battle rate
# limits notice that nothing was counted and refuse (arena/ratelimit.py: fail closed), a log line each. (Not
# DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS: a traceback per cache call would flood the log during an outage.) Short
# socket timeouts: a call to an unreachable host must cost a second at most, not the TCP timeout.
REDIS_CACHE_OPTIONS = {"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1}
CACHES = {
    "default": (
        {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": REDIS_URL, "OPTIONS": REDIS_CACHE_OPTIONS}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "arena"}
    )
}

# Background work (leaderboard refits, judge runs, training jobs) goes through the Django Tasks API,
# stored in the database so that any host reaching it can run `manage.py db_worker`.
TASKS = {
    "default": {
        "BACKEND": env_str("TASKS_BACKEND", "django_tasks_db.DatabaseBackend"),
        "QUEUES": ["default", "gpu"],
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# `manage.py collectstatic` (run by `make serve`) copies every app's static files here; WhiteNoise serves them,
# gzip-compressed, with no web server in front needed. The default folder is in the checkout, empty (its contents
# git-ignored): WhiteNoise warns about a missing one on every handler it builds, in the test suite too.
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Compressed but not hashed names: `{% static %}` then works without a collectstatic manifest (the test suite,
    # runserver), and the few small assets are cached for WHITENOISE_MAX_AGE (60 s) instead of forever.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Under ASGI, Django reads WhiteNoise's (synchronous) file responses whole before sending them, and warns on every one:
# right for our few small assets, and noise in the log of each static request. The arena's own answer stream is an
# async iterator under ASGI (tests/arena/test_access_gate.py checks that directly, not through this warning).
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
        # Last: a visitor known only by the anonymous cookie must send the CSRF token on writes too.
        "arena.auth.VoterCookieAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's JSON parser with a nesting cap: 10,000 nested brackets were a RecursionError (500), now a 400.
    "DEFAULT_PARSER_CLASSES": ["config.parsers.DepthLimitedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Leaderboard requests may start a fit: limit them per client (the cache above keeps the counts).
    "DEFAULT_THROTTLE_RATES": {"leaderboard": os.environ.get("LEADERBOARD_RATE_LIMIT", "120/minute")},
    # `?format=` belongs to our own endpoints (leaderboard CSV / JSON), not to DRF's renderer choice.
    "URL_FORMAT_OVERRIDE": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Arena API",
    "DESCRIPTION": "Pairwise and K-wise votes on anonymous model responses, and the leaderboards fitted from them.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI assets come from drf-spectacular-sidecar: the docs page works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Every operation documents its error responses in the one error shape (config/schema.py); the first
    # hook is drf-spectacular's default, kept.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "config.schema.document_error_responses"],
}

# The arena
# Aspects a vote may rate separately (Multi-Elo leaderboards, one per aspect).
ARENA_VOTE_ASPECTS = env_list("ARENA_VOTE_ASPECTS", "correctness,helpfulness,style")
ARENA_VOTER_COOKIE = "arena_voter"
# The background refit runs when this many new votes arrived, or this many minutes passed with any.
LEADERBOARD_REFIT_VOTES = env_int("LEADERBOARD_REFIT_VOTES", 100)
LEADERBOARD_REFIT_MINUTES = env_int("LEADERBOARD_REFIT_MINUTES", 10)
ARENA_VOTER_COOKIE_MAX_AGE = 60 * 60 * 24 * 365
# Live battles. An unvoted battle expires after this long; a conversation may continue this many turns.
ARENA_BATTLE_TTL_MINUTES = env_int("ARENA_BATTLE_TTL_MINUTES", 24 * 60)
ARENA_MAX_TURNS = env_int("ARENA_MAX_TURNS", 5)
ARENA_PROMPT_MAX_CHARS = env_int("ARENA_PROMPT_MAX_CHARS", 20_000)
# A turn whose sources have not all answered after this long voids its battle.
ARENA_GENERATION_TIMEOUT_S = env_int("ARENA_GENERATION_TIMEOUT_S", 180)
# Threads per web process that call the response sources (each source call holds one while it runs).
ARENA_GENERATION_THREADS = env_int("ARENA_GENERATION_THREADS", 32)
# How often streamed text is released to visitors (all slots in lockstep; see arena/live/pacing.py).
ARENA_STREAM_TICK_MS = env_int("ARENA_STREAM_TICK_MS", 50)
# Pooled (pre-written) answers stream at this pace when the arena also has live models, so that they do
# not stand out by appearing at once (0: all at once).
ARENA_POOL_STREAM_CHARS_PER_S = float(env_str("ARENA_POOL_STREAM_CHARS_PER_S", "300"))
# Matchmaking: which policy picks the K contenders, and its parameters (arena/matchmaking/).
ARENA_MATCHMAKING_POLICY = env_str("ARENA_MATCHMAKING_POLICY", "weighted")
ARENA_MATCHMAKING_NEW_BOOST = float(env_str("ARENA_MATCHMAKING_NEW_BOOST", "3.0"))
ARENA_MATCHMAKING_NEW_UNTIL_VOTES = env_int("ARENA_MATCHMAKING_NEW_UNTIL_VOTES", 300)
# `active` (uncertainty-driven, reads the latest default leaderboard): the chance that a battle's pivot is
# drawn uniformly instead, so that no contender is starved (each keeps at least this share / M).
ARENA_MATCHMAKING_MIN_SHARE = float(env_str("ARENA_MATCHMAKING_MIN_SHARE", "0.1"))
# A source that failed this many times in a row is left out of matchmaking for the cool-down.
ARENA_SOURCE_FAILURE_LIMIT = env_int("ARENA_SOURCE_FAILURE_LIMIT", 3)
ARENA_SOURCE_COOLDOWN_S = env_int("ARENA_SOURCE_COOLDOWN_S", 300)
# Abuse protection. Rates are "N/second|minute|hour|day", per voter and per client address.
ARENA_BATTLE_RATE_LIMIT = env_str("ARENA_BATTLE_RATE_LIMIT", "20/minute")
ARENA_BATTLE_IP_RATE_LIMIT = env_str("ARENA_BATTLE_IP_RATE_LIMIT", "120/minute")
ARENA_VOTE_RATE_LIMIT = env_str("ARENA_VOTE_RATE_LIMIT", "30/minute")
ARENA_VOTE_IP_RATE_LIMIT = env_str("ARENA_VOTE_IP_RATE_LIMIT", "300/minute")
# Proxies in front of the service that append to X-Forwarded-For. 0: the header is ignored and the
# socket's address is the client's; N: the N-th address from the right is (the one our nearest proxy saw).
ARENA_TRUSTED_PROXIES = env_int("ARENA_TRUSTED_PROXIES", 0)
# Anomalous voters (Chiang et al. 2024, section 5.1; arena/anomaly.py): Fisher's test at these vote counts,
# at this overall level, judging only votes whose ordered pair has this much history from other voters.
ARENA_ANOMALY_ALPHA = float(env_str("ARENA_ANOMALY_ALPHA", "0.01"))
ARENA_ANOMALY_CHECKPOINTS = tuple(int(n) for n in env_list("ARENA_ANOMALY_CHECKPOINTS", "5,10,20,50,100"))
ARENA_ANOMALY_MIN_PAIR_HISTORY = env_int("ARENA_ANOMALY_MIN_PAIR_HISTORY", 20)
ARENA_ANOMALY_DRAW_HABIT = env_bool("ARENA_ANOMALY_DRAW_HABIT", default=False)
# The per-model test (an identity's votes on battles showing one model, however many other votes it casts): at
# these judged-vote counts ("none": off), this level, for models with at least MIN_MODEL_VOTES of its votes. And
# the voters sharing an address (Voter.ip_hash) tested as one identity as well (arena/moderation.py).
ARENA_ANOMALY_MODEL_CHECKPOINTS = tuple(
    int(n) for n in env_list("ARENA_ANOMALY_MODEL_CHECKPOINTS", "20,50,100,200,500,1000,2000,5000") if n != "none")
ARENA_ANOMALY_MODEL_ALPHA = float(env_str("ARENA_ANOMALY_MODEL_ALPHA", "0.01"))
ARENA_ANOMALY_MIN_MODEL_VOTES = env_int("ARENA_ANOMALY_MIN_MODEL_VOTES", 10)
ARENA_ANOMALY_BY_ADDRESS = env_bool("ARENA_ANOMALY_BY_ADDRESS", default=True)
# Typed prompts voted on more often than this percentile of prompts (and at least MIN_COUNT times) keep their
# first KEEP votes rated; the rest are flagged duplicate_prompt (kept, not counted).
ARENA_DUPLICATE_PROMPT_PERCENTILE = float(env_str("ARENA_DUPLICATE_PROMPT_PERCENTILE", "99.9"))
ARENA_DUPLICATE_PROMPT_MIN_COUNT = env_int("ARENA_DUPLICATE_PROMPT_MIN_COUNT", 10)
ARENA_DUPLICATE_PROMPT_KEEP = env_int("ARENA_DUPLICATE_PROMPT_KEEP", 5)
# After a vote, moderation (both checks) runs at most once per this many seconds (manage.py db_worker).
ARENA_MODERATION_DEBOUNCE_SECONDS = env_int("ARENA_MODERATION_DEBOUNCE_SECONDS", 300)
# Dotted path of a callable (request, token) -> bool that verifies a CAPTCHA token; empty = no CAPTCHA.
ARENA_CAPTCHA_VERIFIER = env_str("ARENA_CAPTCHA_VERIFIER", "")

# Training jobs: where a worker keeps each job's files (resumed from there on retry), and how long a running
# job may go without reporting before the watchdog marks it failed.
TRAINER_OUTPUT_ROOT = env_str("TRAINER_OUTPUT_ROOT", str(BASE_DIR / "training_runs"))
TRAINER_HEARTBEAT_TIMEOUT_S = env_int("TRAINER_HEARTBEAT_TIMEOUT_S", 300)
# The automatic loop from votes to a tuned model (off by default): once this many new eligible votes have
# come in since the last automatic dataset, build one with the filters of TRAINER_TRIGGER_FILE (JSON:
# {"filters", "mode", "keep_ties", "config", "launcher", "nproc"}) and queue a job on it. 0 = off.
TRAINER_TRIGGER_VOTES = env_int("TRAINER_TRIGGER_VOTES", 0)
TRAINER_TRIGGER_FILE = env_str("TRAINER_TRIGGER_FILE", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
