import os

import pytest
from django.conf import settings

from accounts.roles import ADMINISTRATOR, MARKETING, PRODUCT_SPECIALIST
from tests.factories import UserFactory

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def _flush_lifting_the_audit_guard():
    """Transactional tests end with a flush. PostgreSQL flushes with TRUNCATE, which the audit
    trail's row triggers do not see; SQLite flushes with DELETE, which they refuse. The flush
    of the test database lifts the guard for its own statements (audit/migrations/0002)."""
    from django.db import connection

    if connection.vendor != "sqlite":
        return
    DatabaseOperations = type(connection.ops)  # noqa: N806 - the backend's class
    original = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *args, **kwargs):
        statements = original(self, style, tables, *args, **kwargs)
        if "audit_auditentry" not in tables:
            return statements
        return [
            "INSERT INTO audit_maintenance (flushing) VALUES (1)",
            *statements,
            "DELETE FROM audit_maintenance",
        ]

    DatabaseOperations.sql_flush = sql_flush


@pytest.fixture(scope="session", autouse=True)
def _audit_flush_guard():
    # Patched once Django is set up (importing the SQLite backend earlier is circular).
    _flush_lifting_the_audit_guard()


def pytest_collection_modifyitems(config, items):
    """Tests marked `postgres` or `broker` skip without the service, except in CI's service run
    (REQUIRE_SERVICES=1), where a missing service stops the run: never a silent skip there."""
    on_postgres = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    has_broker = bool(settings.CELERY_BROKER_URL)
    for marker, available, what in (
        ("postgres", on_postgres, "DATABASE_URL=postgres://..."),
        ("broker", has_broker, "CELERY_BROKER_URL"),
    ):
        wanting = [item for item in items if item.get_closest_marker(marker)]
        if available or not wanting:
            continue
        if REQUIRE_SERVICES:
            raise pytest.UsageError(f"REQUIRE_SERVICES=1 but {len(wanting)} tests need {what}, which is not set")
        for item in wanting:
            item.add_marker(pytest.mark.skip(reason=f"needs {what}"))


@pytest.fixture(autouse=True, scope="session")
def _celery_configuration_loaded():
    """Celery copies the Django settings into its own configuration the first time it is read.
    Read it now, from the session's real settings: if that first read happened inside a test
    that had switched CELERY_TASK_ALWAYS_EAGER on, every later test would run its tasks in
    process, the real-worker tests included."""
    from config.celery import app

    assert app.conf.task_always_eager is settings.CELERY_TASK_ALWAYS_EAGER


@pytest.fixture
def specialist(db):
    return UserFactory(username="specialist", role=PRODUCT_SPECIALIST)


@pytest.fixture
def marketer(db):
    return UserFactory(username="marketer", role=MARKETING)


@pytest.fixture
def administrator(db):
    return UserFactory(username="administrator", role=ADMINISTRATOR)


@pytest.fixture
def no_role_user(db):
    return UserFactory(username="norole")
