"""Reads for the team dashboard: queue size, decisions per day, acceptance rates and link
coverage. Each figure is one aggregate query (grouped in SQL); the roll-ups to top-level
categories and to brands are sums over those few rows in Python, never a query per row.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db.models import Count, F, Q, Subquery, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from catalog.models import CATEGORY_SEPARATOR, Product, ProductStatus
from merchandising.models import (
    COVERAGE_TYPES,
    Decision,
    MiningRun,
    PublishedLink,
    RejectReason,
    Suggestion,
    SuggestionStatus,
)
from merchandising.selectors import start_of_day

#: Decision kinds drawn as the stacked bars of "decisions per day", bottom to top.
CHART_ACTIONS = (Decision.Action.APPROVE, Decision.Action.REJECT, Decision.Action.EXCLUDE)
DEFAULT_DAYS = 30
#: Acceptance per run: the most recent runs shown.
RUNS_SHOWN = 12
NO_CATEGORY = "(no category)"
NO_BRAND = "(no brand)"


# --- queue ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueSize:
    in_queue: int  # pending, not stale, not snoozed: what the review queue shows
    snoozed: int  # pending, not stale, snoozed until a run newer than the latest one
    stale: int  # pending but no longer found by the latest run (out of the queue)


def _latest_run() -> Coalesce:
    # 0 without any successful run, so that the comparisons below are never NULL.
    latest = MiningRun.objects.filter(status=MiningRun.Status.SUCCEEDED).order_by("-pk").values("pk")[:1]
    return Coalesce(Subquery(latest), Value(0))


def queue_size() -> QueueSize:
    """One query. A snoozed suggestion comes back when a run newer than ``snoozed_run``
    succeeds, so it counts as snoozed while ``snoozed_run`` is the latest successful run."""
    snoozed = Q(snoozed_run_id__isnull=False, snoozed_run_id__gte=_latest_run())
    counts = Suggestion.objects.filter(status=SuggestionStatus.PENDING).aggregate(
        in_queue=Count("pk", filter=Q(stale=False) & ~snoozed),
        snoozed=Count("pk", filter=Q(stale=False) & snoozed),
        stale=Count("pk", filter=Q(stale=True)),
    )
    return QueueSize(**counts)


# --- decisions per day -------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionDay:
    day: datetime.date
    approve: int = 0
    reject: int = 0
    exclude: int = 0
    snooze: int = 0

    @property
    def total(self) -> int:
        """Approvals, rejections and exclusions (the bars); snoozes decide nothing."""
        return self.approve + self.reject + self.exclude


def decisions_per_day(*, today: datetime.date | None = None, days: int = DEFAULT_DAYS) -> list[DecisionDay]:
    """Decisions not undone, per local day, for the ``days`` days up to and including
    ``today`` (oldest first; days without decisions included, as zeros). One query."""
    today = today or timezone.localdate()
    first = today - datetime.timedelta(days=days - 1)
    rows = (
        Decision.objects.filter(
            undone_at__isnull=True,
            created_at__gte=start_of_day(first),
            created_at__lt=start_of_day(today + datetime.timedelta(days=1)),
        )
        .annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
        .values("day", "action")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts: dict[datetime.date, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(row["day"], {})[row["action"]] = row["n"]
    return [
        DecisionDay(day=day, **counts.get(day, {}))
        for day in (first + datetime.timedelta(days=offset) for offset in range(days))
    ]


# --- acceptance -------------------------------------------------------------------------------


@dataclass
class Acceptance:
    """Decided suggestions (their current status: an undone decision is no decision) of one
    run or category. ``rejected`` includes ``excluded`` (rejected by an exclusion rule)."""

    approved: int = 0
    rejected: int = 0
    excluded: int = 0

    @property
    def decided(self) -> int:
        return self.approved + self.rejected

    @property
    def rate(self) -> float | None:
        """approved / (approved + rejected); None before any decision."""
        return self.approved / self.decided if self.decided else None

    @property
    def percent(self) -> str:
        return "–" if self.rate is None else f"{self.rate:.1%}"

    def add(self, other: Acceptance) -> None:
        self.approved += other.approved
        self.rejected += other.rejected
        self.excluded += other.excluded


_ACCEPTANCE_COUNTS = {
    "approved": Count("pk", filter=Q(status=SuggestionStatus.APPROVED)),
    "rejected": Count("pk", filter=Q(status=SuggestionStatus.REJECTED)),
    "excluded": Count("pk", filter=Q(status=SuggestionStatus.REJECTED, reject_reason=RejectReason.EXCLUDED)),
}


def _decided() -> Q:
    return Q(status__in=[SuggestionStatus.APPROVED, SuggestionStatus.REJECTED])


@dataclass
class RunAcceptance(Acceptance):
    run_id: int | None = None  # None: suggestions without a run (made before runs were recorded)
    run_created_at: datetime.datetime | None = None


def acceptance_by_run(*, limit: int = RUNS_SHOWN) -> list[RunAcceptance]:
    """Per mining run that first found the suggestions (``first_run``), newest run first,
    the ``limit`` most recent runs with decisions. One query."""
    rows = (
        Suggestion.objects.filter(_decided())
        .values("first_run_id", "first_run__created_at")
        .annotate(**_ACCEPTANCE_COUNTS)
        .order_by(F("first_run_id").desc(nulls_last=True))
    )
    return [
        RunAcceptance(
            run_id=row["first_run_id"],
            run_created_at=row["first_run__created_at"],
            approved=row["approved"],
            rejected=row["rejected"],
            excluded=row["excluded"],
        )
        for row in rows[:limit]
    ]


@dataclass
class CategoryAcceptance(Acceptance):
    path: str = ""
    top_level: bool = False  # a top-level row sums its whole subtree

    @property
    def depth(self) -> int:
        return 0 if self.top_level else self.path.count(CATEGORY_SEPARATOR)


def _top(path: str | None) -> str:
    return path.split(CATEGORY_SEPARATOR, 1)[0] if path else NO_CATEGORY


def acceptance_by_category() -> list[CategoryAcceptance]:
    """Per source category: each top-level category (summing everything below it) followed
    by the categories under it that have decided suggestions, in path order. One query."""
    rows = (
        Suggestion.objects.filter(_decided()).values("source__category__path").annotate(**_ACCEPTANCE_COUNTS).order_by()
    )
    tops: dict[str, CategoryAcceptance] = {}
    below: dict[str, list[CategoryAcceptance]] = {}
    for row in rows:
        path = row["source__category__path"]
        counts = Acceptance(approved=row["approved"], rejected=row["rejected"], excluded=row["excluded"])
        top = _top(path)
        tops.setdefault(top, CategoryAcceptance(path=top, top_level=True)).add(counts)
        if path and path != top:
            entry = CategoryAcceptance(path=path)
            entry.add(counts)
            below.setdefault(top, []).append(entry)
    result: list[CategoryAcceptance] = []
    for top in sorted(tops, key=lambda name: (name == NO_CATEGORY, name.casefold())):
        result.append(tops[top])
        result.extend(sorted(below.get(top, []), key=lambda entry: entry.path.casefold()))
    return result


# --- coverage -----------------------------------------------------------------------------------


@dataclass
class Coverage:
    """Active products of a group and how many of them have at least one visible
    cross-sell, accessory or spare-part link."""

    label: str
    products: int = 0
    covered: int = 0

    @property
    def uncovered(self) -> int:
        return self.products - self.covered

    @property
    def share(self) -> float:
        return self.covered / self.products if self.products else 0.0

    @property
    def percent(self) -> str:
        return f"{self.share:.1%}"

    def add(self, products: int, covered: int) -> None:
        self.products += products
        self.covered += covered


@dataclass
class CoverageReport:
    overall: Coverage
    by_top_category: list[Coverage] = field(default_factory=list)
    by_category: list[Coverage] = field(default_factory=list)
    by_brand: list[Coverage] = field(default_factory=list)


def visible_coverage_links(*, today: datetime.date) -> Q:
    """Published links of the coverage types that the webshop shows today: published, target
    active, inside the link's date window."""
    return (
        Q(type__in=COVERAGE_TYPES, target__status=ProductStatus.ACTIVE)
        & (Q(valid_from__isnull=True) | Q(valid_from__lte=today))
        & (Q(valid_until__isnull=True) | Q(valid_until__gte=today))
    )


