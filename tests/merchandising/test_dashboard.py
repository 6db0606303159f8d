"""The team dashboard: exact figures on a small hand-made data set (3 categories, 2 brands,
decisions on given days, published links of several kinds), the page's roles, its query
count (pinned, and not growing with the data) and its SVG charts."""

from __future__ import annotations

import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from catalog.models import Category, ProductStatus
from catalog.services import category_save
from merchandising.models import Decision, ExclusionRule, LinkType, Suggestion
from merchandising.selectors.dashboard import (
    acceptance_by_category,
    acceptance_by_run,
    coverage,
    dashboard_overview,
    decisions_per_day,
    queue_size,
)
from merchandising.services import (
    decision_undo,
    exclusion_rule_create,
    link_add,
    suggestion_approve,
    suggestion_reject,
    suggestion_snooze,
)
from merchandising.web.dashboard import _nice_ceiling, coverage_chart, day_chart
from tests.factories import BrandFactory, CategoryFactory, ProductFactory
from tests.merchandising.factories import MiningRunFactory, SuggestionFactory

pytestmark = pytest.mark.django_db

TODAY = datetime.date(2026, 6, 10)


def local(day: datetime.date, hour: int, minute: int = 0) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=timezone.get_current_timezone())


def days_ago(n: int) -> datetime.date:
    return TODAY - datetime.timedelta(days=n)


def decided_at(suggestion: Suggestion, when: datetime.datetime) -> None:
    """Move the suggestion's (not undone) decision to ``when``: services stamp "now"."""
    assert Decision.objects.filter(suggestion=suggestion, undone_at__isnull=True).update(created_at=when) == 1


@pytest.fixture
def world(specialist):
    """Categories Tools, Tools > Drills, Garden; brands Acme and Bolt.

    Active products: d1 (Drills, Acme), d2 (Drills, Bolt), t1 (Tools, Acme), g1, g2 (Garden,
    Bolt), g3 (Garden, Acme); plus gone (Garden, Acme; discontinued after being linked) and
    draft (Tools, Bolt; draft). Covered (a visible cross-sell/accessory/spare-part link):
    d1 (cross-sell -> t1), t1 (accessory -> g1), g3 (spare part -> g1, manual). Not covered:
    d2 (accessory whose window ended yesterday), g1 (services only), g2 (cross-sell to a
    discontinued product). 3 of 6.
    """
    tools = CategoryFactory(name="Tools")
    drills = category_save(category=Category(name="Drills", parent=tools))
    garden = CategoryFactory(name="Garden")
    acme, bolt = BrandFactory(name="Acme"), BrandFactory(name="Bolt")
    p = {
        "d1": ProductFactory(sku="D1", category=drills, brand=acme),
        "d2": ProductFactory(sku="D2", category=drills, brand=bolt),
        "t1": ProductFactory(sku="T1", category=tools, brand=acme),
        "g1": ProductFactory(sku="G1", category=garden, brand=bolt),
        "g2": ProductFactory(sku="G2", category=garden, brand=bolt),
        "g3": ProductFactory(sku="G3", category=garden, brand=acme),
        "gone": ProductFactory(sku="GONE", category=garden, brand=acme),
        "draft": ProductFactory(sku="DRAFT", category=tools, brand=bolt, status=ProductStatus.DRAFT),
    }
    run1, run2 = MiningRunFactory(), MiningRunFactory()

    def suggestion(source, target, run, **fields):
        return SuggestionFactory(source=p[source], target=p[target], first_run=run, last_run=run, **fields)

    s = {
        "s1": suggestion("d1", "t1", run1),
        "s2": suggestion("d2", "d1", run1),
        "s3": suggestion("t1", "g1", run2),
        "s4": suggestion("g1", "g2", run2),
        "s5": suggestion("g2", "gone", run2),
        "s6": suggestion("g3", "d1", run2),
        "s7": suggestion("d1", "d2", run2),
        "s8": suggestion("g3", "draft", run1),
        "s9": suggestion("g1", "d2", run2),
        "s10": suggestion("g2", "d1", run2),
        "s11": suggestion("g3", "t1", run1, stale=True),
        "s12": suggestion("g1", "t1", run1),
        "s13": suggestion("g2", "t1", run1),
    }
    # An approval undone: its link retired (a tombstone in the published set), back in the queue.
    suggestion_approve(suggestion_id=s["s6"].pk, actor=specialist)
    decision_undo(actor=specialist)

    suggestion_approve(suggestion_id=s["s1"].pk, actor=specialist)
    suggestion_reject(suggestion_id=s["s2"].pk, actor=specialist, reason="unrelated")
    suggestion_approve(suggestion_id=s["s3"].pk, actor=specialist, link_type=LinkType.ACCESSORY)
    suggestion_approve(suggestion_id=s["s4"].pk, actor=specialist, link_type=LinkType.SERVICE)
    suggestion_approve(suggestion_id=s["s5"].pk, actor=specialist)
    suggestion_reject(suggestion_id=s["s7"].pk, actor=specialist, reason="wrong_brand")
    exclusion_rule_create(rule=ExclusionRule(kind=ExclusionRule.Kind.PRODUCT, product=p["draft"]), actor=specialist)
    suggestion_snooze(suggestion_id=s["s10"].pk, actor=specialist)
    suggestion_approve(suggestion_id=s["s12"].pk, actor=specialist, link_type=LinkType.SERVICE)
    suggestion_reject(suggestion_id=s["s13"].pk, actor=specialist, reason="incompatible")
    link_add(source=p["g3"], target=p["g1"], link_type=LinkType.SPARE_PART, actor=specialist)
    link_add(
        source=p["d2"],
        target=p["t1"],
        link_type=LinkType.ACCESSORY,
        actor=specialist,
        valid_from=days_ago(20),
        valid_until=days_ago(1),
    )
    p["gone"].status = ProductStatus.DISCONTINUED
    p["gone"].save()

    decided_at(s["s1"], local(days_ago(2), 10))
    decided_at(s["s3"], local(days_ago(2), 15))
    decided_at(s["s2"], local(days_ago(2), 16))
    decided_at(s["s4"], local(days_ago(1), 9))
    decided_at(s["s8"], local(days_ago(1), 11))
    decided_at(s["s5"], local(TODAY, 9))
    # 00:30 in Amsterdam is the previous day in UTC: counted on the local day.
    decided_at(s["s7"], local(TODAY, 0, 30))
    decided_at(s["s10"], local(TODAY, 14))
    # The window is the 30 days up to today: 12 May 00:30 is in, 11 May 23:30 is out.
    decided_at(s["s12"], local(days_ago(30), 23, 30))
    decided_at(s["s13"], local(days_ago(29), 0, 30))
    return {"products": p, "suggestions": s, "runs": (run1, run2)}


