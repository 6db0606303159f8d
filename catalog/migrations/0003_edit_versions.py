"""A ``version`` on brands, categories and products: the optimistic check of their edit forms
(audit/conflicts.py).

Adding a column with a default makes Django rebuild ``catalog_product`` on SQLite, which drops
its triggers, so the one-level-base trigger of 0002 is created again afterwards (on SQLite only:
PostgreSQL adds the column in place and keeps it)."""

import importlib

from django.db import migrations, models

_trigger = importlib.import_module("catalog.migrations.0002_product_one_level_base_trigger")


def recreate_trigger_on_sqlite(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        _trigger.drop_trigger(apps, schema_editor)
        _trigger.create_trigger(apps, schema_editor)


class Migration(migrations.Migration):

    dependencies = [
        ('catalog', '0002_product_one_level_base_trigger'),
    ]

    operations = [
        migrations.AddField(
            model_name='brand',
            name='version',
            field=models.PositiveIntegerField(db_default=1, default=1, editable=False, help_text='Raised by every change: an edit form saves only if it is still the version it loaded.'),
        ),
        migrations.AddField(
            model_name='category',
            name='version',
            field=models.PositiveIntegerField(db_default=1, default=1, editable=False, help_text='Raised by every change: an edit form saves only if it is still the version it loaded.'),
        ),
        migrations.AddField(
            model_name='product',
            name='version',
            field=models.PositiveIntegerField(db_default=1, default=1, editable=False, help_text='Raised by every change: an edit form saves only if it is still the version it loaded.'),
        ),
        migrations.RunPython(recreate_trigger_on_sqlite, recreate_trigger_on_sqlite),
    ]