def _worst_first(groups: dict[str, Coverage]) -> list[Coverage]:
    """Lowest share first; among equal shares the most uncovered products first."""
    return sorted(groups.values(), key=lambda c: (c.share, -c.uncovered, c.label.casefold()))


def coverage(*, today: datetime.date | None = None) -> CoverageReport:
    """Share of active products with at least one visible coverage link (as source), overall,
    per top-level category, per category and per brand, each list worst first. One query,
    grouped by (category, brand)."""
    today = today or timezone.localdate()
    # An IN over the covered sources (one hashed subplan), not a correlated EXISTS: with EXISTS
    # PostgreSQL 15 costs the query so high that JIT compilation kicks in, half of its time
    # at 20,000 products.
    linked = PublishedLink.objects.published().filter(visible_coverage_links(today=today)).values("source_id")
    rows = (
        Product.objects.filter(status=ProductStatus.ACTIVE)
        .values("category__path", "brand__name")
        .annotate(products=Count("pk"), covered=Count("pk", filter=Q(pk__in=linked)))
        .order_by()
    )
    report = CoverageReport(overall=Coverage(label="All active products"))
    tops: dict[str, Coverage] = {}
    categories: dict[str, Coverage] = {}
    brands: dict[str, Coverage] = {}
    for row in rows:
        products, covered = row["products"], row["covered"]
        path = row["category__path"] or NO_CATEGORY
        brand = row["brand__name"] or NO_BRAND
        report.overall.add(products, covered)
        top = _top(row["category__path"])
        tops.setdefault(top, Coverage(label=top)).add(products, covered)
        categories.setdefault(path, Coverage(label=path)).add(products, covered)
        brands.setdefault(brand, Coverage(label=brand)).add(products, covered)
    report.by_top_category = _worst_first(tops)
    report.by_category = _worst_first(categories)
    report.by_brand = _worst_first(brands)
    return report


