"""Two people editing the same product, brand or category: the first save wins, the second is
refused naming what changed and who saved, with the second person's input kept. Imports and
bulk actions between loading and saving refuse the save too."""

from __future__ import annotations

import datetime
import io
import threading
from decimal import Decimal

import pytest
import time_machine
from django.db import close_old_connections
from django.test import Client

from accounts.roles import PRODUCT_SPECIALIST
from audit.conflicts import EditConflict, FieldChange, conflict_message
from audit.forms import VersionedModelForm
from audit.models import AuditEntry, Via
from audit.services import audit_record
from catalog.models import AttributeType, Brand, Category, Product, ProductStatus
from catalog.services import brand_save, category_save, product_save, products_import, products_set_status
from tests.factories import AttributeDefinitionFactory, BrandFactory, ProductFactory, UserFactory
from tests.forms import admin_form_data

pytestmark = pytest.mark.django_db

SAVED_AT = datetime.datetime(2026, 11, 22, 17, 42, tzinfo=datetime.UTC)  # 18:42 in Amsterdam
WHEN = "2026-11-22 18:42"
NOT_SAVED = "Your changes were not saved; review and save again."


@pytest.fixture
def frozen():
    with time_machine.travel(SAVED_AT, tick=False):
        yield


@pytest.fixture
def ann(db):
    return UserFactory(username="ann", role=PRODUCT_SPECIALIST)


@pytest.fixture
def bob(db):
    return UserFactory(username="bob", role=PRODUCT_SPECIALIST)


def session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def record_save(obj, actor) -> None:
    """What the saving service writes to the audit trail: who saved, and when."""
    audit_record(obj=obj, action=AuditEntry.Action.UPDATE, actor=actor, via=Via.FORM)


def errors_of(response) -> list[str]:
    return list(response.context["adminform"].form.non_field_errors())


def product_url(product) -> str:
    return f"/admin/catalog/product/{product.pk}/change/"


def test_second_product_save_is_refused_with_what_changed_and_who(frozen, ann, bob):
    product = ProductFactory(sku="DRL-1", name="Drill", unit_price=Decimal("10.00"))
    ann_session, bob_session = session(ann), session(bob)
    ann_form = admin_form_data(ann_session.get(product_url(product)))
    bob_form = admin_form_data(bob_session.get(product_url(product)))
    assert ann_form["loaded_version"] == bob_form["loaded_version"] == "1"

    response = ann_session.post(product_url(product), {**ann_form, "unit_price": "12.00"})
    assert response.status_code == 302
    record_save(Product.objects.get(pk=product.pk), ann)

    response = bob_session.post(product_url(product), {**bob_form, "name": "Cordless drill"})
    assert response.status_code == 200
    assert errors_of(response) == [f"Saved meanwhile by ann at {WHEN}: unit price 10.0000 → 12.0000. {NOT_SAVED}"]
    stored = Product.objects.get(pk=product.pk)
    assert (stored.name, stored.unit_price, stored.version) == ("Drill", Decimal("12.0000"), 2)
    form = response.context["adminform"].form
    # Bob's edit is kept, the price he did not touch shows Ann's, and the form is now based on
    # the stored version...
    assert (form["name"].value(), form["unit_price"].value(), form["loaded_version"].value()) == (
        "Cordless drill",
        "12.0000",
        "2",
    )
    # ... so saving it again as shown goes through: Bob's name, and Ann's price stays.
    response = bob_session.post(product_url(product), admin_form_data(response))
    assert response.status_code == 302
    stored.refresh_from_db()
    assert (stored.name, stored.unit_price, stored.version) == ("Cordless drill", Decimal("12.0000"), 3)


