"""The audit trail is append-only in the database, whatever the code does.

UPDATE and DELETE of ``audit_auditentry`` rows are refused by a trigger on each supported
database. The one UPDATE allowed is the one Django itself makes when a user is deleted
(``actor`` is ``on_delete=SET_NULL``): ``actor_id`` set to NULL with every other column as it
was; ``actor_label`` keeps the name. ``content_type`` becomes PROTECT (no cascade into the
history). PostgreSQL's TRUNCATE does not fire row triggers: the application's database role
needs no TRUNCATE privilege on this table (docs/operations.md). On SQLite the trigger is lifted
only while a row sits in ``audit_maintenance`` (a table no model maps; the test suite's flush
uses it, see tests/conftest.py). SQLite drops triggers when Django rebuilds a table: a later
migration that alters this table must re-run ``create_triggers``
(tests/audit/test_append_only.py fails if it does not).
"""

import django.db.models.deletion
from django.db import migrations, models

MESSAGE = "the audit trail is append-only: audit entries cannot be changed or deleted"

POSTGRES_CREATE = f"""
CREATE OR REPLACE FUNCTION audit_auditentry_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.actor_id IS NULL
       AND (to_jsonb(NEW) - 'actor_id') = (to_jsonb(OLD) - 'actor_id') THEN
        RETURN NEW;  -- a deleted user: on_delete=SET_NULL
    END IF;
    RAISE EXCEPTION '{MESSAGE} (id %)', OLD.id USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_auditentry_append_only
    BEFORE UPDATE OR DELETE ON audit_auditentry
    FOR EACH ROW EXECUTE FUNCTION audit_auditentry_append_only();
"""
POSTGRES_DROP = """
DROP TRIGGER IF EXISTS audit_auditentry_append_only ON audit_auditentry;
DROP FUNCTION IF EXISTS audit_auditentry_append_only();
"""

#: Every column but actor_id: an UPDATE may change nothing else.
COLUMNS = (
    "id", "content_type_id", "object_pk", "object_id", "object_repr", "serialized_data", "action",
    "changes_text", "changes", "cid", "remote_addr", "remote_port", "timestamp", "additional_data",
    "actor_email", "actor_label", "via",
)  # fmt: skip
SQLITE_SAME = " AND ".join(f'NEW."{name}" IS OLD."{name}"' for name in COLUMNS)
SQLITE_CREATE = [
    "CREATE TABLE IF NOT EXISTS audit_maintenance (flushing integer NOT NULL);",
    f"""CREATE TRIGGER audit_auditentry_no_update BEFORE UPDATE ON audit_auditentry
    WHEN NOT (NEW.actor_id IS NULL AND {SQLITE_SAME})
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;""",
    f"""CREATE TRIGGER audit_auditentry_no_delete BEFORE DELETE ON audit_auditentry
    WHEN NOT EXISTS (SELECT 1 FROM audit_maintenance)
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;""",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS audit_auditentry_no_update;",
    "DROP TRIGGER IF EXISTS audit_auditentry_no_delete;",
    "DROP TABLE IF EXISTS audit_maintenance;",
]


def create_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_CREATE, None)
    elif vendor == "sqlite":
        for statement in SQLITE_CREATE:
            schema_editor.execute(statement, None)
    else:
        raise NotImplementedError(f"No append-only trigger for {vendor}; add one here.")


def drop_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in [POSTGRES_DROP] if vendor == "postgresql" else SQLITE_DROP:
        schema_editor.execute(statement, None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_audit_entry"), ("contenttypes", "0002_remove_content_type_name")]

    operations = [
        migrations.AlterField(
            model_name="auditentry",
            name="content_type",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="contenttypes.contenttype",
                verbose_name="content type",
            ),
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
