"""The audit trail: one row per change, written by the service that makes the change.

django-auditlog supplies the table's shape (``AbstractLogEntry``: object, action, the
``{field: [old, new]}`` diff, actor, time), its admin rendering and its diff helpers. Its
signal-based registration is not used: signals miss ``update()`` and bulk writes, and our
services are the only writers anyway, so each service records its own rows (audit.services)
in the transaction of the change. ``AUDITLOG_LOGENTRY_MODEL`` points auditlog at this model.
"""

from __future__ import annotations

from auditlog.models import AbstractLogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import models


class Via(models.TextChoices):
    """The write path a change came through."""

    FORM = "form", "Form"
    ADMIN_ACTION = "admin_action", "Admin action"
    BULK = "bulk", "Bulk action"
    IMPORT = "import", "Import"
    API = "api", "Webshop API"
    TASK = "task", "Background task"
    COMMAND = "command", "Management command"
    SYSTEM = "system", "System"


class AuditEntryQuerySet(models.QuerySet):
    def for_object(self, obj: models.Model) -> AuditEntryQuerySet:
        """The history of one object, newest first."""
        content_type = ContentType.objects.get_for_model(obj.__class__)
        return self.filter(content_type=content_type, object_pk=str(obj.pk)).order_by("-timestamp", "-pk")

    def for_model(self, model: type[models.Model]) -> AuditEntryQuerySet:
        return self.filter(content_type=ContentType.objects.get_for_model(model))


class AuditEntry(AbstractLogEntry):
    """A change: who (``actor`` while the user exists, ``actor_label`` always: a user name,
    ``api:<client>``, ``task:<run id>``, ``command:<name>``), when, through which path
    (``via``), and the values before and after."""

    # PROTECT, not auditlog's CASCADE: history outlives the models it describes, so a content
    # type with history cannot be removed (remove_stale_contenttypes says why instead of the
    # append-only trigger refusing a cascade half-way).
    content_type = models.ForeignKey(
        ContentType, on_delete=models.PROTECT, related_name="+", verbose_name="content type"
    )
    actor_label = models.CharField(max_length=150, blank=True)
    via = models.CharField(max_length=20, choices=Via.choices, default=Via.SYSTEM)

    objects = AuditEntryQuerySet.as_manager()

    class Meta(AbstractLogEntry.Meta):
        verbose_name = "audit entry"
        verbose_name_plural = "audit trail"
        indexes = [
            models.Index(fields=["content_type", "object_pk", "-timestamp"], name="audit_object_time"),
            models.Index(fields=["-timestamp"], name="audit_time"),
        ]
