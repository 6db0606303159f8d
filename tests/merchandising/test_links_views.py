"""The links pages: a product's links (add, reorder, retire, inverse links, history), needs
attention, publishing (immediate and in batches, with the diff), the links admin, the role
matrix and pinned query counts."""

from __future__ import annotations

import json

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.models import ProductStatus
from merchandising.models import (
    ExclusionRule,
    Link,
    LinkChange,
    LinkList,
    LinkOrigin,
    LinkType,
    PublishedLink,
    PublishEvent,
    PublishState,
    SuggestionStatus,
)
from merchandising.services import link_add, links_publish
from tests.factories import BrandFactory, ProductFactory
from tests.merchandising.factories import SuggestionFactory

pytestmark = pytest.mark.django_db

ATTENTION = "/attention/"
PUBLISH = "/publish/"
PUBLISH_APPLY = "/publish/apply/"
PUBLISH_SETTINGS = "/publish/settings/"
LOOKUP = "/links/lookup/"


def page_url(product) -> str:
    return f"/products/{product.sku}/links/"


def add_url(product) -> str:
    return f"/links/add/{product.pk}/"


def reorder_url(product) -> str:
    return f"/links/reorder/{product.pk}/"


def retire_url(link) -> str:
    return f"/links/{link.pk}/retire/"


def attention_url(link) -> str:
    return f"/attention/{link.pk}/"


def batch_mode(on: bool) -> None:
    PublishState.load()
    PublishState.objects.filter(pk=1).update(batch_mode=on)


def generation() -> int:
    return PublishState.load().generation


def published(source) -> list[tuple[str, str, int]]:
    """(type, target sku, position) of the source's published links, in order."""
    rows = PublishedLink.objects.published().filter(source=source).order_by("type", "position")
    return [(row.type, row.target.sku, row.position) for row in rows.select_related("target")]


def working(source, link_type=LinkType.CROSS_SELL) -> list[str]:
    links = Link.objects.active().filter(source=source, type=link_type).order_by("position")
    return [link.target.sku for link in links.select_related("target")]


def add(source, target, actor, link_type=LinkType.CROSS_SELL, **kwargs) -> Link:
    return link_add(source=source, target=target, link_type=link_type, actor=actor, **kwargs)


def messages_of(response) -> list[str]:
    """The messages this request added (not those still stored from earlier requests)."""
    return [str(message) for message in get_messages(response.wsgi_request)._queued_messages]


def count_queries(client, url) -> int:
    client.get(url)  # warm the per-process caches (content types, the publish state row)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


@pytest.fixture
def products():
    brand = BrandFactory(name="Acme")
    return [ProductFactory(sku=f"P-{n}", name=f"Product {n}", brand=brand) for n in range(1, 7)]


# --- product links page: add, reorder, retire ----------------------------------------------------


def test_add_writes_history_and_publishes_at_once_without_batch_mode(client, specialist, products):
    source, target = products[0], products[1]
    client.force_login(specialist)
    response = client.post(add_url(source), {"target": target.sku, "type": LinkType.ACCESSORY})
    assert response.status_code == 302
    assert response["Location"] == page_url(source)
    link = Link.objects.get()
    assert (link.source, link.target, link.type, link.position, link.origin, link.created_by) == (
        source,
        target,
        LinkType.ACCESSORY,
        1,
        LinkOrigin.MANUAL,
        specialist,
    )
    change = LinkChange.objects.get()
    assert (change.product, change.target, change.action, change.via, change.actor, change.details) == (
        source,
        target,
        LinkChange.Action.ADDED,
        LinkChange.Via.MANUAL,
        specialist,
        {"position": 1},
    )
    assert published(source) == [(LinkType.ACCESSORY, "P-2", 1)]
    assert generation() == 1
    event = PublishEvent.objects.get()
    assert (event.generation, event.added, event.removed, event.changed, event.batch) == (1, 1, 0, 0, False)
    assert messages_of(response) == ["Added P-2 as accessory at position 1. Published."]


