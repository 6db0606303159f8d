"""The webshop preview page (/preview/): the JSON shown is the API's body exactly, the next
publish in batch mode (and ``recommendations_payload_next`` itself), the account rules, errors
on the page, the role matrix and a pinned query count."""

from __future__ import annotations

import datetime
import html
import json
import re

import pytest
from django.core import signing
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.roles import PRODUCT_SPECIALIST
from accounts.services import api_client_create, api_key_issue
from catalog.models import ProductStatus
from merchandising.models import LinkType, PublishState
from merchandising.selectors.api import ProductNotFound, recommendations_payload, recommendations_payload_next
from merchandising.services import link_add, link_retire, links_publish, publish_settings_update
from tests.factories import BrandFactory, ProductFactory, UserFactory
from tests.merchandising.factories import CustomerAccountFactory

pytestmark = pytest.mark.django_db

PREVIEW = "/preview/"


class Shop:
    """A drill with two cross-sells (Makita, Hilti) and an accessory, published at once."""

    def __init__(self):
        self.curator = UserFactory(username="curator", role=PRODUCT_SPECIALIST)
        self.bosch, self.makita, self.hilti = (BrandFactory(name=name) for name in ("Bosch", "Makita", "Hilti"))
        self.drill = ProductFactory(sku="DRILL", name="Drill", brand=self.bosch)
        self.bits = ProductFactory(sku="BITS", name="Bits", brand=self.makita)
        self.gloves = ProductFactory(sku="GLOVES", name="Gloves", brand=self.hilti)
        self.battery = ProductFactory(sku="BATTERY", name="Battery", brand=self.bosch)
        self.case = ProductFactory(sku="CASE", name="Case", brand=self.bosch)
        self.links = {
            "BITS": self.add(self.bits),
            "GLOVES": self.add(self.gloves),
            "BATTERY": self.add(self.battery, LinkType.ACCESSORY),
        }

    def add(self, target, link_type=LinkType.CROSS_SELL, **kwargs):
        return link_add(source=self.drill, target=target, link_type=link_type, actor=self.curator, **kwargs)


@pytest.fixture(autouse=True)
def _fixed_token_clock(monkeypatch):
    """Tracking tokens are made with ``django.core.signing.dumps``, which is a TimestampSigner:
    a token carries the second it was signed in, so two bodies built across a second boundary
    differ in their tokens only. Comparing bodies exactly needs a fixed signing clock."""
    monkeypatch.setattr(signing.TimestampSigner, "timestamp", lambda self: "1")


@pytest.fixture
def shop():
    cache.clear()  # the API's body cache and throttle counters
    yield Shop()
    cache.clear()


def batch_mode(on: bool) -> None:
    PublishState.load()
    PublishState.objects.filter(pk=1).update(batch_mode=on)


def shown_payloads(response) -> list[dict]:
    """The bodies in the page's <pre> blocks, parsed (current first, then next)."""
    blocks = re.findall(r"<pre class=\"preview-pre\" data-payload>(.*?)</pre>", response.content.decode(), re.S)
    return [json.loads(html.unescape(block)) for block in blocks]


def skus(payload, link_type=LinkType.CROSS_SELL) -> list[str]:
    return [item["sku"] for item in payload["links"].get(link_type, [])]


# --- the JSON shown is the API's body -------------------------------------------------------------


def test_json_shown_equals_the_api_body_exactly(client, specialist, shop):
    client.force_login(specialist)
    response = client.get(PREVIEW, {"sku": "DRILL"})
    assert response.status_code == 200
    [shown] = shown_payloads(response)
    assert shown == recommendations_payload(sku="DRILL")
    assert response.context["sides"][0].payload == shown
    body = response.content.decode()
    assert "Current publish (generation 3)" in body
    assert "Next publish" not in body
    assert skus(shown) == ["BITS", "GLOVES"]
    assert skus(shown, LinkType.ACCESSORY) == ["BATTERY"]
    # The rendering: cards in position order with SKU, name, brand, price, pack and provenance.
    assert body.index(">BITS</a>") < body.index(">GLOVES</a>")
    assert "Makita · 9.95 EUR · pack 1 pcs" in body
    assert "approved by Product specialist" in body
    assert "GET /api/v1/products/DRILL/recommendations/?touchpoint=product_page" in body


