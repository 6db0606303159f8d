"""Reads of the order history that pages and commands share."""

from __future__ import annotations

from django.db.models import Count, IntegerField, Max, Min, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from orders.models import Order, OrderLine


def _per_order(aggregate) -> Coalesce:
    lines = OrderLine.objects.filter(order=OuterRef("pk")).order_by().values("order")
    return Coalesce(Subquery(lines.annotate(value=aggregate).values("value"), output_field=IntegerField()), 0)


def orders_for_list() -> QuerySet[Order]:
    """Orders with their account, number of lines and of units: one query for a page of them
    (correlated subqueries rather than a join and GROUP BY, so counting a filtered list of
    millions of orders does not aggregate their lines)."""
    return Order.objects.select_related("account").annotate(
        line_count=_per_order(Count("id")), unit_count=_per_order(Sum("quantity"))
    )


def order_history_summary() -> dict:
    """How much history there is: orders, lines, customer accounts with orders, and the
    first and last order time (None without orders)."""
    summary = Order.objects.aggregate(
        orders=Count("id"), accounts=Count("account", distinct=True), first=Min("ordered_at"), last=Max("ordered_at")
    )
    summary["lines"] = OrderLine.objects.count()
    return summary
