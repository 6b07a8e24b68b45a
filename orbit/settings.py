"""Orbit's settings, all read from the environment (or `.env`) through django-environ.

Every variable is listed with its default in `.env.example`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import django
import environ
from django.core.exceptions import ImproperlyConfigured

from orbit.core.conf import DEFAULTS as ORBIT_DEFAULTS
from orbit.core.conf import PREPARE_WHEN_ASKED, prepares_statements

BASE_DIR = Path(__file__).resolve().parent.parent
DEV_SECRET_KEY = "orbit-development-key-not-for-production"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default=DEV_SECRET_KEY)
if not DEBUG and (SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 32):
    raise ImproperlyConfigured(
        "DEBUG is off but SECRET_KEY is the development key or shorter than 32 characters: "
        "set SECRET_KEY to a long random value."
    )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
# DEBUG's error pages show settings and local variables to whoever reaches them, so with
# DEBUG on Orbit serves loopback only: these names here, loopback peers in the middleware.
LOOPBACK_HOSTS = frozenset({"localhost", ".localhost", "127.0.0.1", "[::1]", "::1"})
if DEBUG and (_beyond := [h for h in ALLOWED_HOSTS if h.strip().lower() not in LOOPBACK_HOSTS]):
    raise ImproperlyConfigured(
        "DEBUG is on, so Orbit serves only loopback names (localhost, 127.0.0.1, [::1]), but "
        f"ALLOWED_HOSTS also admits {_beyond[0]!r}: set DEBUG=False to serve other hosts "
        "(docs/SECURITY.md)"
    )
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "orbit.core",  # app label "orbit": API tokens and the audit trail
    "orbit.web.ratelimit",
    "pipelines",
    "runs",
    "services",
    "orbit.console",  # the dashboard, and the admin of every app
    "orbit.cli",  # the management commands
    "ninja",  # serves /api/docs from local static files, which the CSP allows
    # Django's Tasks framework: built in from Django 6.0, the backport's app before it.
    *(["django_tasks"] if django.VERSION < (6, 0) else []),
]

MIDDLEWARE = [
    "orbit.web.tracing.TracingMiddleware",  # a span per request, while tracing
    "orbit.web.middleware.DebugLoopbackOnlyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "orbit.web.middleware.ContentSecurityPolicyMiddleware",
    "orbit.web.middleware.NoStoreMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "orbit.web.middleware.RequestSizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "orbit.web.middleware.RateLimitMiddleware",
    "orbit.web.middleware.JsonDepthLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# --- HTTPS and headers (docs/SECURITY.md, "Production checklist") -------------------------
# Off by default so `make run` works on plain http; production sets each (check --deploy).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]  # probes and scrapers inside the network
# Behind a proxy that ends TLS: the header it sets, such as X-Forwarded-Proto (it must
# overwrite what clients send). Requests it marks "https" count as secure.
_proxy_ssl_header = env.str("SECURE_PROXY_SSL_HEADER", default="")
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https") if _proxy_ssl_header else None
)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Larger bodies are refused with 413 before they are read (orbit/web/middleware.py).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2_621_440)

ROOT_URLCONF = "orbit.urls"
WSGI_APPLICATION = "orbit.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

# --- Database ---------------------------------------------------------------------------
# No DATABASE_URL: SQLite in the project folder, in WAL mode with a busy timeout and
# IMMEDIATE transactions, so the web process and several workers can share one file.
SQLITE_PATH = env.str("ORBIT_SQLITE_PATH", default=str(BASE_DIR / "orbit.sqlite3"))
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{SQLITE_PATH}")}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": env.int("ORBIT_SQLITE_BUSY_TIMEOUT", default=30),
        "init_command": (
            "PRAGMA journal_mode=WAL;"
            "PRAGMA synchronous=NORMAL;"
            "PRAGMA foreign_keys=ON;"
            f"PRAGMA busy_timeout={env.int('ORBIT_SQLITE_BUSY_TIMEOUT', default=30) * 1000};"
        ),
    }
    # Tests run worker subprocesses against the test database, so it must be a file.
    _db["TEST"] = {"NAME": env.str("ORBIT_SQLITE_TEST_PATH", default=SQLITE_PATH + ".test")}
else:
    _db.setdefault("OPTIONS", {})
    _db["OPTIONS"].setdefault("connect_timeout", 5)
    _db["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    _db["CONN_HEALTH_CHECKS"] = True
    if env.str("ORBIT_TEST_DATABASE_NAME", default=""):
        _db["TEST"] = {"NAME": env.str("ORBIT_TEST_DATABASE_NAME")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Relative: to the project folder.
STATIC_ROOT = BASE_DIR / env.str("STATIC_ROOT", default="staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "orbit.web.staticfiles.StaticFiles"
        )
    },
}
# With DEBUG off and no manifest (collectstatic not run: docs/OPERATIONS.md), whitenoise
# finds the files where they live and serves them by their plain names, rather than every
# page failing; `manage.py check --deploy` warns of it (orbit.W001, orbit/core/checks.py).
WHITENOISE_USE_FINDERS = DEBUG or not (STATIC_ROOT / "staticfiles.json").is_file()

LOGIN_URL = "admin:login"
# Where a login goes when `next` is missing or points off this site (Django's default,
# /accounts/profile/, does not exist here).
LOGIN_REDIRECT_URL = "dashboard:overview"


# --- Orbit --------------------------------------------------------------------------------
# Each ORBIT_* setting that orbit/core/conf.py reads comes from the environment, parsed by the
# type of its default there; the defaults (and what each means) live in that one place.
def _orbit_setting(name: str, default: Any) -> Any:
    key = f"ORBIT_{name}"
    if isinstance(default, list):
        return env.list(key, default=default)
    if isinstance(default, bool):
        return env.bool(key, default=default)
    if isinstance(default, float):
        return env.float(key, default=default)
    if isinstance(default, int):
        return env.int(key, default=default)
    return env.str(key, default=default)


for _name, _default in ORBIT_DEFAULTS.items():
    globals()[f"ORBIT_{_name}"] = _orbit_setting(_name, _default)

# The store's statements prepared once per connection (runs/store/prepared.py): psycopg
# prepares only what asks to be; Django's own statements are unchanged.
if _db["ENGINE"] != "django.db.backends.sqlite3" and prepares_statements(
    ORBIT_PREPARED_STATEMENTS,  # type: ignore[name-defined] # noqa: F821 (set just above)
    _db,
):
    _db["OPTIONS"].setdefault("prepare_threshold", PREPARE_WHEN_ASKED)

ORBIT_LOG_FORMAT = env.str("ORBIT_LOG_FORMAT", default="text")
ORBIT_LOG_LEVEL = env.str("ORBIT_LOG_LEVEL", default="INFO")
# Bearer token Prometheus sends to scrape /metrics (unset: staff session only).
ORBIT_METRICS_TOKEN = env.str("ORBIT_METRICS_TOKEN", default="")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"()": "orbit.core.logs.TextFormatter"},
        "json": {"()": "orbit.core.logs.JsonFormatter"},
    },
    "filters": {"trace_ids": {"()": "orbit.core.logs.TraceIds"}},  # docs/TRACING.md
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["trace_ids"],
            "formatter": "json" if ORBIT_LOG_FORMAT == "json" else "text",
        },
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        name: {"handlers": ["console"], "level": ORBIT_LOG_LEVEL, "propagate": False}
        for name in ("orbit", "pipelines", "runs", "services")
    },
}

if os.environ.get("ORBIT_TESTING"):
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# --- Django's Tasks framework (docs/TASKS.md) ---------------------------------------------
# `@task` functions run as Orbit runs: `runworker` serves them, the console shows them.
TASKS = {
    "default": {
        "BACKEND": "runs.tasks.OrbitBackend",
        "QUEUES": env.list("ORBIT_TASK_QUEUES", default=["default"]),
        "OPTIONS": {
            "MAX_RETRIES": env.int("ORBIT_TASK_MAX_RETRIES", default=0),
            "BACKOFF": env.float("ORBIT_TASK_BACKOFF", default=1.0),
        },
    }
}

# --- Document processing (services/, docs/DOCUMENTS.md) --------------------------------
# S3 credentials come from boto3's own chain (environment, profile, instance role), and
# an S3-compatible endpoint from AWS_ENDPOINT_URL_S3, which boto3 reads itself.
AWS_S3_BUCKET = env.str("AWS_S3_BUCKET", default="")
AWS_REGION = env.str("AWS_REGION", default="")  # empty: boto3's own region chain
VERYFI_CLIENT_ID = env.str("VERYFI_CLIENT_ID", default="")
VERYFI_CLIENT_SECRET = env.str("VERYFI_CLIENT_SECRET", default="")  # optional: signs requests
VERYFI_USERNAME = env.str("VERYFI_USERNAME", default="")
VERYFI_API_KEY = env.str("VERYFI_API_KEY", default="")
VERYFI_API_BASE_URL = env.str(
    "VERYFI_API_BASE_URL", default="https://api.veryfi.com/api/v8/partner"
)
VERYFI_TIMEOUT = env.int("VERYFI_TIMEOUT", default=120_000)  # milliseconds, per request
VERYFI_FILE_TRANSFER = env.str("VERYFI_FILE_TRANSFER", default="url")  # url or data
