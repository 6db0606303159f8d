"""Shared reads of the order history."""

import datetime

import pytest

from orders.selectors import order_history_summary, orders_for_list
from tests.orders.factories import CustomerAccountFactory, OrderFactory, OrderLineFactory

pytestmark = pytest.mark.django_db


def test_summary_of_an_empty_history():
    assert order_history_summary() == {"orders": 0, "accounts": 0, "first": None, "last": None, "lines": 0}


def test_summary_counts_orders_lines_accounts_and_the_time_span():
    acme = CustomerAccountFactory()
    first = OrderFactory(account=acme, ordered_at=datetime.datetime(2023, 1, 2, 8, tzinfo=datetime.UTC))
    last = OrderFactory(account=acme, ordered_at=datetime.datetime(2024, 6, 1, 8, tzinfo=datetime.UTC))
    OrderFactory(ordered_at=datetime.datetime(2023, 5, 1, 8, tzinfo=datetime.UTC))
    OrderLineFactory(order=first)
    OrderLineFactory(order=first)
    OrderLineFactory(order=last)

    assert order_history_summary() == {
        "orders": 3,
        "accounts": 2,
        "first": first.ordered_at,
        "last": last.ordered_at,
        "lines": 3,
    }


def test_orders_for_list_counts_lines_and_units_per_order(django_assert_num_queries):
    order = OrderFactory()
    OrderLineFactory(order=order, quantity=2)
    OrderLineFactory(order=order, quantity=5)
    empty = OrderFactory()

    with django_assert_num_queries(1):
        rows = {o.pk: (o.account.external_id, o.line_count, o.unit_count) for o in orders_for_list()}

    assert rows == {order.pk: (order.account.external_id, 2, 7), empty.pk: (empty.account.external_id, 0, 0)}