def test_add_at_a_position_and_with_a_window(client, specialist, products):
    source = products[0]
    add(source, products[1], specialist)
    add(source, products[2], specialist)
    client.force_login(specialist)
    response = client.post(
        add_url(source),
        {
            "target": "P-4",
            "type": LinkType.CROSS_SELL,
            "position": "1",
            "valid_from": "2026-07-01",
            "valid_until": "2026-08-31",
        },
    )
    assert response.status_code == 302
    assert working(source) == ["P-4", "P-2", "P-3"]
    new = Link.objects.get(target=products[3])
    assert (str(new.valid_from), str(new.valid_until)) == ("2026-07-01", "2026-08-31")
    assert published(source) == [("cross_sell", "P-4", 1), ("cross_sell", "P-2", 2), ("cross_sell", "P-3", 3)]
    assert generation() == 3


def test_add_refuses_unknown_target_duplicate_self_link_and_backwards_window(client, specialist, products):
    source, target = products[0], products[1]
    add(source, target, specialist)
    client.force_login(specialist)
    cases = [
        ({"target": "NOPE", "type": "cross_sell"}, "No product with SKU &#x27;NOPE&#x27;."),
        ({"target": "P-2", "type": "cross_sell"}, "P-1 already has P-2 as cross-sell."),
        ({"target": "P-1", "type": "cross_sell"}, "A product cannot be linked to itself."),
        (
            {"target": "P-3", "type": "cross_sell", "valid_from": "2026-08-01", "valid_until": "2026-07-01"},
            "The window must end on or after its start.",
        ),
    ]
    for data, error in cases:
        response = client.post(add_url(source), data)
        assert response.status_code == 400, data
        assert error in response.content.decode(), data
    assert Link.objects.count() == 1
    assert LinkChange.objects.count() == 1
    assert generation() == 1


def _reorder_post(group_links, positions=None, order=None) -> dict:
    """The reorder form as the page posts it: the rows in (dragged) order, each with its
    position input and the position it had when the page was shown."""
    order = order or [link.pk for link in group_links]
    by_id = {link.pk: link for link in group_links}
    source_id, link_type = group_links[0].source_id, group_links[0].type
    # The list's version as the page shows it (the edit-conflict check).
    version = LinkList.objects.filter(source_id=source_id, type=link_type).values_list("version", flat=True).first()
    data = {"type": link_type, "order": [str(pk) for pk in order], "version": str(version or 1)}
    for index, pk in enumerate(order):
        data[f"was-{pk}"] = str(by_id[pk].position)
        data[f"position-{pk}"] = str((positions or {}).get(pk, index + 1))
    return data


def test_reorder_by_drag_is_one_change_and_one_publish(client, specialist, products):
    source = products[0]
    links = [add(source, product, specialist) for product in products[1:4]]  # P-2, P-3, P-4
    assert generation() == 3
    client.force_login(specialist)
    # Dragged P-4 to the top: the script posts the rows in the new order, renumbered.
    response = client.post(reorder_url(source), _reorder_post(links, order=[links[2].pk, links[0].pk, links[1].pk]))
    assert response.status_code == 302
    assert working(source) == ["P-4", "P-2", "P-3"]
    change = LinkChange.objects.get(action=LinkChange.Action.REORDERED)
    assert (change.product, change.link, change.via, change.actor) == (
        source,
        None,
        LinkChange.Via.MANUAL,
        specialist,
    )
    assert change.details == {
        "before": [products[1].pk, products[2].pk, products[3].pk],
        "after": [products[3].pk, products[1].pk, products[2].pk],
    }
    assert published(source) == [("cross_sell", "P-4", 1), ("cross_sell", "P-2", 2), ("cross_sell", "P-3", 3)]
    assert generation() == 4
    assert PublishEvent.objects.get(generation=4).changed == 3


def test_reorder_by_position_inputs_without_javascript(client, specialist, products):
    source = products[0]
    links = [add(source, product, specialist) for product in products[1:5]]  # P-2..P-5
    client.force_login(specialist)
    # Typed 1 into P-5's position: it goes first, the others keep their order.
    response = client.post(reorder_url(source), _reorder_post(links, positions={links[3].pk: 1, links[0].pk: 1}))
    assert response.status_code == 302
    assert working(source) == ["P-5", "P-2", "P-3", "P-4"]
    assert LinkChange.objects.filter(action=LinkChange.Action.REORDERED).count() == 1
    assert published(source)[0] == ("cross_sell", "P-5", 1)


