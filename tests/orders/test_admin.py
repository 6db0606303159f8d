"""The order history and customer accounts in the admin: read-only orders, filters and
search, and pinned query counts that do not grow with the rows."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import CustomerAccount
from orders.models import Order, OrderLine
from tests.factories import BrandFactory, ProductFactory
from tests.orders.factories import CustomerAccountFactory, OrderFactory, OrderLineFactory

pytestmark = pytest.mark.django_db

ORDERS = "/admin/orders/order/"
ACCOUNTS = "/admin/accounts/customeraccount/"


def count_queries(client, url: str) -> int:
    client.get(url)  # warm caches filled once per process (content types), not per request
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.content.decode()[:500]
    return len(queries)


def make_orders(count: int, account: CustomerAccount | None = None, lines: int = 3) -> list[Order]:
    orders = []
    for _ in range(count):
        order = OrderFactory(account=account or CustomerAccountFactory())
        for _ in range(lines):
            OrderLineFactory(order=order, quantity=2)
        orders.append(order)
    return orders


def listed(response) -> list[str]:
    return [order.external_id for order in response.context["cl"].result_list]


def test_order_list_query_count_does_not_grow_with_orders(client, specialist):
    client.force_login(specialist)
    make_orders(3)
    few = count_queries(client, ORDERS)
    make_orders(30)
    many = count_queries(client, ORDERS)
    # session and user (5), count, the page, the date hierarchy (2), the segment filter,
    # saving the session (3)
    assert few == many == 13


def test_order_list_shows_account_lines_and_units(client, specialist):
    client.force_login(specialist)
    account = CustomerAccountFactory(external_id="ACME", name="Acme Ltd")
    make_orders(1, account=account, lines=3)

    page = client.get(ORDERS).content.decode()

    assert '<a href="/admin/orders/order/?account=ACME" title="orders of this account">ACME Acme Ltd</a>' in page
    assert '<td class="field-line_count">3</td>' in page
    assert '<td class="field-unit_count">6</td>' in page


def test_order_list_filters_by_account_date_and_search(client, specialist):
    client.force_login(specialist)
    acme = CustomerAccountFactory(external_id="ACME", segment="construction")
    other = CustomerAccountFactory(external_id="BUILDCO", segment="facility")
    OrderFactory(external_id="SO-1", account=acme, ordered_at=datetime.datetime(2023, 5, 1, 12, tzinfo=datetime.UTC))
    OrderFactory(external_id="SO-2", account=acme, ordered_at=datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.UTC))
    OrderFactory(external_id="SO-3", account=other, ordered_at=datetime.datetime(2024, 6, 1, 12, tzinfo=datetime.UTC))

    assert listed(client.get(ORDERS)) == ["SO-3", "SO-2", "SO-1"]
    by_account = client.get(ORDERS, {"account": "ACME"})
    assert listed(by_account) == ["SO-2", "SO-1"]
    assert "ACME" in by_account.content.decode().split('id="changelist-filter"')[1]
    assert listed(client.get(ORDERS, {"account__segment": "facility"})) == ["SO-3"]
    assert listed(client.get(ORDERS, {"ordered_at__year": "2024"})) == ["SO-3", "SO-2"]
    assert listed(client.get(ORDERS, {"ordered_at__year": "2024", "ordered_at__month": "5"})) == ["SO-2"]
    assert listed(client.get(ORDERS, {"q": "SO-1"})) == ["SO-1"]
    assert listed(client.get(ORDERS, {"q": "buildco"})) == ["SO-3"]


def test_order_page_shows_the_lines_read_only(client, specialist):
    client.force_login(specialist)
    order = OrderFactory(external_id="SO-1")
    OrderLineFactory(order=order, product=ProductFactory(sku="DRILL"), quantity=3, unit_price=Decimal("12.5"))
    url = f"{ORDERS}{order.pk}/change/"

    page = client.get(url).content.decode()

    assert "DRILL" in page and "37.5000" in page
    assert 'name="_save"' not in page and "Delete" not in page
    assert client.post(url, {"external_id": "changed"}).status_code == 403
    assert Order.objects.get().external_id == "SO-1"


def test_order_page_query_count_does_not_grow_with_lines(client, specialist):
    client.force_login(specialist)
    order = make_orders(1, lines=2)[0]
    few = count_queries(client, f"{ORDERS}{order.pk}/change/")
    for _ in range(20):
        OrderLineFactory(order=order)
    many = count_queries(client, f"{ORDERS}{order.pk}/change/")
    # session and user (5), the order with its account, the lines with their products,
    # saving the session (3)
    assert few == many == 10


@pytest.mark.parametrize("path", ["add/", "{pk}/delete/"])
def test_orders_cannot_be_added_or_deleted_even_by_administrators(client, administrator, path):
    client.force_login(administrator)
    order = make_orders(1)[0]

    assert client.get(ORDERS + path.format(pk=order.pk)).status_code == 403
    assert client.post(ORDERS + path.format(pk=order.pk), {"post": "yes"}).status_code == 403
    assert (Order.objects.count(), OrderLine.objects.count()) == (1, 3)


def test_order_list_has_no_bulk_actions(client, administrator):
    client.force_login(administrator)
    make_orders(1)

    assert 'name="action"' not in client.get(ORDERS).content.decode()


# --- customer accounts --------------------------------------------------------------------------


def test_account_list_query_count_does_not_grow_with_accounts(client, administrator):
    client.force_login(administrator)
    make_orders(3)
    few = count_queries(client, ACCOUNTS)
    make_orders(30)
    many = count_queries(client, ACCOUNTS)
    # session and user (5), two counts, the page with order counts, the segment filter,
    # saving the session (3)
    assert few == many == 12


def test_account_list_links_to_the_accounts_orders(client, administrator):
    client.force_login(administrator)
    account = CustomerAccountFactory(external_id="ACME")
    make_orders(2, account=account)
    CustomerAccountFactory(external_id="IDLE")

    page = client.get(ACCOUNTS).content.decode()

    assert '<td class="field-orders"><a href="/admin/orders/order/?account=ACME">2</a></td>' in page
    assert '<td class="field-orders">0</td>' in page


def test_account_list_filters_and_search(client, administrator):
    client.force_login(administrator)
    CustomerAccountFactory(external_id="A-1", name="Acme", segment="construction", brand_mode="only")
    CustomerAccountFactory(external_id="B-2", name="Buildco", segment="facility")

    def names(**params) -> list[str]:
        return [account.external_id for account in client.get(ACCOUNTS, params).context["cl"].result_list]

    assert names() == ["A-1", "B-2"]
    assert names(segment="facility") == ["B-2"]
    assert names(brand_mode__exact="only") == ["A-1"]
    assert names(q="buildco") == ["B-2"]
    assert names(q="A-1") == ["A-1"]


def test_account_brands_cannot_be_both_preferred_and_excluded(client, administrator):
    client.force_login(administrator)
    account = CustomerAccountFactory(external_id="ACME")
    bosch, makita = BrandFactory(name="Bosch"), BrandFactory(name="Makita")
    url = f"{ACCOUNTS}{account.pk}/change/"
    form = {"external_id": "ACME", "name": "", "segment": "", "industry": "", "brand_mode": "only"}
    form["loaded_version"] = "1"  # the version the page was loaded at (the edit-conflict check)

    refused = client.post(url, {**form, "preferred_brands": [bosch.pk, makita.pk], "excluded_brands": [bosch.pk]})
    saved = client.post(url, {**form, "preferred_brands": [makita.pk], "excluded_brands": [bosch.pk]})

    assert "A brand cannot be both preferred and excluded: Bosch." in refused.content.decode()
    assert saved.status_code == 302
    account.refresh_from_db()
    assert (account.brand_mode, list(account.preferred_brands.all()), list(account.excluded_brands.all())) == (
        "only",
        [makita],
        [bosch],
    )
