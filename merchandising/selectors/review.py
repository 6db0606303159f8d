"""Reads for the review queue (/review/): the page of pending suggestions with their evidence,
the source products' published links, the filter choices and a pair's sample orders.

``review_queue(user, params)`` is the one entry point the page and the benchmark call; it
runs a constant number of queries whatever the page size. Without filters the total is
counted only up to ``COUNT_CAP`` rows past the page (an exact COUNT over 100k pending rows
costs more than the page itself); with filters it is exact (see ``review_queue``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q, QuerySet

from catalog.models import CATEGORY_SEPARATOR, Brand, Category
from merchandising.models import LINK_LABELS, MiningRun, PublishedLink, Suggestion, SuggestionStatus
from orders.models import Order

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
COUNT_CAP = 1000
RUN_CHOICES = 20
SAMPLE_ORDERS = 5

#: The query parameters that are filters (saved per user); ``page`` and ``size`` are not.
FILTER_KEYS = ("category", "brand", "min_co_count", "min_lift", "run", "new", "stale")


@dataclass(frozen=True)
class QueueFilters:
    category: int | None = None  # source category, with its subtree
    brand: int | None = None  # source brand
    min_co_count: int | None = None
    min_lift: float | None = None
    run: int | None = None  # found in run (first_run)
    new: bool = False  # found in the latest successful run
    stale: bool = False  # stale pending suggestions instead of the queue

    def as_params(self) -> dict[str, str]:
        """The non-empty filters as query parameters (what ReviewPreference stores)."""
        params: dict[str, str] = {}
        for key in FILTER_KEYS:
            value = getattr(self, key)
            if value is None or value is False:
                continue
            params[key] = "1" if value is True else str(value)
        return params

    @property
    def active(self) -> bool:
        return bool(self.as_params())


def _int(value: Any, minimum: int = 0) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number >= minimum else None


def _float(value: Any) -> float | None:
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number >= 0 and number == number and number != float("inf") else None


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in {"1", "true", "on", "yes"}


def parse_filters(params: Mapping[str, Any]) -> QueueFilters:
    """Filters from query parameters; a value that does not parse is left out, not an error
    (a bookmarked URL with a stale id shows the unfiltered queue rather than a 400)."""
    return QueueFilters(
        category=_int(params.get("category"), 1),
        brand=_int(params.get("brand"), 1),
        min_co_count=_int(params.get("min_co_count"), 0),
        min_lift=_float(params.get("min_lift")),
        run=_int(params.get("run"), 1),
        new=_flag(params.get("new")),
        stale=_flag(params.get("stale")),
    )


def latest_run_id() -> int | None:
    return (
        MiningRun.objects.filter(status=MiningRun.Status.SUCCEEDED).order_by("-pk").values_list("pk", flat=True).first()
    )


def _row_queryset() -> QuerySet[Suggestion]:
    return Suggestion.objects.with_trend().select_related(
        "source__brand", "source__category", "target__brand", "target__category", "decided_by"
    )


def queue_queryset(filters: QueueFilters, latest: int | None) -> QuerySet[Suggestion]:
    """The pending suggestions the filters select, best score first. Served by the index
    merch_suggestion_queue_idx (status, stale, -score)."""
    queryset = Suggestion.objects.filter(status=SuggestionStatus.PENDING, stale=filters.stale)
    if latest is not None:
        # Snoozed until a run newer than the latest one succeeds.
        queryset = queryset.filter(Q(snoozed_run_id__isnull=True) | ~Q(snoozed_run_id=latest))
    if filters.category is not None:
        path = Category.objects.filter(pk=filters.category).values_list("path", flat=True).first()
        if path is None:
            return queryset.none()
        subtree = Category.objects.filter(Q(path=path) | Q(path__startswith=path + CATEGORY_SEPARATOR)).values("pk")
        queryset = queryset.filter(source__category_id__in=subtree)
    if filters.brand is not None:
        queryset = queryset.filter(source__brand_id=filters.brand)
    if filters.min_co_count is not None:
        queryset = queryset.filter(co_count__gte=filters.min_co_count)
    if filters.min_lift is not None:
        queryset = queryset.filter(lift__gte=filters.min_lift)
    if filters.run is not None:
        queryset = queryset.filter(first_run_id=filters.run)
    if filters.new:
        queryset = queryset.filter(first_run_id=latest) if latest is not None else queryset.none()
    return queryset.order_by("-score", "pk")


@dataclass
class PublishedGroup:
    label: str
    targets: list[PublishedLink]


@dataclass
class QueuePage:
    filters: QueueFilters
    rows: list[Suggestion]
    page: int
    page_size: int
    total: int  # counted up to COUNT_CAP (see total_capped)
    total_capped: bool
    has_next: bool
    latest_run: int | None
    published: dict[int, list[PublishedGroup]] = field(default_factory=dict)
    brands: list[tuple[int, str]] = field(default_factory=list)
    categories: list[tuple[int, str]] = field(default_factory=list)
    runs: list[tuple[int, str]] = field(default_factory=list)

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def first_index(self) -> int:
        return (self.page - 1) * self.page_size + 1 if self.rows else 0

    @property
    def last_index(self) -> int:
        return (self.page - 1) * self.page_size + len(self.rows)

    @property
    def pages(self) -> int | None:
        """The number of pages, when the total is exact."""
        if self.total_capped:
            return None
        return max(1, -(-self.total // self.page_size))


def published_links(source_ids: Iterable[int]) -> dict[int, list[PublishedGroup]]:
    """{source id: [groups by link type]} of what the webshop sees for these sources (one query)."""
    groups: dict[int, dict[str, PublishedGroup]] = {}
    links = (
        PublishedLink.objects.published()
        .filter(source_id__in=set(source_ids))
        .select_related("target")
        .order_by("source_id", "type", "position")
    )
    for link in links:
        by_type = groups.setdefault(link.source_id, {})
        if link.type not in by_type:
            by_type[link.type] = PublishedGroup(label=LINK_LABELS[link.type][0], targets=[])
        by_type[link.type].targets.append(link)
    return {source: list(by_type.values()) for source, by_type in groups.items()}


def review_queue(user, params: Mapping[str, Any], *, with_choices: bool = True) -> QueuePage:
    """One page of the queue for ``params`` (``page``, ``size`` and the FILTER_KEYS). The
    caller decides which filters apply (saved ones or the request's). ``user`` is kept for
    per-user reads (e.g. their own decisions) and for a benchmark's signature."""
    filters = params if isinstance(params, QueueFilters) else parse_filters(params)
    page_number = (_int(params.get("page"), 1) if not isinstance(params, QueueFilters) else None) or 1
    size = (_int(params.get("size"), 1) if not isinstance(params, QueueFilters) else None) or PAGE_SIZE
    size = min(size, MAX_PAGE_SIZE)

    latest = latest_run_id()
    queryset = queue_queryset(filters, latest)
    offset = (page_number - 1) * size
    if filters.active:
        # A filtered count: exact. A capped count walks the score index until it has found
        # enough matches, which for a selective filter is most of the index (measured at 100k
        # pending: 88 ms capped against 48 ms exact, where PostgreSQL picks its own plan).
        total = queryset.count()
        total_capped = False
    else:
        # The whole queue: COUNT(*) over at most offset + COUNT_CAP + 1 index entries.
        window = offset + COUNT_CAP
        counted = queryset.values("pk")[: window + 1].count()
        total_capped = counted > window
        total = min(counted, window)

    # The offset is skipped on the index alone (ids only); the joins are for the page's rows.
    page_ids = queryset.values("pk")[offset : offset + size + 1]
    rows = list(
        queryset.with_trend()
        .select_related("source__brand", "source__category", "target__brand", "target__category")
        .filter(pk__in=page_ids)
    )
    has_next = len(rows) > size
    rows = rows[:size]

    result = QueuePage(
        filters=filters,
        rows=rows,
        page=page_number,
        page_size=size,
        total=total,
        total_capped=total_capped,
        has_next=has_next,
        latest_run=latest,
        published=published_links(row.source_id for row in rows),
    )
    if with_choices:
        result.brands = list(Brand.objects.order_by("name").values_list("pk", "name"))
        result.categories = list(Category.objects.order_by("path").values_list("pk", "path"))
        result.runs = [
            (pk, f"Run #{pk} ({created:%Y-%m-%d})")
            for pk, created in MiningRun.objects.filter(status=MiningRun.Status.SUCCEEDED)
            .order_by("-pk")
            .values_list("pk", "created_at")[:RUN_CHOICES]
        ]
    return result


def queue_rows(suggestion_ids: Iterable[int]) -> list[Suggestion]:
    """The given suggestions as queue rows (any status), in queue order: for the fragments a
    decision, an undo or a bulk action sends back."""
    return list(_row_queryset().filter(pk__in=list(suggestion_ids)).order_by("-score", "pk"))


def queue_row(suggestion_id: int) -> Suggestion | None:
    return _row_queryset().filter(pk=suggestion_id).first()


def sample_orders(suggestion: Suggestion, limit: int = SAMPLE_ORDERS) -> list[Order]:
    """The most recent orders that contain both products of the pair."""
    both = Order.objects.filter(lines__product_id=suggestion.source_id).filter(lines__product_id=suggestion.target_id)
    return list(both.select_related("account").order_by("-ordered_at", "-pk")[:limit])
