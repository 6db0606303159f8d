"""POST /api/v1/cart/recommendations/: merged links of the cart, cart items left out,
duplicates merged and ranked, account rules, limits and bad bodies."""

from __future__ import annotations

import pytest

from merchandising.api.tokens import read_token
from merchandising.models import LinkType
from tests.api.conftest import skus
from tests.factories import ProductFactory
from tests.merchandising.factories import CustomerAccountFactory

pytestmark = pytest.mark.django_db

CART = "/api/v1/cart/recommendations/"


def cart(api, **body):
    return api.post(CART, body, content_type="application/json")


@pytest.fixture
def saw(catalog):
    """A saw whose cross-sells overlap the drill's: GLOVES (position 1) and BLADES."""
    saw = ProductFactory(sku="SAW", brand=catalog.makita)
    catalog.add(saw, catalog.gloves)
    catalog.add(saw, ProductFactory(sku="BLADES", brand=catalog.makita))
    catalog.add(saw, catalog.case)
    return saw


def test_merge_ranks_targets_suggested_by_more_cart_items_first(api, catalog, saw):
    response = cart(api, skus=["DRILL", "SAW"])
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert (body["skus"], body["touchpoint"]) == (["DRILL", "SAW"], "cart")
    # GLOVES and CASE are suggested by both (GLOVES best at position 1 by the saw, CASE at 2
    # by the drill); then the rest by best position, then cart order.
    assert skus(body) == ["GLOVES", "CASE", "BITS", "BLADES"]
    items = body["links"]["cross_sell"]
    assert [item["suggested_by"] for item in items] == [["DRILL", "SAW"], ["DRILL", "SAW"], ["DRILL"], ["SAW"]]
    # The merged item speaks with its best-placed link: GLOVES is first for the saw.
    gloves = items[0]
    assert gloves["position"] == 1
    assert read_token(gloves["token"]).source_id == saw.pk
    assert read_token(gloves["token"]).touchpoint == "cart"
    assert [item["sku"] for item in body["links"]["accessory"]] == ["BATTERY"]


def test_items_in_the_cart_are_left_out(api, catalog, saw):
    body = cart(api, skus=["DRILL", "SAW", "GLOVES", "BATTERY"], touchpoint="checkout").json()
    assert skus(body) == ["CASE", "BITS", "BLADES"]
    assert "accessory" not in body["links"]
    assert body["touchpoint"] == "checkout"


def test_unknown_skus_are_ignored_and_duplicates_collapse(api, catalog):
    body = cart(api, skus=["NOPE", "DRILL", "DRILL"]).json()
    assert body["skus"] == ["NOPE", "DRILL"]
    assert skus(body) == ["BITS", "CASE", "GLOVES"]
    assert cart(api, skus=["NOPE"]).json()["links"] == {}


def test_limit_cuts_each_type(api, catalog, saw):
    body = cart(api, skus=["DRILL", "SAW"], limit=2).json()
    assert skus(body) == ["GLOVES", "CASE"]


def test_account_rules_apply_to_the_cart(api, catalog, saw):
    customer = CustomerAccountFactory(external_id="C-ONLY", brand_mode="only")
    customer.preferred_brands.set([catalog.makita])
    assert skus(cart(api, skus=["DRILL", "SAW"], account="C-ONLY").json()) == ["BITS", "BLADES"]
    prefer = CustomerAccountFactory(external_id="C-PREF", brand_mode="prefer")
    prefer.preferred_brands.set([catalog.makita])
    prefer.excluded_brands.set([catalog.hilti])
    assert skus(cart(api, skus=["DRILL", "SAW"], account="C-PREF").json()) == ["BITS", "BLADES", "CASE"]
    assert skus(cart(api, skus=["DRILL", "SAW"], account="C-UNKNOWN").json()) == ["GLOVES", "CASE", "BITS", "BLADES"]


def test_retired_links_do_not_show_in_the_cart(api, catalog, saw):
    from merchandising.services import link_retire

    link_retire(link_id=catalog.links[("SAW", "GLOVES", LinkType.CROSS_SELL)].pk, actor=catalog.curator)
    body = cart(api, skus=["DRILL", "SAW"]).json()
    # GLOVES is still the drill's (position 3), no longer the saw's: one suggester, last.
    assert skus(body) == ["CASE", "BITS", "BLADES", "GLOVES"]
    assert body["links"]["cross_sell"][3]["suggested_by"] == ["DRILL"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "skus"),
        ({"skus": []}, "skus"),
        ({"skus": "DRILL"}, "skus"),
        ({"skus": [{"sku": 1}]}, "skus"),
        ({"skus": ["DRILL"], "touchpoint": "product_page"}, "touchpoint"),
        ({"skus": ["DRILL"], "limit": 0}, "limit"),
        ({"skus": ["X"] * 201}, "skus"),
    ],
)
def test_bad_bodies_are_400(api, catalog, body, field):
    response = cart(api, **body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "bad_parameter"
    assert list(error["fields"]) == [field]


@pytest.mark.parametrize("raw", ["[1, 2]", "not json", '"text"', "null"])
def test_non_object_bodies_are_400(api, catalog, raw):
    response = api.generic("POST", CART, raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"bad_parameter", "parse_error"}


def test_other_content_types_are_415(api, catalog):
    response = api.post(CART, {"skus": "DRILL"})  # multipart form
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    ("account", "kind"),
    [(0, "a number"), (1.5, "a number"), (True, "true or false"), (["C-1"], "a list"), ({"id": "C-1"}, "an object")],
)
def test_an_account_that_is_not_a_string_is_400(api, catalog, account, kind):
    # DRF's CharField would take 0 as "0": an account id sent as a number is a client bug to report.
    response = cart(api, skus=["DRILL"], account=account)
    assert response.status_code == 400
    message = f"Must be a string (JSON text in quotes), not {kind}."
    assert response.json() == {
        "error": {"code": "bad_parameter", "message": f"account: {message}", "fields": {"account": [message]}}
    }


def test_a_sku_that_is_not_a_string_is_400(api, catalog):
    response = cart(api, skus=["DRILL", 12])
    assert response.status_code == 400
    message = "Must be a string (JSON text in quotes), not a number."
    assert response.json() == {
        "error": {"code": "bad_parameter", "message": f"skus: 1: {message}", "fields": {"skus": {"1": [message]}}}
    }


def test_a_null_or_string_account_is_still_accepted(api, catalog):
    assert skus(cart(api, skus=["DRILL"], account=None).json()) == ["BITS", "CASE", "GLOVES"]
    assert skus(cart(api, skus=["DRILL"], account="0").json()) == ["BITS", "CASE", "GLOVES"]
