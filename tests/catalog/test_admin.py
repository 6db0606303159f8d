"""The catalog admin: pinned query counts, bulk actions that report, history on the product page."""

from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import AttributeType, Category, ChangeSource, Product, ProductChange, ProductStatus
from catalog.services import category_save
from tests.factories import AttributeDefinitionFactory, BrandFactory, CategoryFactory, ProductFactory

pytestmark = pytest.mark.django_db


def count_queries(client, url):
    client.get(url)  # warm caches that fill once per process (content types), not per request
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def test_changelist_query_count_does_not_grow_with_rows(client, specialist):
    client.force_login(specialist)
    for _ in range(3):
        base = ProductFactory()
        ProductFactory(base=base)
    few = count_queries(client, "/admin/catalog/product/")
    for _ in range(20):
        base = ProductFactory()
        ProductFactory(base=base)
    many = count_queries(client, "/admin/catalog/product/")
    assert few == many == 13


def test_change_page_query_count_is_pinned(client, specialist):
    client.force_login(specialist)
    base = ProductFactory()
    for quantity in (100, 500):
        ProductFactory(base=base, pack_quantity=quantity)
    ProductChange.objects.create(
        product=base, changed_at=base.created_at, source=ChangeSource.ADMIN, action="updated", changes={}
    )
    first = count_queries(client, f"/admin/catalog/product/{base.pk}/change/")
    ProductFactory(base=base, pack_quantity=1000)
    second = count_queries(client, f"/admin/catalog/product/{base.pk}/change/")
    assert (first, second) == (13, 13)


