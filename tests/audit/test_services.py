from decimal import Decimal

import pytest

from audit.models import AuditEntry, Via
from audit.selectors import last_change
from audit.services import audit_record, audit_record_many, values_diff
from catalog.models import Brand

pytestmark = pytest.mark.django_db


def test_record_keeps_actor_name_and_exact_values(specialist):
    brand = Brand.objects.create(name="Makita")
    entry = audit_record(
        obj=brand,
        action=AuditEntry.Action.UPDATE,
        actor=specialist,
        via=Via.FORM,
        changes=values_diff({"name": "Makit", "price": Decimal("1.10")}, {"name": "Makita", "price": Decimal("1.10")}),
    )
    entry.refresh_from_db()
    assert entry.changes == {"name": ["Makit", "Makita"]}
    assert (entry.actor_id, entry.actor_label, entry.via) == (specialist.pk, "specialist", "form")
    assert entry.object_pk == str(brand.pk)
    specialist.delete()
    entry.refresh_from_db()
    assert (entry.actor_id, entry.actor_label) == (None, "specialist")
    assert last_change(brand) == entry


def test_record_many_for_a_machine_actor():
    brands = [Brand.objects.create(name=name) for name in ("A", "B")]
    written = audit_record_many(
        model=Brand,
        rows=[(b.pk, b.name, {"name": [None, b.name]}) for b in brands],
        action=AuditEntry.Action.CREATE,
        actor="task:7",
        via=Via.TASK,
    )
    assert written == 2
    rows = AuditEntry.objects.for_model(Brand).order_by("object_pk")
    assert list(rows.values_list("object_repr", "actor_label", "via")) == [
        ("A", "task:7", "task"),
        ("B", "task:7", "task"),
    ]
