"""GET /api/v1/links/: bulk sync in a stable order with cursors, filters, and tombstones for
what left the webshop since updated_since."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from catalog.models import Product, ProductStatus
from catalog.services import products_set_excluded, products_set_status
from merchandising.models import LinkType, PublishedLink
from merchandising.services import link_retire
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

LINKS = "/api/v1/links/"


def sync_all(api, **params) -> list[dict]:
    rows, url, pages = [], LINKS, 0
    response = api.get(url, params)
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        rows.extend(body["results"])
        pages += 1
        if body["next"] is None:
            assert body["next_cursor"] is None
            return rows
        assert pages < 50
        response = api.get(body["next"])


def test_full_sync_lists_visible_links_in_updated_order(api, catalog):
    response = api.get(LINKS)
    assert response.status_code == 200
    body = response.json()
    assert body["next"] is None and body["next_cursor"] is None
    expected = list(PublishedLink.objects.order_by("updated_at", "id").values_list("link_id", flat=True))
    assert [row["id"] for row in body["results"]] == expected
    row = next(r for r in body["results"] if r["target"] == "BITS")
    assert set(row) == {"id", "source", "target", "type", "updated_at", "removed"} | {
        "position", "valid_from", "valid_until", "provenance",
    }  # fmt: skip
    assert (row["source"], row["type"], row["position"], row["removed"]) == ("DRILL", "cross_sell", 1, False)
    assert row["provenance"]["origin"] == "manual"


def test_cursor_pages_walk_everything_once_in_order(api, catalog):
    for number in range(7):
        catalog.add(catalog.gloves, ProductFactory(sku=f"P{number}"))
    # Same updated_at for several rows: the id breaks the tie.
    PublishedLink.objects.filter(source__sku="GLOVES").update(updated_at=timezone.now())
    rows = sync_all(api, limit=3)
    expected = list(PublishedLink.objects.order_by("updated_at", "id").values_list("link_id", flat=True))
    assert [row["id"] for row in rows] == expected
    assert len(rows) == 12


def test_filters(api, catalog):
    catalog.add(catalog.gloves, ProductFactory(sku="GLOVE-BOX"))
    assert {row["target"] for row in sync_all(api, type="accessory")} == {"BATTERY"}
    assert {row["target"] for row in sync_all(api, source="GLOVES")} == {"GLOVE-BOX"}
    assert sync_all(api, source="NOPE") == []


def test_updated_since_brings_changes_and_tombstones(api, catalog):
    since = timezone.now()
    link_retire(link_id=catalog.links[("DRILL", "BITS", LinkType.CROSS_SELL)].pk, actor=catalog.curator)
    rows = sync_all(api, updated_since=since.isoformat())
    by_target = {row["target"]: row for row in rows}
    # Retiring BITS renumbers CASE and GLOVES (changed), BITS itself is a tombstone.
    assert set(by_target) == {"BITS", "CASE", "GLOVES"}
    bits = by_target["BITS"]
    assert bits == {
        "id": catalog.links[("DRILL", "BITS", LinkType.CROSS_SELL)].pk,
        "source": "DRILL",
        "target": "BITS",
        "type": "cross_sell",
        "updated_at": bits["updated_at"],
        "removed": True,
    }
    assert (by_target["CASE"]["removed"], by_target["CASE"]["position"]) == (False, 1)
    # A full sync does not list the retired link at all.
    assert "BITS" not in {row["target"] for row in sync_all(api)}


def test_invisible_links_come_as_removed_without_details(api, catalog):
    since = timezone.now() - datetime.timedelta(minutes=5)
    tomorrow = timezone.localdate() + datetime.timedelta(days=1)
    catalog.add(catalog.drill, ProductFactory(sku="FUTURE"), valid_from=tomorrow)
    products_set_status(products=Product.objects.filter(sku="CASE"), status=ProductStatus.DISCONTINUED)
    rows = {row["target"]: row for row in sync_all(api, updated_since=since.isoformat())}
    assert rows["FUTURE"]["removed"] is True
    assert "position" not in rows["FUTURE"] and "valid_from" not in rows["FUTURE"]
    assert rows["CASE"]["removed"] is True
    full = {row["target"] for row in sync_all(api)}
    assert full == {"BITS", "GLOVES", "BATTERY", "CHUCK"}
    # A target flagged "exclude from recommendations" leaves the sync the same way.
    products_set_excluded(products=Product.objects.filter(sku="GLOVES"), excluded=True)
    assert {row["target"] for row in sync_all(api)} == {"BITS", "BATTERY", "CHUCK"}


@pytest.mark.parametrize(
    "params",
    [
        {"type": "upsell"},
        {"updated_since": "yesterday"},
        {"cursor": "garbage"},
        {"cursor": "WzEsMl0"},  # valid base64 of [1,2], not our cursor
        {"limit": "0"},
        {"limit": "5000"},
        {"page": "2"},
    ],
)
def test_bad_parameters_are_400(api, catalog, params):
    response = api.get(LINKS, params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"bad_parameter", "unknown_parameter"}


def test_visibility_changes_without_a_publish_reach_the_incremental_sync(api, catalog):
    """A product discontinued, a window that ends: no publish, so only the scheduled refresh
    moves those links' updated_at; then updated_since reports them, as removed and back."""
    from merchandising.models import PublishedLink
    from merchandising.selectors.api import links_sync_page
    from merchandising.services import published_links_refresh

    today = timezone.localdate()
    catalog.add(catalog.drill, ProductFactory(sku="ENDING"), valid_until=today)
    assert published_links_refresh(on=today) == 0  # nothing changed: nothing moves
    stamp = timezone.now()
    products_set_status(products=Product.objects.filter(sku="CASE"), status=ProductStatus.DISCONTINUED)
    assert {row["target"] for row in sync_all(api, updated_since=stamp.isoformat())} == set()
    tomorrow = today + datetime.timedelta(days=1)
    assert published_links_refresh(on=tomorrow) == 2  # CASE, and ENDING's window has closed
    page = links_sync_page(updated_since=stamp, on=tomorrow)  # the sync as it answers tomorrow
    assert {row["target"]: row["removed"] for row in page.results} == {"CASE": True, "ENDING": True}
    assert set(PublishedLink.objects.filter(visible=False).values_list("target__sku", flat=True)) == {"CASE", "ENDING"}
    # Back: CASE active again; the refresh reports it once, a second refresh changes nothing.
    later = timezone.now()
    products_set_status(products=Product.objects.filter(sku="CASE"), status=ProductStatus.ACTIVE)
    assert published_links_refresh(on=today) == 2  # CASE back, and ENDING visible again today
    assert published_links_refresh(on=today) == 0
    rows = {row["target"]: row["removed"] for row in sync_all(api, updated_since=later.isoformat())}
    assert rows == {"CASE": False, "ENDING": False}


