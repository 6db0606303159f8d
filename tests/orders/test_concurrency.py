"""Two imports of overlapping files at the same moment (PostgreSQL): every order is created
exactly once, with its lines, and neither import fails."""

from __future__ import annotations

import io
import threading

import pytest
from django.db import connection

from accounts.models import CustomerAccount
from orders.imports import OrdersImportResult, orders_import
from orders.imports import staging as staging_module
from orders.models import Order, OrderLine
from tests.factories import ProductFactory

HEADER = "order_id,account_id,ordered_at,sku,quantity,unit_price"


def orders_csv(numbers: range) -> bytes:
    rows = [HEADER]
    for number in numbers:
        for sku in ("DRILL", "BITS", "GLOVES"):
            rows.append(f"SO-{number:04d},ACC-{number % 7},2024-03-01T10:00,{sku},{number % 5 + 1},1.50")
    return ("\n".join(rows) + "\n").encode()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("big", [False, True], ids=["regular path", "bulk-load path wanted"])
def test_concurrent_imports_of_overlapping_files_create_each_order_once(monkeypatch, big):
    """With the bulk-load path wanted by both, one of them may take it (the other waits for its
    locks, then takes the regular path) or both fall back; either way the same result."""
    if big:
        monkeypatch.setattr(staging_module, "BULK_LOAD_MIN_LINES", 1)
        monkeypatch.setattr(staging_module, "BULK_LOAD_MIN_SHARE", 0)
    for sku in ("DRILL", "BITS", "GLOVES"):
        ProductFactory(sku=sku)
    files = [orders_csv(range(0, 600)), orders_csv(range(300, 900))]
    barrier = threading.Barrier(len(files))
    results: list[OrdersImportResult] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def run(data: bytes) -> None:
        try:
            barrier.wait(timeout=10)
            result = orders_import(source=io.BytesIO(data))
            with lock:
                results.append(result)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            with lock:
                failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(data,)) for data in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert failures == []
    assert [result.errors for result in results] == [[], []]
    assert sum(result.orders_created for result in results) == 900
    assert sum(result.orders_existing for result in results) == 300
    assert sum(result.lines_created for result in results) == 2700
    assert sum(result.accounts_created for result in results) == 7
    assert (Order.objects.count(), OrderLine.objects.count(), CustomerAccount.objects.count()) == (900, 2700, 7)
    assert all(order.lines.count() == 3 for order in Order.objects.prefetch_related("lines"))
    line_ids = list(OrderLine.objects.values_list("id", flat=True))
    assert len(set(line_ids)) == 2700
    with connection.cursor() as cursor:  # every key and index is back, whichever path was taken
        cursor.execute(
            "SELECT COUNT(*) FROM pg_constraint WHERE conrelid IN ('orders_orderline'::regclass, "
            "'orders_order'::regclass) AND contype IN ('p', 'u', 'f')"
        )
        assert cursor.fetchone()[0] == 7
        cursor.execute("SELECT COUNT(*) FROM pg_indexes WHERE tablename IN ('orders_orderline', 'orders_order')")
        assert cursor.fetchone()[0] == 8
