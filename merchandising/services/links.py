"""Links and publishing: every write to ``Link`` and ``PublishedLink`` goes through here.

A ``Link`` is the working set a specialist curates; ``PublishedLink`` is what the webshop
reads. ``links_publish`` brings the published copy in line with the working set in one
transaction, together with a new publish generation (the API's ETags use it), so a reader
sees the old set or the new one, never half of it. Without batch mode every change publishes
its own source products at once (same transaction as the change); with batch mode
(``PublishState.batch_mode``) changes wait for a batch publish, whose diff
``publish_diff`` shows first.

Every change writes a ``LinkChange`` row (who, when, how) in the same transaction, and raises
the version of the list it changes (``LinkList``: one source's links of one type), so that a
reorder sent from a page that shows an older list is refused (audit/conflicts.py).
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from audit.conflicts import EditConflict, FieldChange, version_bump, version_claim
from audit.models import AuditEntry, Via
from audit.services import audit_record, audit_record_many, created_changes, instance_values
from catalog.models import Product
from merchandising.models import (
    LINK_LABELS,
    Link,
    LinkChange,
    LinkList,
    LinkOrigin,
    LinkType,
    PublishedLink,
    PublishEvent,
    PublishState,
    actor_label_of,
    actor_name,
)

# Fields copied from a Link into its PublishedLink; a difference in any means "changed".
PUBLISHED_FIELDS = (
    "source_id",
    "target_id",
    "type",
    "position",
    "origin",
    "co_count",
    "confidence",
    "lift",
    "run_number",
    "approved_at",
    "approved_by_role",
    "valid_from",
    "valid_until",
)


class LinkError(ValidationError):
    """A link change that cannot be made (the message says why)."""


class PublishConflict(LinkError):
    """The publish was asked for a state that is no longer current (another publish, or the
    waiting changes differ from what was shown): nothing was published."""


# --- publishing -----------------------------------------------------------------------------


@dataclass
class PublishDiff:
    """What a publish would change: link ids per kind, plus the published rows to compare."""

    added: list[dict] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)
    reordered: list[dict] = field(default_factory=list)  # position changed (maybe more)
    changed: list[dict] = field(default_factory=list)  # other published fields changed

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.reordered or self.changed)

    @property
    def fingerprint(self) -> str:
        """A short digest of the whole diff: a publish page sends the one it showed, and
        ``links_publish(expected_fingerprint=...)`` refuses if the diff changed since."""
        payload = {
            kind: [[item["link_id"], item.get("old"), item.get("new")] for item in getattr(self, kind)]
            for kind in ("added", "removed", "reordered", "changed")
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]

    @property
    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "reordered": len(self.reordered),
            "changed": len(self.changed),
        }


def _working_rows(sources: Iterable[int] | None) -> dict[int, dict]:
    links = Link.objects.active()
    if sources is not None:
        links = links.filter(source_id__in=list(sources))
    rows = {}
    for link in links.order_by():
        rows[link.pk] = {
            "source_id": link.source_id,
            "target_id": link.target_id,
            "type": link.type,
            "position": link.position,
            "origin": link.origin,
            "co_count": link.co_count,
            "confidence": link.confidence,
            "lift": link.lift,
            "run_number": link.run_id,
            "approved_at": link.created_at,
            "approved_by_role": link.created_by_role,
            "valid_from": link.valid_from,
            "valid_until": link.valid_until,
        }
    return rows


def publish_diff(*, sources: Iterable[int] | None = None) -> PublishDiff:
    """The difference between the working links and the published ones (of ``sources``, or
    all). Each entry is a dict with ``link_id`` and the working (``new``) and/or published
    (``old``) values."""
    sources = None if sources is None else list(sources)
    working = _working_rows(sources)
    published_qs = PublishedLink.objects.published().order_by()
    if sources is not None:
        published_qs = published_qs.filter(source_id__in=sources)
    published = {row["link_id"]: row for row in published_qs.values("link_id", *PUBLISHED_FIELDS)}
    diff = PublishDiff()
    for link_id, new in working.items():
        old = published.get(link_id)
        if old is None:
            diff.added.append({"link_id": link_id, "new": new})
        elif old["position"] != new["position"]:
            diff.reordered.append({"link_id": link_id, "old": old, "new": new})
        elif any(old[name] != new[name] for name in PUBLISHED_FIELDS):
            diff.changed.append({"link_id": link_id, "old": old, "new": new})
    # Published but no longer active (retired) or no longer in the sources' working set.
    diff.removed = [{"link_id": link_id, "old": old} for link_id, old in published.items() if link_id not in working]
    for kind in (diff.added, diff.removed, diff.reordered, diff.changed):
        kind.sort(key=lambda item: item["link_id"])
    return diff


@dataclass
class PublishResult:
    generation: int
    counts: dict[str, int]
    event: PublishEvent | None


@transaction.atomic
def links_publish(
    *,
    actor,
    sources: Iterable[int] | None = None,
    batch: bool = False,
    expected_generation: int | None = None,
    expected_fingerprint: str | None = None,
) -> PublishResult:
    """Publish the working links of ``sources`` (all when None) in one transaction: published
    copies added, updated and tombstoned, and the generation raised by one, only if anything
    changed. Concurrent publishes queue on the publish state's row lock, so generations are
    strictly increasing and each publish sees the previous one's result.

    ``expected_generation`` / ``expected_fingerprint`` (the Publish button sends what it
    showed): raise PublishConflict, publishing nothing, unless the current generation and the
    diff computed here under the lock are exactly those."""
    PublishState.load()
    state = PublishState.objects.select_for_update().get(pk=1)
    if expected_generation is not None and state.generation != expected_generation:
        raise PublishConflict(
            f"Someone published meanwhile (generation {state.generation}, you saw {expected_generation}). "
            "Nothing was published: check the changes below and publish again."
        )
    diff = publish_diff(sources=sources)
    if expected_fingerprint is not None and diff.fingerprint != expected_fingerprint:
        raise PublishConflict(
            "The waiting changes have changed since the page was shown. Nothing was published: "
            "check the changes below and publish again."
        )
    if not diff:
        return PublishResult(generation=state.generation, counts=diff.counts, event=None)
    generation = state.generation + 1
    now = timezone.now()
    revived = set(
        PublishedLink.objects.filter(
            link_id__in=[item["link_id"] for item in diff.added], removed_generation__isnull=False
        ).values_list("link_id", flat=True)
    )
    PublishedLink.objects.bulk_create(
        [
            PublishedLink(
                link_id=item["link_id"],
                added_generation=generation,
                changed_generation=generation,
                updated_at=now,
                **item["new"],
            )
            for item in diff.added
            if item["link_id"] not in revived
        ]
    )
    updates = [item for item in diff.added if item["link_id"] in revived] + diff.reordered + diff.changed
    for item in updates:
        PublishedLink.objects.filter(link_id=item["link_id"]).update(
            changed_generation=generation, removed_generation=None, updated_at=now, **item["new"]
        )
    PublishedLink.objects.filter(link_id__in=[item["link_id"] for item in diff.removed]).update(
        removed_generation=generation, changed_generation=generation, updated_at=now
    )
    PublishState.objects.filter(pk=1).update(
        generation=generation, published_at=now, published_by=actor, published_by_name=actor_name(actor)
    )
    counts = diff.counts
    # One row per publish, with its counts: the published copies follow the links, whose own
    # changes are in the trail already.
    audit_record(
        obj=state,
        action=AuditEntry.Action.UPDATE,
        actor=actor,
        changes={"generation": [state.generation, generation]},
        extra={**counts, "batch": batch, "sources": "all" if sources is None else len(set(sources))},
    )
    event = PublishEvent.objects.create(
        generation=generation,
        actor=actor,
        actor_name=actor_name(actor),
        batch=batch,
        added=counts["added"],
        removed=counts["removed"],
        changed=counts["reordered"] + counts["changed"],
    )
    return PublishResult(generation=generation, counts=counts, event=event)


def publish_after_change(*, actor, sources: Iterable[int]) -> PublishResult | None:
    """Called by every link change: publish its sources at once unless batch mode is on."""
    if PublishState.load().batch_mode:
        return None
    return links_publish(actor=actor, sources=sources)


@transaction.atomic
def publish_settings_update(*, batch_mode: bool, actor) -> PublishState:
    """Turn batch publishing on or off (administrators). Turning it off publishes whatever
    was waiting, so that "immediate" holds from then on."""
    PublishState.load()
    state = PublishState.objects.select_for_update().get(pk=1)
    PublishState.objects.filter(pk=1).update(batch_mode=batch_mode)
    if state.batch_mode != batch_mode:
        audit_record(
            obj=state,
            action=AuditEntry.Action.UPDATE,
            actor=actor,
            changes={"batch_mode": [state.batch_mode, batch_mode]},
        )
    if not batch_mode:
        links_publish(actor=actor, batch=True)
    return PublishState.objects.get(pk=1)


# --- link changes ---------------------------------------------------------------------------


#: The audit trail's write path for each link-history "via".
AUDIT_VIA = {
    LinkChange.Via.REVIEW: Via.FORM,
    LinkChange.Via.MANUAL: Via.FORM,
    LinkChange.Via.ATTENTION: Via.FORM,
    LinkChange.Via.BULK: Via.BULK,
    LinkChange.Via.IMPORT: Via.IMPORT,
    LinkChange.Via.COMMAND: Via.COMMAND,
}
LINK_AUDITED = ("source", "target", "type", "position", "origin", "suggestion", "valid_from", "valid_until")


def _link_repr(link: Link) -> str:
    return f"Link {link.pk}: {link.source_id} → {link.target_id} ({link.type})"


def _audit_moves(moves: list[tuple[int, int, int]], *, actor, via: str) -> None:
    """History rows for links whose position moved: (id, old, new)."""
    audit_record_many(
        model=Link,
        rows=[(pk, f"Link {pk}", {"position": [old, new]}) for pk, old, new in moves],
        action=AuditEntry.Action.UPDATE,
        actor=actor,
        via=AUDIT_VIA.get(via),
    )


def _record(link: Link, action: str, *, actor, via: str, details: dict | None = None) -> LinkChange:
    return LinkChange.objects.create(
        link=link,
        product_id=link.source_id,
        target_id=link.target_id,
        type=link.type,
        action=action,
        via=via,
        actor=actor,
        actor_name=actor_name(actor),
        details=details or {},
    )


def _active_list(source_id: int, link_type: str) -> list[Link]:
    return list(
        Link.objects.active().select_for_update().filter(source_id=source_id, type=link_type).order_by("position", "id")
    )


def _list_claim(source_id: int, link_type: str, *, expected_version: int | None = None) -> None:
    """Raise the version of the source's list of links of ``link_type`` (the list row is made
    on its first change); with ``expected_version``, only if it is still that one, else
    EditConflict (see ``links_reorder``)."""
    link_list, _ = LinkList.objects.get_or_create(source_id=source_id, type=link_type)
    version_claim(obj=link_list, expected_version=expected_version)


def _lists_bump(source_ids: Iterable[int], link_type: str) -> None:
    """``_list_claim`` without a check, for many sources at once (bulk approvals)."""
    source_ids = sorted(set(source_ids))
    LinkList.objects.bulk_create(
        [LinkList(source_id=source_id, type=link_type) for source_id in source_ids], ignore_conflicts=True
    )
    LinkList.objects.filter(source_id__in=source_ids, type=link_type).update(**version_bump())


def link_list_conflict(*, source: Product, link_type: str, shown_ids: list[int]) -> EditConflict:
    """The conflict of a reorder sent from a page that showed ``shown_ids`` (in that order):
    the list as shown and as stored now (by SKU), and who changed it last (its history)."""
    current_ids = [link.pk for link in _active_list(source.pk, link_type)]
    skus = dict(Link.objects.filter(pk__in=set(shown_ids) | set(current_ids)).values_list("pk", "target__sku"))
    last = (
        LinkChange.objects.filter(product=source, type=link_type)
        .select_related("actor")
        .order_by("-created_at", "-id")
        .first()
    )
    label = f"{LINK_LABELS[link_type][0].lower()} order"
    change = FieldChange(
        field=link_type,
        label=label,
        loaded=", ".join(skus.get(pk, "?") for pk in shown_ids) or "(empty)",
        current=", ".join(skus[pk] for pk in current_ids) or "(empty)",
    )
    link_list = LinkList.objects.filter(source=source, type=link_type).first()
    return EditConflict(
        obj=link_list,
        current_version=link_list.version if link_list else None,
        changes=[change] if change.loaded != change.current else [],
        actor_label=actor_label_of(last.actor, last.actor_name, "system") if last else None,
        at=last.created_at if last else None,
    )


def _renumber(links: list[Link]) -> list[tuple[int, int, int]]:
    """Positions 1..n in list order, writing only the rows that move; returns the moves."""
    moves = []
    for position, link in enumerate(links, start=1):
        if link.position != position:
            moves.append((link.pk, link.position, position))
            link.position = position
            Link.objects.filter(pk=link.pk).update(position=position, updated_at=timezone.now())
    return moves


@transaction.atomic
def link_add(
    *,
    source: Product,
    target: Product,
    link_type: str,
    actor,
    via: str = LinkChange.Via.MANUAL,
    position: int | None = None,
    valid_from=None,
    valid_until=None,
    origin: str = LinkOrigin.MANUAL,
    suggestion=None,
    publish: bool = True,
) -> Link:
    """Add a link at ``position`` (1 = first; None = last) of the source's links of that type.

    Raises LinkError for a self-link, an unknown type or a link that already exists."""
    if link_type not in LinkType.values:
        raise LinkError(f"Unknown link type {link_type!r}.")
    if source.pk == target.pk:
        raise LinkError("A product cannot be linked to itself.")
    siblings = _active_list(source.pk, link_type)
    if any(link.target_id == target.pk for link in siblings):
        raise LinkError(f"{source.sku} already has {target.sku} as {LinkType(link_type).label.lower()}.")
    evidence = {}
    if suggestion is not None:
        evidence = {
            "co_count": suggestion.co_count,
            "confidence": suggestion.confidence,
            "lift": suggestion.lift,
            "run_id": suggestion.last_run_id,
        }
    link = Link(
        source=source,
        target=target,
        type=link_type,
        position=len(siblings) + 1,
        origin=origin,
        suggestion=suggestion,
        created_by=actor,
        created_by_name=actor_name(actor),
        created_by_role=", ".join(actor.role_names) if actor is not None else "",
        valid_from=valid_from,
        valid_until=valid_until,
        **evidence,
    )
    link.full_clean(exclude=["source", "target", "suggestion"])
    link.save()
    _list_claim(source.pk, link_type)
    moves = []
    if position is not None and 1 <= position <= len(siblings):
        moves = _renumber(siblings[: position - 1] + [link] + siblings[position - 1 :])
    audit_record(
        obj=link,
        action=AuditEntry.Action.CREATE,
        actor=actor,
        via=AUDIT_VIA.get(via),
        changes=created_changes(instance_values(link, LINK_AUDITED)),
        object_repr=_link_repr(link),
    )
    _audit_moves([move for move in moves if move[0] != link.pk], actor=actor, via=via)  # its own is the create
    _record(link, LinkChange.Action.ADDED, actor=actor, via=via, details={"position": link.position})
    if publish:
        publish_after_change(actor=actor, sources=[source.pk])
    return link


def links_create_from_suggestions(*, rows: list[dict], link_type: str, actor, via: str) -> dict[int, Link]:
    """Bulk ``link_add`` for approved suggestions (dicts with pk, source_id, target_id,
    co_count, confidence, lift, last_run_id): each new link goes last in its source's list of
    that type; a link that exists already is not added again (the approval stands). Returns
    {suggestion id: new link}. One query for the positions, bulk inserts for the links and
    their history; the caller publishes. Call inside a transaction."""
    sources = {row["source_id"] for row in rows}
    existing = set(
        Link.objects.active().filter(source_id__in=sources, type=link_type).values_list("source_id", "target_id")
    )
    top = dict(
        Link.objects.active()
        .filter(source_id__in=sources, type=link_type)
        .values("source_id")
        .annotate(top=Max("position"))
        .values_list("source_id", "top")
    )
    role = ", ".join(actor.role_names) if actor is not None else ""
    name = actor_name(actor)
    new: dict[int, Link] = {}
    for row in rows:
        key = (row["source_id"], row["target_id"])
        if key in existing:
            continue
        existing.add(key)
        top[row["source_id"]] = top.get(row["source_id"], 0) + 1
        new[row["pk"]] = Link(
            source_id=row["source_id"],
            target_id=row["target_id"],
            type=link_type,
            position=top[row["source_id"]],
            origin=LinkOrigin.MINED,
            suggestion_id=row["pk"],
            run_id=row["last_run_id"],
            co_count=row["co_count"],
            confidence=row["confidence"],
            lift=row["lift"],
            created_by=actor,
            created_by_name=name,
            created_by_role=role,
        )
    created = Link.objects.bulk_create(list(new.values()))
    if created:
        _lists_bump([link.source_id for link in created], link_type)
    audit_record_many(
        model=Link,
        rows=[(link.pk, _link_repr(link), created_changes(instance_values(link, LINK_AUDITED))) for link in created],
        action=AuditEntry.Action.CREATE,
        actor=actor,
        via=AUDIT_VIA.get(via),
    )
    LinkChange.objects.bulk_create(
        LinkChange(
            link=link,
            product_id=link.source_id,
            target_id=link.target_id,
            type=link.type,
            action=LinkChange.Action.ADDED,
            via=via,
            actor=actor,
            actor_name=name,
            details={"position": link.position},
        )
        for link in created
    )
    return new


@transaction.atomic
def links_reorder(
    *,
    source: Product,
    link_type: str,
    link_ids: list[int],
    actor,
    via: str = LinkChange.Via.MANUAL,
    expected_version: int | None = None,
    shown_ids: list[int] | None = None,
) -> list[Link]:
    """Set the order of all of the source's active links of one type: ``link_ids`` must list
    each of them exactly once. One history entry for the whole new order.

    ``expected_version``: the version of the list the page showed (``shown_ids``, in its
    order); if the list changed since (a reorder, an added or retired link), EditConflict
    naming the list as shown and as stored, and who changed it: nothing is written.

    An order that is already the stored one writes nothing at all (no version raised, no
    history), whatever version the page showed: there is nothing to lose or to record."""
    # The links' row locks first, then the list's (as link_add and link_retire take them).
    current = _active_list(source.pk, link_type)
    if list(link_ids) == [link.pk for link in current]:
        return current
    if expected_version is not None:
        try:
            _list_claim(source.pk, link_type, expected_version=expected_version)
        except EditConflict:
            raise link_list_conflict(source=source, link_type=link_type, shown_ids=shown_ids or link_ids) from None
    by_id = {link.pk: link for link in current}
    if len(link_ids) != len(set(link_ids)) or set(link_ids) != set(by_id):
        raise LinkError(
            "The new order must list every active link of this type exactly once "
            "(someone may have changed the list meanwhile: reload the page)."
        )
    before = [link.target_id for link in current]
    ordered = [by_id[pk] for pk in link_ids]
    _audit_moves(_renumber(ordered), actor=actor, via=via)
    if expected_version is None:
        _list_claim(source.pk, link_type)
    LinkChange.objects.create(
        link=None,
        product=source,
        target=None,
        type=link_type,
        action=LinkChange.Action.REORDERED,
        via=via,
        actor=actor,
        actor_name=actor_name(actor),
        details={"before": before, "after": [link.target_id for link in ordered]},
    )
    publish_after_change(actor=actor, sources=[source.pk])
    return ordered


@transaction.atomic
def link_retire(
    *, link_id: int, actor, reason: str = "", via: str = LinkChange.Via.MANUAL, publish: bool = True
) -> Link:
    """Retire an active link (it leaves the webshop at the next publish, at once without
    batch mode); the links after it move up. Raises LinkError if it is already retired."""
    now = timezone.now()
    link = Link.objects.select_for_update().filter(pk=link_id).first()
    if link is None or link.retired_at is not None:
        raise LinkError("This link is already retired (or gone): reload the page.")
    Link.objects.filter(pk=link_id).update(
        retired_at=now, retired_by=actor, retired_by_name=actor_name(actor), retire_reason=reason[:200], updated_at=now
    )
    link.refresh_from_db()
    changes = {"retired_at": [None, now], "retired_by": [None, getattr(actor, "pk", None)]}
    if reason:
        changes["retire_reason"] = ["", reason[:200]]
    audit_record(
        obj=link,
        action=AuditEntry.Action.UPDATE,
        actor=actor,
        via=AUDIT_VIA.get(via),
        changes=changes,
        object_repr=_link_repr(link),
    )
    _audit_moves(_renumber(_active_list(link.source_id, link.type)), actor=actor, via=via)
    _list_claim(link.source_id, link.type)
    _record(link, LinkChange.Action.RETIRED, actor=actor, via=via, details={"reason": reason} if reason else {})
    if publish:
        publish_after_change(actor=actor, sources=[link.source_id])
    return link


@transaction.atomic
def link_keep(*, link_id: int, actor) -> Link:
    """ "Keep" on the needs-attention list: the link stays, and leaves the list until a new
    reason appears (a later stale flag, discontinuation or successor)."""
    now = timezone.now()
    updated = Link.objects.active().filter(pk=link_id).update(attention_dismissed_at=now, updated_at=now)
    if not updated:
        raise LinkError("This link is retired (or gone): reload the page.")
    link = Link.objects.get(pk=link_id)
    audit_record(
        obj=link,
        action=AuditEntry.Action.UPDATE,
        actor=actor,
        changes={"attention_dismissed_at": [None, now]},
        object_repr=_link_repr(link),
    )
    _record(link, LinkChange.Action.KEPT, actor=actor, via=LinkChange.Via.ATTENTION)
    return link


def successor_of(product_id: int) -> Product | None:
    """The first active successor link's target of a product (its replacement), if any."""
    link = (
        Link.objects.active()
        .filter(source_id=product_id, type=LinkType.SUCCESSOR)
        .select_related("target")
        .order_by("position", "id")
        .first()
    )
    return link.target if link else None


