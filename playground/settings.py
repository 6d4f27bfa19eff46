"""Settings, read from the environment (every variable is listed in docs/configuration.md)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from playground.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_prices,
    env_secret,
    env_str,
)
from playground.secret_key import kept_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

# What the processes of one site keep on disk: the generated secret key (playground/secret_key.py).
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "data")))
# Set, or read from SECRET_KEY_FILE, or made on first start and kept in DATA_DIR/secret_key.
SECRET_KEY = env_secret("SECRET_KEY") or kept_secret_key(DATA_DIR)
# Off unless asked for (`make dev`): Django's debug pages list every URL pattern to a stranger.
DEBUG = env_bool("DEBUG", False)
# A request for any other host is refused with 400 and a log line naming this variable
# (playground/errors.py).
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])

# Behind a proxy that terminates TLS (deploy/nginx.conf): the scheme comes from its
# X-Forwarded-Proto (which it must set, overwriting the client's), cookies are sent over HTTPS
# only, plain HTTP is redirected, and browsers are told to stay on HTTPS for HSTS_SECONDS
# (start small; browsers remember it). `manage.py check --deploy` is clean with it.
HTTPS = env_bool("HTTPS", False)
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # A balancer's probes come over plain HTTP from inside.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("HSTS_SECONDS", 3600)
    # HSTS for every subdomain, and the browsers' preload list, bind the whole domain (for
    # months, past any undo): its owner's decision, off unless set. Off, Django's deploy checks
    # for them (W005, W021) have nothing to say.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HSTS_INCLUDE_SUBDOMAINS", False)
    SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", False)
    SILENCED_SYSTEM_CHECKS = [
        *([] if SECURE_HSTS_INCLUDE_SUBDOMAINS else ["security.W005"]),
        *([] if SECURE_HSTS_PRELOAD else ["security.W021"]),
    ]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "agents",
    "playground.apps.PlaygroundConfig",
]

MIDDLEWARE = [
    # First: its line has the status the client got and the time every other one took.
    "playground.access_log.access_log",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "playground.urls"
ASGI_APPLICATION = "playground.asgi.application"

TEMPLATES = [
    {
        # Django's, made to render lone surrogates as U+FFFD (playground/templating.py).
        "BACKEND": "playground.templating.ScalarTextTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "playground.protocol.page_constants",
            ],
        },
    },
]

# PostgreSQL in production (DATABASE_URL=postgres://...); SQLite in the checkout otherwise.
# Persistent connections: the ORM runs on one database thread (agents/dbthread.py), whose
# connection is checked at the start of each trip (closed if broken or older than
# DB_CONNECTION_LIFETIME seconds) rather than opened and closed around every browser frame.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DB_CONNECTION_LIFETIME", 600),
        conn_health_checks=True,
    )
}

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Readers (page views) never wait for the runner's writes; commits skip a sync per write.
    DATABASES["default"].setdefault("OPTIONS", {})["init_command"] = (
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    )

# With REDIS_URL: the channels-redis layer and the Redis context store. Without: both in memory,
# which only works for one process (system check playground.W001 says so when DEBUG is off).
REDIS_URL = env_str("REDIS_URL", "")
# Connections to Redis a process may open, in each of its two pools (the channel layer's, and
# the context store's: leases, feed logs); redis-py's default of 100 runs out under load.
REDIS_MAX_CONNECTIONS = 10_000
# Options of every connection to Redis (the channel layer's and the context store's).
REDIS_OPTIONS: dict[str, Any] = {
    # redis-py 8 times a read out after 5 s by default, which kills consumers idling in the
    # layer's blocking pop (close 1011): allow far longer.
    "socket_timeout": 60,
    "socket_connect_timeout": 5,
    "health_check_interval": 30,
    # After a Redis restart every pooled connection is dead, and redis-py does not retry by
    # default: each would fail one command (a socket, a relay, the mailbox). Reconnect and
    # retry instead, for ~2.5 s at most, which outlasts a restart.
    "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), 6),
    "retry_on_error": [RedisConnectionError],
}
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "max_connections": REDIS_MAX_CONNECTIONS,
                        **REDIS_OPTIONS,
                    }
                ],
                "capacity": 1_000,
                # Every browser socket of a process receives through one Redis list (its
                # channels are "specific.<process>!<socket>"), so a channel's capacity is the
                # whole process's: when a restart moves another process's tabs here, a second's
                # fan-out for all of them must fit, or batches are dropped and tabs stall until
                # they resync (bench restart).
                "channel_capacity": {"specific.*": 20_000},
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "agents.live.memory_layer.SweptInMemoryChannelLayer"}}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# `manage.py collectstatic` (make run does it) copies every static file, the admin's and
# django-htmx's too, into STATIC_ROOT under hashed names with gzip copies; the process serves
# them with far-future cache headers (playground/static_files.py, WhiteNoise), or nginx does from
# the same folder. Nothing is read from site-packages at run time. With DEBUG on, files are
# found where they are, unhashed, and re-read on each request.
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The embedded simulator, mounted at /v1/ in this process (the default upstream).
SIMULATOR_PROFILE = env_choice("SIMULATOR_PROFILE", "realistic", ("zero", "realistic"))
SIMULATOR_SEED = env_int("SIMULATOR_SEED", 0)
# The port daphne serves on; the embedded simulator is reached through it.
PORT = env_int("PORT", 8000)

# The upstream Responses endpoint. Without a base URL: api.openai.com when a key is set, else the
# embedded simulator, which accepts only this process's own random key from loopback.
OPENAI_API_KEY = env_secret("OPENAI_API_KEY")
UPSTREAM_BASE_URL = env_str("UPSTREAM_BASE_URL", "").rstrip("/")
UPSTREAM_IS_EMBEDDED = not UPSTREAM_BASE_URL and not OPENAI_API_KEY
if UPSTREAM_IS_EMBEDDED:
    UPSTREAM_BASE_URL = f"http://127.0.0.1:{PORT}/v1"
    # Known to this process alone (never shown, logged or stored): a visitor on the same port
    # can neither read nor continue another's responses.
    OPENAI_API_KEY = secrets.token_urlsafe(32)
elif not UPSTREAM_BASE_URL:
    UPSTREAM_BASE_URL = "https://api.openai.com/v1"
elif not OPENAI_API_KEY:
    raise ImproperlyConfigured(
        "UPSTREAM_BASE_URL is set but OPENAI_API_KEY (or OPENAI_API_KEY_FILE) is empty; "
        "set any non-empty value for an upstream without authentication."
    )
UPSTREAM_MODEL = env_str("UPSTREAM_MODEL", "sim" if UPSTREAM_IS_EMBEDDED else "gpt-5-mini")
# How long a session's upstream socket outlives its last browser socket.
IDLE_GRACE_SECONDS = env_float("IDLE_GRACE_SECONDS", 300.0)

# What a step costs (playground/costs.py): USD per million tokens, [input, cached input, output],
# by model. MODEL_PRICES (JSON) adds models or replaces these. The simulator's models are priced
# like OpenAI's GPT-5 family, so its figures read like a real run's.
MODEL_PRICES = env_prices(
    "MODEL_PRICES",
    {
        "gpt-5": (1.25, 0.125, 10.0),
        "gpt-5-mini": (0.25, 0.025, 2.0),
        "gpt-5-nano": (0.05, 0.005, 0.4),
        "sim": (0.25, 0.025, 2.0),
        "sim-mini": (0.05, 0.005, 0.4),
        "sim-large": (1.25, 0.125, 10.0),
    },
)
# Make-before-break rotation of an upstream socket older than this, at a step boundary (the
# OpenAI limit is 60 minutes; xAI's 25).
ROTATE_AFTER_SECONDS = env_float("ROTATE_AFTER_SECONDS", 55 * 60.0)
# Transient upstream failures are retried this many times (backoff with jitter) before a session
# falls back to HTTP.
UPSTREAM_RETRIES = env_int("UPSTREAM_RETRIES", 5)

# Admission control (agents/live/admission.py): a storm of connects slows down, never fails.
# Sockets' connect work (authorise, snapshot) runs this many at a time, the others wait,
# accepted; upstream prewarms run PREWARM_CONCURRENCY at a time once no connect waits, and
# beyond PREWARM_BACKLOG waiting a prewarm is skipped (the first step then opens the socket with
# a full create).
CONNECT_CONCURRENCY = env_int("CONNECT_CONCURRENCY", 32)
PREWARM_CONCURRENCY = env_int("PREWARM_CONCURRENCY", 4)
PREWARM_BACKLOG = env_int("PREWARM_BACKLOG", 2_000)

# Many processes (with REDIS_URL): a session's runner lives in the process holding its lease,
# renewed every third of LEASE_SECONDS; another process takes over at most this long after the
# owner died. Tabs on other processes get the feed in batches, one per FANOUT_INTERVAL_MS.
LEASE_SECONDS = env_float("LEASE_SECONDS", 10.0)
# SIGTERM (a restart): how long a process lets its runs in flight finish, its tabs already
# reconnected elsewhere, before it halts them as interrupted and exits (playground/shutdown.py).
# Keep it below the process manager's stop timeout (deploy/: 60 s).
SHUTDOWN_GRACE_SECONDS = env_float("SHUTDOWN_GRACE_SECONDS", 30.0)
FANOUT_INTERVAL_MS = env_int("FANOUT_INTERVAL_MS", 25)

# Built-in tools: the hosts http_get may fetch (none by default), the output and time limits.
TOOL_HTTP_ALLOWED_HOSTS = env_list("TOOL_HTTP_ALLOWED_HOSTS", [])
TOOL_OUTPUT_LIMIT = env_int("TOOL_OUTPUT_LIMIT", 20_000)
TOOL_TIMEOUT_SECONDS = env_float("TOOL_TIMEOUT_SECONDS", 15.0)
# Tool schemas and arguments, bounded so that checking them never stalls the process: nesting
# depth, the largest minLength/minItems/minProperties a schema may require, the size of a call's
# arguments, and the time their check against the schema may take.
TOOL_SCHEMA_MAX_DEPTH = env_int("TOOL_SCHEMA_MAX_DEPTH", 32)
TOOL_SCHEMA_MAX_REQUIRED_SIZE = env_int("TOOL_SCHEMA_MAX_REQUIRED_SIZE", 10_000)
TOOL_ARGUMENTS_LIMIT = env_int("TOOL_ARGUMENTS_LIMIT", 1_000_000)
TOOL_VALIDATION_TIMEOUT_SECONDS = env_float("TOOL_VALIDATION_TIMEOUT_SECONDS", 2.0)

# Share links: after SHARE_GUESS_LIMIT failed token lookups (unknown, revoked or expired) from
# one client address, every lookup from it answers 429 for the rest of the window.
SHARE_GUESS_LIMIT = env_int("SHARE_GUESS_LIMIT", 20)
SHARE_GUESS_WINDOW_SECONDS = env_int("SHARE_GUESS_WINDOW_SECONDS", 60)
# A share viewer's socket refuses every frame but the page's acks, and tells the page so at most
# once per this many seconds: a flood of frames costs a check each, and logs only at DEBUG.
SHARE_READ_ONLY_NOTICE_SECONDS = env_float("SHARE_READ_ONLY_NOTICE_SECONDS", 1.0)

# Quotas (playground/quotas.py): what one visitor may create and run, so that nobody can exhaust
# the server or a paid API key. Sessions per owner (a user, or an anonymous browser) in all; new
# sessions (created or imported) per client address an hour; runs (messages sent) per session a
# minute; tools per session; and the sizes, in characters, of what the forms accept.
QUOTA_SESSIONS_PER_OWNER = env_int("QUOTA_SESSIONS_PER_OWNER", 200)
QUOTA_NEW_SESSIONS_PER_HOUR = env_int("QUOTA_NEW_SESSIONS_PER_HOUR", 60)
QUOTA_RUNS_PER_MINUTE = env_int("QUOTA_RUNS_PER_MINUTE", 20)
# ... and per client address a minute, over all its sessions and browsers.
QUOTA_RUNS_PER_ADDRESS_PER_MINUTE = env_int("QUOTA_RUNS_PER_ADDRESS_PER_MINUTE", 60)
QUOTA_TOOLS_PER_SESSION = env_int("QUOTA_TOOLS_PER_SESSION", 32)
QUOTA_INSTRUCTIONS_CHARS = env_int("QUOTA_INSTRUCTIONS_CHARS", 100_000)
QUOTA_TOOL_DESCRIPTION_CHARS = env_int("QUOTA_TOOL_DESCRIPTION_CHARS", 4_000)
QUOTA_TOOL_PARAMETERS_CHARS = env_int("QUOTA_TOOL_PARAMETERS_CHARS", 20_000)
QUOTA_MOCK_OUTPUT_CHARS = env_int("QUOTA_MOCK_OUTPUT_CHARS", 20_000)

# Browser frames larger than this are refused with an error fragment (the socket stays open).
MAX_FRAME_BYTES = 1024 * 1024
# JSON from outside (browser frames, imported files) nesting deeper than this is refused with
# a clear error before it is parsed: deeper values overflow the parser and what walks them.
MAX_JSON_DEPTH = env_int("MAX_JSON_DEPTH", 64)

# /metrics (playground/metrics_view.py) answers logged-in staff and, without a login, requests
# from these client addresses (a Prometheus scraper's, e.g. 127.0.0.1) made straight to this
# process, not through a proxy; anyone else gets 404. Empty: staff only.
METRICS_ALLOWED_ADDRESSES = env_list("METRICS_ALLOWED_ADDRESSES", [])
# Processes sharing one listening socket (make run WORKERS=N, deploy/) cannot be scraped one by
# one through it: with METRICS_PORT set, each also serves its metrics on 127.0.0.1, port
# METRICS_PORT + PLAYGROUND_PROCESS (its number, which supervisord and the systemd unit set).
METRICS_PORT = env_int("METRICS_PORT", 0)
PLAYGROUND_PROCESS = env_int("PLAYGROUND_PROCESS", 0)
if HTTPS:  # a scraper comes straight to the process over plain HTTP: not redirected
    SECURE_REDIRECT_EXEMPT.append(r"^metrics$")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "session": {"()": "playground.logging.SessionContext"},
        "redact": {"()": "playground.logging.RedactSecrets"},
    },
    # LOG_FORMAT=json: one JSON object per line (playground/logging.py).
    "formatters": {
        "console": {
            "()": "playground.logging.console_formatter",
            "kind": env_choice("LOG_FORMAT", "text", ("text", "json")),
        }
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["session", "redact"],
            "formatter": "console",
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # At DEBUG these log the upstream handshake's headers, Authorization included: never below
    # INFO, whatever LOG_LEVEL says.
    "loggers": {
        **{name: {"level": "INFO"} for name in ("websockets", "openai", "httpx", "httpcore")},
        # A refused Host gets one warning line naming ALLOWED_HOSTS (playground/errors.py), not
        # Django's ERROR with a traceback for every scanner that tries one.
        "django.security.DisallowedHost": {"level": "CRITICAL"},
    },
}
