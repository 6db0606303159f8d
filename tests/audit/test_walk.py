"""The audit walk (issue 11): every public function of every services module either is a case
here, which calls it and asserts the exact audit rows it wrote (model, object, action, actor,
write path, changes), or is in EXCLUDED with the reason it writes nothing worth a row. A new
service that is in neither fails ``test_every_service_is_walked_or_excluded``."""

from __future__ import annotations

import datetime
import importlib
import inspect
import io

import pytest
import time_machine
from django.contrib.auth.models import Group, Permission

from accounts import services as accounts_services
from accounts.models import CustomerAccount
from accounts.roles import MARKETING
from audit.models import AuditEntry
from catalog import services as catalog_services
from catalog.models import AttributeDefinition, Brand, Category, Product, ProductChange, ProductStatus
from merchandising.api.tokens import tracking_token
from merchandising.models import (
    Decision,
    ExclusionRule,
    Link,
    LinkChange,
    LinkType,
    MiningRun,
    MiningSettings,
    PublishState,
    RejectReason,
    ReviewPreference,
    Suggestion,
)
from merchandising.services import events, links, recompute, review, rules, runs
from orders.imports import orders_import
from tests.factories import BrandFactory, CategoryFactory, ProductFactory, UserFactory
from tests.merchandising.factories import (
    CustomerAccountFactory,
    MiningRunFactory,
    SuggestionFactory,
    baskets_create,
)

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.UTC)
T = NOW.isoformat()
C, U, D = AuditEntry.Action.CREATE, AuditEntry.Action.UPDATE, AuditEntry.Action.DELETE

MODULES = (
    "accounts.services",
    "catalog.services",
    "catalog.imports",
    "orders.services",
    "orders.imports",
    "merchandising.services.links",
    "merchandising.services.review",
    "merchandising.services.rules",
    "merchandising.services.runs",
    "merchandising.services.recompute",
    "merchandising.services.events",
    "merchandising.services.backtest",
)

#: Public functions that write no audit row, and why.
EXCLUDED = {
    # Reads and pure helpers.
    "api_key_digest": "pure",
    "api_key_prefix": "pure",
    "attributes_clean": "validation only",
    "category_check_parent": "validation only",
    "category_path_for": "pure",
    "audit_actor": "helper: who a catalog change is recorded as",
    "exclusion_rule_matches": "builds a query",
    "exclusion_rule_preview": "a count",
    "suggestions_bulk_preview": "a count",
    "publish_diff": "read",
    "successor_of": "read",
    "next_position": "read",
    "mining_settings_validate": "validation only",
    "mining_parameters": "read",
    "mining_options": "pure",
    "abandoned_after": "pure",
    "run_before": "pure",
    "engine_exclusions": "pure",
    "pair_accounts": "computation",
    "mining_backtest": "computation: stores nothing",
    # Stamps, not changes anyone makes: a key's last use, a run's heartbeat and progress.
    "api_key_check": "writes only last_used_at (at most once a minute): a usage stamp",
    "api_key_authenticate": "api_key_check after a lookup",
    "run_progress": "heartbeat and progress of a running run",
    "run_progress_add": "progress of a running run",
    # Steps of a run whose audit rows the suggestions_recompute case asserts.
    "suggestions_store": "the last step of a run: walked through suggestions_recompute",
    "suggestions_write_batch": "one batch inside suggestions_store",
    "mining_block_run": "computes one block of a distributed run; stores nothing",
    "mining_blocks_finish": "the distributed run's store: calls suggestions_store (walked) or run_fail (walked)",
    "mining_run_for_task": "the scheduled task's run: mining_run_create (walked) once per task id",
    "link_list_conflict": "read: builds the conflict of a stale reorder",
    # The second factor: the audited change is its set-up and its reset (walked); starting an
    # enrolment and signing in with a code change nothing anyone relies on (failed codes are
    # logged by backoffice.security, django-otp throttles them).
    "user_has_mfa": "read",
    "mfa_enrolment_start": "a pending enrolment: recorded when it is confirmed",
    "mfa_verify": "a sign-in step, not a change",
    "user_sessions_end": "part of user_mfa_reset (walked); its row counts the sessions ended",
}


def public_functions() -> set[str]:
    names = set()
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ == module_name and not name.startswith("_"):
                names.add(name)
    return names


def last_id() -> int:
    return AuditEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def rows_since(since: int) -> list[tuple]:
    return [
        (f"{e.content_type.app_label}.{e.content_type.model}", e.object_pk, e.action, e.actor_label, e.via, e.changes)
        for e in AuditEntry.objects.filter(pk__gt=since).select_related("content_type").order_by("pk")
    ]


def link_created(link: Link, *, position: int | None = None) -> dict:
    return {
        "source": [None, link.source_id],
        "target": [None, link.target_id],
        "type": [None, link.type],
        "position": [None, position if position is not None else link.position],
        "origin": [None, link.origin],
        "suggestion": [None, link.suggestion_id],
        "valid_from": [None, None],
        "valid_until": [None, None],
    }


def generation() -> int:
    return PublishState.load().generation


# --- the cases: each sets up, calls the service between two marks, and returns what it expects -----


class Ctx:
    def __init__(self, specialist, administrator):
        self.spec, self.admin = specialist, administrator
        self.since = 0

    def mark(self) -> None:
        self.since = last_id()


CASES = {}


def case(function):
    CASES[function.__name__.removeprefix("case_")] = function
    return function


# accounts