# --- the figures ----------------------------------------------------------------------------------


def test_queue_size(world):
    queue = queue_size()
    # In the queue: s6 (undone) and s9; snoozed: s10; stale: s11.
    assert (queue.in_queue, queue.snoozed, queue.stale) == (2, 1, 1)


def test_snoozed_suggestion_returns_to_the_queue_after_a_newer_run(world):
    MiningRunFactory()
    queue = queue_size()
    assert (queue.in_queue, queue.snoozed, queue.stale) == (3, 0, 1)


def test_decisions_per_day(world):
    days = decisions_per_day(today=TODAY)
    assert len(days) == 30
    assert (days[0].day, days[-1].day) == (datetime.date(2026, 5, 12), TODAY)
    busy = {d.day: (d.approve, d.reject, d.exclude, d.snooze) for d in days if d.total or d.snooze}
    assert busy == {
        datetime.date(2026, 5, 12): (0, 1, 0, 0),
        datetime.date(2026, 6, 8): (2, 1, 0, 0),
        datetime.date(2026, 6, 9): (1, 0, 1, 0),
        datetime.date(2026, 6, 10): (1, 1, 0, 1),
    }
    # The undone approval of s6 (today) is not counted; the approval of 11 May is outside.
    overview = dashboard_overview(today=TODAY)
    totals = overview.period_totals
    assert (totals.approve, totals.reject, totals.exclude, totals.snooze, totals.total) == (4, 3, 1, 1, 8)


def test_decisions_per_day_shorter_window(world):
    days = decisions_per_day(today=TODAY, days=2)
    assert [(d.day, d.approve, d.reject, d.exclude, d.snooze) for d in days] == [
        (datetime.date(2026, 6, 9), 1, 0, 1, 0),
        (datetime.date(2026, 6, 10), 1, 1, 0, 1),
    ]


def test_acceptance_by_run(world):
    run1, run2 = world["runs"]
    rows = [(r.run_id, r.approved, r.rejected, r.excluded, r.percent) for r in acceptance_by_run()]
    # run 1: s1, s12 approved; s2, s8 (by the rule), s13 rejected; s11 still pending.
    # run 2: s3, s4, s5 approved; s7 rejected; s6, s9, s10 pending.
    assert rows == [(run2.pk, 3, 1, 0, "75.0%"), (run1.pk, 2, 3, 1, "40.0%")]
    assert acceptance_by_run(limit=1)[0].run_id == run2.pk