def test_the_reshown_form_keeps_every_edit_and_shows_the_rest_as_stored(ann, bob):
    """Fields both changed: Bob's input. Fields only Ann changed (a checkbox, a choice, JSON):
    Ann's values, so saving the re-shown form reverts none of them."""
    AttributeDefinitionFactory(code="size", type=AttributeType.CHOICE, choices=["S", "M"])
    product = ProductFactory(name="Drill", description="", unit_price=Decimal("10"), status=ProductStatus.ACTIVE)
    ann_session, bob_session = session(ann), session(bob)
    ann_form = admin_form_data(ann_session.get(product_url(product)))
    bob_form = admin_form_data(bob_session.get(product_url(product)))
    assert "exclude_from_recommendations" not in bob_form  # an unticked box posts nothing
    ann_edit = {
        "description": "Ann's text",
        "exclude_from_recommendations": "on",
        "status": ProductStatus.DISCONTINUED,
        "attributes": '{"size": "M"}',
    }
    response = ann_session.post(product_url(product), {**ann_form, **ann_edit})
    assert response.status_code == 302, response.context["adminform"].form.errors
    response = bob_session.post(product_url(product), {**bob_form, "description": "Bob's text", "unit_price": "9.50"})
    assert response.status_code == 200
    assert errors_of(response)[0].endswith(
        "description (empty) → Ann's text; status active → discontinued; exclude from recommendations no → yes; "
        f'attributes (empty) → {{"size": "M"}}. {NOT_SAVED}'
    )
    form = response.context["adminform"].form
    shown = {name: form[name].value() for name in ("name", "description", "unit_price", "status", "attributes")}
    assert shown == {
        "name": "Drill",
        "description": "Bob's text",
        "unit_price": "9.50",
        "status": "discontinued",
        "attributes": '{"size": "M"}',
    }
    assert form["exclude_from_recommendations"].value() is True
    response = bob_session.post(product_url(product), admin_form_data(response))
    assert response.status_code == 302, (errors_of(response), response.context["adminform"].form.errors)
    stored = Product.objects.get(pk=product.pk)
    assert (
        stored.description,
        stored.unit_price,
        stored.status,
        stored.exclude_from_recommendations,
        stored.attributes,
        stored.version,
    ) == ("Bob's text", Decimal("9.5000"), "discontinued", True, {"size": "M"}, 3)


def test_a_bulk_action_between_load_and_save_refuses_the_save(ann, bob):
    product = ProductFactory(sku="DRL-1", name="Drill", status=ProductStatus.ACTIVE)
    bob_session = session(bob)
    bob_form = admin_form_data(bob_session.get(product_url(product)))
    changed = products_set_status(products=Product.objects.filter(pk=product.pk), status="discontinued", actor=ann)
    assert changed == 1
    response = bob_session.post(product_url(product), {**bob_form, "name": "Cordless drill"})
    assert response.status_code == 200
    (error,) = errors_of(response)
    assert error.startswith("Saved meanwhile by ")
    assert error.endswith(f": status active → discontinued. {NOT_SAVED}")
    stored = Product.objects.get(pk=product.pk)
    assert (stored.name, stored.status, stored.version) == ("Drill", "discontinued", 2)


def test_an_import_between_load_and_save_refuses_the_save(bob):
    product = ProductFactory(sku="DRL-1", name="Drill", unit_price=Decimal("10"), status="active", brand=None)
    untouched = ProductFactory(sku="DRL-2", name="Other", unit_price=Decimal("5"), status="active", brand=None)
    bob_session = session(bob)
    bob_form = admin_form_data(bob_session.get(product_url(product)))
    csv = (
        "sku,name,brand,category,unit_price,pack_quantity,unit,status\n"
        f"DRL-1,Drill,,{product.category.path},11.50,1,pcs,active\n"
        f"DRL-2,Other,,{untouched.category.path},5,1,pcs,active\n"
    )
    result = products_import(source=io.BytesIO(csv.encode()))
    assert (result.errors, result.updated, result.unchanged) == ([], 1, 1)
    assert list(Product.objects.order_by("sku").values_list("sku", "version")) == [("DRL-1", 2), ("DRL-2", 1)]
    response = bob_session.post(product_url(product), {**bob_form, "name": "Cordless drill"})
    assert response.status_code == 200
    assert errors_of(response)[0].endswith(f": unit price 10.0000 → 11.5000. {NOT_SAVED}")
    assert Product.objects.get(pk=product.pk).name == "Drill"


