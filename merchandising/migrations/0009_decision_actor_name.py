"""Who acted, kept by name next to every user key of the app (issue 11): filled from the users."""

from django.conf import settings
from django.db import migrations, models
from django.db.models import OuterRef, Subquery

#: (model, user foreign key, name field): every user key of the app that records who acted.
ACTOR_FIELDS = [
    ("decision", "actor", "actor_name"),
    ("exclusionrule", "created_by", "created_by_name"),
    ("link", "created_by", "created_by_name"),
    ("link", "retired_by", "retired_by_name"),
    ("linkchange", "actor", "actor_name"),
    ("miningrun", "started_by", "started_by_name"),
    ("publishevent", "actor", "actor_name"),
    ("publishstate", "published_by", "published_by_name"),
    ("suggestion", "decided_by", "decided_by_name"),
]


def fill_names(apps, schema_editor):
    """The existing rows get the name of their user (one UPDATE per field); rows whose user is
    already gone stay without a name: nothing is left to say who it was."""
    User = apps.get_model(settings.AUTH_USER_MODEL)
    for model_name, key, name in ACTOR_FIELDS:
        model = apps.get_model("merchandising", model_name)
        username = User.objects.filter(pk=OuterRef(f"{key}_id")).values("username")[:1]
        model.objects.filter(**{f"{key}__isnull": False}).update(**{name: Subquery(username)})


def clear_names(apps, schema_editor):
    for model_name, _key, name in ACTOR_FIELDS:
        apps.get_model("merchandising", model_name).objects.update(**{name: ""})


class Migration(migrations.Migration):
    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("merchandising", "0008_mining_run_ownership"),
    ]

    operations = [
        migrations.AddField(
            model_name="decision",
            name="actor_name",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                editable=False,
                help_text="The user name of actor when it was written; kept when the account is deleted.",
                max_length=150,
            ),
        ),
        migrations.AddField(
            model_name="exclusionrule",
            name="created_by_name",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                editable=False,
                help_text="The user name of created_by when it was written; kept when the account is deleted.",
                max_length=150,
            ),
        ),
        migrations.AddField(
            model_name="link",
            name="created_by_name",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                editable=False,
                help_text="The user name of created_by when it was written; kept when the account is deleted.",
                max_length=150,
            ),
        ),
        migrations.AddField(
            model_name="link",
            name="retired_by_name",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                editable=False,
                help_text="The user name of retired_by when it was written; kept when the account is deleted.",
                max_length=150,
            ),
        ),
        migrations.AddField(
            model_name="linkchange",
            name="actor_name",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                editable=False,
                help_text="The user name of actor when it was written; kept when the account is deleted.",
                max_length=150,
            ),
        ),
        migrations.AddField(
            model_name="miningrun",
            name="started_by_name",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                editable=False,
                help_text="The user name of started_by when it was written; kept when the account is deleted.",
                max_length=150,
            ),
        ),
        migrations.AddField(
            model_name="publishevent",
            name="actor_name",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                editable=False,
                help_text="The user name of actor when it was written; kept when the account is deleted.",
                max_length=150,
            ),
        ),
        migrations.AddField(
            model_name="publishstate",
            name="published_by_name",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                editable=False,
                help_text="The user name of published_by when it was written; kept when the account is deleted.",
                max_length=150,
            ),
        ),
        migrations.AddField(
            model_name="suggestion",
            name="decided_by_name",
            field=models.CharField(
                blank=True,
                db_default="",
                default="",
                editable=False,
                help_text="The user name of decided_by when it was written; kept when the account is deleted.",
                max_length=150,
            ),
        ),
        migrations.RunPython(fill_names, clear_names),
    ]
