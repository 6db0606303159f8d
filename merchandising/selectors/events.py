"""Reads over the stored webshop events: impressions, clicks, add-to-carts and purchases per
published link and the rates between them. One grouped query each, whatever the number of
events or links; no writes here (see merchandising/services/events.py)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db.models import Count, Max, Q

from merchandising.models import WebshopEvent
from merchandising.selectors import start_of_day

Kind = WebshopEvent.Kind


@dataclass(frozen=True)
class LinkEventStats:
    """The events of one published link over a date range. Rates are per impression and
    None without impressions (a click without a recorded impression is still counted)."""

    link_id: int
    source_id: int | None
    target_id: int | None
    impressions: int
    clicks: int
    add_to_carts: int
    purchases: int

    @staticmethod
    def _rate(count: int, impressions: int) -> float | None:
        return count / impressions if impressions else None

    @property
    def ctr(self) -> float | None:
        """Click-through rate: clicks per impression."""
        return self._rate(self.clicks, self.impressions)

    @property
    def add_to_cart_rate(self) -> float | None:
        return self._rate(self.add_to_carts, self.impressions)

    @property
    def purchase_rate(self) -> float | None:
        return self._rate(self.purchases, self.impressions)


def _in_range(start: datetime.date, end: datetime.date) -> Q:
    """``occurred_at`` on the days ``start`` to ``end`` (both included) in TIME_ZONE."""
    return Q(occurred_at__gte=start_of_day(start), occurred_at__lt=start_of_day(end + datetime.timedelta(days=1)))


def link_event_stats(
    *,
    start: datetime.date,
    end: datetime.date,
    link_ids: list[int] | None = None,
    touchpoint: str | None = None,
) -> list[LinkEventStats]:
    """Per published link with at least one event on the days ``start`` to ``end`` (both
    included, in TIME_ZONE): the count of each event kind. Optionally only some links or one
    touchpoint. Most impressions first, then by link id. One GROUP BY query; the
    (link_id, kind) index serves a ``link_ids`` filter."""
    if end < start:
        raise ValueError(f"the range ends ({end}) before it starts ({start})")
    events = WebshopEvent.objects.filter(_in_range(start, end), link_id__isnull=False)
    if link_ids is not None:
        events = events.filter(link_id__in=link_ids)
    if touchpoint is not None:
        events = events.filter(touchpoint=touchpoint)
    rows = (
        events.order_by()
        .values("link_id")
        .annotate(
            # A link's products never change, so Max is just "the" value (events outlive links).
            source=Max("source_id"),
            target=Max("target_id"),
            impressions=Count("id", filter=Q(kind=Kind.IMPRESSION)),
            clicks=Count("id", filter=Q(kind=Kind.CLICK)),
            add_to_carts=Count("id", filter=Q(kind=Kind.ADD_TO_CART)),
            purchases=Count("id", filter=Q(kind=Kind.PURCHASE)),
        )
        .order_by("-impressions", "link_id")
    )
    return [
        LinkEventStats(
            link_id=row["link_id"],
            source_id=row["source"],
            target_id=row["target"],
            impressions=row["impressions"],
            clicks=row["clicks"],
            add_to_carts=row["add_to_carts"],
            purchases=row["purchases"],
        )
        for row in rows
    ]


def event_totals(*, start: datetime.date, end: datetime.date) -> dict[str, int]:
    """The number of events of each kind on the days ``start`` to ``end`` (both included),
    every kind present (0 when none): one query."""
    if end < start:
        raise ValueError(f"the range ends ({end}) before it starts ({start})")
    counts = WebshopEvent.objects.filter(_in_range(start, end)).aggregate(
        **{kind: Count("id", filter=Q(kind=kind)) for kind in Kind.values}
    )
    return {kind: counts[kind] for kind in Kind.values}