def test_product_save_with_a_stale_version_raises_and_writes_nothing(ann):
    product = ProductFactory(name="Drill")
    first = Product.objects.get(pk=product.pk)
    first.name = "First"
    product_save(product=first, actor=ann, expected_version=1)
    second = Product.objects.get(pk=product.pk)
    second.version = 1  # as loaded before the first save
    second.name = "Second"
    with pytest.raises(EditConflict) as raised:
        product_save(product=second, actor=ann, expected_version=1)
    assert raised.value.current_version == 2
    assert Product.objects.values_list("name", "version").get(pk=product.pk) == ("First", 2)
    # Writers without a loaded copy (imports, commands) raise the version all the same.
    third = Product.objects.get(pk=product.pk)
    third.name = "Third"
    product_save(product=third, actor=ann)
    assert Product.objects.get(pk=product.pk).version == 3


def test_a_save_that_changes_nothing_raises_no_version_and_leaves_no_history(ann):
    """Someone pressing Save on an unchanged form must not refuse everyone else's open form."""
    product = ProductFactory(name="Drill")
    brand = BrandFactory(name="Makita")
    since = AuditEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    product_save(product=Product.objects.get(pk=product.pk), actor=ann, expected_version=1)
    brand_save(brand=Brand.objects.get(pk=brand.pk), actor=ann, expected_version=1)
    assert Product.objects.get(pk=product.pk).version == 1
    assert Brand.objects.get(pk=brand.pk).version == 1
    assert AuditEntry.objects.filter(pk__gt=since).count() == 0


# --- brands and categories --------------------------------------------------------------------


def test_second_brand_save_is_refused(frozen, ann, bob):
    brand = BrandFactory(name="Makita")
    url = f"/admin/catalog/brand/{brand.pk}/change/"
    ann_session, bob_session = session(ann), session(bob)
    ann_form = admin_form_data(ann_session.get(url))
    bob_form = admin_form_data(bob_session.get(url))
    assert ann_session.post(url, {**ann_form, "name": "Makita Tools"}).status_code == 302
    record_save(Brand.objects.get(pk=brand.pk), ann)
    response = bob_session.post(url, {**bob_form, "name": "MAKITA"})
    assert response.status_code == 200
    assert errors_of(response) == [f"Saved meanwhile by ann at {WHEN}: name Makita → Makita Tools. {NOT_SAVED}"]
    assert response.context["adminform"].form["name"].value() == "MAKITA"
    assert Brand.objects.values_list("name", "version").get(pk=brand.pk) == ("Makita Tools", 2)
    stale = Brand.objects.get(pk=brand.pk)
    stale.name = "Stale"
    with pytest.raises(EditConflict):
        brand_save(brand=stale, actor=None, expected_version=1)
    assert Brand.objects.get(pk=brand.pk).name == "Makita Tools"


def test_second_category_save_is_refused(frozen, ann, bob):
    tools = category_save(category=Category(name="Tools"))
    garden = category_save(category=Category(name="Garden"))
    drills = category_save(category=Category(name="Drills", parent=tools))
    url = f"/admin/catalog/category/{drills.pk}/change/"
    ann_session, bob_session = session(ann), session(bob)
    ann_form = admin_form_data(ann_session.get(url))
    bob_form = admin_form_data(bob_session.get(url))
    assert ann_session.post(url, {**ann_form, "parent": str(garden.pk)}).status_code == 302
    record_save(Category.objects.get(pk=drills.pk), ann)
    response = bob_session.post(url, {**bob_form, "name": "Power drills"})
    assert response.status_code == 200
    assert errors_of(response) == [f"Saved meanwhile by ann at {WHEN}: parent Tools → Garden. {NOT_SAVED}"]
    form = response.context["adminform"].form
    assert (form["name"].value(), form["parent"].value()) == ("Power drills", str(garden.pk))  # Ann's parent
    assert Category.objects.values_list("path", "version").get(pk=drills.pk) == ("Garden > Drills", 2)
    assert bob_session.post(url, admin_form_data(response)).status_code == 302
    assert Category.objects.values_list("path", "version").get(pk=drills.pk) == ("Garden > Power drills", 3)