@case
def case_roles_sync(ctx):
    group = Group.objects.get(name=MARKETING)
    perm = Permission.objects.get(content_type__app_label="catalog", codename="view_brand")
    group.permissions.remove(perm)
    ctx.mark()
    accounts_services.roles_sync(actor="command:setup_roles")
    return [
        (
            "auth.group",
            str(group.pk),
            U,
            "command:setup_roles",
            "command",
            {"permissions": [[], ["catalog.view_brand"]]},
        )
    ]


@case
def case_user_create(ctx):
    ctx.mark()
    user = accounts_services.user_create(username="newbie", password="x-long-pass-1", role=MARKETING, actor=ctx.admin)
    (row,) = rows_since(ctx.since)
    assert row[5]["groups"] == [None, [MARKETING]] and "password" not in row[5]
    assert row[5]["username"] == [None, "newbie"]
    return [("accounts.user", str(user.pk), C, "administrator", "form", row[5])]


@case
def case_user_save(ctx):
    user = UserFactory(username="ed", email="ed@example.com")
    ctx.mark()
    user.email = "ed@example.org"
    accounts_services.user_save(user=user, actor=ctx.admin, groups=[Group.objects.get(name=MARKETING)])
    changes = {"email": ["ed@example.com", "ed@example.org"], "groups": [[], [MARKETING]]}
    return [("accounts.user", str(user.pk), U, "administrator", "form", changes)]


@case
def case_user_password_set(ctx):
    user = UserFactory(username="pw")
    ctx.mark()
    accounts_services.user_password_set(user=user, password="another-pass-22", actor=ctx.admin)
    return [("accounts.user", str(user.pk), U, "administrator", "form", {"password": ["(set)", "(changed)"]})]


@case
def case_user_delete(ctx):
    user = UserFactory(username="gone")
    pk = user.pk
    ctx.mark()
    accounts_services.user_delete(user=user, actor=ctx.admin)
    (row,) = rows_since(ctx.since)
    assert row[5]["username"] == ["gone", None]
    return [("accounts.user", str(pk), D, "administrator", "form", row[5])]


@case
def case_customer_accounts_upsert(ctx):
    BrandFactory(name="Makita")
    old = CustomerAccountFactory(external_id="C1", name="Old name")
    ctx.mark()
    spec = {"segment": "", "industry": "", "brand_mode": "prefer", "excluded_brands": []}
    accounts_services.customer_accounts_upsert(
        accounts=[
            {"external_id": "C1", "name": "New name", "preferred_brands": [], **spec},
            {"external_id": "C2", "name": "Two", "preferred_brands": ["Makita"], **spec},
        ],
        actor="command:import_orders",
    )
    new = CustomerAccount.objects.get(external_id="C2")
    (create, update) = rows_since(ctx.since)
    assert create[5]["preferred_brands"] == [None, ["Makita"]] and create[5]["external_id"] == [None, "C2"]
    return [
        ("accounts.customeraccount", str(new.pk), C, "command:import_orders", "command", create[5]),
        (
            "accounts.customeraccount",
            str(old.pk),
            U,
            "command:import_orders",
            "command",
            {
                "name": ["Old name", "New name"],
                **({"brand_mode": [old.brand_mode, "prefer"]} if old.brand_mode != "prefer" else {}),
            },
        ),
    ]


@case
def case_customer_account_save(ctx):
    account = CustomerAccountFactory(external_id="C7", name="Seven")
    brand = BrandFactory(name="Bosch")
    ctx.mark()
    account.name = "Seven Ltd"
    accounts_services.customer_account_save(account=account, actor=ctx.spec, preferred_brands=[brand])
    changes = {"name": ["Seven", "Seven Ltd"], "preferred_brands": [[], ["Bosch"]]}
    return [("accounts.customeraccount", str(account.pk), U, "specialist", "form", changes)]


@case
def case_customer_accounts_delete(ctx):
    account = CustomerAccountFactory(external_id="C9", name="Nine")
    ctx.mark()
    accounts_services.customer_accounts_delete(
        accounts=CustomerAccount.objects.filter(pk=account.pk), actor=ctx.admin, via="bulk"
    )
    (row,) = rows_since(ctx.since)
    assert row[5]["external_id"] == ["C9", None] and row[5]["name"] == ["Nine", None]
    return [("accounts.customeraccount", str(account.pk), D, "administrator", "bulk", row[5])]


@case
def case_api_client_create(ctx):
    ctx.mark()
    client = accounts_services.api_client_create(name="shop", scopes=["read"], actor=ctx.admin)
    changes = {
        "name": [None, "shop"],
        "scopes": [None, ["read"]],
        "rate_per_minute": [None, None],
        "revoked_at": [None, None],
    }
    return [("accounts.apiclient", str(client.pk), C, "administrator", "form", changes)]


@case
def case_api_client_update(ctx):
    client = accounts_services.api_client_create(name="shop", scopes=["read"], actor=ctx.admin)
    ctx.mark()
    accounts_services.api_client_update(
        client_id=client.pk, scopes=["read", "events"], rate_per_minute=60, actor=ctx.admin
    )
    changes = {"scopes": [["read"], ["read", "events"]], "rate_per_minute": [None, 60]}
    return [("accounts.apiclient", str(client.pk), U, "administrator", "form", changes)]