def test_reorder_of_an_outdated_list_changes_nothing(client, specialist, products):
    source = products[0]
    links = [add(source, product, specialist) for product in products[1:3]]
    stale_form = _reorder_post(links, order=[links[1].pk, links[0].pk])
    add(source, products[3], specialist)  # someone else added one meanwhile
    client.force_login(specialist)
    response = client.post(reorder_url(source), stale_form)
    # The page showed an older version of the list: refused, naming the change (issue 11).
    assert response.status_code == 409
    assert response.context["conflict"].startswith("Saved meanwhile by specialist at ")
    assert response.context["conflict"].endswith(
        ": frequently bought with order P-2, P-3 → P-2, P-3, P-4. Your changes were not saved; review and save again."
    )
    assert working(source) == ["P-2", "P-3", "P-4"]
    assert not LinkChange.objects.filter(action=LinkChange.Action.REORDERED).exists()
    assert generation() == 3


def test_retire_writes_history_unpublishes_and_moves_the_rest_up(client, specialist, products):
    source = products[0]
    links = [add(source, product, specialist) for product in products[1:4]]
    client.force_login(specialist)
    response = client.post(retire_url(links[0]), {"reason": "wrong voltage"})
    assert response.status_code == 302
    retired = Link.objects.get(pk=links[0].pk)
    assert (retired.retired_by, retired.retire_reason) == (specialist, "wrong voltage")
    assert retired.retired_at is not None
    change = LinkChange.objects.get(action=LinkChange.Action.RETIRED)
    assert (change.link_id, change.via, change.actor, change.details) == (
        links[0].pk,
        LinkChange.Via.MANUAL,
        specialist,
        {"reason": "wrong voltage"},
    )
    assert working(source) == ["P-3", "P-4"]
    assert published(source) == [("cross_sell", "P-3", 1), ("cross_sell", "P-4", 2)]
    assert PublishedLink.objects.get(link_id=links[0].pk).removed_generation == 4
    assert generation() == 4
    # Retiring twice is a clear message, not an error page.
    response = client.post(retire_url(links[0]), {"reason": "again"})
    assert messages_of(response) == ["This link is already retired (or gone): reload the page."]
    assert generation() == 4


# --- the page itself ---------------------------------------------------------------------------


def test_page_shows_links_by_type_with_details_inverse_links_and_history(client, specialist, products):
    source, accessory, cross = products[0], products[1], products[2]
    suggestion = SuggestionFactory(source=source, target=cross, co_count=12, confidence=0.25, lift=3.5)
    add(source, accessory, specialist, link_type=LinkType.ACCESSORY)
    add(source, cross, specialist, origin=LinkOrigin.MINED, suggestion=suggestion)
    add(products[3], source, specialist, link_type=LinkType.SPARE_PART)
    client.force_login(specialist)
    html = client.get(page_url(source)).content.decode()
    assert html.index("Has accessory") < html.index("Links to this product")
    assert "co-count 12, confidence 0.250, lift 3.50" in html
    assert html.count("links-badge-ok") == 2
    assert "waiting for publish" not in html
    inverse = html[html.index("Links to this product") : html.index('id="history"')]
    assert "Spare part for" in inverse and "P-4" in inverse
    assert "Needs spare part" not in inverse
    history = html[html.index('id="history"') :]
    assert history.count("Product links page") == 2  # the two links added to P-1
    # The target's page shows the accessory link under its inverse label, with the source.
    target_html = client.get(page_url(accessory)).content.decode()
    inverse = target_html[target_html.index("Links to this product") :]
    assert "Accessory of" in inverse and 'href="/products/P-1/links/"' in inverse
    assert "Has accessory" not in target_html


def test_history_includes_imports_and_bulk_actions(client, specialist, products):
    source = products[0]
    link = add(source, products[1], specialist)
    LinkChange.objects.create(
        link=link, product=source, target=products[1], type=link.type, action="changed", via="import", actor=None
    )
    client.force_login(specialist)
    history = client.get(page_url(source)).content.decode().split('id="history"')[1]
    assert history.index("Import") < history.index("Product links page")  # newest first
    assert "system" in history


