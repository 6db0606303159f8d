"""Settings for the test suite: the real settings with test-friendly environment defaults.

DATABASE_URL and CELERY_BROKER_URL are left alone, so `make test` runs against whatever the
environment names (SQLite and in-process tasks when nothing is set).
"""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-only-for-the-test-suite-0123456789abcdef")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")

from config.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