@case
def case_api_client_revoke(ctx):
    client = accounts_services.api_client_create(name="shop", scopes=["read"], actor=ctx.admin)
    ctx.mark()
    assert accounts_services.api_client_revoke(client_id=client.pk, actor=ctx.admin, via="admin_action")
    assert not accounts_services.api_client_revoke(client_id=client.pk, actor=ctx.admin, via="admin_action")
    return [("accounts.apiclient", str(client.pk), U, "administrator", "admin_action", {"revoked_at": [None, T]})]


@case
def case_api_key_issue(ctx):
    client = accounts_services.api_client_create(name="shop", scopes=["read"], actor=ctx.admin)
    ctx.mark()
    issued = accounts_services.api_key_issue(client=client, actor=ctx.admin)
    changes = {
        "client": [None, client.pk],
        "prefix": [None, issued.key.prefix],
        "expires_at": [None, (NOW + datetime.timedelta(days=365)).isoformat()],  # API_KEY_EXPIRY_DAYS
        "revoked_at": [None, None],
    }
    assert issued.secret not in str(rows_since(ctx.since)) and issued.key.digest not in str(rows_since(ctx.since))
    return [("accounts.apikey", str(issued.key.pk), C, "administrator", "form", changes)]


@case
def case_mfa_enrolment_confirm(ctx):
    from django_otp.oath import totp

    device = accounts_services.mfa_enrolment_start(user=ctx.spec, device_id=None)
    code = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=device.drift):06d}"
    ctx.mark()
    _device, codes = accounts_services.mfa_enrolment_confirm(user=ctx.spec, device_id=device.pk, token=code)
    rows = rows_since(ctx.since)
    assert not any(secret in str(rows) for secret in [*codes, device.key])
    return [("accounts.user", str(ctx.spec.pk), U, "specialist", "form", {"second_factor": ["(none)", "(set up)"]})]


@case
def case_user_mfa_reset(ctx):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    TOTPDevice.objects.create(user=ctx.spec, name="phone", confirmed=True)
    ctx.mark()
    assert accounts_services.user_mfa_reset(user=ctx.spec, actor=ctx.admin, via="admin_action") == 1
    assert accounts_services.user_mfa_reset(user=ctx.spec, actor=ctx.admin, via="admin_action") == 0  # no row
    changes = {"second_factor": ["(set up)", "(reset)"]}
    return [("accounts.user", str(ctx.spec.pk), U, "administrator", "admin_action", changes)]


@case
def case_api_key_revoke(ctx):
    client = accounts_services.api_client_create(name="shop", scopes=["read"], actor=ctx.admin)
    key = accounts_services.api_key_issue(client=client, actor=ctx.admin).key
    ctx.mark()
    assert accounts_services.api_key_revoke(key_id=key.pk, actor=ctx.admin, via="admin_action")
    return [("accounts.apikey", str(key.pk), U, "administrator", "admin_action", {"revoked_at": [None, T]})]


def _schedule():
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.MINUTES)
    return PeriodicTask.objects.create(name="Nightly", task="accounts.ping", interval=every, enabled=True)


@case
def case_periodic_task_save(ctx):
    task = _schedule()
    ctx.mark()
    task.enabled = False
    accounts_services.periodic_task_save(task=task, actor=ctx.admin)
    return [("django_celery_beat.periodictask", str(task.pk), U, "administrator", "form", {"enabled": [True, False]})]


@case
def case_periodic_tasks_set_enabled(ctx):
    from django_celery_beat.models import PeriodicTask

    task = _schedule()
    ctx.mark()
    tasks = PeriodicTask.objects.filter(pk=task.pk)
    assert accounts_services.periodic_tasks_set_enabled(tasks=tasks, enabled=True, actor=ctx.admin) == 0
    assert accounts_services.periodic_tasks_set_enabled(tasks=tasks, enabled=None, actor=ctx.admin, via="admin_action")
    return [
        (
            "django_celery_beat.periodictask",
            str(task.pk),
            U,
            "administrator",
            "admin_action",
            {"enabled": [True, False]},
        )
    ]


@case
def case_periodic_tasks_delete(ctx):
    from django_celery_beat.models import PeriodicTask

    task = _schedule()
    pk = task.pk
    ctx.mark()
    accounts_services.periodic_tasks_delete(tasks=PeriodicTask.objects.filter(pk=pk), actor=ctx.admin)
    (row,) = rows_since(ctx.since)
    assert row[5]["name"] == ["Nightly", None] and row[5]["enabled"] == [True, None]
    return [("django_celery_beat.periodictask", str(pk), D, "administrator", "form", row[5])]


# catalog


@case
def case_brand_save(ctx):
    ctx.mark()
    brand = catalog_services.brand_save(brand=Brand(name="Festool"), actor=ctx.spec)
    brand.name = "Festool GmbH"
    catalog_services.brand_save(brand=brand, actor=ctx.spec)
    return [
        ("catalog.brand", str(brand.pk), C, "specialist", "form", {"name": [None, "Festool"]}),
        ("catalog.brand", str(brand.pk), U, "specialist", "form", {"name": ["Festool", "Festool GmbH"]}),
    ]


@case
def case_brands_delete(ctx):
    brand = BrandFactory(name="Old")
    ctx.mark()
    assert catalog_services.brands_delete(brands=Brand.objects.filter(pk=brand.pk), actor=ctx.spec, via="bulk") == 1
    changes = {"id": [brand.pk, None], "name": ["Old", None], "created_at": [brand.created_at.isoformat(), None]}
    return [("catalog.brand", str(brand.pk), D, "specialist", "bulk", changes)]


