import random
from collections import Counter, defaultdict
from dataclasses import replace
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import User
from accounts.roles import ADMINISTRATOR, MARKETING, PRODUCT_SPECIALIST
from catalog import demo
from catalog.demo import BRANDS, DEMO_PASSWORD, catalog_products, demo_seed
from catalog.models import AttributeDefinition, Brand, Category, ChangeSource, Product, ProductChange

# What the generator defines (catalog.demo.LINES); a change to the lines must update these.
PRODUCTS = 2000
VARIANTS = 1019
FAMILIES = 490  # base products with pack variants: 451 with two variants, 39 with three
CATEGORIES = 71
ATTRIBUTE_DEFINITIONS = 10
STATUSES = {"active": 1857, "discontinued": 100, "draft": 43}
EXCLUDED = 62
DEMO_USERS = {"specialist": PRODUCT_SPECIALIST, "marketing": MARKETING, "admin": ADMINISTRATOR}


def seed(settings, *, debug: bool) -> str:
    settings.DEBUG = debug
    out = StringIO()
    call_command("seed_demo", "--orders", "0", stdout=out)
    return out.getvalue()


def depth(path: str) -> int:
    return path.count(" > ") + 1


def test_catalog_products_are_deterministic_and_ignore_the_global_random():
    random.seed(1)
    first = catalog_products()
    random.seed(2)
    second = catalog_products()

    assert first == second
    assert len(first) == PRODUCTS
    assert len({product.sku for product in first}) == PRODUCTS
    assert len({product.name for product in first}) == PRODUCTS


@pytest.mark.django_db
def test_seed_demo_without_debug_builds_the_catalog_but_no_users(settings):
    output = seed(settings, debug=False)

    assert User.objects.count() == 0
    assert "Demo users skipped: DEBUG is off" in output
    assert "Log in" not in output

    assert f"Demo catalog ({PRODUCTS} products): {PRODUCTS} created, 0 updated, 0 unchanged, 0 already there" in output
    assert Product.objects.count() == PRODUCTS
    assert Product.objects.filter(base__isnull=False).count() == VARIANTS
    assert sorted(Brand.objects.values_list("name", flat=True)) == sorted(BRANDS)
    assert len(BRANDS) == 25
    assert Category.objects.count() == CATEGORIES
    assert AttributeDefinition.objects.count() == ATTRIBUTE_DEFINITIONS
    assert dict(Counter(Product.objects.values_list("status", flat=True))) == STATUSES
    assert Product.objects.filter(exclude_from_recommendations=True).count() == EXCLUDED

    # The tree is 2 to 3 levels deep, and products sit on its leaves only.
    paths = list(Category.objects.values_list("path", flat=True))
    parents = set(Category.objects.filter(parent__isnull=False).values_list("parent__path", flat=True))
    leaves = [path for path in paths if path not in parents]
    assert max(depth(path) for path in paths) == 3
    assert {depth(path) for path in leaves} == {2, 3}
    assert set(Product.objects.values_list("category__path", flat=True)) == set(leaves)

    # Pack families: the base is not a variant, is the smallest pack, and every bigger pack
    # is strictly cheaper per unit.
    families: dict[int, list[Product]] = defaultdict(list)
    for product in Product.objects.select_related("base"):
        if product.base_id is not None:
            assert product.base.base_id is None, product.sku
            families[product.base_id].append(product)
    assert len(families) == FAMILIES
    assert Counter(len(variants) for variants in families.values()) == {2: 451, 3: 39}
    bases = Product.objects.in_bulk(list(families))
    for base_id, variants in families.items():
        family = sorted([bases[base_id], *variants], key=lambda product: product.pack_quantity)
        assert family[0] == bases[base_id]
        per_unit = [product.price_per_unit for product in family]
        assert per_unit == sorted(per_unit, reverse=True) and len(set(per_unit)) == len(per_unit), family

    # Attributes arrive typed, as the generator meant them.
    drill = Product.objects.get(sku="DRL-0001")
    assert drill.attributes == {"cordless": True, "voltage": 12}
    assert drill.unit_price == Decimal("152.61")
    screws = Product.objects.get(sku="FWS-0001-500")
    assert screws.base.sku == "FWS-0001"
    assert screws.attributes == {"diameter_mm": 3, "length_mm": 25, "material": "yellow zinc-plated steel"}

    # Recorded like any import, as demo data.
    changes = ProductChange.objects.all()
    assert changes.count() == PRODUCTS
    assert set(changes.values_list("source", "reference", "action", "actor")) == {
        (ChangeSource.DEMO, "seed_demo", ProductChange.Action.CREATED, None)
    }


@pytest.mark.django_db
def test_seed_demo_twice_gives_the_same_counts_and_changes_nothing():
    first = demo_seed(users=True)
    updated_at = dict(Product.objects.values_list("sku", "updated_at"))
    history = ProductChange.objects.count()
    users = User.objects.count()

    second = demo_seed(users=True)

    assert (first["created"], first["updated"], first["unchanged"], first["skipped"]) == (PRODUCTS, 0, 0, 0)
    assert (second["created"], second["updated"], second["unchanged"], second["skipped"]) == (0, 0, 0, PRODUCTS)
    counts = ("products", "variants", "brands", "categories", "attribute_definitions")
    assert {key: second[key] for key in counts} == {key: first[key] for key in counts}
    assert {key: first[key] for key in counts} == {
        "products": PRODUCTS,
        "variants": VARIANTS,
        "brands": 25,
        "categories": CATEGORIES,
        "attribute_definitions": ATTRIBUTE_DEFINITIONS,
    }
    assert (first["users_created"], second["users_created"]) == (list(DEMO_USERS), [])
    assert second["users_existing"] == list(DEMO_USERS)
    assert User.objects.count() == users == 3
    assert ProductChange.objects.count() == history == PRODUCTS
    assert dict(Product.objects.values_list("sku", "updated_at")) == updated_at


