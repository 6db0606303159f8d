"""Webshop event intake: a batch of impressions, clicks, add-to-carts and purchases, each
checked on its own (good ones stored, bad ones reported with their reasons), stored in one
bulk insert and aggregated later (merchandising/selectors/events.py).

Idempotent by the client's ``event_id``: a batch sent twice (a retry after a timeout) stores
each event once; the second answer counts them as duplicates.
"""

from __future__ import annotations

import datetime
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.models import AuditEntry
from audit.services import audit_record_many
from merchandising.api.tokens import BadToken, read_token
from merchandising.models import WebshopEvent

#: Most events in one batch; a bigger batch is refused as a whole (split it).
MAX_BATCH = 1000
#: How far in the future ``occurred_at`` may lie: the webshop's clock may run a little ahead.
FUTURE_SKEW = datetime.timedelta(minutes=5)
#: How old an event may be: older ones no longer change any report.
MAX_AGE = datetime.timedelta(days=90)
#: Longest accepted token: ours are about 60-100 characters; a huge string is not worth an HMAC.
MAX_TOKEN_LENGTH = 512

EVENT_ID_LENGTH = WebshopEvent._meta.get_field("event_id").max_length
ACCOUNT_LENGTH = WebshopEvent._meta.get_field("account").max_length
KINDS = tuple(WebshopEvent.Kind.values)


class EventBatchError(ValueError):
    """The batch as a whole is unusable (not a list, empty, too big): nothing was stored."""


@dataclass(frozen=True)
class EventRejection:
    """One refused event: its position in the batch, its event_id when it had a usable one,
    and a message per offending field."""

    index: int
    event_id: str | None
    errors: dict[str, str]


@dataclass(frozen=True)
class EventIngestResult:
    accepted: int
    duplicates: int
    rejected: list[EventRejection] = field(default_factory=list)


def _has_control_characters(value: str) -> bool:
    return any(unicodedata.category(char) in ("Cc", "Cs") for char in value)


def _check_event(raw: Any, *, now: datetime.datetime, client_id: int | None) -> tuple[WebshopEvent | None, dict]:
    """The event to store, or None and the errors per field (every field is checked, so the
    webshop sees all of an event's problems at once)."""
    if not isinstance(raw, dict):
        return None, {"event": "must be a JSON object"}
    errors: dict[str, str] = {}

    event_id = raw.get("event_id")
    if not isinstance(event_id, str) or not event_id:
        errors["event_id"] = "required: a non-empty string"
    elif len(event_id) > EVENT_ID_LENGTH:
        errors["event_id"] = f"at most {EVENT_ID_LENGTH} characters"
    elif _has_control_characters(event_id):
        errors["event_id"] = "must not contain control characters"

    kind = raw.get("type")
    if kind not in KINDS:
        errors["type"] = f"required: one of {', '.join(KINDS)}"

    token = raw.get("token")
    tracked = None
    if not isinstance(token, str) or not token:
        errors["token"] = "required: the tracking token of the recommended item"
    elif len(token) > MAX_TOKEN_LENGTH:
        errors["token"] = "unknown or altered tracking token"
    else:
        try:
            tracked = read_token(token)
        except BadToken:
            errors["token"] = "unknown or altered tracking token"

    account = raw.get("account")
    if account is None:
        account = ""
    elif not isinstance(account, str):
        errors["account"] = "must be a string (the customer account id) or null"
    elif len(account) > ACCOUNT_LENGTH:
        errors["account"] = f"at most {ACCOUNT_LENGTH} characters"
    elif _has_control_characters(account):
        errors["account"] = "must not contain control characters"

    occurred_raw = raw.get("occurred_at")
    occurred_at = None
    if not isinstance(occurred_raw, str) or not occurred_raw:
        errors["occurred_at"] = "required: an ISO 8601 date and time with a time zone"
    else:
        try:
            occurred_at = parse_datetime(occurred_raw)
        except ValueError:  # well formed but out of range, e.g. hour 25
            occurred_at = None
        if occurred_at is None:
            errors["occurred_at"] = "not an ISO 8601 date and time (e.g. 2026-05-04T13:45:00+02:00)"
        elif occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
            errors["occurred_at"] = "must include a time zone (Z or an offset such as +02:00)"
        elif occurred_at > now + FUTURE_SKEW:
            errors["occurred_at"] = f"lies in the future (more than {int(FUTURE_SKEW.total_seconds() // 60)} minutes)"
        elif occurred_at < now - MAX_AGE:
            errors["occurred_at"] = f"older than {MAX_AGE.days} days"

    if errors:
        return None, errors
    assert tracked is not None and occurred_at is not None
    return WebshopEvent(
        event_id=event_id,
        kind=kind,
        link_id=tracked.link_id,
        generation=tracked.generation,
        source_id=tracked.source_id,
        target_id=tracked.target_id,
        touchpoint=tracked.touchpoint,
        account=account,
        occurred_at=occurred_at,
        client_id=client_id,
    ), {}