def test_acceptance_by_run_without_a_run(world, specialist):
    lone = SuggestionFactory(source=world["products"]["t1"], target=world["products"]["d2"])
    suggestion_approve(suggestion_id=lone.pk, actor=specialist)
    last = acceptance_by_run()[-1]
    assert (last.run_id, last.approved, last.rejected, last.rate) == (None, 1, 0, 1.0)


def test_acceptance_by_category(world):
    rows = [
        (r.path, r.top_level, r.depth, r.approved, r.rejected, r.excluded, r.percent) for r in acceptance_by_category()
    ]
    assert rows == [
        # s4, s5, s12 approved; s8 (rule), s13 rejected.
        ("Garden", True, 0, 3, 2, 1, "60.0%"),
        # Tools sums its own s3 and the Drills below it.
        ("Tools", True, 0, 2, 2, 0, "50.0%"),
        # s1 approved; s2, s7 rejected.
        ("Tools > Drills", False, 1, 1, 2, 0, "33.3%"),
    ]
    acceptance = dashboard_overview(today=TODAY).acceptance
    assert (acceptance.approved, acceptance.rejected, acceptance.excluded, acceptance.percent) == (5, 4, 1, "55.6%")


def test_coverage(world):
    report = coverage(today=TODAY)
    assert (report.overall.products, report.overall.covered, report.overall.percent) == (6, 3, "50.0%")

    def rows(groups):
        return [(g.label, g.products, g.covered, g.uncovered) for g in groups]

    assert rows(report.by_category) == [("Garden", 3, 1, 2), ("Tools > Drills", 2, 1, 1), ("Tools", 1, 1, 0)]
    assert rows(report.by_top_category) == [("Garden", 3, 1, 2), ("Tools", 3, 2, 1)]
    assert rows(report.by_brand) == [("Bolt", 3, 0, 3), ("Acme", 3, 3, 0)]


def test_coverage_follows_the_date_window_and_the_target_status(world):
    # Yesterday the accessory of d2 was still valid; the discontinued target never counts.
    assert coverage(today=days_ago(1)).overall.covered == 4
    assert coverage(today=days_ago(21)).overall.covered == 3
    gone = world["products"]["gone"]
    gone.status = ProductStatus.ACTIVE
    gone.save()
    report = coverage(today=TODAY)
    # g2 now covered, and "gone" itself is an active product without links.
    assert (report.overall.products, report.overall.covered) == (7, 4)


def test_coverage_groups_without_category_or_brand():
    ProductFactory(category=None, brand=None)
    report = coverage(today=TODAY)
    assert [(g.label, g.products, g.covered) for g in report.by_category] == [("(no category)", 1, 0)]
    assert [(g.label, g.products) for g in report.by_top_category] == [("(no category)", 1)]
    assert [(g.label, g.products) for g in report.by_brand] == [("(no brand)", 1)]


def test_empty_database():
    overview = dashboard_overview(today=TODAY)
    assert (overview.queue.in_queue, overview.queue.snoozed, overview.queue.stale) == (0, 0, 0)
    assert overview.period_totals.total == 0
    assert (overview.by_run, overview.by_category) == ([], [])
    assert overview.acceptance.rate is None
    assert overview.acceptance.percent == "–"
    assert (overview.coverage.overall.products, overview.coverage.overall.share) == (0, 0.0)


def test_five_queries_whatever_the_size(world, specialist, django_assert_num_queries):
    with django_assert_num_queries(5):
        dashboard_overview(today=TODAY)
    # More runs, categories, brands, products, suggestions and decisions: still five.
    run = MiningRunFactory()
    for n in range(6):
        category = CategoryFactory(name=f"Extra {n}")
        source = ProductFactory(category=category, brand=BrandFactory(name=f"Extra brand {n}"))
        target = ProductFactory(category=category, brand=source.brand)
        suggestion = SuggestionFactory(source=source, target=target, first_run=run)
        suggestion_approve(suggestion_id=suggestion.pk, actor=specialist)
    with django_assert_num_queries(5):
        overview = dashboard_overview(today=TODAY)
    assert len(overview.coverage.by_brand) == 2 + 6
    assert (overview.coverage.overall.products, overview.coverage.overall.covered) == (6 + 12, 3 + 6)
    assert overview.by_run[0].run_id == run.pk


# --- the page ---------------------------------------------------------------------------------------


def figure(html: str, name: str) -> str:
    match = re.search(rf'data-figure="{name}">([^<]*)<', html)
    assert match, name
    return match.group(1).strip()


