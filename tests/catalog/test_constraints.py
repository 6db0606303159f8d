"""What must always hold is enforced by the database, whatever path the write takes."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from catalog.models import Brand, Category, Product
from tests.factories import BrandFactory, CategoryFactory, ProductFactory

pytestmark = pytest.mark.django_db


def refused(**kwargs) -> bool:
    try:
        with transaction.atomic():
            ProductFactory(**kwargs)
    except IntegrityError:
        return True
    return False


def test_unique_sku():
    ProductFactory(sku="A-1")
    assert refused(sku="A-1")
    assert Product.objects.filter(sku="A-1").count() == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [("unit_price", Decimal("-0.01")), ("pack_quantity", 0), ("status", "archived"), ("sku", "")],
)
def test_check_constraints(field, value):
    assert refused(**{field: value})
    assert Product.objects.count() == 0


def test_zero_price_is_allowed():
    assert not refused(unit_price=Decimal("0"))


def test_no_product_as_its_own_base():
    product = ProductFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.filter(pk=product.pk).update(base_id=product.pk)
    product.refresh_from_db()
    assert product.base_id is None


def test_base_cannot_be_a_variant():
    base = ProductFactory()
    variant = ProductFactory(base=base)
    with pytest.raises(IntegrityError, match="one level of base product only"), transaction.atomic():
        ProductFactory(base=variant)
    with pytest.raises(IntegrityError, match="one level of base product only"), transaction.atomic():
        Product.objects.filter(pk=ProductFactory().pk).update(base=variant)
    assert Product.objects.filter(base__isnull=False).count() == 1


def test_product_with_variants_cannot_become_a_variant():
    other = ProductFactory()
    base = ProductFactory()
    ProductFactory(base=base)
    with pytest.raises(IntegrityError, match="one level of base product only"), transaction.atomic():
        Product.objects.filter(pk=base.pk).update(base=other)
    base.refresh_from_db()
    assert base.base_id is None


def test_one_level_trigger_exists():
    """Guards against a later migration that rebuilds the table on SQLite and drops the trigger."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'catalog_product'")
        else:
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'catalog_product'::regclass AND NOT tgisinternal"
            )
        names = sorted(row[0] for row in cursor.fetchall())
    expected = (
        ["catalog_product_one_level_base_insert", "catalog_product_one_level_base_update"]
        if connection.vendor == "sqlite"
        else ["catalog_product_one_level_base"]
    )
    assert names == expected


def test_brand_names_unique_ignoring_case():
    BrandFactory(name="Bosch")
    with pytest.raises(IntegrityError), transaction.atomic():
        Brand.objects.create(name="BOSCH")
    assert Brand.objects.count() == 1


def test_category_names_unique_per_parent_including_roots():
    root = CategoryFactory(name="Tools", path="Tools")
    with pytest.raises(IntegrityError), transaction.atomic():
        Category.objects.create(name="Tools", path="Tools again")
    Category.objects.create(name="Drills", parent=root, path="Tools > Drills")
    with pytest.raises(IntegrityError), transaction.atomic():
        Category.objects.create(name="Drills", parent=root, path="Tools > Drills 2")
    with pytest.raises(IntegrityError), transaction.atomic():
        Category.objects.create(name="A > B", path="A > B")
    assert Category.objects.count() == 2