# --- the page -----------------------------------------------------------------------------------


@dataclass
class Dashboard:
    today: datetime.date
    queue: QueueSize
    days: list[DecisionDay]
    by_run: list[RunAcceptance]
    by_category: list[CategoryAcceptance]
    coverage: CoverageReport

    @property
    def period_totals(self) -> DecisionDay:
        """The sums over ``days`` (``day`` is the first day)."""
        return DecisionDay(
            day=self.days[0].day,
            approve=sum(d.approve for d in self.days),
            reject=sum(d.reject for d in self.days),
            exclude=sum(d.exclude for d in self.days),
            snooze=sum(d.snooze for d in self.days),
        )

    @property
    def acceptance(self) -> Acceptance:
        """All decided suggestions."""
        total = Acceptance()
        for row in self.by_category:
            if row.top_level:
                total.add(row)
        return total


def dashboard_overview(*, today: datetime.date | None = None, days: int = DEFAULT_DAYS) -> Dashboard:
    """Everything the dashboard shows, in five queries."""
    today = today or timezone.localdate()
    return Dashboard(
        today=today,
        queue=queue_size(),
        days=decisions_per_day(today=today, days=days),
        by_run=acceptance_by_run(),
        by_category=acceptance_by_category(),
        coverage=coverage(today=today),
    )
