"""Factories and small helpers for the merchandising tests: customer accounts, orders built
from baskets of products, suggestions and runs."""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Iterable
from decimal import Decimal

import factory
from django.utils import timezone

from accounts.models import CustomerAccount
from catalog.models import Product
from merchandising.models import ExclusionRule, MiningRun, Suggestion
from orders.models import Order, OrderLine
from tests.factories import ProductFactory

NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.UTC)
_order_numbers = itertools.count(1)


class CustomerAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomerAccount

    external_id = factory.Sequence(lambda n: f"C{n:05d}")
    name = factory.Sequence(lambda n: f"Customer {n}")


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    external_id = factory.Sequence(lambda n: f"O{n:07d}")
    account = factory.SubFactory(CustomerAccountFactory)
    ordered_at = NOW


class MiningRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MiningRun

    trigger = MiningRun.Trigger.COMMAND
    status = MiningRun.Status.SUCCEEDED


class SuggestionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Suggestion

    source = factory.SubFactory(ProductFactory)
    target = factory.SubFactory(ProductFactory)
    co_count = 5
    support = 0.1
    confidence = 0.5
    lift = 2.0
    jaccard = 0.25
    decayed_co_count = 4.0
    score = 0.4


class ExclusionRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ExclusionRule

    kind = ExclusionRule.Kind.PRODUCT


def baskets_create(
    baskets: Iterable[Iterable[Product]],
    *,
    account: CustomerAccount | None = None,
    ordered_at: datetime.datetime = NOW,
    step: datetime.timedelta = datetime.timedelta(0),
) -> list[Order]:
    """One order per basket (the products of one order), all for ``account`` (a new one if
    None), the first at ``ordered_at`` and each next one ``step`` later."""
    account = account or CustomerAccountFactory()
    orders, lines = [], []
    for number, basket in enumerate(baskets):
        order = Order.objects.create(
            external_id=f"T{next(_order_numbers):07d}", account=account, ordered_at=ordered_at + number * step
        )
        orders.append(order)
        lines.extend(OrderLine(order=order, product=p, quantity=1, unit_price=Decimal("1.00")) for p in basket)
    OrderLine.objects.bulk_create(lines)
    return orders


def pairs(queryset=None) -> dict[tuple[str, str], dict]:
    """{(source sku, target sku): {field: value}} of the stored suggestions."""
    queryset = Suggestion.objects.all() if queryset is None else queryset
    rows = queryset.values(
        "source__sku", "target__sku", "co_count", "support", "confidence", "lift", "jaccard", "decayed_co_count",
        "score", "accounts", "previous_co_count", "status", "stale", "reject_reason", "decided_by_id",
    )  # fmt: skip
    return {(r.pop("source__sku"), r.pop("target__sku")): r for r in rows}


def now() -> datetime.datetime:
    return timezone.now()
