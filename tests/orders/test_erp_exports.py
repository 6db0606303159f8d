"""Real ERP exports into the mining: orders without a customer (the --anonymous placeholder)
count as baskets but never as an account, and non-product codes (postage, fees) never reach a
basket. The import's own counts are in test_imports, test_command and test_direct_load."""

from __future__ import annotations

import io

import pytest

from accounts.models import CustomerAccount
from merchandising.models import MiningRun
from merchandising.selectors import order_history_load
from merchandising.selectors.api import account_rules
from merchandising.services import suggestions_recompute
from orders.imports import orders_import
from tests.factories import BrandFactory, ProductFactory
from tests.merchandising.factories import pairs
from tests.orders.test_imports import make_csv

pytestmark = pytest.mark.django_db

LOOSE = {"min_count": 1, "min_confidence": 0.0, "min_lift": 0.0, "score": "cosine"}

# Three invoices, each with postage; two of them without a customer.
EXPORT = make_csv(
    "1,17850,2024-03-01T10:00,DRILL,1,129",
    "1,17850,2024-03-01T10:01,BITS,1,12.5",
    "1,17850,2024-03-01T10:01,POST,1,18",
    "2,,2024-03-02T10:00,DRILL,1,129",
    "2,,2024-03-02T10:00,BITS,1,12.5",
    "2,,2024-03-02T10:00,POST,1,18",
    "3,,2024-03-03T10:00,GLOVES,1,2",
    "3,,2024-03-03T10:00,POST,1,18",
)


@pytest.fixture
def products():
    # POST is in the catalog here, as when the products file comes from the same ERP: it is
    # then a valid SKU, and only the option keeps it out of the baskets.
    return {sku: ProductFactory(sku=sku) for sku in ("DRILL", "BITS", "GLOVES", "POST")}


def mine() -> dict:
    suggestions_recompute(trigger=MiningRun.Trigger.COMMAND, overrides=LOOSE)
    return {key: (value["co_count"], value["accounts"]) for key, value in pairs().items()}


def test_non_product_codes_never_reach_a_basket_and_anonymous_orders_count_for_no_account(products):
    result = orders_import(source=io.BytesIO(EXPORT), anonymous="WALK-IN", non_product_codes=["POST"])

    assert (result.orders_created, result.orders_anonymous, result.non_product_rows, result.orders_spread) == (
        3,
        2,
        3,
        1,
    )
    history = order_history_load()
    # Three baskets, of two, two and one product: no postage in any.
    assert (history.orders, history.lines, history.products) == (3, 5, 3)
    assert sorted(history.order_accounts.tolist()) == [-1, -1, CustomerAccount.objects.get(external_id="17850").pk]
    # DRILL + BITS were bought together twice (one known customer, one walk-in): co_count 2,
    # one account. Nothing pairs with POST.
    assert mine() == {("BITS", "DRILL"): (2, 1), ("DRILL", "BITS"): (2, 1)}


def test_without_the_option_postage_pollutes_the_pairs(products):
    """What --non-product-codes prevents: POST pairs with everything."""
    result = orders_import(source=io.BytesIO(EXPORT), anonymous="WALK-IN")

    assert (result.orders_created, result.non_product_rows) == (3, 0)
    assert mine() == {
        ("BITS", "DRILL"): (2, 1),
        ("DRILL", "BITS"): (2, 1),
        ("BITS", "POST"): (2, 1),
        ("POST", "BITS"): (2, 1),
        ("DRILL", "POST"): (2, 1),
        ("POST", "DRILL"): (2, 1),
        ("GLOVES", "POST"): (1, 0),
        ("POST", "GLOVES"): (1, 0),
    }


def test_a_product_flagged_exclude_from_recommendations_is_never_suggested(products):
    """The other way, for a code already in the history: it is never a source nor a target
    (it still counts in its orders' basket sizes, docs/mining.md)."""
    products["POST"].exclude_from_recommendations = True
    products["POST"].save(update_fields=["exclude_from_recommendations"])
    orders_import(source=io.BytesIO(EXPORT), anonymous="WALK-IN")

    assert mine() == {("BITS", "DRILL"): (2, 1), ("DRILL", "BITS"): (2, 1)}


def test_an_existing_placeholder_is_used_and_a_mixed_order_is_still_an_error(products):
    CustomerAccount.objects.create(external_id="WALK-IN", is_placeholder=True)
    data = make_csv("9,17850,2024-03-01,DRILL,1,1", "9,,2024-03-01,BITS,1,1", "10,,2024-03-01,BITS,1,1")

    result = orders_import(source=io.BytesIO(data), anonymous="WALK-IN", skip_invalid=True)

    assert [str(error) for error in result.errors] == [
        "line 3: order '9' has account_id 'WALK-IN' here but '17850' on line 2"
    ]
    assert (result.orders_created, result.orders_anonymous, result.accounts_created) == (1, 1, 0)
    assert list(CustomerAccount.objects.values_list("external_id", "is_placeholder")) == [("WALK-IN", True)]


def test_the_placeholder_gets_the_generic_api_answer(products):
    brand = BrandFactory()
    placeholder = CustomerAccount.objects.create(external_id="WALK-IN", is_placeholder=True)
    customer = CustomerAccount.objects.create(external_id="17850")
    for account in (placeholder, customer):
        account.preferred_brands.add(brand)

    assert account_rules("WALK-IN") is None
    assert account_rules("17850").preferred == frozenset({brand.pk})
    assert list(CustomerAccount.objects.customers().values_list("external_id", flat=True)) == ["17850"]
