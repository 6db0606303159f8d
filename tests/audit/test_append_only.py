"""No one edits or deletes history: the database refuses it (a trigger on SQLite and on
PostgreSQL, audit/migrations/0002_append_only.py), and the admin offers nothing but viewing."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import ProtectedError

from audit.models import AuditEntry, Via
from audit.services import audit_record
from catalog.models import Brand
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# SQLite raises IntegrityError for RAISE(ABORT); PostgreSQL raises InternalError (a DatabaseError).
REFUSED = (DatabaseError, IntegrityError)


@pytest.fixture
def entry(administrator):
    brand = Brand.objects.create(name="Makita")
    return audit_record(
        obj=brand, action=AuditEntry.Action.UPDATE, actor=administrator, via=Via.FORM, changes={"name": ["M", "Makita"]}
    )


def refused(operation) -> str:
    with pytest.raises(REFUSED) as caught, transaction.atomic():
        operation()
    return str(caught.value)


@pytest.mark.parametrize(
    "change",
    [
        {"changes": {"name": ["M", "Bosch"]}},
        {"actor_label": "someone else"},
        {"timestamp": "2020-01-01T00:00:00+00:00"},
        {"via": Via.TASK},
    ],
)
def test_the_database_refuses_to_change_a_row(entry, change):
    message = refused(lambda: AuditEntry.objects.filter(pk=entry.pk).update(**change))
    assert "the audit trail is append-only" in message
    entry_after = AuditEntry.objects.get(pk=entry.pk)
    assert (entry_after.changes, entry_after.actor_label, entry_after.via) == (
        {"name": ["M", "Makita"]},
        "administrator",
        "form",
    )


def test_the_database_refuses_to_clear_the_actor_together_with_anything_else(entry):
    refused(lambda: AuditEntry.objects.filter(pk=entry.pk).update(actor=None, actor_label=""))
    assert AuditEntry.objects.filter(pk=entry.pk, actor__isnull=False, actor_label="administrator").count() == 1


def test_the_database_refuses_to_delete_a_row_even_with_raw_sql(entry):
    assert "append-only" in refused(lambda: AuditEntry.objects.filter(pk=entry.pk).delete())

    def raw_delete():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_auditentry")

    assert "append-only" in refused(raw_delete)
    assert AuditEntry.objects.filter(pk=entry.pk).count() == 1


def test_deleting_a_user_keeps_their_rows_with_their_name(entry, administrator):
    other = UserFactory(username="other")
    other.delete()  # a user without history
    administrator.delete()  # Django sets actor to NULL: the one update the trigger allows
    entry.refresh_from_db()
    assert (entry.actor_id, entry.actor_label, entry.changes) == (None, "administrator", {"name": ["M", "Makita"]})


def test_a_content_type_with_history_cannot_be_deleted(entry):
    with pytest.raises(ProtectedError), transaction.atomic():
        ContentType.objects.get_for_model(Brand).delete()
    assert AuditEntry.objects.filter(pk=entry.pk).count() == 1


def test_the_triggers_are_in_place():
    """SQLite drops a table's triggers when Django rebuilds it for a migration: this fails if a
    later migration did so without creating them again."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_auditentry'")
            expected = [("audit_auditentry_no_delete",), ("audit_auditentry_no_update",)]
        else:
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_auditentry'::regclass AND NOT tgisinternal"
            )
            expected = [("audit_auditentry_append_only",)]
        assert sorted(cursor.fetchall()) == expected


@pytest.mark.django_db(transaction=True)
def test_a_transactional_test_can_still_flush_the_table(administrator):
    """The suite's flush lifts the SQLite guard for its own statements only (tests/conftest.py);
    a plain DELETE right before it is still refused."""
    brand = Brand.objects.create(name="Flush")
    audit_record(obj=brand, action=AuditEntry.Action.CREATE, actor=administrator, changes={"name": [None, "Flush"]})
    assert "append-only" in refused(lambda: AuditEntry.objects.all().delete())
