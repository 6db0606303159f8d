"""The history viewer: each object's History page in the admin shows its audit trail to whoever
may view the object; the full audit list is for administrators only; nobody can add, change or
delete a row through the admin, superusers included."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEntry
from catalog.models import Brand, Product
from catalog.services import product_save
from merchandising.models import MiningSettings
from merchandising.services import mining_settings_update
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def product(specialist):
    product = ProductFactory(sku="DRL-1", name="Drill")
    product.name = "Drill 18V"
    product_save(product=product, actor=specialist)
    return product


def history_url(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_history", args=[obj.pk])


@pytest.mark.parametrize("who", ["specialist", "marketer", "administrator"])
def test_every_role_that_sees_a_product_sees_its_history(client, product, who, request):
    client.force_login(request.getfixturevalue(who))
    response = client.get(history_url(product))
    assert response.status_code == 200
    rows = response.context["rows"]
    assert [(entry.actor_label, entry.via, changes) for entry, changes in rows] == [
        ("specialist", "form", [("name", "Drill", "Drill 18V")])
    ]
    assert "Drill → Drill 18V" in response.content.decode().replace("<strong>name</strong>: ", "")


def test_the_change_page_links_to_the_history(client, product, specialist):
    client.force_login(specialist)
    page = client.get(reverse("admin:catalog_product_change", args=[product.pk])).content.decode()
    assert f'href="{history_url(product)}"' in page


def test_marketing_cannot_see_the_history_of_what_it_cannot_see(client, marketer, administrator):
    settings = MiningSettings.load()
    settings.min_count += 1
    mining_settings_update(settings=settings, actor=administrator)
    client.force_login(marketer)
    assert client.get(history_url(settings)).status_code == 200  # marketing views merchandising
    client.force_login(UserFactory(username="nobody"))
    assert client.get(history_url(settings)).status_code == 403


def test_only_administrators_see_the_full_list(client, product, specialist, marketer, administrator):
    url = reverse("admin:audit_auditentry_changelist")
    for user in (specialist, marketer):
        client.force_login(user)
        assert client.get(url).status_code == 403
    client.force_login(administrator)
    response = client.get(url, {"via": "form", "actor": "specialist"})
    assert response.status_code == 200
    assert [entry.object_repr for entry in response.context["cl"].result_list] == ["DRL-1"]
    model = str(AuditEntry.objects.for_model(Product).get().content_type_id)
    by_model = client.get(url, {"model": model, "timestamp__year": str(timezone.now().year)})
    assert [entry.object_repr for entry in by_model.context["cl"].result_list] == ["DRL-1"]


def test_nobody_adds_changes_or_deletes_rows_in_the_admin(client, product, rf):
    superuser = UserFactory(username="root", is_superuser=True, is_staff=True)
    model_admin = admin.site._registry[AuditEntry]
    request = rf.get("/")
    request.user = superuser
    entry = AuditEntry.objects.for_model(Product).get()
    before = AuditEntry.objects.count()
    assert (
        model_admin.has_view_permission(request, entry),
        model_admin.has_add_permission(request),
        model_admin.has_change_permission(request, entry),
        model_admin.has_delete_permission(request, entry),
    ) == (True, False, False, False)
    client.force_login(superuser)
    delete_url = reverse("admin:audit_auditentry_delete", args=[entry.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    assert client.post(reverse("admin:audit_auditentry_add"), {}).status_code == 403
    assert AuditEntry.objects.count() == before


def test_an_admin_save_of_a_brand_goes_through_the_service(client, specialist):
    client.force_login(specialist)
    response = client.post(reverse("admin:catalog_brand_add"), {"name": "Hilti"})
    assert response.status_code == 302
    brand = Brand.objects.get(name="Hilti")
    assert list(AuditEntry.objects.for_object(brand).values_list("action", "actor_label", "via", "changes")) == [
        (AuditEntry.Action.CREATE, "specialist", "form", {"name": [None, "Hilti"]})
    ]