@case
def case_attribute_definition_save(ctx):
    ctx.mark()
    definition = catalog_services.attribute_definition_save(
        definition=AttributeDefinition(code="len", label="Length", type="number", unit="mm"), actor=ctx.spec
    )
    (row,) = rows_since(ctx.since)
    assert row[5]["code"] == [None, "len"] and row[5]["unit"] == [None, "mm"]
    return [("catalog.attributedefinition", str(definition.pk), C, "specialist", "form", row[5])]


@case
def case_attribute_definitions_delete(ctx):
    definition = catalog_services.attribute_definition_save(
        definition=AttributeDefinition(code="len", label="Length", type="number"), actor=ctx.spec
    )
    ctx.mark()
    catalog_services.attribute_definitions_delete(
        definitions=AttributeDefinition.objects.filter(pk=definition.pk), actor=ctx.spec
    )
    (row,) = rows_since(ctx.since)
    assert row[5]["code"] == ["len", None]
    return [("catalog.attributedefinition", str(definition.pk), D, "specialist", "form", row[5])]


@case
def case_category_save(ctx):
    tools = CategoryFactory(name="Tools", path="Tools")
    drills = catalog_services.category_save(category=Category(name="Drills", parent=tools), actor=ctx.spec)
    ctx.mark()
    tools.name = "Power tools"
    catalog_services.category_save(category=tools, actor=ctx.spec)
    return [
        (
            "catalog.category",
            str(tools.pk),
            U,
            "specialist",
            "form",
            {"name": ["Tools", "Power tools"], "path": ["Tools", "Power tools"]},
        ),
        (
            "catalog.category",
            str(drills.pk),
            U,
            "specialist",
            "form",
            {"path": ["Tools > Drills", "Power tools > Drills"]},
        ),
    ]


@case
def case_categories_delete(ctx):
    category = CategoryFactory(name="Empty", path="Empty")
    ctx.mark()
    catalog_services.categories_delete(categories=Category.objects.filter(pk=category.pk), actor=ctx.spec)
    (row,) = rows_since(ctx.since)
    assert row[5]["path"] == ["Empty", None]
    return [("catalog.category", str(category.pk), D, "specialist", "form", row[5])]


def _product_history(sku: str) -> dict:
    """The catalog's own history row of the change: the audit row carries the same diff."""
    return ProductChange.objects.filter(sku=sku).latest("pk").changes


@case
def case_product_save(ctx):
    product = ProductFactory(sku="P-1", name="Drill")
    ctx.mark()
    product.name = "Drill 18V"
    catalog_services.product_save(product=product, actor=ctx.spec)
    return [("catalog.product", str(product.pk), U, "specialist", "form", {"name": ["Drill", "Drill 18V"]})]


@case
def case_products_delete(ctx):
    product = ProductFactory(sku="P-2")
    pk = product.pk
    ctx.mark()
    catalog_services.products_delete(products=Product.objects.filter(pk=pk), actor=ctx.spec)
    return [("catalog.product", str(pk), D, "specialist", "form", _product_history("P-2"))]


@case
def case_products_set_status(ctx):
    one, two = ProductFactory(sku="P-3"), ProductFactory(sku="P-4", status=ProductStatus.DISCONTINUED)
    ctx.mark()
    catalog_services.products_set_status(
        products=Product.objects.all(), status=ProductStatus.DISCONTINUED, actor=ctx.spec
    )
    assert two.pk
    return [("catalog.product", str(one.pk), U, "specialist", "bulk", {"status": ["active", "discontinued"]})]


@case
def case_products_set_excluded(ctx):
    product = ProductFactory(sku="P-5")
    ctx.mark()
    catalog_services.products_set_excluded(products=Product.objects.all(), excluded=True, actor=ctx.spec)
    return [
        ("catalog.product", str(product.pk), U, "specialist", "bulk", {"exclude_from_recommendations": [False, True]})
    ]


PRODUCTS_CSV = (
    b"sku,name,brand,category,unit_price,pack_quantity,unit,status\n"
    b"NEW-1,Saw blade,Freud,Tools > Saws,12.50,1,pcs,active\n"
)


@case
def case_products_import(ctx):
    ctx.mark()
    result = catalog_services.products_import(source=io.BytesIO(PRODUCTS_CSV), change_source="command")
    assert (result.created, result.errors) == (1, [])
    product = Product.objects.get(sku="NEW-1")
    brand = Brand.objects.get(name="Freud")
    tools, saws = Category.objects.get(path="Tools"), Category.objects.get(path="Tools > Saws")
    who = ("command:import_products", "command")
    return [
        ("catalog.brand", str(brand.pk), C, *who, {"name": [None, "Freud"]}),
        (
            "catalog.category",
            str(tools.pk),
            C,
            *who,
            {"name": [None, "Tools"], "parent": [None, None], "path": [None, "Tools"]},
        ),
        (
            "catalog.category",
            str(saws.pk),
            C,
            *who,
            {"name": [None, "Saws"], "parent": [None, tools.pk], "path": [None, "Tools > Saws"]},
        ),
        ("catalog.product", str(product.pk), C, *who, _product_history("NEW-1")),
    ]


@case
def case_product_import_preview(ctx):
    ctx.mark()
    upload = catalog_services.product_import_preview(file_name="p.csv", content=PRODUCTS_CSV, actor=ctx.spec)
    assert Product.objects.count() == 0
    changes = {"file_name": [None, "p.csv"], "status": [None, "previewed"]}
    return [("catalog.productimport", str(upload.pk), C, "specialist", "import", changes)]