def test_history_is_paginated(client, specialist, products):
    source = products[0]
    link = add(source, products[1], specialist)
    LinkChange.objects.bulk_create(
        LinkChange(link=link, product=source, target=products[1], type=link.type, action="kept", via="attention")
        for _ in range(30)
    )
    client.force_login(specialist)
    first = client.get(page_url(source))
    assert first.context["history_page"].paginator.num_pages == 2
    assert len(first.context["history_rows"]) == 25
    assert len(client.get(page_url(source) + "?page=2").context["history_rows"]) == 6


def test_waiting_for_publish_in_batch_mode(client, specialist, products):
    source = products[0]
    add(source, products[1], specialist)
    batch_mode(True)
    add(source, products[2], specialist)
    client.force_login(specialist)
    html = client.get(page_url(source)).content.decode()
    assert html.count("waiting for publish") == 1
    assert html.count("links-badge-ok") == 1
    assert "Publishing in batches:" in html


def test_lookup_finds_by_sku_then_name_and_leaves_out_the_product(client, marketer, products):
    ProductFactory(sku="X-1", name="Adapter for P-1")
    client.force_login(marketer)
    response = client.get(LOOKUP, {"q": "p-1", "exclude": products[0].pk})
    assert [row["sku"] for row in response.json()["results"]] == ["X-1"]
    response = client.get(LOOKUP, {"q": "P-"})
    assert [row["sku"] for row in response.json()["results"]] == ["P-1", "P-2", "P-3", "P-4", "P-5", "P-6", "X-1"]
    assert response.json()["results"][0] == {"sku": "P-1", "name": "Product 1", "brand": "Acme", "status": "active"}
    assert client.get(LOOKUP, {"q": " "}).json() == {"results": []}


# --- publishing in batches ----------------------------------------------------------------------


def _shown(client):
    response = client.get(PUBLISH)
    assert response.status_code == 200
    return response, {
        "generation": response.context["state"].generation,
        "fingerprint": response.context["fingerprint"],
    }


def test_batch_mode_publishes_nothing_until_publish_and_then_exactly_the_diff(client, specialist, products):
    source, other = products[0], products[5]
    kept, dropped, moved = (add(source, product, specialist) for product in products[1:4])  # P-2, P-3, P-4
    assert generation() == 3
    batch_mode(True)
    before = published(source)
    client.force_login(specialist)
    client.post(add_url(other), {"target": "P-1", "type": LinkType.SERVICE})
    client.post(retire_url(dropped), {"reason": "discontinued line"})  # P-3 out; P-4 moves up to 2
    links = list(Link.objects.active().filter(source=source).order_by("position"))
    client.post(reorder_url(source), _reorder_post(links, order=[links[1].pk, links[0].pk]))  # P-4, P-2
    assert generation() == 3
    assert published(source) == before
    assert published(other) == []
    assert LinkChange.objects.filter(action__in=["added", "retired", "reordered"]).count() == 3 + 3

    response, shown = _shown(client)
    counts = response.context["counts"]
    assert counts == {"added": 1, "removed": 1, "reordered": 2, "changed": 0}
    rows = response.context["diff_rows"]
    assert [(r["source_sku"], r["target_sku"], r["new_position"]) for r in rows["added"]] == [("P-6", "P-1", 1)]
    assert [(r["source_sku"], r["target_sku"], r["old_position"]) for r in rows["removed"]] == [("P-1", "P-3", 2)]
    assert sorted((r["target_sku"], r["old_position"], r["new_position"]) for r in rows["reordered"]) == [
        ("P-2", 1, 2),
        ("P-4", 3, 1),
    ]
    html = response.content.decode()
    assert "1 added, 1 removed, 2 reordered, 0 changed." in html
    assert "Publish these changes" in html

    response = client.post(PUBLISH_APPLY, shown)
    assert response.status_code == 302
    assert generation() == 4
    assert published(source) == [("cross_sell", "P-4", 1), ("cross_sell", "P-2", 2)]
    assert published(other) == [("service", "P-1", 1)]
    event = PublishEvent.objects.get(generation=4)
    assert (event.batch, event.added, event.removed, event.changed, event.actor) == (True, 1, 1, 2, specialist)
    assert messages_of(response) == ["Published generation 4: 1 added, 1 removed, 2 reordered, 0 changed."]
    assert PublishEvent.objects.count() == 4
    # Nothing waits any more.
    response = client.get(PUBLISH)
    assert response.context["counts"] == {"added": 0, "removed": 0, "reordered": 0, "changed": 0}
    assert not kept.retired_at and not moved.retired_at


