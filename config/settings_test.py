"""Settings for the test suite: the real settings with test-friendly environment defaults.

DATABASE_URL and CELERY_BROKER_URL are left alone, so `make test` runs against whatever the
environment names (SQLite and in-process tasks when nothing is set).
"""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-only-for-the-test-suite-0123456789abcdef")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")

from config.settings import *  # noqa: E402,F403

# The suite signs users in with client.force_login, which has no second factor. Tests of the
# back office's pages therefore run with MFA off; tests/accounts/test_mfa.py turns it on
# (settings.MFA_REQUIRED = True) and walks every back-office URL with an unverified session.
# Assigned here, not through the environment: the real settings refuse MFA_REQUIRED=false
# without DEBUG, which is what the suite runs with (production's value).
MFA_REQUIRED = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