def test_json_shown_is_the_body_the_api_serves(client, specialist, shop):
    api_client = api_client_create(name="webshop", scopes=["read"], rate_per_minute=None, actor=None)
    secret = api_key_issue(client=api_client, actor=None).secret
    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    client.force_login(specialist)
    for params in ({}, {"touchpoint": "checkout", "limit": "1"}):
        served = api.get("/api/v1/products/DRILL/recommendations/", params)
        assert served.status_code == 200
        [shown] = shown_payloads(client.get(PREVIEW, {"sku": "DRILL", **params}))
        assert shown == served.json()


def test_touchpoint_and_limit_are_passed_on(client, marketer, shop):
    client.force_login(marketer)
    response = client.get(PREVIEW, {"sku": "DRILL", "touchpoint": "cart", "limit": "1"})
    assert response.status_code == 200
    [shown] = shown_payloads(response)
    assert shown == recommendations_payload(sku="DRILL", touchpoint="cart", limit=1)
    assert shown["touchpoint"] == "cart"
    assert skus(shown) == ["BITS"]


def test_account_brand_rules_apply(client, specialist, shop):
    excluding = CustomerAccountFactory(external_id="C-EX", brand_mode="prefer")
    excluding.excluded_brands.set([shop.makita])
    preferring = CustomerAccountFactory(external_id="C-PREF", brand_mode="prefer")
    preferring.preferred_brands.set([shop.hilti])
    client.force_login(specialist)
    [excluded] = shown_payloads(client.get(PREVIEW, {"sku": "DRILL", "account": "C-EX"}))
    assert skus(excluded) == ["GLOVES"]
    assert excluded == recommendations_payload(sku="DRILL", account="C-EX")
    [preferred] = shown_payloads(client.get(PREVIEW, {"sku": "DRILL", "account": " C-PREF "}))
    assert skus(preferred) == ["GLOVES", "BITS"]
    [unknown] = shown_payloads(client.get(PREVIEW, {"sku": "DRILL", "account": "NOBODY"}))
    assert unknown == recommendations_payload(sku="DRILL")


# --- batch mode: the next publish ---------------------------------------------------------------------


def test_batch_mode_shows_the_next_publish_with_a_waiting_link(client, specialist, shop):
    batch_mode(True)
    shop.add(shop.case, position=1)  # waits for the publish
    link_retire(link_id=shop.links["GLOVES"].pk, actor=shop.curator)  # waits too
    client.force_login(specialist)
    response = client.get(PREVIEW, {"sku": "DRILL"})
    assert response.status_code == 200
    current, upcoming = shown_payloads(response)
    assert current == recommendations_payload(sku="DRILL")
    assert skus(current) == ["BITS", "GLOVES"]
    assert upcoming == recommendations_payload_next(sku="DRILL")
    assert skus(upcoming) == ["CASE", "BITS"]
    assert upcoming["generation"] == current["generation"] + 1
    body = response.content.decode()
    assert f"Current publish (generation {current['generation']})" in body
    assert "Next publish (what Publish would make it)" in body
    # CASE new, BITS moved, GLOVES gone.
    assert "<strong>3 differences</strong>" in body
    assert "Waiting for this product: 1 added, 1 removed, 1 reordered, 0 changed" in body
    assert "new at the next publish" in body
    assert "leaves at the next publish" in body


def test_next_payload_is_what_the_publish_then_serves(shop):
    """Exactly: same items, provenance, order and tokens (the generation publish makes)."""
    batch_mode(True)
    shop.add(shop.case, link_type=LinkType.ACCESSORY, position=1)
    link_retire(link_id=shop.links["BITS"].pk, actor=shop.curator)
    excluding = CustomerAccountFactory(external_id="C-EX", brand_mode="prefer")
    excluding.excluded_brands.set([shop.hilti])
    cases = ({}, {"account": "C-EX"}, {"touchpoint": "checkout", "limit": 1})
    predictions = [(params, recommendations_payload_next(sku="DRILL", **params)) for params in cases]
    for params, predicted in predictions:
        assert predicted != recommendations_payload(sku="DRILL", **params)
    links_publish(actor=shop.curator, batch=True)
    for params, predicted in predictions:
        assert recommendations_payload(sku="DRILL", **params) == predicted