def test_publish_is_refused_when_someone_published_meanwhile(client, specialist, administrator, products):
    batch_mode(True)
    add(products[0], products[1], specialist)
    client.force_login(specialist)
    _, shown = _shown(client)
    links_publish(actor=administrator, batch=True)  # another person pressed Publish first
    add(products[0], products[2], specialist)
    response = client.post(PUBLISH_APPLY, shown)
    assert response.status_code == 302
    assert messages_of(response) == [
        "Someone published meanwhile (generation 1, you saw 0). Nothing was published: "
        "check the changes below and publish again."
    ]
    assert generation() == 1
    assert published(products[0]) == [("cross_sell", "P-2", 1)]


def test_publish_is_refused_when_the_waiting_changes_differ_from_the_shown_diff(client, specialist, products):
    batch_mode(True)
    add(products[0], products[1], specialist)
    client.force_login(specialist)
    _, shown = _shown(client)
    add(products[0], products[2], specialist)  # a change after the page was shown
    response = client.post(PUBLISH_APPLY, shown)
    assert messages_of(response) == [
        "The waiting changes have changed since the page was shown. Nothing was published: "
        "check the changes below and publish again."
    ]
    assert generation() == 0
    assert PublishedLink.objects.count() == 0
    # Shown again, it publishes both.
    _, shown = _shown(client)
    client.post(PUBLISH_APPLY, shown)
    assert generation() == 1
    assert published(products[0]) == [("cross_sell", "P-2", 1), ("cross_sell", "P-3", 2)]


def test_only_administrators_toggle_batch_mode_and_turning_it_off_publishes(
    client, specialist, administrator, products
):
    client.force_login(specialist)
    assert client.post(PUBLISH_SETTINGS, {"batch_mode": "on"}).status_code == 403
    assert PublishState.load().batch_mode is False
    assert "Turn batch publishing" not in client.get(PUBLISH).content.decode()

    client.force_login(administrator)
    assert "Turn batch publishing on" in client.get(PUBLISH).content.decode()
    response = client.post(PUBLISH_SETTINGS, {"batch_mode": "on"})
    assert response.status_code == 302
    assert PublishState.load().batch_mode is True
    add(products[0], products[1], specialist)
    assert generation() == 0
    response = client.post(PUBLISH_SETTINGS, {"batch_mode": "off"})
    state = PublishState.load()
    assert (state.batch_mode, state.generation) == (False, 1)
    assert published(products[0]) == [("cross_sell", "P-2", 1)]
    assert messages_of(response) == [
        "Batch publishing is off: changes are published as they are made (what was waiting is published)."
    ]


def test_publish_page_without_batch_mode_shows_no_diff_and_the_last_publishes(client, specialist, products):
    add(products[0], products[1], specialist)
    client.force_login(specialist)
    response = client.get(PUBLISH)
    html = response.content.decode()
    assert "diff_rows" not in response.context
    assert "Publish these changes" not in html
    assert "Link changes are published as they are made." in html
    assert [event.generation for event in response.context["events"]] == [1]


# --- needs attention -----------------------------------------------------------------------------


@pytest.fixture
def attention(specialist, products):
    """Three links that need attention: stale mined evidence, a discontinued target, a target
    with a successor (P-6 replaces P-4); plus a healthy link that does not."""
    source = products[0]
    suggestion = SuggestionFactory(source=source, target=products[1], stale=True, stale_since=timezone.now())
    stale = add(source, products[1], specialist, origin=LinkOrigin.MINED, suggestion=suggestion)
    gone = add(source, products[2], specialist)
    replaced = add(source, products[3], specialist)
    healthy = add(source, products[4], specialist)
    products[2].status = ProductStatus.DISCONTINUED
    products[2].save()
    add(products[3], products[5], specialist, link_type=LinkType.SUCCESSOR)
    return {"stale": stale, "gone": gone, "replaced": replaced, "healthy": healthy}


