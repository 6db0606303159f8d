"""The team dashboard (/dashboard/): queue size, decisions per day, acceptance per run and
per category, link coverage by category and brand. Any back-office role may see it.

Charts are inline SVG laid out here and drawn by the template (the CSP allows no inline
script, and nothing comes from a CDN); every chart has its numbers in a table next to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_GET

from config.access import role_required
from merchandising.selectors.dashboard import CHART_ACTIONS, Coverage, DecisionDay, dashboard_overview

#: Worst groups drawn in a coverage chart (the table below it lists all of them).
CHART_ROWS = 15


def _nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is >= value (at least 1)."""
    if value <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str = ""
    title: str = ""


@dataclass(frozen=True)
class Tick:
    x: float
    y: float  # of the grid line (y ticks) or of the text (x ticks)
    label: str
    text_y: float = 0.0


@dataclass(frozen=True)
class DayChart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    bars: list[Rect]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    maximum: int


def day_chart(days: list[DecisionDay], *, width: int = 720, height: int = 220) -> DayChart:
    """Stacked bars per day, approvals at the bottom, then rejections, then exclusions."""
    left, right, top, bottom = 44, 8, 10, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    maximum = _nice_ceiling(max((day.total for day in days), default=0))
    slot = plot_w / max(len(days), 1)
    bar_w = round(slot * 0.72, 1)
    bars: list[Rect] = []
    x_ticks: list[Tick] = []
    for index, day in enumerate(days):
        x = round(left + index * slot + (slot - bar_w) / 2, 1)
        base = top + plot_h
        for action in CHART_ACTIONS:
            count = getattr(day, action)
            if not count:
                continue
            h = count / maximum * plot_h
            base -= h
            bars.append(
                Rect(
                    x=x,
                    y=round(base, 1),
                    width=bar_w,
                    height=round(h, 1),
                    css=f"dash-{action}",
                    title=f"{day.day:%a %d %b}: {count} {action}",
                )
            )
        # Every fifth day, counted back from the last one, so that "today" is always labelled.
        if (len(days) - 1 - index) % 5 == 0:
            x_ticks.append(Tick(x=round(x + bar_w / 2, 1), y=height - 8, label=f"{day.day:%d %b}"))
    y_ticks = [
        Tick(x=left - 6, y=(y := round(top + plot_h - value / maximum * plot_h, 1)), label=str(value), text_y=y + 4)
        for value in sorted({0, maximum // 2, maximum})
    ]
    return DayChart(
        width=width,
        height=height,
        plot_left=left,
        plot_right=width - right,
        bars=bars,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        maximum=maximum,
    )


@dataclass(frozen=True)
class BarRow:
    label: str
    title: str
    y: float
    label_x: float
    text_y: float
    track: Rect
    bar: Rect
    value_x: float
    value: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    rows: list[BarRow]
    hidden: int  # groups not drawn (they are in the table)


def _shorten(label: str, limit: int = 34) -> str:
    return label if len(label) <= limit else "…" + label[-(limit - 1) :]


def coverage_chart(groups: list[Coverage], *, rows: int = CHART_ROWS, width: int = 720) -> BarChart:
    """Horizontal bars of the share covered, for the first ``rows`` groups (worst first)."""
    label_w, value_w, row_h, bar_h, top = 250, 120, 22, 14, 4
    plot_w = width - label_w - value_w
    drawn = groups[:rows]
    chart_rows = []
    for index, group in enumerate(drawn):
        y = top + index * row_h
        bar_y = y + (row_h - bar_h) / 2
        chart_rows.append(
            BarRow(
                label=_shorten(group.label),
                title=f"{group.label}: {group.covered} of {group.products} active products covered "
                f"({group.share:.1%}), {group.uncovered} without a link",
                y=y,
                label_x=label_w - 8,
                text_y=round(y + row_h / 2 + 4, 1),
                track=Rect(x=label_w, y=bar_y, width=plot_w, height=bar_h, css="dash-track"),
                bar=Rect(x=label_w, y=bar_y, width=round(group.share * plot_w, 1), height=bar_h, css="dash-covered"),
                value_x=label_w + plot_w + 8,
                value=f"{group.percent} ({group.covered}/{group.products})",
            )
        )
    return BarChart(width=width, height=top * 2 + len(drawn) * row_h, rows=chart_rows, hidden=len(groups) - len(drawn))


@require_GET
@role_required()
def dashboard(request):
    overview = dashboard_overview()
    context = {
        "bo_section": "dashboard",
        "title": "Dashboard",
        "overview": overview,
        "totals": overview.period_totals,
        "acceptance": overview.acceptance,
        "day_chart": day_chart(overview.days),
        "top_category_chart": coverage_chart(overview.coverage.by_top_category),
        "category_chart": coverage_chart(overview.coverage.by_category),
        "brand_chart": coverage_chart(overview.coverage.by_brand),
    }
    return render(request, "merchandising/dashboard/dashboard.html", context)


urlpatterns = [path("", dashboard, name="dashboard")]
