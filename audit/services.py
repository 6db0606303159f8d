"""Writing the audit trail. Every service that changes data calls ``audit_record`` (one
object) or ``audit_record_many`` (bulk writes and ``update()``), inside its own transaction,
so the history row commits or rolls back with the change."""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import models

from audit.models import AuditEntry, Via

Action = AuditEntry.Action

#: An actor: a staff user, or a label for a machine actor ("api:<client>", "task:<run id>",
#: "command:<name>"), or None for the system itself.
ActorLike = Any


def actor_parts(actor: ActorLike) -> tuple[Any, str]:
    """(user or None, label) for an actor given as a user, a label or None."""
    if actor is None:
        return None, "system"
    if isinstance(actor, str):
        return None, actor[:150]
    if isinstance(actor, get_user_model()):
        return actor, actor.get_username()[:150]
    # Machine actors say how they are recorded (ApiClient: "api:<name>", MiningRun: "task:<id>").
    label = getattr(actor, "audit_label", None)
    if isinstance(label, str):
        return None, label[:150]
    # Anything else with a name is recorded by that name.
    name = getattr(actor, "name", None) or str(actor)
    return None, f"{type(actor).__name__.lower()}:{name}"[:150]


#: The write path a machine label implies when the caller names none.
_VIA_BY_PREFIX = {"api": Via.API, "task": Via.TASK, "command": Via.COMMAND}


def via_for(*, label: str, user: Any, via: str | None) -> str:
    """``via`` as given, else what the actor implies: a user acted through a form, a machine
    label through its kind (``api:``, ``task:``, ``command:``), nobody through the system."""
    if via:
        return via
    if user is not None:
        return Via.FORM
    return _VIA_BY_PREFIX.get(label.partition(":")[0], Via.SYSTEM)


def created_changes(values: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{field: [None, value]}``: the diff of a create."""
    return {name: [None, audit_value(value)] for name, value in values.items()}


def deleted_changes(values: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{field: [value, None]}``: the diff of a delete (the last values)."""
    return {name: [audit_value(value), None] for name, value in values.items()}


def audit_value(value: Any) -> Any:
    """A JSON-safe form of a field value, exact for money (Decimal as its string)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, models.Model):
        return str(value.pk)
    if isinstance(value, Mapping):
        return {str(key): audit_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [audit_value(item) for item in value]
    return str(value)


def instance_values(obj: models.Model, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """The concrete field values of ``obj`` (foreign keys as their id), JSON-safe. The edit
    version (audit.conflicts.VersionedModel) is bookkeeping, not a value anyone changed: left out."""
    names = set(fields) if fields is not None else None
    values = {}
    for field in obj._meta.concrete_fields:
        if names is not None and field.name not in names and field.attname not in names:
            continue
        if names is None and field.name == "version":
            continue
        values[field.name] = audit_value(getattr(obj, field.attname))
    return values


def values_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{field: [old, new]}`` for every field whose value differs (missing counts as None)."""
    diff = {}
    for name in sorted(set(before) | set(after)):
        old, new = audit_value(before.get(name)), audit_value(after.get(name))
        if old != new:
            diff[name] = [old, new]
    return diff


def _entry(
    *,
    model: type[models.Model],
    content_type: ContentType,
    pk: Any,
    object_repr: str,
    action: int,
    changes: Mapping[str, list[Any]],
    user: Any,
    label: str,
    via: str,
    extra: Mapping[str, Any] | None,
) -> AuditEntry:
    return AuditEntry(
        content_type=content_type,
        object_pk=str(pk),
        object_id=pk if isinstance(pk, int) else None,
        object_repr=object_repr[:2000],
        action=action,
        changes={name: [audit_value(old), audit_value(new)] for name, (old, new) in changes.items()},
        actor=user,
        actor_label=label,
        via=via,
        additional_data=dict(extra) if extra else None,
    )


def audit_record(
    *,
    obj: models.Model,
    action: int,
    actor: ActorLike,
    via: str | None = None,
    changes: Mapping[str, list[Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
    object_repr: str | None = None,
) -> AuditEntry:
    """One history row for ``obj``. ``changes`` is ``{field: [old, new]}`` (see values_diff);
    for a create, the new values; for a delete, the last values. Without ``via`` the actor
    implies it (see via_for)."""
    user, label = actor_parts(actor)
    via = via_for(label=label, user=user, via=via)
    entry = _entry(
        model=type(obj),
        content_type=ContentType.objects.get_for_model(obj.__class__),
        pk=obj.pk,
        object_repr=object_repr if object_repr is not None else str(obj),
        action=action,
        changes=changes or {},
        user=user,
        label=label,
        via=via,
        extra=extra,
    )
    entry.save()
    return entry


def audit_saved(
    *,
    obj: models.Model,
    before: Mapping[str, Any] | None,
    actor: ActorLike,
    via: str | None = None,
    fields: Iterable[str] | None = None,
) -> AuditEntry | None:
    """After saving ``obj``: a create row (``before`` is None) or an update row with what
    changed since ``before`` (``instance_values`` taken before the save); None if nothing did."""
    fields = list(fields) if fields is not None else None
    changes = values_diff(before or {}, instance_values(obj, fields))
    if not changes:
        return None
    action = Action.CREATE if before is None else Action.UPDATE
    return audit_record(obj=obj, action=action, actor=actor, via=via, changes=changes)


def audit_record_many(
    *,
    model: type[models.Model],
    rows: Iterable[tuple[Any, str, Mapping[str, list[Any]]]],
    action: int,
    actor: ActorLike,
    via: str | None = None,
    extra: Mapping[str, Any] | None = None,
    batch_size: int = 2000,
    using: str = "default",
) -> int:
    """History rows for a bulk write or an ``update()``: ``rows`` are ``(pk, repr, changes)``.
    Returns how many rows were written."""
    user, label = actor_parts(actor)
    via = via_for(label=label, user=user, via=via)
    content_type = ContentType.objects.db_manager(using).get_for_model(model)
    entries = [
        _entry(
            model=model,
            content_type=content_type,
            pk=pk,
            object_repr=object_repr,
            action=action,
            changes=changes,
            user=user,
            label=label,
            via=via,
            extra=extra,
        )
        for pk, object_repr, changes in rows
    ]
    if entries:
        AuditEntry.objects.using(using).bulk_create(entries, batch_size=batch_size)
    return len(entries)