def test_page_shows_the_figures(client, world, specialist):
    client.force_login(specialist)
    response = client.get(reverse("merchandising:dashboard"))
    assert response.status_code == 200
    html = response.content.decode()
    assert figure(html, "in-queue") == "2"
    assert figure(html, "snoozed") == "1"
    assert figure(html, "stale") == "1"
    assert figure(html, "acceptance") == "55.6%"
    assert figure(html, "coverage") == "50.0%"
    assert (figure(html, "active-products"), figure(html, "covered"), figure(html, "uncovered")) == ("6", "3", "3")
    assert 'aria-current="page"' in html and "/dashboard/" in html
    # Coverage tables worst first.
    brand_table = html[html.index('id="dash-coverage-brand"') :]
    assert brand_table.index("Bolt") < brand_table.index("Acme")
    # No inline script (the CSP forbids it) and nothing from elsewhere.
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "https://" not in html.replace("https://www.w3.org", "")


def test_page_charts_are_svg(client, world, specialist):
    client.force_login(specialist)
    html = client.get(reverse("merchandising:dashboard")).content.decode()
    # Decisions per day; coverage by top category, category, brand.
    assert html.count('<svg class="dash-chart') == 4
    # The bars of the last 30 days as the server sees them (today may differ from TODAY):
    # one rect per non-zero (day, kind).
    days = dashboard_overview().days
    expected = {kind: sum(1 for d in days if getattr(d, kind)) for kind in ("approve", "reject", "exclude")}
    for kind, count in expected.items():
        assert len(re.findall(rf'<rect class="dash-{kind}"', html)) == count


def test_page_query_count_is_pinned(client, world, specialist, django_assert_num_queries):
    client.force_login(specialist)
    client.get(reverse("merchandising:dashboard"))  # warm caches (content types, site)
    # Session, user, the user's roles, the five of the dashboard, and the session saved again
    # (SESSION_SAVE_EVERY_REQUEST: an update inside a savepoint).
    with django_assert_num_queries(3 + 5 + 3):
        assert client.get(reverse("merchandising:dashboard")).status_code == 200


@pytest.mark.parametrize("who", ["specialist", "marketer", "administrator"])
def test_every_back_office_role_sees_it(client, request, who):
    client.force_login(request.getfixturevalue(who))
    assert client.get(reverse("merchandising:dashboard")).status_code == 200


def test_user_without_a_role_is_refused(client, no_role_user):
    client.force_login(no_role_user)
    response = client.get(reverse("merchandising:dashboard"))
    assert response.status_code == 403
    assert b"dash-figure" not in response.content


def test_anonymous_goes_to_login(client):
    response = client.get(reverse("merchandising:dashboard"))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next=/dashboard/"


def test_only_get(client, specialist):
    client.force_login(specialist)
    assert client.post(reverse("merchandising:dashboard")).status_code == 405


# --- the chart geometry -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ceiling"), [(0, 1), (1, 1), (2, 2), (3, 5), (5, 5), (6, 10), (10, 10), (11, 20), (201, 500)]
)
def test_nice_ceiling(value, ceiling):
    assert _nice_ceiling(value) == ceiling


def test_day_chart_stacks_bars_to_scale(world):
    days = decisions_per_day(today=TODAY)
    chart = day_chart(days, width=720, height=220)
    assert chart.maximum == 5  # the busiest day has 3 decisions
    plot_h = 220 - 10 - 26
    last = [bar for bar in chart.bars if "Wed 10 Jun" in bar.title]
    assert [bar.css for bar in last] == ["dash-approve", "dash-reject"]
    assert [bar.height for bar in last] == [round(plot_h / 5, 1)] * 2
    # Stacked: the rejection sits on top of the approval, both on the baseline.
    assert last[0].y + last[0].height == pytest.approx(10 + plot_h, abs=0.1)
    assert last[1].y + last[1].height == pytest.approx(last[0].y, abs=0.1)
    assert chart.x_ticks[-1].label == "10 Jun"
    assert [tick.label for tick in chart.y_ticks] == ["0", "2", "5"]


def test_coverage_chart_draws_the_worst_rows(world):
    groups = coverage(today=TODAY).by_category
    chart = coverage_chart(groups, rows=2, width=720)
    assert [row.label for row in chart.rows] == ["Garden", "Tools > Drills"]
    assert chart.hidden == 1
    plot_w = 720 - 250 - 120
    assert [row.bar.width for row in chart.rows] == [round(plot_w / 3, 1), round(plot_w / 2, 1)]
    assert chart.rows[0].value == "33.3% (1/3)"
