"""The review queue's views (/review/): decisions through htmx POSTs and their records,
conflicts, roles, saved filters, bulk and exclusion previews, and a pinned query count."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from merchandising.models import (
    Decision,
    ExclusionRule,
    Link,
    LinkType,
    PublishedLink,
    RejectReason,
    ReviewPreference,
    Suggestion,
    SuggestionStatus,
)
from merchandising.selectors.review import review_queue
from merchandising.services import suggestion_approve
from tests.factories import BrandFactory, CategoryFactory, ProductFactory, UserFactory
from tests.merchandising.factories import MiningRunFactory, SuggestionFactory, baskets_create

pytestmark = pytest.mark.django_db

REVIEW = reverse("merchandising:review")


def url(name: str, pk: int | None = None) -> str:
    return reverse(f"merchandising:{name}", args=[pk] if pk is not None else [])


@pytest.fixture
def run():
    return MiningRunFactory()


@pytest.fixture
def suggestion(run):
    return SuggestionFactory(first_run=run, last_run=run, score=0.9)


@pytest.fixture
def specialist_client(client, specialist):
    client.force_login(specialist)
    return client


def htmx_post(client, path: str, data: dict | None = None):
    return client.post(path, data or {}, HTTP_HX_REQUEST="true")


# --- decisions and their records ----------------------------------------------------------------


def test_approve_as_cross_sell_records_the_decision_and_creates_the_link(specialist_client, specialist, suggestion):
    response = htmx_post(specialist_client, url("review_approve", suggestion.pk), {"link_type": "cross_sell"})

    assert response.status_code == 200
    body = response.content.decode()
    assert f'id="s-{suggestion.pk}"' in body
    assert "Approved as cross-sell by specialist" in body
    assert "Undo: u" in body
    suggestion.refresh_from_db()
    assert (suggestion.status, suggestion.decided_by) == (SuggestionStatus.APPROVED, specialist)
    decision = Decision.objects.get()
    assert (decision.suggestion_id, decision.actor, decision.action, decision.link_type, decision.reject_reason) == (
        suggestion.pk,
        specialist,
        Decision.Action.APPROVE,
        LinkType.CROSS_SELL,
        "",
    )
    link = Link.objects.get()
    assert (link.source_id, link.target_id, link.type) == (suggestion.source_id, suggestion.target_id, "cross_sell")


def test_approve_as_accessory(specialist_client, specialist, suggestion):
    response = htmx_post(specialist_client, url("review_approve", suggestion.pk), {"link_type": "accessory"})

    assert "Approved as accessory" in response.content.decode()
    decision = Decision.objects.get()
    assert (decision.action, decision.link_type, decision.actor) == ("approve", "accessory", specialist)
    assert list(Link.objects.values_list("type", flat=True)) == ["accessory"]


def test_reject_with_a_reason(specialist_client, specialist, suggestion):
    response = htmx_post(specialist_client, url("review_reject", suggestion.pk), {"reason": "incompatible"})

    assert "Rejected (incompatible) by specialist" in response.content.decode()
    decision = Decision.objects.get()
    assert (decision.action, decision.reject_reason, decision.note, decision.actor) == (
        "reject",
        "incompatible",
        "",
        specialist,
    )
    suggestion.refresh_from_db()
    assert (suggestion.status, suggestion.reject_reason) == ("rejected", "incompatible")
    assert Link.objects.count() == 0


def test_reject_as_other_needs_a_note(specialist_client, specialist, suggestion):
    response = htmx_post(specialist_client, url("review_reject", suggestion.pk), {"reason": "other", "note": " "})

    assert "The reason &quot;Other&quot; needs a note." in response.content.decode()
    assert Decision.objects.count() == 0
    suggestion.refresh_from_db()
    assert suggestion.status == SuggestionStatus.PENDING

    htmx_post(specialist_client, url("review_reject", suggestion.pk), {"reason": "other", "note": "sold as a set"})

    decision = Decision.objects.get()
    assert (decision.reject_reason, decision.note, decision.actor) == ("other", "sold as a set", specialist)
    suggestion.refresh_from_db()
    assert (suggestion.status, suggestion.reject_note) == ("rejected", "sold as a set")


def test_snooze_hides_until_the_next_run(specialist_client, specialist, suggestion, run):
    other = SuggestionFactory(first_run=run, last_run=run, score=0.5)

    response = htmx_post(specialist_client, url("review_snooze", suggestion.pk))

    assert "Snoozed until the next mining run" in response.content.decode()
    decision = Decision.objects.get()
    assert (decision.action, decision.actor, decision.suggestion_id) == ("snooze", specialist, suggestion.pk)
    assert [row.pk for row in review_queue(specialist, {}).rows] == [other.pk]

    MiningRunFactory()  # a newer successful run: the snoozed suggestion is back
    assert [row.pk for row in review_queue(specialist, {}).rows] == [suggestion.pk, other.pk]


def test_conflict_names_who_decided_first(specialist_client, specialist, suggestion):
    colleague = UserFactory(username="colleague", role="Product specialist")
    suggestion_approve(suggestion_id=suggestion.pk, actor=colleague)
    suggestion.refresh_from_db()
    when = timezone.localtime(suggestion.decided_at).strftime("%Y-%m-%d %H:%M")

    response = htmx_post(specialist_client, url("review_reject", suggestion.pk), {"reason": "unrelated"})

    assert response.status_code == 200
    assert f"Already approved by colleague at {when}." in response.content.decode()
    assert list(Decision.objects.values_list("actor__username", "action")) == [("colleague", "approve")]
    suggestion.refresh_from_db()
    assert (suggestion.status, suggestion.decided_by) == ("approved", colleague)


def test_approving_offers_the_reverse_pair(specialist_client, specialist, suggestion, run):
    reverse_pair = SuggestionFactory(source=suggestion.target, target=suggestion.source, first_run=run, last_run=run)

    response = htmx_post(specialist_client, url("review_approve", suggestion.pk), {"link_type": "accessory"})

    body = response.content.decode()
    assert f"Also approve {suggestion.target.sku} → {suggestion.source.sku}" in body
    assert f'name="reverse" value="{reverse_pair.pk}"' in body

    response = htmx_post(
        specialist_client,
        url("review_approve_reverse", suggestion.pk),
        {"reverse": reverse_pair.pk, "link_type": "accessory", "visible": [suggestion.pk, reverse_pair.pk]},
    )

    body = response.content.decode()
    assert "Also approved the reverse pair." in body
    assert f'id="s-{reverse_pair.pk}"' in body and 'hx-swap-oob="outerHTML"' in body
    reverse_pair.refresh_from_db()
    assert reverse_pair.status == SuggestionStatus.APPROVED
    assert sorted(Decision.objects.values_list("suggestion_id", "link_type")) == sorted(
        [(suggestion.pk, "accessory"), (reverse_pair.pk, "accessory")]
    )


def test_undo_restores_the_last_decision(specialist_client, specialist, suggestion):
    htmx_post(specialist_client, url("review_approve", suggestion.pk))

    response = htmx_post(specialist_client, url("review_undo"), {"visible": [suggestion.pk]})

    body = response.content.decode()
    assert "Undone: approved (1 suggestion back in the queue)." in body
    assert f'data-restored="{suggestion.pk}"' in body
    suggestion.refresh_from_db()
    assert (suggestion.status, suggestion.decided_by) == (SuggestionStatus.PENDING, None)
    assert Decision.objects.get().undone_at is not None
    assert Link.objects.active().count() == 0

    response = htmx_post(specialist_client, url("review_undo"))
    assert "Nothing to undo." in response.content.decode()


def test_sample_orders_lists_orders_with_both_products(specialist_client, suggestion):
    other = ProductFactory()
    both = baskets_create([[suggestion.source, suggestion.target], [suggestion.source, suggestion.target, other]])
    baskets_create([[suggestion.source, other]])

    response = specialist_client.get(url("review_orders", suggestion.pk))

    body = response.content.decode()
    assert response.status_code == 200
    assert body.count("<tr><td>") == 2
    for order in both:
        assert order.external_id in body


# --- roles --------------------------------------------------------------------------------------


def _post_urls(suggestion):
    return [
        (url("review_approve", suggestion.pk), {"link_type": "cross_sell"}),
        (url("review_approve_reverse", suggestion.pk), {"reverse": suggestion.pk}),
        (url("review_reject", suggestion.pk), {"reason": "unrelated"}),
        (url("review_snooze", suggestion.pk), {}),
        (url("review_exclude", suggestion.pk), {"kind": "target"}),
        (url("review_exclude_preview", suggestion.pk), {"kind": "target"}),
        (url("review_undo"), {}),
        (url("review_bulk_preview"), {"ids": [suggestion.pk], "action": "approve"}),
        (url("review_bulk"), {"ids": [suggestion.pk], "action": "approve"}),
    ]


def test_marketing_reads_the_queue_without_buttons(client, marketer, suggestion):
    client.force_login(marketer)

    response = client.get(REVIEW)

    body = response.content.decode()
    assert response.status_code == 200
    assert f'id="s-{suggestion.pk}"' in body and suggestion.source.sku in body
    for absent in ('data-key="a"', 'data-key="s"', 'data-key="x"', "data-reject", 'name="ids"', "review-undo"):
        assert absent not in body
    assert url("review_approve", suggestion.pk) not in body


def test_marketing_gets_403_on_every_post(client, marketer, suggestion):
    client.force_login(marketer)

    statuses = [htmx_post(client, path, data).status_code for path, data in _post_urls(suggestion)]
    statuses.append(client.get(url("review_exclude", suggestion.pk)).status_code)

    assert statuses == [403] * 10
    suggestion.refresh_from_db()
    assert (suggestion.status, suggestion.snoozed_run_id) == (SuggestionStatus.PENDING, None)
    assert Decision.objects.count() == 0
    assert ExclusionRule.objects.count() == 0


def test_no_role_gets_403(client, no_role_user, suggestion):
    client.force_login(no_role_user)

    assert client.get(REVIEW).status_code == 403
    assert [htmx_post(client, path, data).status_code for path, data in _post_urls(suggestion)] == [403] * 9
    assert Decision.objects.count() == 0


def test_anonymous_is_sent_to_login(client, suggestion):
    response = client.get(REVIEW)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next=/review/"
    response = client.post(url("review_approve", suggestion.pk))
    assert response.status_code == 302
    assert Decision.objects.count() == 0


def test_administrator_decides(client, administrator, suggestion):
    client.force_login(administrator)

    htmx_post(client, url("review_reject", suggestion.pk), {"reason": "wrong_brand"})

    assert list(Decision.objects.values_list("actor__username", "reject_reason")) == [("administrator", "wrong_brand")]


# --- the queue and its filters ------------------------------------------------------------------


def _pks(response) -> list[int]:
    return [row.pk for row in response.context["page"].rows]


def test_queue_shows_pending_best_score_first_with_evidence(specialist_client, run):
    low = SuggestionFactory(score=0.2, first_run=run, last_run=run, co_count=7, accounts=4)
    high = SuggestionFactory(score=0.8, first_run=run, last_run=run, co_count=12, previous_co_count=9)
    SuggestionFactory(score=0.9, status=SuggestionStatus.APPROVED)
    SuggestionFactory(score=0.95, stale=True)

    response = specialist_client.get(REVIEW)

    assert _pks(response) == [high.pk, low.pk]
    body = response.content.decode()
    assert ">+3<" in body  # trend of high: 12 against 9 in the run before
    assert "1–2 of 2" in body


def test_queue_shows_the_sources_published_links(specialist_client, specialist, run):
    source = ProductFactory(sku="SRC-1")
    published = SuggestionFactory(source=source, target=ProductFactory(sku="ACC-1"), first_run=run, last_run=run)
    suggestion_approve(suggestion_id=published.pk, actor=specialist, link_type="accessory")
    pending = SuggestionFactory(source=source, first_run=run, last_run=run)
    assert PublishedLink.objects.published().count() == 1

    response = specialist_client.get(REVIEW)

    assert _pks(response) == [pending.pk]
    body = response.content.decode()
    assert "Has accessory:" in body and "ACC-1" in body


def test_filters(specialist, run):
    tools = CategoryFactory(name="Tools", path="Tools")
    drills = CategoryFactory(name="Drills", path="Tools > Drills")
    toolsets = CategoryFactory(name="Toolsets", path="Toolsets")  # shares the prefix, not the subtree
    brand = BrandFactory()
    older = MiningRunFactory()
    latest = MiningRunFactory()
    in_tools = SuggestionFactory(source=ProductFactory(category=tools), co_count=3, lift=1.5, first_run=older)
    in_drills = SuggestionFactory(source=ProductFactory(category=drills, brand=brand), co_count=9, first_run=latest)
    elsewhere = SuggestionFactory(source=ProductFactory(category=toolsets), lift=4.0, first_run=older)
    stale = SuggestionFactory(stale=True, first_run=older)

    def pks(**params):
        return {row.pk for row in review_queue(specialist, params).rows}

    assert pks() == {in_tools.pk, in_drills.pk, elsewhere.pk}
    assert pks(category=tools.pk) == {in_tools.pk, in_drills.pk}
    assert pks(category=drills.pk) == {in_drills.pk}
    assert pks(brand=brand.pk) == {in_drills.pk}
    assert pks(min_co_count=9) == {in_drills.pk}
    assert pks(min_lift=3) == {elsewhere.pk}
    assert pks(run=older.pk) == {in_tools.pk, elsewhere.pk}
    assert pks(new="1") == {in_drills.pk}
    assert pks(stale="1") == {stale.pk}
    assert pks(category="nonsense", min_lift="x") == {in_tools.pk, in_drills.pk, elsewhere.pk}


def test_filters_are_saved_and_reapplied_per_user(client, specialist, administrator, run):
    big = SuggestionFactory(co_count=20, first_run=run, last_run=run, score=0.3)
    small = SuggestionFactory(co_count=4, first_run=run, last_run=run, score=0.6)
    client.force_login(specialist)

    response = client.get(REVIEW, {"applied": "1", "min_co_count": "10", "brand": ""})

    assert _pks(response) == [big.pk]
    assert ReviewPreference.objects.get(user=specialist).filters == {"min_co_count": "10"}
    # Opened again without parameters (and on another page): the saved filters apply.
    assert _pks(client.get(REVIEW)) == [big.pk]
    assert _pks(client.get(REVIEW, {"page": "1"})) == [big.pk]
    assert 'value="10"' in client.get(REVIEW).content.decode()

    client.force_login(administrator)
    assert _pks(client.get(REVIEW)) == [small.pk, big.pk]

    client.force_login(specialist)
    response = client.get(REVIEW, {"reset": "1"})
    assert response.status_code == 302 and response["Location"] == REVIEW
    assert ReviewPreference.objects.get(user=specialist).filters == {}
    assert _pks(client.get(REVIEW)) == [small.pk, big.pk]


def test_pagination_with_capped_count(specialist, run, monkeypatch):
    monkeypatch.setattr("merchandising.selectors.review.COUNT_CAP", 3)
    made = [SuggestionFactory(score=1 - i / 100, first_run=run) for i in range(7)]

    first = review_queue(specialist, {"size": "2"})
    third = review_queue(specialist, {"size": "2", "page": "3"})
    last = review_queue(specialist, {"size": "2", "page": "4"})

    assert [r.pk for r in first.rows] == [made[0].pk, made[1].pk]
    assert (first.total, first.total_capped, first.has_next, first.pages) == (3, True, True, None)
    assert [r.pk for r in third.rows] == [made[4].pk, made[5].pk]
    assert [r.pk for r in last.rows] == [made[6].pk]
    assert (last.total, last.total_capped, last.has_next) == (7, False, False)


def _queue_fixture(rows: int, run, specialist) -> None:
    """``rows`` pending suggestions whose sources each have published links of two types."""
    for _ in range(rows):
        source = ProductFactory()
        for link_type in ("cross_sell", "spare_part"):
            done = SuggestionFactory(source=source, first_run=run, last_run=run)
            suggestion_approve(suggestion_id=done.pk, actor=specialist, link_type=link_type)
        SuggestionFactory(source=source, first_run=run, last_run=run, previous_co_count=2)


def _count_queries(client, size: int) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(REVIEW, {"applied": "1", "size": str(size)})
    assert response.status_code == 200
    return len(queries), len(response.context["page"].rows)


def test_queue_page_query_count_does_not_grow_with_the_page(client, specialist, run, django_assert_num_queries):
    _queue_fixture(50, run, specialist)
    client.force_login(specialist)
    client.get(REVIEW, {"applied": "1"})  # saves the (empty) filters once

    small, shown_small = _count_queries(client, 5)
    large, shown_large = _count_queries(client, 50)

    assert (shown_small, shown_large) == (5, 50)
    assert small == large
    # session, user, roles, saved filters, latest run, count, rows, published links,
    # brands, categories, runs; plus the session save (SESSION_SAVE_EVERY_REQUEST: an
    # UPDATE inside a savepoint, three statements).
    with django_assert_num_queries(14):
        client.get(REVIEW, {"applied": "1", "size": "50"})


# --- bulk -------------------------------------------------------------------------------------


def test_bulk_preview_count_equals_what_bulk_apply_decides(specialist_client, specialist, run):
    pending = [SuggestionFactory(first_run=run, last_run=run) for _ in range(3)]
    decided = SuggestionFactory(first_run=run, last_run=run)
    suggestion_approve(suggestion_id=decided.pk, actor=UserFactory(role="Product specialist"))
    ids = [s.pk for s in pending] + [decided.pk, 999_999]

    response = htmx_post(
        specialist_client, url("review_bulk_preview"), {"ids": ids, "action": "reject", "reason": "unrelated"}
    )

    body = response.content.decode()
    assert 'Reject <strong id="bulk-count">3</strong> suggestions' in body
    assert "1 already decided" in body and "1 no longer exist" in body
    assert Decision.objects.filter(actor=specialist).count() == 0  # a preview decides nothing

    response = htmx_post(
        specialist_client,
        url("review_bulk"),
        {"ids": ids, "action": "reject", "reason": "unrelated", "visible": ids},
    )

    assert "Rejected 3 suggestions; 2 skipped" in response.content.decode()
    mine = Decision.objects.filter(actor=specialist)
    assert mine.count() == 3
    assert set(mine.values_list("suggestion_id", flat=True)) == {s.pk for s in pending}
    assert set(mine.values_list("action", "reject_reason")) == {("reject", "unrelated")}
    assert len(set(mine.values_list("batch", flat=True))) == 1


def test_bulk_approve_as_type(specialist_client, specialist, run):
    pending = [SuggestionFactory(first_run=run, last_run=run) for _ in range(2)]
    ids = [s.pk for s in pending]

    preview = htmx_post(
        specialist_client, url("review_bulk_preview"), {"ids": ids, "action": "approve", "link_type": "service"}
    )
    assert 'Approve <strong id="bulk-count">2</strong> suggestions as service' in preview.content.decode()

    htmx_post(specialist_client, url("review_bulk"), {"ids": ids, "action": "approve", "link_type": "service"})

    assert Suggestion.objects.filter(status="approved").count() == 2
    assert sorted(Link.objects.values_list("type", flat=True)) == ["service", "service"]


# --- exclusions -------------------------------------------------------------------------------


def test_exclusion_preview_count_equals_rejected_count(specialist_client, specialist, run):
    brand = BrandFactory(name="Acme")
    suggestion = SuggestionFactory(target=ProductFactory(brand=brand), first_run=run, last_run=run)
    SuggestionFactory(source=ProductFactory(brand=brand), first_run=run, last_run=run)
    SuggestionFactory(target=ProductFactory(brand=brand), first_run=run, last_run=run, stale=True)
    SuggestionFactory(target=ProductFactory(brand=brand), status=SuggestionStatus.APPROVED)
    untouched = SuggestionFactory(first_run=run, last_run=run)

    dialog = specialist_client.get(url("review_exclude", suggestion.pk))
    assert 'id="exclude-count-value">1<' in dialog.content.decode()  # the target product, by default

    preview = htmx_post(specialist_client, url("review_exclude_preview", suggestion.pk), {"kind": "brand"})
    assert 'id="exclude-count-value">3<' in preview.content.decode()

    response = htmx_post(
        specialist_client,
        url("review_exclude", suggestion.pk),
        {"kind": "brand", "reason": "we do not sell Acme online", "visible": [suggestion.pk, untouched.pk]},
    )

    body = response.content.decode()
    assert "3 pending suggestions rejected" in body
    assert f'id="s-{suggestion.pk}"' in body and f'id="s-{untouched.pk}"' not in body
    rule = ExclusionRule.objects.get()
    assert (rule.kind, rule.brand, rule.created_by, rule.reason) == (
        "brand",
        brand,
        specialist,
        "we do not sell Acme online",
    )
    excluded = Decision.objects.filter(action=Decision.Action.EXCLUDE, actor=specialist, rule=rule)
    assert excluded.count() == 3
    assert Suggestion.objects.filter(reject_reason=RejectReason.EXCLUDED).count() == 3
    untouched.refresh_from_db()
    assert untouched.status == SuggestionStatus.PENDING


def test_exclusion_of_a_category_pair(specialist_client, specialist, run):
    tools, parts = CategoryFactory(name="Tools", path="Tools"), CategoryFactory(name="Parts", path="Parts")
    suggestion = SuggestionFactory(
        source=ProductFactory(category=tools), target=ProductFactory(category=parts), first_run=run
    )
    SuggestionFactory(source=ProductFactory(category=parts), target=ProductFactory(category=tools), first_run=run)
    SuggestionFactory(source=ProductFactory(category=tools), target=ProductFactory(category=tools), first_run=run)

    preview = htmx_post(specialist_client, url("review_exclude_preview", suggestion.pk), {"kind": "category_pair"})
    assert 'id="exclude-count-value">2<' in preview.content.decode()

    htmx_post(specialist_client, url("review_exclude", suggestion.pk), {"kind": "category_pair", "reason": "no"})

    rule = ExclusionRule.objects.get()
    assert (rule.kind, rule.category, rule.other_category) == ("category_pair", tools, parts)
    assert Decision.objects.filter(rule=rule).count() == 2


def test_decided_at_is_shown_in_local_time(specialist_client, specialist, suggestion):
    Suggestion.objects.filter(pk=suggestion.pk).update(
        status=SuggestionStatus.REJECTED,
        reject_reason="unrelated",
        decided_by=specialist,
        decided_at=datetime.datetime(2026, 3, 1, 9, 30, tzinfo=datetime.UTC),
    )

    response = htmx_post(specialist_client, url("review_snooze", suggestion.pk))

    assert "Already rejected by specialist at 2026-03-01 10:30." in response.content.decode()