def test_renaming_a_category_raises_the_version_of_its_children(bob):
    tools = category_save(category=Category(name="Tools"))
    drills = category_save(category=Category(name="Drills", parent=tools))
    url = f"/admin/catalog/category/{drills.pk}/change/"
    bob_session = session(bob)
    bob_form = admin_form_data(bob_session.get(url))
    tools.name = "Power tools"
    category_save(category=tools, expected_version=1)
    assert Category.objects.values_list("path", "version").get(pk=drills.pk) == ("Power tools > Drills", 2)
    response = bob_session.post(url, {**bob_form, "name": "Drills and drivers"})
    assert response.status_code == 200
    (error,) = errors_of(response)
    assert error.startswith("Saved meanwhile by ")
    assert error.endswith(f". {NOT_SAVED}")
    assert Category.objects.get(pk=drills.pk).name == "Drills"


def test_message_without_history_and_without_fields():
    changes = [FieldChange(field="unit_price", label="unit price", loaded="10.00", current="12.00")]
    assert conflict_message(changes=changes, actor_label=None, at=None) == (
        f"Saved meanwhile by another user: unit price 10.00 → 12.00. {NOT_SAVED}"
    )
    assert (
        conflict_message(changes=[], actor_label="ann", at=SAVED_AT) == f"Saved meanwhile by ann at {WHEN}. {NOT_SAVED}"
    )


