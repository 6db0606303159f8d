"""Reading the audit trail."""

from __future__ import annotations

from django.db import models

from audit.models import AuditEntry


def last_change(obj: models.Model) -> AuditEntry | None:
    """The newest history row of ``obj`` (who changed it last, when, and what)."""
    return AuditEntry.objects.for_object(obj).first()