@case
def case_product_import_apply(ctx):
    upload = catalog_services.product_import_preview(file_name="p.csv", content=PRODUCTS_CSV, actor=ctx.spec)
    ctx.mark()
    catalog_services.product_import_apply(product_import=upload, actor=ctx.spec)
    product = Product.objects.get(sku="NEW-1")
    rows = rows_since(ctx.since)
    assert [row[:5] for row in rows[:3]] == [
        ("catalog.brand", str(Brand.objects.get().pk), C, "specialist", "import"),
        ("catalog.category", str(Category.objects.get(path="Tools").pk), C, "specialist", "import"),
        ("catalog.category", str(Category.objects.get(path="Tools > Saws").pk), C, "specialist", "import"),
    ]
    return [
        *rows[:3],
        ("catalog.product", str(product.pk), C, "specialist", "import", _product_history("NEW-1")),
        ("catalog.productimport", str(upload.pk), U, "specialist", "import", {"status": ["previewed", "applied"]}),
    ]


# orders


@case
def case_orders_import(ctx):
    ProductFactory(sku="A-1")
    ProductFactory(sku="A-2")
    csv = (
        b"order_id,account_id,ordered_at,sku,quantity,unit_price\n"
        b"O-1,C-1,2026-05-01T10:00:00+00:00,A-1,2,1.00\n"
        b"O-1,C-1,2026-05-01T10:00:00+00:00,A-2,1,3.00\n"
    )
    ctx.mark()
    result = orders_import(source=io.BytesIO(csv))
    assert result.applied and result.orders_created == 1
    counts = {
        "rows": 2, "orders_created": 1, "orders_existing": 0, "lines_created": 2, "lines_merged": 0,
        "orders_spread": 0, "orders_anonymous": 0, "accounts_created": 1, "credit_note_rows": 0, "return_rows": 0,
        "non_product_rows": 0, "repeated_rows": 0, "rejected_rows": 0, "rejected_orders": 0,
    }  # fmt: skip
    changes = {name: [None, value] for name, value in counts.items()}
    return [("orders.order", "", C, "command:import_orders", "import", changes)]


# merchandising: runs


@case
def case_mining_run_create(ctx):
    ctx.mark()
    run = runs.mining_run_create(trigger=MiningRun.Trigger.COMMAND)
    changes = {
        "trigger": [None, "command"],
        "status": [None, "queued"],
        "parameters": [None, run.parameters],
        "started_by": [None, None],
    }
    return [("merchandising.miningrun", str(run.pk), C, "command:mine_suggestions", "command", changes)]


@case
def case_mining_run_request(ctx):
    ctx.mark()
    run = runs.mining_run_request(actor=ctx.admin)  # the task is sent on commit: never, in this test
    changes = {
        "trigger": [None, "manual"],
        "status": [None, "queued"],
        "parameters": [None, run.parameters],
        "started_by": [None, ctx.admin.pk],
    }
    return [("merchandising.miningrun", str(run.pk), C, "administrator", "form", changes)]


@case
def case_run_claim(ctx):
    run = MiningRunFactory(status=MiningRun.Status.QUEUED)
    ctx.mark()
    assert runs.run_claim(run=run, task_id="t-1")
    assert runs.run_claim(run=run, task_id="t-1")  # its message delivered again: a take-over
    row = ("merchandising.miningrun", str(run.pk), U, f"task:{run.pk}", "task")
    return [
        (*row, {"status": ["queued", "running"], "attempt": [0, 1], "task_id": ["", "t-1"]}),
        (*row, {"status": ["running", "running"], "attempt": [1, 2]}),
    ]


@case
def case_run_fail(ctx):
    run = MiningRunFactory(status=MiningRun.Status.RUNNING)
    ctx.mark()
    runs.run_fail(run_id=run.pk, exc=RuntimeError("disk full"))
    changes = {"status": ["running", "failed"], "error": ["", "RuntimeError: disk full"]}
    return [("merchandising.miningrun", str(run.pk), U, f"task:{run.pk}", "task", changes)]


@case
def case_mining_runs_sweep(ctx):
    lost = MiningRunFactory(status=MiningRun.Status.RUNNING, trigger=MiningRun.Trigger.MANUAL)
    stale = NOW - runs.abandoned_after() - datetime.timedelta(seconds=1)
    MiningRun.objects.filter(pk=lost.pk).update(heartbeat_at=stale)
    ctx.mark()
    (retry,) = runs.mining_runs_sweep()  # the task is sent on commit: never, in this test
    lost.refresh_from_db()
    error = lost.error  # the final one, with the retry's number
    assert error.endswith(f" Queued again as run #{retry.pk}.")
    return [
        ("merchandising.miningrun", str(lost.pk), U, "task:sweep_mining_runs", "task",
         {"status": ["running", "failed"], "error": ["", error]}),
        ("merchandising.miningrun", str(retry.pk), C, "task:sweep_mining_runs", "task",
         {"status": [None, "queued"], "retry_of": [None, lost.pk], "trigger": [None, "manual"]}),
    ]  # fmt: skip


@case
def case_run_give_up(ctx):
    run = MiningRunFactory(status=MiningRun.Status.RUNNING)
    ctx.mark()
    assert runs.run_give_up(run_id=run.pk, task_name="merchandising.recompute_suggestions", deliveries=4)
    run.refresh_from_db()
    changes = {"status": ["running", "failed"], "error": ["", run.error]}
    return [("merchandising.miningrun", str(run.pk), U, f"task:{run.pk}", "task", changes)]