# --- two saves at the same moment -------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_threads_saving_the_same_version_one_wins(ann):
    product = ProductFactory(name="Drill", unit_price=Decimal("10"))
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def save(name: str) -> None:
        try:
            loaded = Product.objects.get(pk=product.pk)
            loaded.name = name
            barrier.wait(timeout=10)
            product_save(product=loaded, actor=ann, expected_version=1)
            outcomes[name] = "saved"
        except EditConflict:
            outcomes[name] = "conflict"
        finally:
            close_old_connections()

    threads = [threading.Thread(target=save, args=(name,)) for name in ("First", "Second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes.values()) == ["conflict", "saved"]
    winner = next(name for name, outcome in outcomes.items() if outcome == "saved")
    assert Product.objects.values_list("name", "version").get(pk=product.pk) == (winner, 2)


def test_a_save_between_the_form_check_and_the_write_is_refused_too(monkeypatch, ann, bob):
    """The form's check reads the version before the service writes; a save committed in
    between is caught by the service's conditional update, and the form is shown again."""
    product = ProductFactory(name="Drill", unit_price=Decimal("10"))
    bob_session = session(bob)
    bob_form = admin_form_data(bob_session.get(product_url(product)))
    ann_copy = Product.objects.get(pk=product.pk)
    ann_copy.unit_price = Decimal("12")
    product_save(product=ann_copy, actor=ann, expected_version=1)
    real_stored_object = VersionedModelForm.stored_object
    calls = []

    def read_before_anns_save(form):
        stored = real_stored_object(form)
        if not calls:  # the first check read the row just before Ann's save committed
            stored.version = 1
        calls.append(stored.version)
        return stored

    monkeypatch.setattr(VersionedModelForm, "stored_object", read_before_anns_save)
    response = bob_session.post(product_url(product), {**bob_form, "name": "Cordless drill"})
    assert calls == [1, 2]  # the check passed, the service refused, the second check saw Ann's save
    assert response.status_code == 200
    assert errors_of(response)[0].endswith(f": unit price 10.0000 → 12.0000. {NOT_SAVED}")
    assert Product.objects.values_list("name", "unit_price", "version").get(pk=product.pk) == (
        "Drill",
        Decimal("12.0000"),
        2,
    )


def test_a_save_landing_during_the_second_pass_too_shows_the_form_not_an_error(frozen, monkeypatch, ann, bob):
    """A save lands between the form's check and the service's write on every pass (the check
    always reads the version Bob loaded): the service refuses the first pass; the second pass
    re-shows the form with the conflict without calling the service again, so no 500."""
    import catalog.admin

    product = ProductFactory(name="Drill", unit_price=Decimal("10"))
    bob_session = session(bob)
    bob_form = admin_form_data(bob_session.get(product_url(product)))
    ann_copy = Product.objects.get(pk=product.pk)
    ann_copy.unit_price = Decimal("12")
    product_save(product=ann_copy, actor=ann, expected_version=1)
    record_save(Product.objects.get(pk=product.pk), ann)
    real_stored_object = VersionedModelForm.stored_object
    real_product_save = catalog.admin.product_save
    checks, saves = [], []

    def read_before_a_save(form):
        stored = real_stored_object(form)
        stored.version = 1  # each check read the row just before another save committed
        checks.append(stored.version)
        return stored

    def counted_product_save(**kwargs):
        saves.append(kwargs["expected_version"])
        return real_product_save(**kwargs)

    monkeypatch.setattr(VersionedModelForm, "stored_object", read_before_a_save)
    monkeypatch.setattr(catalog.admin, "product_save", counted_product_save)
    response = bob_session.post(product_url(product), {**bob_form, "name": "Cordless drill"})
    assert (checks, saves) == ([1, 1], [1])
    assert response.status_code == 200
    assert errors_of(response) == [f"Saved meanwhile by ann at {WHEN}: unit price 10.0000 → 12.0000. {NOT_SAVED}"]
    form = response.context["adminform"].form
    assert (form["name"].value(), form["unit_price"].value()) == ("Cordless drill", "12.0000")
    assert Product.objects.values_list("name", "unit_price", "version").get(pk=product.pk) == (
        "Drill",
        Decimal("12.0000"),
        2,
    )


@pytest.mark.django_db
def test_a_category_save_raises_only_the_versions_of_children_whose_path_moved(specialist):
    tools = category_save(category=Category(name="Tools"), actor=specialist)
    drills = category_save(category=Category(name="Drills", parent=tools), actor=specialist)
    bits = category_save(category=Category(name="Bits", parent=drills), actor=specialist)
    since = AuditEntry.objects.order_by("-pk").values_list("pk", flat=True).first()
    versions = lambda: list(Category.objects.filter(pk__in=[drills.pk, bits.pk]).order_by("pk").values_list("version", flat=True))  # noqa: E731,E501

    category_save(category=Category.objects.get(pk=tools.pk), actor=specialist, expected_version=1)  # nothing changed
    assert versions() == [1, 1]  # their open forms stay valid
    assert AuditEntry.objects.filter(pk__gt=since).exclude(object_pk=str(tools.pk)).count() == 0

    renamed = Category.objects.get(pk=tools.pk)
    renamed.name = "Power tools"
    category_save(category=renamed, actor=specialist, expected_version=renamed.version)
    assert versions() == [2, 2]
    moved = AuditEntry.objects.filter(pk__gt=since, object_pk__in=[str(drills.pk), str(bits.pk)]).order_by("object_pk")
    assert list(moved.values_list("changes", flat=True)) == [
        {"path": ["Tools > Drills", "Power tools > Drills"]},
        {"path": ["Tools > Drills > Bits", "Power tools > Drills > Bits"]},
    ]
