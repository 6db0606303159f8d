"""Factories for the order history (the shared ones are in tests/factories.py)."""

import datetime
from decimal import Decimal

import factory

from accounts.models import CustomerAccount
from orders.models import Order, OrderLine
from tests.factories import ProductFactory


class CustomerAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomerAccount
        django_get_or_create = ["external_id"]

    external_id = factory.Sequence(lambda n: f"ACC-{n:04d}")
    name = factory.Sequence(lambda n: f"Customer {n}")


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    external_id = factory.Sequence(lambda n: f"SO-{n:06d}")
    account = factory.SubFactory(CustomerAccountFactory)
    ordered_at = factory.Sequence(
        lambda n: datetime.datetime(2024, 3, 1, 9, 0, tzinfo=datetime.UTC) + datetime.timedelta(hours=n)
    )


class OrderLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrderLine

    order = factory.SubFactory(OrderFactory)
    product = factory.SubFactory(ProductFactory)
    quantity = 1
    unit_price = Decimal("9.95")