def test_next_payload_respects_windows_status_and_unknown_sku(shop):
    batch_mode(True)
    tomorrow = timezone.localdate() + datetime.timedelta(days=1)
    shop.add(shop.case, valid_from=tomorrow)
    assert skus(recommendations_payload_next(sku="DRILL")) == ["BITS", "GLOVES"]
    assert skus(recommendations_payload_next(sku="DRILL", on=tomorrow)) == ["BITS", "GLOVES", "CASE"]
    shop.gloves.status = ProductStatus.DISCONTINUED
    shop.gloves.save()
    assert skus(recommendations_payload_next(sku="DRILL")) == ["BITS"]
    with pytest.raises(ProductNotFound):
        recommendations_payload_next(sku="NOPE")


def test_without_batch_mode_there_is_no_next_side(client, specialist, shop):
    publish_settings_update(batch_mode=False, actor=shop.curator)
    client.force_login(specialist)
    response = client.get(PREVIEW, {"sku": "DRILL"})
    assert len(shown_payloads(response)) == 1
    assert "differences" not in response.context


# --- errors ------------------------------------------------------------------------------------------


def test_unknown_sku_is_a_message_on_the_page(client, specialist, shop):
    client.force_login(specialist)
    response = client.get(PREVIEW, {"sku": "NOPE"})
    assert response.status_code == 404
    assert "No product has the SKU “NOPE”." in response.content.decode()
    assert shown_payloads(response) == []


def test_bad_parameters_are_form_errors_not_server_errors(client, specialist, shop):
    client.force_login(specialist)
    for params in ({"sku": "DRILL", "limit": "0"}, {"sku": "DRILL", "touchpoint": "email"}, {"sku": ""}):
        response = client.get(PREVIEW, params)
        assert response.status_code == 400, params
        assert 'class="preview-error"' in response.content.decode(), params
        assert shown_payloads(response) == []


def test_empty_form_and_links_to_the_page(client, specialist, shop):
    client.force_login(specialist)
    response = client.get(PREVIEW)
    assert response.status_code == 200
    assert "Webshop preview" in response.content.decode()
    assert shown_payloads(response) == []
    links_page = client.get(reverse("merchandising:product_links", args=["DRILL"])).content.decode()
    assert 'href="/preview/?sku=DRILL"' in links_page
    assert 'href="/preview/"' in links_page  # the navigation
    assert "<script>" not in response.content.decode()  # CSP: files only


# --- access ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "status"),
    [("specialist", 200), ("marketer", 200), ("administrator", 200), ("no_role_user", 403)],
)
def test_role_matrix(client, request, shop, user, status):
    client.force_login(request.getfixturevalue(user))
    assert client.get(PREVIEW, {"sku": "DRILL"}).status_code == status


def test_anonymous_goes_to_the_login_page(client, shop):
    response = client.get(PREVIEW, {"sku": "DRILL"})
    assert response.status_code == 302
    assert "/login/" in response["Location"]


# --- query count -----------------------------------------------------------------------------------


def count_queries(client, params) -> int:
    client.get(PREVIEW, params)  # warm the per-process caches
    with CaptureQueriesContext(connection) as queries:
        response = client.get(PREVIEW, params)
    assert response.status_code == 200
    return len(queries)


def test_query_count_is_pinned_whatever_the_number_of_links(client, specialist, shop):
    account = CustomerAccountFactory(external_id="C-PREF", brand_mode="prefer")
    account.preferred_brands.set([shop.hilti])
    client.force_login(specialist)
    params = {"sku": "DRILL", "account": "C-PREF"}
    immediate = count_queries(client, params)
    batch_mode(True)
    batched = count_queries(client, params)
    for n in range(8):
        shop.add(ProductFactory(sku=f"MORE-{n}"), link_type=LinkType.CONSUMABLE)
    assert count_queries(client, params) == batched
    batch_mode(False)
    links_publish(actor=shop.curator, batch=True)
    assert count_queries(client, params) == immediate
    # Session, user, role, publish state, the admin's permissions (2), the API's head, account
    # rules and links, the product, the session save (3); in batch mode also the working links
    # and the product's publish diff (2).
    assert (immediate, batched) == (13, 16)
