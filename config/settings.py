"""Settings for the merchandising back office, read from the environment.

Every variable is documented in docs/operations.md. Nonsense values stop start-up with a
message that names the variable (see config/env.py).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_str, env_timezone, env_url

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (generate one with `openssl rand -hex 32`)."
        )
    SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "config.apps.BackOfficeAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_celery_beat",
    "axes",
    "csp",
    "auditlog",
    "audit",
    # Second factor for staff (TOTP apps and one-time recovery codes); before "accounts", whose
    # admin module takes the devices off the admin site (see accounts/admin.py).
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "accounts",
    "catalog",
    "orders",
    "merchandising",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before sessions: a webshop API key outside /api/ is refused before anything else runs.
    "config.middleware.ApiBoundaryMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): whether this session passed the second factor.
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After messages (the sign-out notice), before any view: the 8-hour limit, then MFA.
    "config.middleware.SessionLifetimeMiddleware",
    "config.middleware.MfaRequiredMiddleware",
    # Before any view reads a body (CSRF does in process_view): a body over its limit is refused
    # with 413 unread; after sign-in and the second factor, as only they earn the upload limit.
    "config.middleware.RequestSizeLimitMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a lockout signalled by the backend into a response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
                "config.context_processors.backoffice",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_url(
    "DATABASE_URL",
    {"sqlite", "postgres", "postgresql", "pgsql"},
    default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
)
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0))}
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL could not be parsed: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A busy timeout keeps the embedded default usable when a task and a request write at once.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Users, login, sessions -----------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "home"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Idle timeout: the session expires SESSION_IDLE_TIMEOUT seconds after the last request,
# because every request saves the session and so pushes its expiry forward.
SESSION_COOKIE_AGE = env_int("SESSION_IDLE_TIMEOUT", 30 * 60, minimum=60)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# Absolute lifetime: however active, a session ends this many seconds after its sign-in
# (config.middleware.SessionLifetimeMiddleware), so a stolen session cookie is not good forever.
SESSION_ABSOLUTE_LIFETIME = env_int("SESSION_ABSOLUTE_LIFETIME", 8 * 60 * 60, minimum=300)
if SESSION_ABSOLUTE_LIFETIME < SESSION_COOKIE_AGE:
    raise ImproperlyConfigured("SESSION_ABSOLUTE_LIFETIME must not be below SESSION_IDLE_TIMEOUT.")

# Second factor (django-otp): every back-office page (and the API's staff sessions) needs a
# session verified with a TOTP code or a recovery code. Off only for development (DEBUG=true,
# the demo users of `make run`): without DEBUG the settings refuse to load with it off.
MFA_REQUIRED = env_bool("MFA_REQUIRED", not DEBUG)
if not MFA_REQUIRED and not DEBUG:
    raise ImproperlyConfigured(
        "MFA_REQUIRED=false is only allowed with DEBUG=true: back-office users would sign in with a password alone."
    )
# The name authenticator apps show next to the user name.
OTP_TOTP_ISSUER = env_str("MFA_ISSUER", "Merchandising back office")

# Login lockout (django-axes): after AXES_FAILURE_LIMIT failed logins for the same user name
# from the same address, that combination is locked for AXES_COOLOFF_MINUTES. Locking the
# pair rather than the address keeps one attacker from locking out a whole office behind NAT.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Behind N trusted proxies that each append to X-Forwarded-For, the client address is the
# N-th entry from the right; with none, only REMOTE_ADDR counts, so a client cannot choose
# its own address by sending the header (see config.access.client_ip).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
AXES_CLIENT_IP_CALLABLE = "config.access.client_ip"
AXES_VERBOSE = False
# Every failed sign-in is kept (AccessFailureLog, read-only in the admin for administrators);
# config.access logs each failure and lockout with user name and address at WARNING.
AXES_ENABLE_ACCESS_FAILURE_LOG = True

# --- Security ---------------------------------------------------------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Load balancers probe the health check over plain HTTP, straight at gunicorn.
SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]
if env_bool("USE_X_FORWARDED_PROTO", False):
    # Only behind a proxy that sets (and strips incoming) X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Cookies: Secure and with the __Host- prefix (the browser then refuses them without Secure,
# with a Domain, or with a Path other than /, so no sibling subdomain can plant or read them).
# Under DEBUG (make run on http://127.0.0.1) neither Secure nor the prefix can work: plain names.
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_NAME = "__Host-sessionid" if SESSION_COOKIE_SECURE else "sessionid"
CSRF_COOKIE_NAME = "__Host-csrftoken" if CSRF_COOKIE_SECURE else "csrftoken"
# No script reads either cookie: the pages put the CSRF token in the DOM (hx-headers, forms).
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"

# Content Security Policy (django-csp): our own scripts and styles only, nothing inline for
# scripts. Django's admin sets a few style="" attributes, hence 'unsafe-inline' for styles only.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}

# --- Audit trail (audit/) ---------------------------------------------------------------------
# django-auditlog's table shape, admin and diff helpers, with our own row model; nothing is
# registered for signal-based logging: the services write the rows (see audit/models.py).
AUDITLOG_LOGENTRY_MODEL = "audit.AuditEntry"
AUDITLOG_STORE_JSON_CHANGES = True
# auditlog's own migrations create its LogEntry table even when the model is swapped out; as an
# app without migrations it creates nothing (its one model is swapped), so no stray table holds
# a key to the content types (which would stop the test database's flush on PostgreSQL).
MIGRATION_MODULES = {"auditlog": None}

# --- Request size ------------------------------------------------------------------------------
# The largest file upload (the request body of a multipart form: the products CSV in the admin),
# refused with 413 before it is read (config.middleware.RequestSizeLimitMiddleware). The file is
# kept in the database between preview and apply, and PostgreSQL holds at most 1 GB in a value.
MAX_UPLOAD_MB = env_int("MAX_UPLOAD_MB", 100, minimum=1)
if MAX_UPLOAD_MB > 1000:
    raise ImproperlyConfigured(f"MAX_UPLOAD_MB={MAX_UPLOAD_MB} is above 1000; import bigger files with the command.")
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
# Every other body (the API's JSON, plain forms) is limited by Django's own setting, kept at
# its default (2.5 MB, far above a full events batch); uploads above this size spool to disk.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2621440
FILE_UPLOAD_MAX_MEMORY_SIZE = 2621440

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_timezone("TIME_ZONE", "Europe/Amsterdam")
USE_I18N = True
USE_TZ = True
DEFAULT_CURRENCY = env_str("DEFAULT_CURRENCY", "EUR")
if not (len(DEFAULT_CURRENCY) == 3 and DEFAULT_CURRENCY.isalpha() and DEFAULT_CURRENCY.isupper()):
    raise ImproperlyConfigured(f"DEFAULT_CURRENCY={DEFAULT_CURRENCY!r} is not an ISO 4217 code such as EUR.")

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))

# --- Webshop API (/api/v1/, docs/api.md) -------------------------------------------------------
REST_FRAMEWORK = {
    # An API client with "Authorization: Bearer <key>", or a signed-in back-office user (reads only).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "merchandising.api.authentication.ApiKeyAuthentication",
        "merchandising.api.authentication.StaffSessionAuthentication",
    ],
    # Deny by default what is not a read: a write endpoint names its own scope (HasScope("events")).
    "DEFAULT_PERMISSION_CLASSES": ["merchandising.api.permissions.ReadAccess"],
    "DEFAULT_THROTTLE_CLASSES": ["merchandising.api.throttling.ClientRateThrottle"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # JSON only: the browsable API's pages would need inline scripts (see the CSP below).
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "merchandising.api.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Merchandising webshop API",
    "DESCRIPTION": "Published cross-sell and upsell links for the webshop. Guide: docs/api.md.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1/",
    "COMPONENT_SPLIT_REQUEST": True,
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SECURITY": [{"bearerAuth": []}],
    "APPEND_COMPONENTS": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "description": "mk_<prefix>_<secret>"}}
    },
    "AUTHENTICATION_WHITELIST": [],
    "ENUM_NAME_OVERRIDES": {
        "TouchpointEnum": "merchandising.api.tokens.TOUCHPOINTS",
        "CartTouchpointEnum": "merchandising.selectors.api.CART_TOUCHPOINTS",
        "LinkTypeEnum": "merchandising.models.LinkType",
        "EventTypeEnum": "merchandising.models.WebshopEvent.Kind",
    },
}
# Requests per minute of an API client without a rate of its own (throttling, 429 beyond it).
API_RATE_PER_MINUTE = env_int("API_RATE_PER_MINUTE", 1200, minimum=1)
# Cache-Control max-age of the read endpoints: the recompute interval, at most this many seconds
# (and this when no recompute is scheduled). Conditional requests (If-None-Match) are cheap.
API_CACHE_MAX_AGE = env_int("API_CACHE_MAX_AGE", 300, minimum=0)
# Rendered recommendation bodies are kept this long in the cache under their ETag (0: not at all).
API_BODY_CACHE_SECONDS = env_int("API_BODY_CACHE_SECONDS", 600, minimum=0)
# Items per link type in a recommendations answer (the request's limit= can ask for up to the maximum).
API_DEFAULT_LIMIT = env_int("API_DEFAULT_LIMIT", 20, minimum=1)
API_MAX_LIMIT = env_int("API_MAX_LIMIT", 100, minimum=1)
if API_DEFAULT_LIMIT > API_MAX_LIMIT:
    raise ImproperlyConfigured("API_DEFAULT_LIMIT must not exceed API_MAX_LIMIT.")
API_MAX_CART_SKUS = env_int("API_MAX_CART_SKUS", 200, minimum=1)
# Links per page of the bulk sync (GET /api/v1/links/).
API_SYNC_PAGE_SIZE = env_int("API_SYNC_PAGE_SIZE", 500, minimum=1)
API_SYNC_MAX_PAGE_SIZE = env_int("API_SYNC_MAX_PAGE_SIZE", 2000, minimum=1)
if API_SYNC_PAGE_SIZE > API_SYNC_MAX_PAGE_SIZE:
    raise ImproperlyConfigured("API_SYNC_PAGE_SIZE must not exceed API_SYNC_MAX_PAGE_SIZE.")
# A new API key expires after this many days unless its issuer says otherwise (0 there: never).
API_KEY_EXPIRY_DAYS = env_int("API_KEY_EXPIRY_DAYS", 365, minimum=1)

# --- Celery -----------------------------------------------------------------------------------
# Without a broker, tasks run in-process and eagerly: the embedded default needs no services.
BROKER_SCHEMES = {"redis", "rediss", "amqp", "amqps", "pyamqp"}
CELERY_BROKER_URL = env_url("CELERY_BROKER_URL", BROKER_SCHEMES)
_default_backend = CELERY_BROKER_URL if CELERY_BROKER_URL and CELERY_BROKER_URL.startswith("redis") else None
CELERY_RESULT_BACKEND = env_url("CELERY_RESULT_BACKEND", {"redis", "rediss", "rpc"}, default=_default_backend)
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 60 * 60, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 55 * 60, minimum=1)
if CELERY_TASK_SOFT_TIME_LIMIT >= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured("CELERY_TASK_SOFT_TIME_LIMIT must be below CELERY_TASK_TIME_LIMIT.")
# Acknowledge after the task ran, so a killed worker's task is delivered again; the base task
# in config/celery.py refuses a task delivered more than CELERY_MAX_DELIVERIES times.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_MAX_DELIVERIES = env_int("CELERY_MAX_DELIVERIES", 3, minimum=1)
# Redis redelivers an unacknowledged task after the visibility timeout, even one still running:
# twice the hard limit, so a live task is never delivered a second time (docs/operations.md).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 2 * CELERY_TASK_TIME_LIMIT}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# Threads an in-process mining run uses for its blocks and its account counting (the heavy
# steps release the GIL; see merchandising.mining.map_blocks). Default: the CPUs this process
# may use. On a shared worker machine, set it to what one run may take.
MINING_THREADS = env_int("MINING_THREADS", len(os.sched_getaffinity(0)) or 1, minimum=1)
# A running mining run writes a heartbeat every MINING_HEARTBEAT_SECONDS (a background thread,
# also through long phases); silent for MINING_ABANDONED_AFTER_HEARTBEATS intervals, it has lost
# its worker: the sweep (every minute) or the next run fails it (merchandising.services.runs).
MINING_HEARTBEAT_SECONDS = env_int("MINING_HEARTBEAT_SECONDS", 10, minimum=1)
MINING_ABANDONED_AFTER_HEARTBEATS = env_int("MINING_ABANDONED_AFTER_HEARTBEATS", 6, minimum=2)
if MINING_HEARTBEAT_SECONDS * MINING_ABANDONED_AFTER_HEARTBEATS >= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        "MINING_HEARTBEAT_SECONDS x MINING_ABANDONED_AFTER_HEARTBEATS must be below CELERY_TASK_TIME_LIMIT."
    )

# --- Cache ------------------------------------------------------------------------------------
# Shared state (the Celery redelivery counter, later the API cache) must live in one place for
# all processes: with a Redis broker the cache defaults to that Redis.
CACHE_URL = env_url("CACHE_URL", {"redis", "rediss"})
if not CACHE_URL and CELERY_BROKER_URL:
    if not CELERY_BROKER_URL.startswith("redis"):
        raise ImproperlyConfigured("CACHE_URL must be set (redis://...) when CELERY_BROKER_URL is not a Redis URL.")
    CACHE_URL = CELERY_BROKER_URL
if CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # django-axes logs every successful login at INFO; lockouts are WARNING and still show.
    # Sign-in failures and lockouts (config.access) show whatever LOG_LEVEL says.
    "loggers": {"axes": {"level": "WARNING"}, "backoffice.security": {"level": "WARNING"}},
}
