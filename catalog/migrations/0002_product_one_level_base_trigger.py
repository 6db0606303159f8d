"""Enforce "one level of base product only" in the database.

A variant's base must not itself be a variant, and a product with variants cannot become one.
The rule spans rows, which a CHECK constraint cannot express, so it is a trigger on each
supported database. Note for SQLite: Django rebuilds a table to alter it there, which drops
its triggers; tests/catalog/test_constraints.py fails if that ever happens, and such a
migration must then re-run ``create_trigger``.
"""

from django.db import migrations

MESSAGE = "one level of base product only: a base cannot be a pack variant, a product with variants cannot be one"

POSTGRES_CREATE = f"""
CREATE OR REPLACE FUNCTION catalog_product_one_level_base() RETURNS trigger AS $$
BEGIN
    IF NEW.base_id IS NOT NULL AND (
        EXISTS (SELECT 1 FROM catalog_product WHERE id = NEW.base_id AND base_id IS NOT NULL)
        OR EXISTS (SELECT 1 FROM catalog_product WHERE base_id = NEW.id)
    ) THEN
        RAISE EXCEPTION '{MESSAGE} (sku %)', NEW.sku USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER catalog_product_one_level_base
    BEFORE INSERT OR UPDATE OF base_id ON catalog_product
    FOR EACH ROW EXECUTE FUNCTION catalog_product_one_level_base();
"""
POSTGRES_DROP = """
DROP TRIGGER IF EXISTS catalog_product_one_level_base ON catalog_product;
DROP FUNCTION IF EXISTS catalog_product_one_level_base();
"""

SQLITE_CONDITION = """
NEW.base_id IS NOT NULL AND (
    EXISTS (SELECT 1 FROM catalog_product WHERE id = NEW.base_id AND base_id IS NOT NULL)
    OR EXISTS (SELECT 1 FROM catalog_product WHERE base_id = NEW.id)
)
"""
SQLITE_CREATE = [
    f"""CREATE TRIGGER catalog_product_one_level_base_insert BEFORE INSERT ON catalog_product
    WHEN {SQLITE_CONDITION} BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;""",
    f"""CREATE TRIGGER catalog_product_one_level_base_update BEFORE UPDATE OF base_id ON catalog_product
    WHEN {SQLITE_CONDITION} BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;""",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS catalog_product_one_level_base_insert;",
    "DROP TRIGGER IF EXISTS catalog_product_one_level_base_update;",
]


def create_trigger(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_CREATE, None)
    elif vendor == "sqlite":
        for statement in SQLITE_CREATE:
            schema_editor.execute(statement, None)
    else:
        raise NotImplementedError(f"No one-level-base trigger for {vendor}; add one here.")


def drop_trigger(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    statements = [POSTGRES_DROP] if vendor == "postgresql" else SQLITE_DROP
    for statement in statements:
        schema_editor.execute(statement, None)


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]

    operations = [migrations.RunPython(create_trigger, drop_trigger)]
