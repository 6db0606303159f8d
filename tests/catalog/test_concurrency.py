"""Two people confirming the same import at the same moment: exactly one applies it."""

import threading

import pytest
from django.db import connection

from catalog.models import Product, ProductChange, ProductImport
from catalog.services import ImportAlreadyHandled, product_import_apply, product_import_preview

CSV = (
    b"sku,name,brand,category,unit_price,pack_quantity,unit,status\n"
    b"C-1,Glue,Acme,Office > Glue,2.50,1,pcs,active\n"
    b"C-2,Tape,Acme,Office > Tape,1.25,1,pcs,active\n"
)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_confirmations_apply_once(specialist, administrator):
    product_import = product_import_preview(file_name="c.csv", content=CSV, actor=specialist)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    lock = threading.Lock()

    def confirm(user):
        try:
            barrier.wait(timeout=10)
            result = product_import_apply(product_import=product_import, actor=user)
            outcome = f"applied:{result.created}"
        except ImportAlreadyHandled:
            outcome = "refused"
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=confirm, args=(user,)) for user in (specialist, administrator)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(outcomes) == ["applied:2", "refused"]
    assert Product.objects.count() == 2
    assert ProductChange.objects.count() == 2
    assert ProductImport.objects.get().status == ProductImport.Status.APPLIED
