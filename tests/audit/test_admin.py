"""The history viewer: each object's History page in the admin shows its audit trail to whoever
may view the object; the full audit list is for administrators only; nobody can add, change or
delete a row through the admin, superusers included."""

from __future__ import annotations

import io

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey, User
from accounts.roles import MARKETING
from accounts.services import api_client_create
from audit.models import AuditEntry
from catalog.models import Brand, Product
from catalog.services import product_save
from merchandising.models import MiningSettings
from merchandising.services import mining_settings_update
from tests.factories import ProductFactory, UserFactory
from tests.forms import admin_form_data
from tests.merchandising.factories import CustomerAccountFactory

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


# --- the admin's own write paths go through services that record -----------------------------


def rows_of(obj) -> list[tuple]:
    return list(
        AuditEntry.objects.for_object(obj).order_by("pk").values_list("action", "actor_label", "via", "changes")
    )


def test_admin_user_add_change_and_password(client, administrator):
    client.force_login(administrator)
    response = client.post(
        reverse("admin:accounts_user_add"),
        {
            "username": "carla",
            "password1": "a-long-pass-2026",
            "password2": "a-long-pass-2026",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    user = User.objects.get(username="carla")
    marketing = Group.objects.get(name=MARKETING)
    change = {
        "username": "carla", "email": "carla@example.com", "first_name": "", "last_name": "", "is_active": "on",
        "groups": [marketing.pk], "date_joined_0": "2026-06-01", "date_joined_1": "12:00:00",
    }  # fmt: skip
    assert client.post(reverse("admin:accounts_user_change", args=[user.pk]), change).status_code == 302
    password_url = reverse("admin:auth_user_password_change", args=[user.pk])
    response = client.post(
        password_url,
        {"password1": "another-pass-2026", "password2": "another-pass-2026", "set_usable_password": "true"},
    )
    assert response.status_code == 302
    rows = rows_of(user)
    assert [(action, who, via) for action, who, via, _ in rows] == [
        (AuditEntry.Action.CREATE, "administrator", "form"),
        (AuditEntry.Action.UPDATE, "administrator", "form"),
        (AuditEntry.Action.UPDATE, "administrator", "form"),
    ]
    assert "password" not in rows[0][3]
    assert {k: v for k, v in rows[1][3].items() if k in ("email", "groups")} == {
        "email": ["", "carla@example.com"],
        "groups": [[], [MARKETING]],
    }
    assert rows[2][3] == {"password": ["(set)", "(changed)"]}


def test_admin_customer_account_and_mining_settings_saves(client, administrator):
    client.force_login(administrator)
    account = CustomerAccountFactory(external_id="C1", name="One")
    url = reverse("admin:accounts_customeraccount_change", args=[account.pk])
    data = {**admin_form_data(client.get(url)), "name": "One Ltd"}  # as loaded, with its version
    assert client.post(url, data).status_code == 302
    assert rows_of(account) == [(AuditEntry.Action.UPDATE, "administrator", "form", {"name": ["One", "One Ltd"]})]

    settings = MiningSettings.load()
    url = reverse("admin:merchandising_miningsettings_change", args=[1])
    form = {**admin_form_data(client.get(url)), "top_k": settings.top_k + 1}
    assert client.post(url, form).status_code == 302
    assert rows_of(settings) == [
        (AuditEntry.Action.UPDATE, "administrator", "form", {"top_k": [settings.top_k, settings.top_k + 1]})
    ]


def test_admin_api_client_revoke_action_and_key_issue(client, administrator):
    client.force_login(administrator)
    api_client = api_client_create(name="shop", scopes=["read"], actor=administrator)
    response = client.post(reverse("admin:accounts_apiclient_issue_key", args=[api_client.pk]), {"expires_days": 30})
    assert response.status_code == 200
    key = ApiKey.objects.get()
    assert [row[:3] for row in rows_of(key)] == [(AuditEntry.Action.CREATE, "administrator", "form")]
    action = {"action": "revoke_clients", "_selected_action": [api_client.pk]}
    assert client.post(reverse("admin:accounts_apiclient_changelist"), action).status_code == 302
    assert [row[:3] for row in rows_of(api_client)] == [
        (AuditEntry.Action.CREATE, "administrator", "form"),
        (AuditEntry.Action.UPDATE, "administrator", "admin_action"),
    ]


# --- management commands without a user are recorded as the command ---------------------------


def test_commands_are_recorded_by_name(db):
    from django.core.management import call_command
    from django_celery_beat.models import PeriodicTask

    from accounts.models import ApiClient

    call_command("create_api_client", "shop", stdout=io.StringIO(), stderr=io.StringIO())
    client = ApiClient.objects.get(name="shop")
    assert [row[:3] for row in rows_of(client)] == [(AuditEntry.Action.CREATE, "command:create_api_client", "command")]
    assert [row[:3] for row in rows_of(client.keys.get())] == [
        (AuditEntry.Action.CREATE, "command:create_api_client", "command")
    ]
    assert client.created_by is None

    call_command("setup_mining_schedule", stdout=io.StringIO())
    call_command("setup_mining_schedule", stdout=io.StringIO())  # unchanged: no second row
    task = PeriodicTask.objects.get(name="Recompute suggestions")
    assert [row[:3] for row in rows_of(task)] == [
        (AuditEntry.Action.CREATE, "command:setup_mining_schedule", "command")
    ]
    call_command("setup_schedules", stdout=io.StringIO())
    refresh = PeriodicTask.objects.get(name="Refresh published links")
    assert [row[:3] for row in rows_of(refresh)] == [(AuditEntry.Action.CREATE, "command:setup_schedules", "command")]


def test_admin_schedule_actions_go_through_the_service(client, administrator):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.MINUTES)
    task = PeriodicTask.objects.create(name="Nightly", task="accounts.ping", interval=every, enabled=True)
    client.force_login(administrator)
    action = {"action": "disable_tasks", "_selected_action": [task.pk]}
    assert client.post(reverse("admin:django_celery_beat_periodictask_changelist"), action).status_code == 302
    task.refresh_from_db()
    assert task.enabled is False
    assert rows_of(task) == [(AuditEntry.Action.UPDATE, "administrator", "admin_action", {"enabled": [True, False]})]
