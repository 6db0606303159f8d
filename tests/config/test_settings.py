"""Settings come from the environment and fail loudly, naming the variable."""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

SETTINGS = Path(__file__).resolve().parents[2] / "config" / "settings.py"
BASE_ENV = {"SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "example.com"}
CONFIG_VARIABLES = [
    "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL",
    "TIME_ZONE", "SESSION_IDLE_TIMEOUT", "TRUSTED_PROXY_COUNT",
    "SECURE_SSL_REDIRECT", "CELERY_TASK_TIME_LIMIT", "CELERY_TASK_SOFT_TIME_LIMIT",
    "MINING_HEARTBEAT_SECONDS", "MINING_ABANDONED_AFTER_HEARTBEATS",
    "MFA_REQUIRED", "SESSION_ABSOLUTE_LIFETIME", "API_KEY_EXPIRY_DAYS",
]  # fmt: skip


def load(monkeypatch, **env):
    for name in CONFIG_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**BASE_ENV, **env}.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS))


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DEBUG", "maybe", "DEBUG='maybe' is not a boolean"),
        ("DATABASE_URL", "mysql://db/x", "DATABASE_URL='mysql://db/x' must be a URL with one of the schemes"),
        ("DATABASE_URL", "postgres://", "DATABASE_URL='postgres://' names no host"),
        ("CELERY_BROKER_URL", "http://broker", "CELERY_BROKER_URL='http://broker' must be a URL"),
        ("CACHE_URL", "memcached://x", "CACHE_URL='memcached://x' must be a URL"),
        ("DATABASE_URL", "mysql://u:s3cret@db/x", "DATABASE_URL='mysql://u:***@db/x' must be a URL"),
        ("DATABASE_URL", "postgres://db:port/x", "DATABASE_URL='postgres://db:port/x' is not a valid URL"),
        ("TRUSTED_PROXY_COUNT", "-1", "TRUSTED_PROXY_COUNT=-1 is below the minimum of 0"),
        (
            "CELERY_BROKER_URL",
            "amqp://guest@127.0.0.1:5672//",
            "CACHE_URL must be set (redis://...) when CELERY_BROKER_URL is not a Redis URL",
        ),
        ("TIME_ZONE", "Mars/Olympus", "TIME_ZONE='Mars/Olympus' is not a known time zone"),
        ("SESSION_IDLE_TIMEOUT", "soon", "SESSION_IDLE_TIMEOUT='soon' is not a whole number"),
        ("SESSION_IDLE_TIMEOUT", "5", "SESSION_IDLE_TIMEOUT=5 is below the minimum of 60"),
        ("ALLOWED_HOSTS", "a.com,,b.com", "ALLOWED_HOSTS='a.com,,b.com' has an empty item"),
        ("CELERY_TASK_SOFT_TIME_LIMIT", "4000", "CELERY_TASK_SOFT_TIME_LIMIT must be below CELERY_TASK_TIME_LIMIT"),
        ("DEFAULT_CURRENCY", "euro", "DEFAULT_CURRENCY='euro' is not an ISO 4217 code"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL='LOUD' is not one of"),
        ("MINING_HEARTBEAT_SECONDS", "0", "MINING_HEARTBEAT_SECONDS=0 is below the minimum of 1"),
        ("MINING_ABANDONED_AFTER_HEARTBEATS", "1", "MINING_ABANDONED_AFTER_HEARTBEATS=1 is below the minimum of 2"),
        (
            "MINING_HEARTBEAT_SECONDS",
            "1800",
            "MINING_HEARTBEAT_SECONDS x MINING_ABANDONED_AFTER_HEARTBEATS must be below CELERY_TASK_TIME_LIMIT",
        ),
    ],
)
def test_nonsense_values_fail_naming_the_variable(monkeypatch, variable, value, message):
    with pytest.raises(ImproperlyConfigured) as excinfo:
        load(monkeypatch, **{variable: value})
    assert str(excinfo.value).startswith(message)