def test_product_page_shows_variants_with_price_per_unit_and_history(client, specialist):
    client.force_login(specialist)
    base = ProductFactory(sku="SCR")
    ProductFactory(sku="SCR-100", base=base, pack_quantity=100, unit_price=Decimal("4.95"))
    response = client.post(
        f"/admin/catalog/product/{base.pk}/change/",
        {
            "sku": "SCR", "name": "Wood screw", "brand": base.brand_id, "category": base.category_id,
            "description": "", "unit_price": "0.06", "currency": "EUR", "pack_quantity": "1", "unit": "pcs",
            "base": "", "status": "active", "attributes": "{}", "loaded_version": "1",
            "variants-TOTAL_FORMS": "1", "variants-INITIAL_FORMS": "1", "variants-MIN_NUM_FORMS": "0",
            "variants-MAX_NUM_FORMS": "1000", "variants-0-id": str(base.variants.get().pk),
            "variants-0-base": str(base.pk),
            "changes-TOTAL_FORMS": "0", "changes-INITIAL_FORMS": "0", "changes-MIN_NUM_FORMS": "0",
            "changes-MAX_NUM_FORMS": "1000",
        },
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    change = ProductChange.objects.get(product=base)
    assert change.actor == specialist
    assert change.source == ChangeSource.ADMIN
    assert change.changes == {"name": [base.name, "Wood screw"], "unit_price": ["9.95", "0.06"]}
    page = client.get(f"/admin/catalog/product/{base.pk}/change/").content.decode()
    assert "SCR-100" in page
    assert "0.0495 EUR/pcs" in page
    assert "name: " + base.name + " → Wood screw" in page


def test_admin_form_validates_attributes(client, specialist):
    client.force_login(specialist)
    AttributeDefinitionFactory(code="size", type=AttributeType.CHOICE, choices=["S", "M"])
    product = ProductFactory()
    data = {
        "sku": product.sku, "name": product.name, "brand": product.brand_id, "category": product.category_id,
        "unit_price": "1", "currency": "EUR", "pack_quantity": "1", "unit": "pcs", "status": "active",
        "attributes": '{"size": "XXL"}', "loaded_version": "1",
        "variants-TOTAL_FORMS": "0", "variants-INITIAL_FORMS": "0",
        "changes-TOTAL_FORMS": "0", "changes-INITIAL_FORMS": "0",
    }  # fmt: skip
    response = client.post(f"/admin/catalog/product/{product.pk}/change/", data)
    assert response.status_code == 200
    assert "attr:size &#x27;XXL&#x27; is not one of: S, M" in response.content.decode()
    data["attributes"] = '{"colour": "red"}'
    response = client.post(f"/admin/catalog/product/{product.pk}/change/", data)
    assert "unknown attribute &#x27;colour&#x27;" in response.content.decode()
    data["attributes"] = '{"size": "M"}'
    assert client.post(f"/admin/catalog/product/{product.pk}/change/", data).status_code == 302
    product.refresh_from_db()
    assert product.attributes == {"size": "M"}
    assert ProductChange.objects.filter(product=product).count() == 1


@pytest.mark.parametrize(
    ("action", "field", "value", "message"),
    [
        ("activate", "status", ProductStatus.ACTIVE, "Activated 2 of 3 selected products (1 were already active)."),
        (
            "discontinue",
            "status",
            ProductStatus.DISCONTINUED,
            "Discontinued 2 of 3 selected products (1 were already discontinued).",
        ),
        (
            "exclude_from_recommendations_action",
            "exclude_from_recommendations",
            True,
            "Excluded 2 of 3 selected products (1 were already excluded).",
        ),
    ],
)
def test_bulk_actions_report_counts_and_record_history(client, specialist, action, field, value, message):
    client.force_login(specialist)
    already = ProductFactory(**{field: value})
    others = [ProductFactory(status=ProductStatus.DRAFT) for _ in range(2)]
    untouched = ProductFactory(status=ProductStatus.DRAFT)
    selected = [already.pk] + [p.pk for p in others]
    response = client.post("/admin/catalog/product/", {"action": action, "_selected_action": selected}, follow=True)
    assert [str(m) for m in get_messages(response.wsgi_request)] == [message]
    assert Product.objects.filter(pk__in=selected, **{field: value}).count() == 3
    untouched.refresh_from_db()
    assert getattr(untouched, field) != value
    changes = ProductChange.objects.filter(source=ChangeSource.BULK_ACTION)
    assert sorted(changes.values_list("product_id", flat=True)) == sorted(p.pk for p in others)
    assert all(c.actor_id == specialist.pk and set(c.changes) == {field} for c in changes)


def test_marketer_cannot_run_bulk_actions(client, marketer):
    client.force_login(marketer)
    product = ProductFactory(status=ProductStatus.DRAFT)
    response = client.post("/admin/catalog/product/", {"action": "activate", "_selected_action": [product.pk]})
    assert response.status_code == 200  # the changelist again: the action is not offered to marketing
    assert response.context["action_form"] is None
    product.refresh_from_db()
    assert product.status == ProductStatus.DRAFT
    assert ProductChange.objects.count() == 0


def test_category_paths_follow_renames():
    tools = category_save(category=Category(name="Tools"))
    power = category_save(category=Category(name="Power tools", parent=tools))
    drills = category_save(category=Category(name="Drills", parent=power))
    assert drills.path == "Tools > Power tools > Drills"
    tools.name = "Hand and power tools"
    category_save(category=tools)
    drills.refresh_from_db()
    assert drills.path == "Hand and power tools > Power tools > Drills"
    assert str(drills) == drills.path


def test_category_cannot_move_below_itself():
    from django.core.exceptions import ValidationError

    tools = category_save(category=Category(name="Tools"))
    power = category_save(category=Category(name="Power", parent=tools))
    tools.parent = power
    with pytest.raises(ValidationError):
        category_save(category=tools)


def test_base_autocomplete_offers_only_possible_bases(client, specialist):
    client.force_login(specialist)
    base = ProductFactory(sku="B-1", name="Screw")
    ProductFactory(sku="B-1-100", name="Screw box", base=base)
    response = client.get(
        "/admin/autocomplete/",
        {"term": "Screw", "app_label": "catalog", "model_name": "product", "field_name": "base"},
    )
    assert response.status_code == 200
    assert [item["text"] for item in response.json()["results"]] == ["B-1 Screw"]


def test_brand_filter_and_search(client, marketer):
    client.force_login(marketer)
    brand = BrandFactory(name="Makita")
    category = CategoryFactory()
    ProductFactory(sku="MK-1", brand=brand, category=category)
    ProductFactory(sku="OT-1")
    response = client.get(f"/admin/catalog/product/?brand__id__exact={brand.pk}")
    assert [p.sku for p in response.context["cl"].result_list] == ["MK-1"]
    response = client.get("/admin/catalog/product/?q=OT-")
    assert [p.sku for p in response.context["cl"].result_list] == ["OT-1"]


def test_deleting_a_product_keeps_its_history(client, administrator):
    client.force_login(administrator)
    product = ProductFactory(sku="DEL-1", unit_price=Decimal("2.50"))
    response = client.post(f"/admin/catalog/product/{product.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Product.objects.filter(sku="DEL-1").exists()
    change = ProductChange.objects.get(sku="DEL-1")
    assert (change.product_id, change.action, change.actor_id) == (None, "deleted", administrator.pk)
    assert change.changes["unit_price"] == ["2.50", None]
    listing = client.get("/admin/catalog/productchange/").content.decode()
    assert "DEL-1 (deleted)" in listing


def test_base_with_variants_cannot_be_deleted(client, administrator):
    client.force_login(administrator)
    base = ProductFactory()
    ProductFactory(base=base)
    response = client.post(f"/admin/catalog/product/{base.pk}/delete/", {"post": "yes"})
    assert response.status_code == 200  # Django's "protected related objects" page
    assert Product.objects.count() == 2
    assert ProductChange.objects.count() == 0


def test_moving_a_category_below_its_child_is_a_form_error(client, specialist):
    client.force_login(specialist)
    tools = category_save(category=Category(name="Tools"))
    power = category_save(category=Category(name="Power", parent=tools))
    response = client.post(f"/admin/catalog/category/{tools.pk}/change/", {"name": "Tools", "parent": power.pk})
    assert response.status_code == 200
    assert "A category cannot be placed below itself or its own sub-categories." in response.content.decode()
    tools.refresh_from_db()
    assert tools.parent_id is None


def test_export_with_an_unknown_filter_goes_back_to_the_list(client, marketer):
    client.force_login(marketer)
    response = client.get("/admin/catalog/product/export/?nonsense__field=1")
    assert response.status_code == 302
    assert response["Location"] == "/admin/catalog/product/?e=1"
