"""Pinned query counts per endpoint, the same for 5 links as for 60 (no per-item query).

Per request: 1 for the key (its last_used_at is written at most once a minute, so the warm-up
request takes that write), then the endpoint's own. The throttle counter and the rendered
product bodies live in the cache, not the database."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from tests.factories import ProductFactory
from tests.merchandising.factories import CustomerAccountFactory

pytestmark = pytest.mark.django_db

RECS = "/api/v1/products/DRILL/recommendations/"
CART = "/api/v1/cart/recommendations/"


@pytest.fixture
def account(catalog):
    customer = CustomerAccountFactory(external_id="C-PREF", brand_mode="prefer")
    customer.preferred_brands.set([catalog.hilti])
    customer.excluded_brands.set([catalog.makita])
    return customer


def more_links(catalog, count=55):
    for number in range(count):
        catalog.add(catalog.drill, ProductFactory(sku=f"MORE-{number}"))
        if number % 5 == 0:
            catalog.add(ProductFactory(sku=f"SRC-{number}"), catalog.bits)


@pytest.mark.parametrize("grow", [False, True], ids=["few links", "many links"])
def test_product_recommendations(api, catalog, account, django_assert_num_queries, grow):
    if grow:
        more_links(catalog)
    etag = api.get(RECS)["ETag"]  # warm-up: last_used_at, max-age
    cache.clear()
    with django_assert_num_queries(3):  # key, head (generation + catalog version + product), links
        assert api.get(RECS, {"limit": 100}).status_code == 200
    with django_assert_num_queries(2):  # the same again: the body comes from the cache
        assert api.get(RECS, {"limit": 100}).status_code == 200
    with django_assert_num_queries(4):  # + the account's brand rules
        assert api.get(RECS, {"account": "C-PREF", "limit": 100}).status_code == 200
    with django_assert_num_queries(3):
        assert api.get(RECS, {"account": "C-PREF", "limit": 100}).status_code == 200
    with django_assert_num_queries(2):  # 304: key, head; no links query
        assert api.get(RECS, HTTP_IF_NONE_MATCH=etag).status_code == 304
    with django_assert_num_queries(2):  # unknown SKU: key, head
        assert api.get("/api/v1/products/NOPE/recommendations/").status_code == 404


@pytest.mark.parametrize("grow", [False, True], ids=["few links", "many links"])
def test_cart_recommendations(api, catalog, account, django_assert_num_queries, grow):
    if grow:
        more_links(catalog)
    cart = {"skus": ["DRILL", "BITS", "GLOVES"] + [f"SRC-{n}" for n in range(0, 55, 5)], "limit": 100}
    api.post(CART, cart, content_type="application/json")
    with django_assert_num_queries(3):  # key, generation, links
        assert api.post(CART, cart, content_type="application/json").status_code == 200
    with django_assert_num_queries(4):  # + the account's brand rules
        response = api.post(CART, {**cart, "account": "C-PREF"}, content_type="application/json")
        assert response.status_code == 200


@pytest.mark.parametrize("grow", [False, True], ids=["few links", "many links"])
def test_links_sync(api, catalog, django_assert_num_queries, grow):
    if grow:
        more_links(catalog)
    api.get("/api/v1/links/")
    with django_assert_num_queries(2):  # key, page
        assert api.get("/api/v1/links/", {"limit": 1000}).status_code == 200
    with django_assert_num_queries(2):
        response = api.get("/api/v1/links/", {"updated_since": "2020-01-01T00:00:00Z", "limit": 2})
        assert response.status_code == 200
        assert response.json()["next"] is not None


def test_payload_function(catalog, account, django_assert_num_queries):
    from merchandising.selectors.api import recommendations_payload

    with django_assert_num_queries(3):
        recommendations_payload(sku="DRILL", account="C-PREF")
    with django_assert_num_queries(2):
        recommendations_payload(sku="DRILL")


def test_publish_head_matches_the_orm_form(catalog):
    """publish_head is one fixed SQL statement (no ORM compilation per request): it must give
    what the ORM form gives, or every ETag would change meaning."""
    from django.db.models import Subquery

    from catalog.models import Product, ProductChange
    from merchandising.models import PublishState
    from merchandising.selectors.api import _iso, publish_head

    row = (
        PublishState.objects.filter(pk=1)
        .annotate(
            change=Subquery(ProductChange.objects.order_by("-id").values("id")[:1]),
            updated=Subquery(Product.objects.order_by("-updated_at").values("updated_at")[:1]),
            source=Subquery(Product.objects.filter(sku="DRILL").values("id")[:1]),
        )
        .values("generation", "change", "updated", "source")
        .get()
    )
    head = publish_head(sku="DRILL")
    assert (head.generation, head.catalog_version, head.source_id) == (
        row["generation"],
        [row["change"], _iso(row["updated"])],
        catalog.drill.pk,
    )
    assert publish_head(sku="NOPE").source_id is None
    assert publish_head().catalog_version == head.catalog_version


def test_key_lookup_matches_the_service(make_key):
    """The request path's key lookup (one fixed statement) gives the service's answer."""
    from accounts.services import api_key_authenticate
    from merchandising.api.authentication import key_authenticate

    client, raw = make_key(scopes=["read", "events"], rate=77)
    ours, theirs = key_authenticate(raw_key=raw), api_key_authenticate(raw_key=raw)
    assert (ours.pk, ours.prefix, ours.expires_at, ours.revoked_at) == (
        theirs.pk,
        theirs.prefix,
        theirs.expires_at,
        theirs.revoked_at,
    )
    assert (ours.client.pk, ours.client.name, ours.client.scopes, ours.client.rate_per_minute) == (
        client.pk,
        client.name,
        ["read", "events"],
        77,
    )


def test_source_rows_match_the_orm_form(catalog):
    """The product answer's links query is one fixed statement composed once per process: it
    must return exactly what ``PublishedLink.objects.visible(on)`` returns for the source, in
    the same order with the same values, whatever the windows, statuses, exclusion flags,
    removed links, types and positions."""
    import datetime

    from catalog.models import Product, ProductStatus
    from merchandising.models import LinkType, PublishedLink
    from merchandising.selectors.api import _LINK_FIELDS, _source_rows, _source_rows_queryset

    more_links(catalog, count=12)
    for number, target in enumerate((catalog.case, catalog.gloves, catalog.battery, catalog.chuck)):
        catalog.add(catalog.bits, target, (LinkType.ACCESSORY, LinkType.CROSS_SELL)[number % 2])
    catalog.add(catalog.bits, catalog.drill, LinkType.SPARE_PART)
    day = datetime.date(2026, 6, 15)
    links = list(PublishedLink.objects.order_by("id"))
    assert len(links) > 20
    windows = [
        (None, None),
        (day, None),
        (None, day),
        (day + datetime.timedelta(days=1), None),
        (None, day - datetime.timedelta(days=1)),
        (day - datetime.timedelta(days=5), day + datetime.timedelta(days=5)),
    ]
    for number, link in enumerate(links):
        valid_from, valid_until = windows[number % len(windows)]
        PublishedLink.objects.filter(pk=link.pk).update(
            valid_from=valid_from,
            valid_until=valid_until,
            position=(number * 7) % 5,
            removed_generation=99 if number % 9 == 4 else None,
        )
    Product.objects.filter(sku__in=["MORE-1", "MORE-5"]).update(status=ProductStatus.DISCONTINUED)
    Product.objects.filter(sku__in=["MORE-2", "CASE"]).update(exclude_from_recommendations=True)
    Product.objects.filter(sku="SRC-5").update(status=ProductStatus.DRAFT)

    sources = list(Product.objects.order_by("id").values_list("id", flat=True))
    shown = 0
    for offset in (-6, -1, 0, 1):
        on = day + datetime.timedelta(days=offset)
        for source_id in sources:
            expected = list(_source_rows_queryset(on, source_id))
            ours = [dict(zip(_LINK_FIELDS, row, strict=True)) for row in _source_rows(on, source_id)]
            assert ours == expected, (on, source_id)
            assert [tuple(row.values()) for row in expected] == _source_rows(on, source_id)
            shown += len(expected)
    assert 0 < shown < len(links) * 4  # some rows are visible, some are not


def test_render_json_is_drf_rendering(api, catalog):
    """The product body is rendered by one prebuilt encoder: the bytes DRF's JSONRenderer
    gives, for real bodies and for awkward strings and numbers."""
    from rest_framework.renderers import JSONRenderer

    from merchandising.api.views import render_json
    from merchandising.selectors.api import recommendations_payload

    body = recommendations_payload(sku="DRILL", limit=100)
    odd = {"é ü 漢": ["\u2028", "\u2029", 'a\nb"c\\\\', 0.1, 1e300, -0.0, 12, None, True], "links": {}}
    for data in (body, odd):
        assert render_json(data) == JSONRenderer().render(data)
    response = api.get(RECS, {"limit": 100})
    assert response.content == JSONRenderer().render(body)
    assert response["Content-Type"] == "application/json"


def test_product_recommendations_without_the_body_cache(api, catalog, settings, monkeypatch, django_assert_num_queries):
    """API_BODY_CACHE_SECONDS=0: every answer is built (3 queries), nothing is read or written
    in the cache, and the body and ETag are those of the cached path."""
    from merchandising.api import views

    cached = api.get(RECS, {"limit": 100})
    cache.clear()
    settings.API_BODY_CACHE_SECONDS = 0

    class NoBodyCache:
        def get(self, key, *args, **kwargs):
            assert not key.startswith("api-body"), key
            return cache.get(key, *args, **kwargs)

        def set(self, key, *args, **kwargs):
            assert not key.startswith("api-body"), key
            return cache.set(key, *args, **kwargs)

    monkeypatch.setattr(views, "cache", NoBodyCache())
    for _ in range(2):
        with django_assert_num_queries(3):  # key, head, links
            response = api.get(RECS, {"limit": 100})
        assert (response.status_code, response.content, response["ETag"]) == (200, cached.content, cached["ETag"])
