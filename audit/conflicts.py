"""Optimistic version checks for the edit forms people share: one mechanism for every model.

A model that people edit in a form inherits ``VersionedModel`` (a ``version`` column). The form
carries the version it was loaded at (audit/forms.py) and the service saves only if the row
still has it: ``version_claim`` raises the version by one in a conditional update
(``UPDATE ... SET version = version + 1 WHERE id = %s AND version = %s``) in the transaction
of the save, and zero rows changed means someone saved meanwhile: ``EditConflict``, nothing
written. Writers that change rows without a loaded copy (imports, bulk actions, commands)
raise the version too (``version_bump``), so a form opened before them is refused as well.

The conflict names what changed and who saved last (the audit trail's newest row, see
``audit.selectors.last_change``), e.g. "Saved meanwhile by ann at 2026-11-22 18:42: unit price
10.0000 → 12.0000. Your changes were not saved; review and save again."

This is what django-concurrency does too; a column and one conditional update are all it
takes, so we keep it in our own services (bulk writes and ``update()`` included) rather than
add the package.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F
from django.utils import timezone

#: The version a row starts at (also the database default, for raw SQL inserts).
FIRST_VERSION = 1


class VersionedModel(models.Model):
    """Adds ``version``: raised by one by every change the services make to the row."""

    version = models.PositiveIntegerField(
        default=FIRST_VERSION,
        db_default=FIRST_VERSION,
        editable=False,
        help_text="Raised by every change: an edit form saves only if it is still the version it loaded.",
    )

    class Meta:
        abstract = True


def version_bump() -> dict[str, F]:
    """The ``update()`` keyword that raises the version: ``qs.update(..., **version_bump())``."""
    return {"version": F("version") + 1}


@dataclass(frozen=True)
class FieldChange:
    """One field that changed between the loaded form and the stored row, as shown to people."""

    field: str
    label: str
    loaded: str
    current: str

    def __str__(self) -> str:
        return f"{self.label} {self.loaded} → {self.current}"


def conflict_message(*, changes: Sequence[FieldChange], actor_label: str | None, at: datetime.datetime | None) -> str:
    who = f"by {actor_label}" if actor_label else "by another user"
    if actor_label and at is not None:
        who += f" at {timezone.localtime(at).strftime('%Y-%m-%d %H:%M')}"
    what = ": " + "; ".join(str(change) for change in changes) if changes else ""
    return f"Saved meanwhile {who}{what}. Your changes were not saved; review and save again."


class EditConflict(ValidationError):
    """Someone saved the object after this form was loaded; nothing was written.

    ``changes``: the fields whose stored value differs from the loaded one (empty when the
    caller knows only the version); ``actor_label`` / ``at``: who saved last and when (None
    when the history does not say); ``current_version``: the version stored now."""

    def __init__(
        self,
        *,
        obj: models.Model | None,
        current_version: int | None,
        changes: Iterable[FieldChange] = (),
        actor_label: str | None = None,
        at: datetime.datetime | None = None,
    ):
        self.obj = obj
        self.current_version = current_version
        self.changes = list(changes)
        self.actor_label = actor_label
        self.at = at
        super().__init__(conflict_message(changes=self.changes, actor_label=actor_label, at=at), code="edit_conflict")

    @property
    def message_text(self) -> str:
        return self.messages[0]


def edit_conflict(obj: models.Model, *, changes: Iterable[FieldChange] = ()) -> EditConflict:
    """The conflict for the stored ``obj``, naming who changed it last (from the audit trail)."""
    from audit.selectors import last_change  # audit.models needs the app registry

    entry = last_change(obj)
    return EditConflict(
        obj=obj,
        current_version=getattr(obj, "version", None),
        changes=changes,
        actor_label=entry.actor_label if entry is not None else None,
        at=entry.timestamp if entry is not None else None,
    )


def version_claim(*, obj: VersionedModel, expected_version: int | None) -> None:
    """Call inside the save's transaction, before saving the existing row ``obj``: raise the
    stored version by one if it is still ``expected_version`` (the version the form loaded),
    and set ``obj.version`` to the new one, so that ``obj.save()`` keeps it. Raises
    EditConflict, changing nothing, if the row has another version.

    ``expected_version=None`` is for writers without a loaded copy (imports, commands): the
    version is raised whatever it is. The conditional update also takes the row's write lock,
    so two saves with the same version cannot both pass, on PostgreSQL and on SQLite."""
    manager = type(obj)._default_manager
    rows = manager.filter(pk=obj.pk)
    if expected_version is not None:
        rows = rows.filter(version=expected_version)
    if not rows.update(**version_bump()):
        current = manager.filter(pk=obj.pk).first()
        if current is None:
            if expected_version is None:
                return  # not stored (yet): the save inserts it at its version
            raise EditConflict(obj=None, current_version=None, changes=(), actor_label=None, at=None)
        raise edit_conflict(current)
    if expected_version is not None:
        obj.version = expected_version + 1
    else:
        obj.version = manager.filter(pk=obj.pk).values_list("version", flat=True).get()