@transaction.atomic
def link_replace_by_successor(*, link_id: int, actor) -> Link:
    """Replace a link's target by the target's successor: the old link is retired and a new
    one to the successor takes its place (same type and position)."""
    link = Link.objects.select_for_update().filter(pk=link_id, retired_at__isnull=True).select_related("source").first()
    if link is None:
        raise LinkError("This link is retired (or gone): reload the page.")
    successor = successor_of(link.target_id)
    if successor is None:
        raise LinkError("The target has no successor.")
    if successor.pk == link.source_id:
        raise LinkError("The successor is the source product itself.")
    position = link.position
    link_retire(
        link_id=link.pk, actor=actor, reason="replaced by successor", via=LinkChange.Via.ATTENTION, publish=False
    )
    existing = Link.objects.active().filter(source_id=link.source_id, target=successor, type=link.type).first()
    if existing is None:
        existing = link_add(
            source=link.source,
            target=successor,
            link_type=link.type,
            actor=actor,
            via=LinkChange.Via.ATTENTION,
            position=position,
            publish=False,
        )
    _record(
        link, LinkChange.Action.REPLACED, actor=actor, via=LinkChange.Via.ATTENTION, details={"successor": successor.pk}
    )
    publish_after_change(actor=actor, sources=[link.source_id])
    return existing