@case
def case_mining_run_mark_failed(ctx):
    run = MiningRunFactory(status=MiningRun.Status.RUNNING)
    ctx.mark()
    assert runs.mining_run_mark_failed(run_id=run.pk, actor=ctx.admin)
    run.refresh_from_db()
    changes = {"status": ["running", "failed"], "error": ["", run.error]}
    return [("merchandising.miningrun", str(run.pk), U, "administrator", "admin_action", changes)]


@case
def case_suggestions_recompute(ctx):
    a, b = ProductFactory(), ProductFactory()
    baskets_create([[a, b]] * 3)
    ctx.mark()
    run = recompute.suggestions_recompute(
        trigger=MiningRun.Trigger.COMMAND, overrides={"min_count": 2, "min_confidence": 0.0, "min_lift": 0.0}
    )
    assert run.status == MiningRun.Status.SUCCEEDED, run.error
    store = AuditEntry.objects.filter(pk__gt=ctx.since).latest("pk")
    assert store.additional_data == {
        "suggestions_new": 2, "suggestions_updated": 0, "suggestions_unchanged": 0, "suggestions_stale": 0,
    }  # fmt: skip
    created = rows_since(ctx.since)[0]
    return [
        ("merchandising.miningrun", str(run.pk), C, "command:mine_suggestions", "command", created[5]),
        ("merchandising.miningrun", str(run.pk), U, f"task:{run.pk}", "task",
         {"status": ["queued", "running"], "attempt": [0, 1]}),
        ("merchandising.miningrun", str(run.pk), U, f"task:{run.pk}", "task", {"status": ["running", "succeeded"]}),
    ]


# merchandising: settings and rules


@case
def case_mining_settings_update(ctx):
    settings = MiningSettings.load()
    old = settings.min_count
    ctx.mark()
    settings.min_count = old + 3
    rules.mining_settings_update(settings=settings, actor=ctx.admin)
    return [("merchandising.miningsettings", "1", U, "administrator", "form", {"min_count": [old, old + 3]})]


@case
def case_exclusion_rule_save(ctx):
    rule = ExclusionRule.objects.create(
        kind=ExclusionRule.Kind.BRAND, brand=BrandFactory(), reason="old", created_by=ctx.spec
    )
    ctx.mark()
    rule.reason = "fees, not products"
    rules.exclusion_rule_save(rule=rule, actor=ctx.spec)
    return [
        (
            "merchandising.exclusionrule",
            str(rule.pk),
            U,
            "specialist",
            "form",
            {"reason": ["old", "fees, not products"]},
        )
    ]


# merchandising: review


def _suggestion() -> Suggestion:
    return SuggestionFactory(last_run=MiningRunFactory())


@case
def case_suggestion_approve(ctx):
    suggestion = _suggestion()
    g = generation()
    ctx.mark()
    outcome = review.suggestion_approve(suggestion_id=suggestion.pk, actor=ctx.spec)
    link = outcome.decision.link
    return [
        ("merchandising.link", str(link.pk), C, "specialist", "form", link_created(link)),
        (
            "merchandising.suggestion",
            str(suggestion.pk),
            U,
            "specialist",
            "form",
            {"status": ["pending", "approved"], "decided_by": [None, ctx.spec.pk]},
        ),
        ("merchandising.publishstate", "1", U, "specialist", "form", {"generation": [g, g + 1]}),
    ]


@case
def case_suggestion_reject(ctx):
    suggestion = _suggestion()
    ctx.mark()
    review.suggestion_reject(suggestion_id=suggestion.pk, actor=ctx.spec, reason=RejectReason.OTHER, note="no")
    changes = {
        "status": ["pending", "rejected"],
        "decided_by": [None, ctx.spec.pk],
        "reject_reason": ["", "other"],
        "reject_note": ["", "no"],
    }
    return [("merchandising.suggestion", str(suggestion.pk), U, "specialist", "form", changes)]


@case
def case_suggestion_snooze(ctx):
    suggestion = _suggestion()
    earlier = suggestion.last_run_id
    ctx.mark()
    review.suggestion_snooze(suggestion_id=suggestion.pk, actor=ctx.spec)
    later = MiningRunFactory().pk  # a newer run: the suggestion is back in the queue, snoozed again
    review.suggestion_snooze(suggestion_id=suggestion.pk, actor=ctx.spec)
    row = ("merchandising.suggestion", str(suggestion.pk), U, "specialist", "form")
    return [(*row, {"snoozed_run": [None, earlier]}), (*row, {"snoozed_run": [earlier, later]})]


@case
def case_suggestions_bulk_decide(ctx):
    one, two = _suggestion(), _suggestion()
    ctx.mark()
    review.suggestions_bulk_decide(
        suggestion_ids=[one.pk, two.pk],
        action=Decision.Action.REJECT,
        actor=ctx.spec,
        reason=RejectReason.OTHER,
        note="x",
    )
    changes = {
        "status": ["pending", "rejected"],
        "decided_by": [None, ctx.spec.pk],
        "reject_reason": ["", "other"],
        "reject_note": ["", "x"],
    }
    return [
        ("merchandising.suggestion", str(one.pk), U, "specialist", "bulk", changes),
        ("merchandising.suggestion", str(two.pk), U, "specialist", "bulk", changes),
    ]