@pytest.mark.django_db
def test_with_debug_one_user_per_role_who_can_log_in(settings, client):
    output = seed(settings, debug=True)

    assert "Demo users created: specialist (Product specialist), marketing (Marketing), admin (Administrator)." in (
        output
    )
    assert f'as "specialist" with password "{DEMO_PASSWORD}"' in output
    users = {user.username: user for user in User.objects.prefetch_related("groups")}
    assert set(users) == set(DEMO_USERS)
    for username, role in DEMO_USERS.items():
        user = users[username]
        assert [group.name for group in user.groups.all()] == [role]
        assert (user.is_active, user.is_staff, user.is_superuser) == (True, True, False)
        assert user.check_password(DEMO_PASSWORD)
    response = client.post("/admin/login/", {"username": "specialist", "password": DEMO_PASSWORD, "next": "/admin/"})
    assert (response.status_code, response.url) == (302, "/admin/")
    assert client.session["_auth_user_id"] == str(users["specialist"].pk)


@pytest.mark.django_db
def test_existing_demo_user_is_left_alone(settings, specialist):
    output = seed(settings, debug=True)

    specialist.refresh_from_db()
    assert specialist.check_password("correct-horse-battery")
    assert not specialist.check_password(DEMO_PASSWORD)
    assert [group.name for group in specialist.groups.all()] == [PRODUCT_SPECIALIST]
    assert sorted(User.objects.values_list("username", flat=True)) == ["admin", "marketing", "specialist"]
    assert "Demo users already there, left unchanged: specialist." in output


@pytest.mark.django_db
def test_a_refused_catalog_raises_and_writes_nothing(settings, monkeypatch):
    good = catalog_products()[:3]
    bad = [good[0], replace(good[1], unit_price=Decimal("-1")), good[2]]
    monkeypatch.setattr(demo, "catalog_products", lambda: bad)

    with pytest.raises(CommandError) as raised:
        seed(settings, debug=True)

    assert "line 3: unit_price -1.00 is negative" in str(raised.value)
    assert Product.objects.count() == 0
    assert AttributeDefinition.objects.count() == 0
    assert User.objects.count() == 0


@pytest.mark.django_db
def test_seed_demo_keeps_edits_unless_reset():
    demo_seed(users=False)
    product = Product.objects.order_by("sku").first()
    original_name = product.name
    Product.objects.filter(pk=product.pk).update(name="Edited while trying the demo")

    again = demo_seed(users=False)
    assert (again["created"], again["updated"], again["skipped"]) == (0, 0, PRODUCTS)
    assert Product.objects.get(pk=product.pk).name == "Edited while trying the demo"

    reset = demo_seed(users=False, reset=True)
    assert (reset["created"], reset["updated"], reset["unchanged"], reset["skipped"]) == (0, 1, PRODUCTS - 1, 0)
    assert Product.objects.get(pk=product.pk).name == original_name


@pytest.mark.django_db
def test_seed_demo_with_orders_fills_the_review_queue_and_is_idempotent():
    from accounts.models import CustomerAccount
    from merchandising.models import Link, MiningRun, PublishedLink, Suggestion
    from orders.models import Order, OrderLine

    first = demo_seed(users=False, orders=1500)
    assert (first["accounts"], first["orders_created"]) == (300, 1500)
    assert CustomerAccount.objects.count() == 300
    assert Order.objects.count() == 1500
    assert OrderLine.objects.count() == first["order_lines"]
    run = first["run"]
    assert run.status == MiningRun.Status.SUCCEEDED
    assert run.orders == 1500
    suggestions = Suggestion.objects.count()
    assert suggestions == run.suggestions_new > 0
    # The demo review: some approvals (published links), rejections and manual links.
    review = first["review"]
    assert review["approved"] > 0 and review["rejected"] == 8 and review["manual_links"] == 12
    assert Suggestion.objects.filter(status="approved").count() == review["approved"]
    assert Suggestion.objects.filter(status="rejected").count() == review["rejected"]
    assert Suggestion.objects.pending_review().count() == suggestions - review["approved"] - review["rejected"]
    assert Link.objects.count() == PublishedLink.objects.published().count() == review["approved"] + 12
    assert Link.objects.needs_attention().count() == 1  # the accessory link to a discontinued product
    assert first["planted_recall"]["pairs"] == 56

    second = demo_seed(users=False, orders=1500)
    assert (second["orders_created"], second["order_lines"]) == (0, 0)
    assert second["run"].status == MiningRun.Status.SUCCEEDED
    assert (second["run"].suggestions_new, second["run"].suggestions_unchanged) == (0, suggestions)
    assert second["planted_recall"] == first["planted_recall"]
    assert second["review"] == {"approved": 0, "rejected": 0, "manual_links": 0}
    assert Link.objects.count() == review["approved"] + 12
    assert Order.objects.count() == 1500