def next_position(source_id: int, link_type: str) -> int:
    top = Link.objects.active().filter(source_id=source_id, type=link_type).aggregate(top=Max("position"))["top"]
    return (top or 0) + 1


@transaction.atomic
def published_links_refresh(*, on: datetime.date | None = None, actor="task:published_links_refresh") -> int:
    """Move ``updated_at`` of the published links whose visibility changed without a publish
    (a date window opening or closing, a product discontinued or re-activated, a target
    flagged "exclude from recommendations"), so the API's ``links/?updated_since=`` reports
    them (as removed, or back). Two set-based updates; returns how many links changed. Run
    by the schedule every few minutes (accounts/schedules.py), and idempotent."""
    on = on or timezone.localdate()
    now = timezone.now()
    visible_now = PublishedLink.objects.visible(on).values("pk")
    appeared = PublishedLink.objects.filter(visible=False, pk__in=visible_now).update(visible=True, updated_at=now)
    gone = (
        PublishedLink.objects.filter(visible=True, removed_generation__isnull=True)
        .exclude(pk__in=visible_now)
        .update(visible=False, updated_at=now)
    )
    if appeared or gone:
        # One summary row: the published copies' visibility follows dates and product flags.
        audit_record(
            obj=PublishState.load(),
            action=AuditEntry.Action.UPDATE,
            actor=actor,
            changes={},
            extra={"links_visible_again": appeared, "links_hidden": gone, "on": on.isoformat()},
        )
    return appeared + gone