def test_secret_key_required_without_debug(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    for name in CONFIG_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ImproperlyConfigured, match="^SECRET_KEY must be set when DEBUG is off"):
        runpy.run_path(str(SETTINGS))


def test_defaults(monkeypatch):
    values = load(monkeypatch)
    assert values["DEBUG"] is False
    assert values["TIME_ZONE"] == "Europe/Amsterdam"
    assert values["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert values["DATABASES"]["default"]["NAME"] == str(SETTINGS.parents[1] / "db.sqlite3")
    assert values["CELERY_BROKER_URL"] is None
    assert values["CELERY_TASK_ALWAYS_EAGER"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_REDIRECT_EXEMPT"] == [r"^healthz/$"]
    assert values["TRUSTED_PROXY_COUNT"] == 0
    assert values["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] == 31536000
    assert values["SESSION_COOKIE_AGE"] == 1800
    assert values["SESSION_SAVE_EVERY_REQUEST"] is True
    assert values["CELERY_TASK_ACKS_LATE"] is True
    assert values["CELERY_TASK_SERIALIZER"] == "json"
    assert "'unsafe-inline'" not in values["CONTENT_SECURITY_POLICY"]["DIRECTIVES"]["script-src"]


def test_broker_set_means_real_tasks(monkeypatch):
    values = load(
        monkeypatch,
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/merch",
        SECURE_SSL_REDIRECT="false",
    )
    assert values["CELERY_TASK_ALWAYS_EAGER"] is False
    assert values["CELERY_RESULT_BACKEND"] == "redis://127.0.0.1:6379/0"
    assert values["CACHES"]["default"]["LOCATION"] == "redis://127.0.0.1:6379/0"
    assert values["DATABASES"]["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert values["DATABASES"]["default"]["NAME"] == "merch"
    assert values["SECURE_SSL_REDIRECT"] is False


def test_debug_allows_missing_secret_key(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    values = load(monkeypatch, DEBUG="true", SECRET_KEY="")
    assert values["DEBUG"] is True
    assert values["SECRET_KEY"].startswith("django-insecure-")
    assert values["SESSION_COOKIE_SECURE"] is False


def test_deploy_check_is_clean_with_production_settings():
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in CONFIG_VARIABLES and key != "DJANGO_SETTINGS_MODULE"
    }
    env.update(
        DEBUG="false", SECRET_KEY="k" * 20 + "-production-like-secret-0123456789", ALLOWED_HOSTS="shop.example.com"
    )
    completed = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=SETTINGS.parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "System check identified no issues (0 silenced)." in completed.stdout


@pytest.mark.parametrize("module", ["config.wsgi", "config.asgi"])
def test_the_application_module_loads_as_the_server_loads_it(module):
    """gunicorn imports config.wsgi in a fresh process with production settings; nothing in it
    may import a model before Django is set up (the test client never imports it)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in CONFIG_VARIABLES and key != "DJANGO_SETTINGS_MODULE"
    }
    env.update(DEBUG="false", SECRET_KEY="k" * 50, ALLOWED_HOSTS="shop.example.com")
    completed = subprocess.run(
        [sys.executable, "-c", f"import {module}; print(type({module}.application).__name__)"],
        cwd=SETTINGS.parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == {"config.wsgi": "ChunkedBodyLimit", "config.asgi": "ASGIHandler"}[module]


def test_bad_value_stops_manage_py_with_the_message():
    env = {key: value for key, value in os.environ.items() if key not in CONFIG_VARIABLES}
    env.update(DEBUG="true", TIME_ZONE="Nowhere/Land", DJANGO_SETTINGS_MODULE="config.settings")
    completed = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=SETTINGS.parents[1], env=env, capture_output=True, text=True
    )
    assert completed.returncode == 1
    assert "TIME_ZONE='Nowhere/Land' is not a known time zone" in completed.stderr


@pytest.mark.parametrize("time_limit", [None, "60", "3600", "86400"])
def test_visibility_timeout_is_at_least_twice_the_task_time_limit(monkeypatch, time_limit):
    """Redis hands an unacknowledged task to another worker after the visibility timeout, even
    while the first still runs it: at twice the hard limit a live task is never redelivered."""
    env = {"CELERY_TASK_TIME_LIMIT": time_limit, "CELERY_TASK_SOFT_TIME_LIMIT": "30"} if time_limit else {}
    values = load(monkeypatch, MINING_HEARTBEAT_SECONDS="1", **env)
    limit = values["CELERY_TASK_TIME_LIMIT"]
    assert limit == int(time_limit or 3600)
    assert values["CELERY_BROKER_TRANSPORT_OPTIONS"]["visibility_timeout"] >= 2 * limit


def test_mining_heartbeat_defaults(monkeypatch):
    values = load(monkeypatch)
    assert (values["MINING_HEARTBEAT_SECONDS"], values["MINING_ABANDONED_AFTER_HEARTBEATS"]) == (10, 6)
    values = load(monkeypatch, MINING_HEARTBEAT_SECONDS="2", MINING_ABANDONED_AFTER_HEARTBEATS="3")
    assert (values["MINING_HEARTBEAT_SECONDS"], values["MINING_ABANDONED_AFTER_HEARTBEATS"]) == (2, 3)


def test_sign_in_security_defaults(monkeypatch):
    production = load(monkeypatch)
    assert production["MFA_REQUIRED"] is True
    assert production["SESSION_ABSOLUTE_LIFETIME"] == 8 * 60 * 60
    assert production["API_KEY_EXPIRY_DAYS"] == 365
    assert production["CONTENT_SECURITY_POLICY"]["DIRECTIVES"]["base-uri"] == ["'none'"]
    assert "django_otp.middleware.OTPMiddleware" in production["MIDDLEWARE"]
    middleware = production["MIDDLEWARE"]
    assert middleware.index("django_otp.middleware.OTPMiddleware") == (
        middleware.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1
    )
    assert load(monkeypatch, DEBUG="true")["MFA_REQUIRED"] is False  # make run's demo users only
    assert load(monkeypatch, DEBUG="true", MFA_REQUIRED="true")["MFA_REQUIRED"] is True
    assert load(monkeypatch, API_KEY_EXPIRY_DAYS="30")["API_KEY_EXPIRY_DAYS"] == 30


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MFA_REQUIRED", "sometimes", "MFA_REQUIRED='sometimes' is not a boolean"),
        ("API_KEY_EXPIRY_DAYS", "0", "API_KEY_EXPIRY_DAYS=0 is below the minimum of 1"),
        ("SESSION_ABSOLUTE_LIFETIME", "8h", "SESSION_ABSOLUTE_LIFETIME='8h' is not a whole number"),
    ],
)
def test_sign_in_settings_fail_naming_the_variable(monkeypatch, variable, value, message):
    with pytest.raises(ImproperlyConfigured) as excinfo:
        load(monkeypatch, **{variable: value})
    assert str(excinfo.value).startswith(message)


def test_mfa_cannot_be_off_without_debug(monkeypatch):
    with pytest.raises(ImproperlyConfigured) as excinfo:
        load(monkeypatch, MFA_REQUIRED="false")
    assert str(excinfo.value) == (
        "MFA_REQUIRED=false is only allowed with DEBUG=true: back-office users would sign in with a password alone."
    )
    assert load(monkeypatch, DEBUG="true", MFA_REQUIRED="false")["MFA_REQUIRED"] is False
    assert load(monkeypatch, MFA_REQUIRED="true")["MFA_REQUIRED"] is True


def test_the_test_settings_switch_mfa_off_after_loading(monkeypatch):
    """Not through the environment: that would now refuse to load (DEBUG is off in the tests)."""
    monkeypatch.setenv("MFA_REQUIRED", "unset below")  # so that monkeypatch restores the original state
    monkeypatch.delenv("MFA_REQUIRED")
    values = runpy.run_path(str(SETTINGS.with_name("settings_test.py")), run_name="config.settings_test")
    assert (values["DEBUG"], values["MFA_REQUIRED"]) == (False, False)
    assert "MFA_REQUIRED" not in os.environ