def test_attention_lists_each_reason_and_offers_replace_only_with_a_successor(client, specialist, attention):
    client.force_login(specialist)
    response = client.get(ATTENTION)
    assert response.context["count"] == 3
    by_id = {link.pk: link for link in response.context["links"]}
    assert set(by_id) == {attention["stale"].pk, attention["gone"].pk, attention["replaced"].pk}
    reasons = {
        name: (by_id[link.pk].reason_stale, by_id[link.pk].reason_target_inactive, by_id[link.pk].reason_successor)
        for name, link in attention.items()
        if link.pk in by_id
    }
    assert reasons == {
        "stale": (True, False, False),
        "gone": (False, True, False),
        "replaced": (False, False, True),
    }
    html = response.content.decode()
    assert '<span id="attention-count">3</span>' in html
    assert "evidence stale since" in html
    assert "target discontinued" in html
    assert "target replaced by P-6" in html
    assert html.count('name="action" value="replace"') == 1
    assert "Replace by P-6" in html


def test_attention_retire_with_htmx(client, specialist, attention):
    client.force_login(specialist)
    link = attention["gone"]
    response = client.post(attention_url(link), {"action": "retire", "reason": ""}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert f'id="attention-{link.pk}"' in response.content.decode()
    assert "Retired P-1 → P-3." in response.content.decode()
    assert json.loads(response["HX-Trigger"]) == {"attentionCount": 2}
    link.refresh_from_db()
    assert (link.retired_by, link.retire_reason) == (specialist, "needs attention")
    change = LinkChange.objects.get(action=LinkChange.Action.RETIRED)
    assert (change.link_id, change.via, change.actor) == (link.pk, LinkChange.Via.ATTENTION, specialist)
    assert ("cross_sell", "P-3", 2) not in published(link.source)


def test_attention_keep_hides_the_link_until_a_new_reason(client, specialist, attention):
    client.force_login(specialist)
    link = attention["stale"]
    before = generation()
    response = client.post(attention_url(link), {"action": "keep"}, HTTP_HX_REQUEST="true")
    assert "Kept P-1 → P-2." in response.content.decode()
    assert json.loads(response["HX-Trigger"]) == {"attentionCount": 2}
    link.refresh_from_db()
    assert link.retired_at is None and link.attention_dismissed_at is not None
    change = LinkChange.objects.get(action=LinkChange.Action.KEPT)
    assert (change.link_id, change.via, change.actor) == (link.pk, LinkChange.Via.ATTENTION, specialist)
    assert generation() == before  # keeping changes nothing the webshop sees
    assert link.pk not in {row.pk for row in client.get(ATTENTION).context["links"]}


def test_attention_replace_by_successor_keeps_the_position(client, specialist, attention):
    client.force_login(specialist)
    link = attention["replaced"]
    assert link.position == 3
    response = client.post(attention_url(link), {"action": "replace"}, HTTP_HX_REQUEST="true")
    assert "Replaced P-1 → P-4 by P-6 (position 3)." in response.content.decode()
    link.refresh_from_db()
    assert link.retired_at is not None
    new = Link.objects.active().get(source=link.source, target__sku="P-6")
    assert (new.type, new.position, new.created_by) == (LinkType.CROSS_SELL, 3, specialist)
    assert working(link.source) == ["P-2", "P-3", "P-6", "P-5"]
    assert published(link.source) == [
        ("cross_sell", "P-2", 1),
        ("cross_sell", "P-3", 2),
        ("cross_sell", "P-6", 3),
        ("cross_sell", "P-5", 4),
    ]
    actions = set(LinkChange.objects.filter(via=LinkChange.Via.ATTENTION).values_list("action", flat=True))
    assert actions == {LinkChange.Action.RETIRED, LinkChange.Action.ADDED, LinkChange.Action.REPLACED}


def test_attention_replace_without_successor_and_without_htmx(client, specialist, attention):
    client.force_login(specialist)
    link = attention["gone"]
    response = client.post(attention_url(link), {"action": "replace"})
    assert response.status_code == 302 and response["Location"] == ATTENTION
    assert messages_of(response) == ["The target has no successor."]
    link.refresh_from_db()
    assert link.retired_at is None


# --- permissions -------------------------------------------------------------------------------


def _post_urls(link, product) -> list[tuple[str, dict]]:
    return [
        (add_url(product), {"target": "P-6", "type": "cross_sell"}),
        (reorder_url(product), {"type": "cross_sell", "order": [str(link.pk)]}),
        (retire_url(link), {"reason": "x"}),
        (attention_url(link), {"action": "keep"}),
        (PUBLISH_APPLY, {"generation": "1", "fingerprint": "x"}),
        (PUBLISH_SETTINGS, {"batch_mode": "on"}),
    ]


def test_anonymous_users_go_to_the_login_page(client, specialist, attention, products):
    for url in [page_url(products[0]), ATTENTION, PUBLISH, LOOKUP + "?q=P"]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/?next="), url
    for url, data in _post_urls(attention["gone"], products[0]):
        response = client.post(url, data)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/?next="), url


def test_users_without_a_role_get_403(client, no_role_user, specialist, attention, products):
    client.force_login(no_role_user)
    for url in [page_url(products[0]), ATTENTION, PUBLISH, LOOKUP + "?q=P"]:
        assert client.get(url).status_code == 403, url
    for url, data in _post_urls(attention["gone"], products[0]):
        assert client.post(url, data).status_code == 403, url


def test_marketing_reads_but_changes_nothing(client, marketer, specialist, attention, products):
    batch_mode(True)
    add(products[0], products[5], specialist)
    links_before = list(Link.objects.values_list("pk", "position", "retired_at", "attention_dismissed_at"))
    changes_before = LinkChange.objects.count()
    client.force_login(marketer)
    page = client.get(page_url(products[0]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Read only for your role." in html
    assert "Add link" not in html and "Save order" not in html and ">Retire<" not in html
    attention_page = client.get(ATTENTION).content.decode()
    assert "Retire</button>" not in attention_page and "Keep</button>" not in attention_page
    publish_page = client.get(PUBLISH).content.decode()
    assert "Publish these changes" not in publish_page and "Turn batch publishing" not in publish_page
    for url, data in _post_urls(attention["gone"], products[0]):
        assert client.post(url, data).status_code == 403, url
    assert list(Link.objects.values_list("pk", "position", "retired_at", "attention_dismissed_at")) == links_before
    assert LinkChange.objects.count() == changes_before
    assert PublishState.load().batch_mode is True
    assert generation() == 5


def test_the_pages_need_get_and_the_actions_post(client, specialist, attention, products):
    client.force_login(specialist)
    assert client.post(page_url(products[0])).status_code == 405
    assert client.get(add_url(products[0])).status_code == 405
    assert client.get(attention_url(attention["gone"])).status_code == 405


# --- query counts ------------------------------------------------------------------------------


def _links_for(source, targets, actor) -> None:
    for index, target in enumerate(targets):
        link_type = LinkType.ACCESSORY if index % 3 == 0 else LinkType.CROSS_SELL
        add(source, target, actor, link_type=link_type)
        add(target, source, actor, link_type=LinkType.SPARE_PART)


def test_product_page_query_count_does_not_grow_with_the_links(client, specialist):
    few_source, many_source = ProductFactory(), ProductFactory()
    _links_for(few_source, ProductFactory.create_batch(3), specialist)
    _links_for(many_source, ProductFactory.create_batch(30), specialist)
    client.force_login(specialist)
    few = count_queries(client, page_url(few_source))
    many = count_queries(client, page_url(many_source))
    assert few == many == 16  # 15 + the versions of the product's link lists (one query)


def test_attention_page_query_count_does_not_grow_with_the_links(client, specialist):
    def make(count: int) -> None:
        for _ in range(count):
            source, target, successor = ProductFactory(), ProductFactory(), ProductFactory()
            add(source, target, specialist)
            add(target, successor, specialist, link_type=LinkType.SUCCESSOR)

    make(3)
    client.force_login(specialist)
    few = count_queries(client, ATTENTION)
    assert client.get(ATTENTION).context["count"] == 3
    make(27)
    many = count_queries(client, ATTENTION)
    assert client.get(ATTENTION).context["count"] == 30
    assert few == many == 11


# --- admin -------------------------------------------------------------------------------------


def test_link_admin_lists_filters_and_retires_through_the_service(client, specialist, marketer, products):
    links = [add(products[0], product, specialist) for product in products[1:4]]
    client.force_login(marketer)
    response = client.get("/admin/merchandising/link/?retired=no&q=P-1")
    assert response.status_code == 200
    assert response.context["cl"].result_count == 3
    assert response.context["action_form"] is None  # marketing: no retire action
    assert client.get(f"/admin/merchandising/link/{links[0].pk}/change/").status_code == 200
    assert client.get("/admin/merchandising/publishevent/").status_code == 200
    assert client.get("/admin/merchandising/linkchange/?q=P-1").status_code == 200

    client.force_login(specialist)
    response = client.post(
        "/admin/merchandising/link/",
        {"action": "retire_selected", "_selected_action": [str(links[0].pk), str(links[1].pk)]},
    )
    assert response.status_code == 302
    assert working(products[0]) == ["P-4"]
    changes = LinkChange.objects.filter(action=LinkChange.Action.RETIRED)
    assert {(c.link_id, c.via, c.actor_id) for c in changes} == {
        (links[0].pk, LinkChange.Via.BULK, specialist.pk),
        (links[1].pk, LinkChange.Via.BULK, specialist.pk),
    }
    assert messages_of(response) == ["Retired 2 of 2 selected links (0 already retired)."]
    assert published(products[0]) == [("cross_sell", "P-4", 1)]
    assert client.get(f"/admin/merchandising/link/{links[0].pk}/delete/").status_code == 403


def test_product_admin_change_page_links_to_the_links_page(client, specialist, products):
    client.force_login(specialist)
    html = client.get(f"/admin/catalog/product/{products[0].pk}/change/").content.decode()
    assert 'href="/products/P-1/links/"' in html


def test_exclusion_rule_admin_creates_and_deletes_through_the_services(client, specialist, products):
    brand = BrandFactory(name="Rival")
    rival = ProductFactory(sku="R-1", brand=brand)
    covered = [SuggestionFactory(source=products[0], target=rival), SuggestionFactory(source=products[1], target=rival)]
    untouched = SuggestionFactory(source=products[0], target=products[1])
    client.force_login(specialist)
    response = client.post(
        "/admin/merchandising/exclusionrule/add/", {"kind": "brand", "brand": brand.pk, "reason": "competitor"}
    )
    assert response.status_code == 302
    rule = ExclusionRule.objects.get()
    assert rule.created_by == specialist
    statuses = dict(SuggestionFactory._meta.model.objects.values_list("pk", "status"))
    assert [statuses[s.pk] for s in covered] == [SuggestionStatus.REJECTED, SuggestionStatus.REJECTED]
    assert statuses[untouched.pk] == SuggestionStatus.PENDING
    assert messages_of(response)[0] == (
        "The rule rejected 2 pending suggestions; the mining run respects it from now on."
    )

    response = client.post(f"/admin/merchandising/exclusionrule/{rule.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not ExclusionRule.objects.exists()
    statuses = dict(SuggestionFactory._meta.model.objects.values_list("pk", "status"))
    assert [statuses[s.pk] for s in covered] == [SuggestionStatus.PENDING, SuggestionStatus.PENDING]
    assert messages_of(response)[0] == "2 suggestions rejected by the rule are back in the queue."


def test_exclusion_rule_bulk_delete_restores_each_rules_suggestions(client, specialist, products):
    client.force_login(specialist)
    for product in products[1:3]:
        SuggestionFactory(source=products[0], target=product)
        client.post("/admin/merchandising/exclusionrule/add/", {"kind": "product", "product": product.pk})
    assert SuggestionFactory._meta.model.objects.filter(status=SuggestionStatus.REJECTED).count() == 2
    response = client.post(
        "/admin/merchandising/exclusionrule/",
        {
            "action": "delete_selected",
            "_selected_action": [str(pk) for pk in ExclusionRule.objects.values_list("pk", flat=True)],
            "post": "yes",
        },
    )
    assert response.status_code == 302
    assert not ExclusionRule.objects.exists()
    assert SuggestionFactory._meta.model.objects.filter(status=SuggestionStatus.PENDING).count() == 2
    assert "2 suggestions rejected by these rules are back in the queue." in messages_of(response)