@case
def case_links_create_from_suggestions(ctx):
    suggestion = _suggestion()
    row = {
        "pk": suggestion.pk, "source_id": suggestion.source_id, "target_id": suggestion.target_id,
        "co_count": 5, "confidence": 0.5, "lift": 2.0, "last_run_id": suggestion.last_run_id,
    }  # fmt: skip
    ctx.mark()
    new = links.links_create_from_suggestions(
        rows=[row], link_type=LinkType.CROSS_SELL, actor=ctx.spec, via=LinkChange.Via.BULK
    )
    link = new[suggestion.pk]
    return [("merchandising.link", str(link.pk), C, "specialist", "bulk", link_created(link))]


def _rule_with_rejections(ctx) -> tuple[ExclusionRule, Suggestion]:
    brand = BrandFactory()
    suggestion = SuggestionFactory(source=ProductFactory(brand=brand), last_run=MiningRunFactory())
    outcome = review.exclusion_rule_create(
        rule=ExclusionRule(kind=ExclusionRule.Kind.BRAND, brand=brand, reason="fees"), actor=ctx.spec
    )
    return outcome.rule, suggestion


@case
def case_exclusion_rule_create(ctx):
    brand = BrandFactory()
    suggestion = SuggestionFactory(source=ProductFactory(brand=brand), last_run=MiningRunFactory())
    ctx.mark()
    rule = review.exclusion_rule_create(
        rule=ExclusionRule(kind=ExclusionRule.Kind.BRAND, brand=brand, reason="fees"), actor=ctx.spec
    ).rule
    created = rows_since(ctx.since)[0][5]
    assert created["brand"] == [None, brand.pk] and created["reason"] == [None, "fees"]
    rejected = {
        "status": ["pending", "rejected"],
        "decided_by": [None, ctx.spec.pk],
        "reject_reason": ["", "excluded"],
        "reject_note": ["", "fees"],
        "rule": [None, rule.pk],
    }
    return [
        ("merchandising.exclusionrule", str(rule.pk), C, "specialist", "form", created),
        ("merchandising.suggestion", str(suggestion.pk), U, "specialist", "form", rejected),
    ]


@case
def case_exclusion_rule_delete(ctx):
    rule, suggestion = _rule_with_rejections(ctx)
    decision = Decision.objects.get(rule=rule)
    ctx.mark()
    assert review.exclusion_rule_delete(rule_id=rule.pk, actor=ctx.admin) == 1
    deleted = rows_since(ctx.since)[2][5]
    assert deleted["reason"] == ["fees", None]
    return [
        (
            "merchandising.suggestion",
            str(suggestion.pk),
            U,
            "administrator",
            "form",
            {"status": ["rejected", "pending"], "reject_reason": ["excluded", ""]},
        ),
        ("merchandising.decision", str(decision.pk), U, "administrator", "form", {"undone_at": [None, T]}),
        ("merchandising.exclusionrule", str(rule.pk), D, "administrator", "form", deleted),
    ]


@case
def case_decision_undo(ctx):
    suggestion = _suggestion()
    decision = review.suggestion_reject(
        suggestion_id=suggestion.pk, actor=ctx.spec, reason=RejectReason.OTHER, note="n"
    ).decision
    ctx.mark()
    review.decision_undo(actor=ctx.spec)
    return [
        (
            "merchandising.suggestion",
            str(suggestion.pk),
            U,
            "specialist",
            "form",
            {"status": ["rejected", "pending"], "decided_by": [ctx.spec.pk, None]},
        ),
        ("merchandising.decision", str(decision.pk), U, "specialist", "form", {"undone_at": [None, T]}),
    ]


@case
def case_review_filters_save(ctx):
    ctx.mark()
    review.review_filters_save(user=ctx.spec, filters={"brand": "Makita"})
    preference = ReviewPreference.objects.get(user=ctx.spec)
    return [
        (
            "merchandising.reviewpreference",
            str(preference.pk),
            C,
            "specialist",
            "form",
            {"filters": [None, {"brand": "Makita"}]},
        )
    ]


# merchandising: links and publishing


def _manual_link(ctx, source=None, **kwargs) -> Link:
    return links.link_add(
        source=source or ProductFactory(),
        target=ProductFactory(),
        link_type=LinkType.ACCESSORY,
        actor=ctx.spec,
        **kwargs,
    )


@case
def case_link_add(ctx):
    source = ProductFactory()
    first = _manual_link(ctx, source=source)
    g = generation()
    ctx.mark()
    link = _manual_link(ctx, source=source, position=1)
    return [
        ("merchandising.link", str(link.pk), C, "specialist", "form", link_created(link, position=1)),
        ("merchandising.link", str(first.pk), U, "specialist", "form", {"position": [1, 2]}),
        ("merchandising.publishstate", "1", U, "specialist", "form", {"generation": [g, g + 1]}),
    ]


@case
def case_link_retire(ctx):
    source = ProductFactory()
    first, second = _manual_link(ctx, source=source), _manual_link(ctx, source=source)
    g = generation()
    ctx.mark()
    links.link_retire(link_id=first.pk, actor=ctx.spec, reason="wrong")
    return [
        (
            "merchandising.link",
            str(first.pk),
            U,
            "specialist",
            "form",
            {"retired_at": [None, T], "retired_by": [None, ctx.spec.pk], "retire_reason": ["", "wrong"]},
        ),
        ("merchandising.link", str(second.pk), U, "specialist", "form", {"position": [2, 1]}),
        ("merchandising.publishstate", "1", U, "specialist", "form", {"generation": [g, g + 1]}),
    ]


@case
def case_link_keep(ctx):
    link = _manual_link(ctx)
    ctx.mark()
    links.link_keep(link_id=link.pk, actor=ctx.spec)
    return [("merchandising.link", str(link.pk), U, "specialist", "form", {"attention_dismissed_at": [None, T]})]