def test_the_refresh_runs_as_a_scheduled_task(catalog):
    from merchandising.tasks import refresh_published_links

    products_set_status(products=Product.objects.filter(sku="CASE"), status=ProductStatus.DISCONTINUED)
    assert refresh_published_links.apply().get() == 1


def test_an_empty_updated_since_is_400_not_a_full_sync(api, catalog):
    # A client that lost its stored time must hear it, not receive every link as if new.
    response = api.get(LINKS + "?updated_since=")
    assert response.status_code == 400
    message = (
        "Must not be empty: give an ISO 8601 time with a time zone (e.g. 2026-06-01T00:00:00Z), "
        "or leave the parameter out for a full sync."
    )
    assert response.json() == {
        "error": {
            "code": "bad_parameter",
            "message": f"updated_since: {message}",
            "fields": {"updated_since": [message]},
        }
    }
    assert "results" not in response.json()


@pytest.mark.parametrize("name", ["cursor", "limit", "type", "source"])
def test_other_empty_parameters_are_400_too(api, catalog, name):
    response = api.get(f"{LINKS}?{name}=")
    assert response.status_code == 400
    message = "Must not be empty: give a value, or leave the parameter out."
    assert response.json() == {
        "error": {"code": "bad_parameter", "message": f"{name}: {message}", "fields": {name: [message]}}
    }