def events_ingest(
    *, events: Sequence[Any], client_id: int | None, now: datetime.datetime | None = None, actor=None
) -> EventIngestResult:
    """Check each event of a webshop batch and store the good ones.

    Three queries whatever the batch size: one reading which event_ids are already stored, one
    bulk ``INSERT ... ON CONFLICT DO NOTHING`` (on SQLite Django splits it into inserts of at
    most 999 parameters), and the batch's audit row. No per-event ``full_clean()``: its unique check would be one query
    per event; the checks here plus the table's unique and check constraints cover it.

    ``duplicates`` counts events already stored when the batch arrived and repeats of an
    event_id within the batch (the first one counts). Two deliveries of the same new event
    racing each other both report it accepted; it is stored once all the same (the unique
    constraint decides).

    Raises ``EventBatchError`` when ``events`` is not a list of 1 to ``MAX_BATCH`` items.
    """
    if not isinstance(events, list | tuple):
        raise EventBatchError('"events" must be a list of events')
    if not events:
        raise EventBatchError('"events" is empty: send at least one event')
    if len(events) > MAX_BATCH:
        raise EventBatchError(f'"events" holds {len(events)} events; at most {MAX_BATCH} per batch')
    now = now or timezone.now()

    rejected: list[EventRejection] = []
    fresh: dict[str, WebshopEvent] = {}
    repeats = 0
    for index, raw in enumerate(events):
        event, errors = _check_event(raw, now=now, client_id=client_id)
        if event is None:
            event_id = raw.get("event_id") if isinstance(raw, dict) else None
            shown_id = event_id if isinstance(event_id, str) and "event_id" not in errors else None
            rejected.append(EventRejection(index=index, event_id=shown_id, errors=errors))
        elif event.event_id in fresh:
            repeats += 1
        else:
            fresh[event.event_id] = event

    stored = set()
    if fresh:
        stored = set(WebshopEvent.objects.filter(event_id__in=list(fresh)).values_list("event_id", flat=True))
        new = [event for event_id, event in fresh.items() if event_id not in stored]
        if new:
            with transaction.atomic(savepoint=False):
                WebshopEvent.objects.bulk_create(new, ignore_conflicts=True)
                # One summary row per batch (``actor``: the API client, "api:<name>"), not one
                # per event: events are append-only telemetry that carry their client and time.
                audit_record_many(
                    model=WebshopEvent,
                    rows=[("", f"{len(new)} webshop events", {"stored": [None, len(new)]})],
                    action=AuditEntry.Action.CREATE,
                    actor=actor if actor is not None else (f"api:client {client_id}" if client_id else "api:unknown"),
                    extra={"duplicates": len(stored) + repeats, "rejected": len(rejected)},
                )
    return EventIngestResult(accepted=len(fresh) - len(stored), duplicates=len(stored) + repeats, rejected=rejected)