@case
def case_links_reorder(ctx):
    source = ProductFactory()
    first, second = _manual_link(ctx, source=source), _manual_link(ctx, source=source)
    g = generation()
    ctx.mark()
    links.links_reorder(source=source, link_type=LinkType.ACCESSORY, link_ids=[second.pk, first.pk], actor=ctx.spec)
    return [
        ("merchandising.link", str(second.pk), U, "specialist", "form", {"position": [2, 1]}),
        ("merchandising.link", str(first.pk), U, "specialist", "form", {"position": [1, 2]}),
        ("merchandising.publishstate", "1", U, "specialist", "form", {"generation": [g, g + 1]}),
    ]


@case
def case_link_replace_by_successor(ctx):
    old_target, successor = ProductFactory(), ProductFactory()
    links.link_add(source=old_target, target=successor, link_type=LinkType.SUCCESSOR, actor=ctx.spec)
    link = links.link_add(source=ProductFactory(), target=old_target, link_type=LinkType.ACCESSORY, actor=ctx.spec)
    g = generation()
    ctx.mark()
    new = links.link_replace_by_successor(link_id=link.pk, actor=ctx.spec)
    return [
        (
            "merchandising.link",
            str(link.pk),
            U,
            "specialist",
            "form",
            {
                "retired_at": [None, T],
                "retired_by": [None, ctx.spec.pk],
                "retire_reason": ["", "replaced by successor"],
            },
        ),
        ("merchandising.link", str(new.pk), C, "specialist", "form", link_created(new)),
        ("merchandising.publishstate", "1", U, "specialist", "form", {"generation": [g, g + 1]}),
    ]


@case
def case_publish_settings_update(ctx):
    ctx.mark()
    links.publish_settings_update(batch_mode=True, actor=ctx.admin)
    return [("merchandising.publishstate", "1", U, "administrator", "form", {"batch_mode": [False, True]})]


@case
def case_links_publish(ctx):
    links.publish_settings_update(batch_mode=True, actor=ctx.admin)
    _manual_link(ctx)
    g = generation()
    ctx.mark()
    links.links_publish(actor=ctx.admin, batch=True)
    entry = AuditEntry.objects.latest("pk")
    assert entry.additional_data == {
        "added": 1,
        "removed": 0,
        "reordered": 0,
        "changed": 0,
        "batch": True,
        "sources": "all",
    }
    return [("merchandising.publishstate", "1", U, "administrator", "form", {"generation": [g, g + 1]})]


@case
def case_publish_after_change(ctx):
    links.publish_settings_update(batch_mode=True, actor=ctx.admin)
    link = _manual_link(ctx)
    ctx.mark()
    assert links.publish_after_change(actor=ctx.spec, sources=[link.source_id]) is None
    PublishState.objects.update(batch_mode=False)
    g = generation()
    links.publish_after_change(actor=ctx.spec, sources=[link.source_id])
    return [("merchandising.publishstate", "1", U, "specialist", "form", {"generation": [g, g + 1]})]


@case
def case_published_links_refresh(ctx):
    link = _manual_link(ctx)
    Product.objects.filter(pk=link.target_id).update(status=ProductStatus.DISCONTINUED)
    ctx.mark()
    assert links.published_links_refresh() == 1
    entry = AuditEntry.objects.latest("pk")
    assert entry.additional_data == {"links_visible_again": 0, "links_hidden": 1, "on": NOW.date().isoformat()}
    return [("merchandising.publishstate", "1", U, "task:published_links_refresh", "task", {})]


# merchandising: the webshop's events


@case
def case_events_ingest(ctx):
    client = accounts_services.api_client_create(name="shop", scopes=["events"], actor=ctx.admin)
    token = tracking_token(link_id=7, generation=3, source_id=11, target_id=12, touchpoint="product_page")
    event = {"event_id": "e-1", "type": "impression", "token": token, "occurred_at": "2026-06-01T13:55:00+02:00"}
    ctx.mark()
    result = events.events_ingest(events=[event, event], client_id=client.pk, actor=client, now=NOW)
    assert (result.accepted, result.duplicates) == (1, 1)
    entry = AuditEntry.objects.latest("pk")
    assert entry.additional_data == {"duplicates": 1, "rejected": 0}
    return [("merchandising.webshopevent", "", C, "api:shop", "api", {"stored": [None, 1]})]


# --- the tests --------------------------------------------------------------------------------------


def test_every_service_is_walked_or_excluded():
    functions = public_functions()
    assert not set(CASES) & set(EXCLUDED)
    assert sorted(functions - set(CASES) - set(EXCLUDED)) == [], "a service without an audit case"
    assert sorted((set(CASES) | set(EXCLUDED)) - functions) == [], "a case for a function that is gone"


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_service_leaves_exactly_its_audit_rows(name, specialist, administrator):
    with time_machine.travel(NOW, tick=False):
        ctx = Ctx(specialist, administrator)
        expected = CASES[name](ctx)
        assert rows_since(ctx.since) == expected


def test_a_rolled_back_change_leaves_no_history(specialist):
    product = ProductFactory(sku="P-9", name="Drill")
    since = last_id()
    product.name = ""  # refused by full_clean: the whole service rolls back
    with pytest.raises(Exception):  # noqa: B017, PT011 - ValidationError
        catalog_services.product_save(product=product, actor=specialist)
    assert rows_since(since) == []
