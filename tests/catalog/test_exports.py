"""Products CSV export: the exact format, formula escaping, the round trip through the import,
the command and the admin download."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse

from catalog import csv_format as fmt
from catalog.exports import products_export
from catalog.imports import products_import
from catalog.models import AttributeType, Category, Product, ProductChange, ProductStatus
from catalog.services import category_save
from tests.factories import AttributeDefinitionFactory, BrandFactory, CategoryFactory, ProductFactory

pytestmark = pytest.mark.django_db

HEADER = (
    "sku,name,brand,category,unit_price,pack_quantity,unit,status,base_sku,description,exclude_from_recommendations"
)


def export_text(queryset=None) -> str:
    out = io.StringIO()
    products_export(queryset=Product.objects.all() if queryset is None else queryset, out=out)
    return out.getvalue()


def reimport(text: str):
    return products_import(source=io.BytesIO(text.encode("utf-8")))


def snapshot() -> dict[str, tuple]:
    return {
        p.sku: (
            p.name,
            p.brand_id,
            p.category_id,
            p.unit_price,
            p.pack_quantity,
            p.unit,
            p.status,
            p.base_id,
            p.description,
            p.exclude_from_recommendations,
            p.attributes,
            p.updated_at,
        )
        for p in Product.objects.all()
    }


@pytest.fixture
def definitions():
    AttributeDefinitionFactory(code="length_mm", type=AttributeType.NUMBER, unit="mm")
    AttributeDefinitionFactory(code="cordless", type=AttributeType.BOOLEAN)
    AttributeDefinitionFactory(code="size", type=AttributeType.CHOICE, choices=["S", "M", "L"])
    AttributeDefinitionFactory(code="colour", type=AttributeType.TEXT)


@pytest.fixture
def drills() -> Category:
    return category_save(category=Category(name="Drills", parent=category_save(category=Category(name="Tools"))))


# --- the format ----------------------------------------------------------------------------------


def test_export_writes_the_import_format_exactly(drills):
    AttributeDefinitionFactory(code="length_mm", type=AttributeType.NUMBER)
    AttributeDefinitionFactory(code="cordless", type=AttributeType.BOOLEAN)
    bosch = BrandFactory(name="Bosch")
    drill = ProductFactory(
        sku="A-1",
        name="Drill",
        brand=bosch,
        category=drills,
        unit_price=Decimal("4.95"),
        description='Cuts, "fast"',
        attributes={"length_mm": 40, "cordless": True},
    )
    ProductFactory(
        sku="A-10",
        name="Drill 10-pack",
        brand=bosch,
        category=drills,
        unit_price=Decimal("45"),
        pack_quantity=10,
        base=drill,
        exclude_from_recommendations=True,
        attributes={"length_mm": 12.5, "cordless": False},
    )
    ProductFactory(
        sku="B-1",
        name="Cable",
        brand=None,
        category=None,
        unit_price=Decimal("0.125"),
        unit="m",
        status=ProductStatus.DRAFT,
        description="line 1\nline 2",
    )
    out = io.StringIO()

    count = products_export(queryset=Product.objects.all(), out=out)

    assert count == 3
    assert out.getvalue() == (
        HEADER + ",attr:cordless,attr:length_mm\r\n"
        'A-1,Drill,Bosch,Tools > Drills,4.95,1,pcs,active,,"Cuts, ""fast""",false,true,40\r\n'
        "A-10,Drill 10-pack,Bosch,Tools > Drills,45.00,10,pcs,active,A-1,,true,false,12.5\r\n"
        'B-1,Cable,,,0.125,1,m,draft,,"line 1\nline 2",false,,\r\n'
    )


def test_export_of_nothing_is_the_header_alone():
    out = io.StringIO()

    assert products_export(queryset=Product.objects.none(), out=out) == 0
    assert out.getvalue() == HEADER + "\r\n"


@pytest.mark.parametrize(
    ("price", "text"),
    [("12.5", "12.50"), ("0", "0.00"), ("0.125", "0.125"), ("1000.1234", "1000.1234"), ("99999999.9999", None)],
)
def test_prices_have_at_least_two_decimals_and_no_trailing_noise(price, text):
    ProductFactory(sku="A-1", unit_price=Decimal(price))

    row = export_text().splitlines()[1].split(",")

    assert row[4] == (text or price)


def test_export_query_count_does_not_grow_with_products(django_assert_num_queries, definitions):
    base = ProductFactory(sku="A-1")
    for number in range(5):
        ProductFactory(sku=f"V-{number}", base=base)

    with django_assert_num_queries(2):  # attribute definitions, products with their relations
        assert products_export(queryset=Product.objects.all(), out=io.StringIO()) == 6


# --- formula escaping --------------------------------------------------------------------------


def test_cells_that_look_like_formulas_are_prefixed_with_an_apostrophe(definitions):
    ProductFactory(
        sku="A-1",
        name='=HYPERLINK("http://evil","x")',
        brand=BrandFactory(name="@Home"),
        category=CategoryFactory(name="+Plus"),
        description="-10% off",
        attributes={"colour": "=red", "length_mm": -20},
    )
    ProductFactory(sku="B-1", name="Plain 'quoted' name", brand=None, category=None, description="'kept'")

    lines = export_text().splitlines()

    assert lines[1] == (
        'A-1,"\'=HYPERLINK(""http://evil"",""x"")",\'@Home,\'+Plus,9.95,1,pcs,active,,\'-10% off,false,\'=red,,\'-20,'
    )
    # A leading apostrophe is doubled, so the import's unescaping gives back exactly 'kept'.
    assert lines[2] == "B-1,Plain 'quoted' name,,,9.95,1,pcs,active,,''kept',false,,,,"


def test_import_removes_the_formula_apostrophe_again(definitions):
    data = (
        HEADER + ",attr:colour,attr:length_mm\n"
        "A-1,'=1+1,'@Home,'+Plus > -Minus,9.95,1,pcs,active,,'-10% off,false,'=red,'-20\n"
        "B-1,'Quoted,,,9.95,1,pcs,active,,'kept,false,,\n"
    ).encode()

    result = products_import(source=io.BytesIO(data))

    assert result.errors == []
    a1 = Product.objects.with_relations().get(sku="A-1")
    assert (a1.name, a1.brand.name, a1.category.path, a1.description, a1.attributes) == (
        "=1+1",
        "@Home",
        "+Plus > -Minus",
        "-10% off",
        {"colour": "=red", "length_mm": -20},
    )
    b1 = Product.objects.get(sku="B-1")
    assert (b1.name, b1.description) == ("'Quoted", "'kept")


@pytest.mark.parametrize(
    "value",
    [
        "=1+1",
        "+49 30 1234",
        "-10%",
        "@home",
        "\tindented",
        "'plain quote",
        "plain",
        "",
        "'=not a formula",
        "''double",
    ],
)
def test_unescape_reverses_escape(value):
    assert fmt.unescape_formula(fmt.escape_formula(value)) == value


# --- round trip ----------------------------------------------------------------------------------


def test_export_then_import_changes_nothing(definitions, drills):
    bosch, at_brand = BrandFactory(name="Bosch"), BrandFactory(name="@Brand")
    drill = ProductFactory(
        sku="A-1",
        name="Drill",
        brand=bosch,
        category=drills,
        unit_price=Decimal("4.95"),
        description='Cuts wood, metal; "fast",\nquiet\r\nand light',
        exclude_from_recommendations=True,
        attributes={"length_mm": 40, "cordless": True, "size": "M", "colour": "blue, dark"},
    )
    # A variant whose SKU sorts before its base, so the export lists it first.
    ProductFactory(
        sku="A-0",
        name="Drill 10-pack",
        brand=bosch,
        category=drills,
        unit_price=Decimal("45.00"),
        pack_quantity=10,
        base=drill,
        attributes={"length_mm": 12.5, "cordless": False},
    )
    ProductFactory(sku="B-1", name="=SUM(A1:A2)", brand=at_brand, category=None, description="=cmd|' /C calc'!A0")
    ProductFactory(sku="C-1", name="-minus", brand=None, category=None, unit_price=Decimal("0.1234"))
    ProductFactory(sku="D-1", name="+plus", status=ProductStatus.DRAFT, attributes={"colour": "-red"})
    ProductFactory(sku="E-1", name="@at", status=ProductStatus.DISCONTINUED, unit="box", pack_quantity=250)
    ProductFactory(sku="F-1", name="Cable 'Pro'", description="-", unit_price=Decimal("0"))
    text = export_text()
    changes, stored = ProductChange.objects.count(), snapshot()

    result = reimport(text)

    assert result.errors == []
    assert (result.rows, result.created, result.updated, result.unchanged) == (7, 0, 0, 7)
    assert (result.new_brands, result.new_categories, result.sample) == ([], [], [])
    assert (ProductChange.objects.count(), snapshot()) == (changes, stored)
    assert export_text() == text


def test_export_then_import_into_an_empty_catalog_recreates_it(definitions, drills):
    drill = ProductFactory(
        sku="A-1", name="=Drill", brand=BrandFactory(name="Bosch"), category=drills, attributes={"size": "S"}
    )
    ProductFactory(sku="A-0", name="Drill 2", brand=drill.brand, category=drills, base=drill, pack_quantity=2)
    text = export_text()
    Product.objects.filter(base__isnull=False).delete()
    Product.objects.all().delete()
    Category.objects.filter(parent__isnull=False).delete()
    Category.objects.all().delete()

    result = reimport(text)

    assert (result.errors, result.created, result.new_categories) == ([], 2, ["Tools", "Tools > Drills"])
    assert export_text() == text


def test_round_trip_keeps_an_apostrophe_before_a_formula_character():
    ProductFactory(sku="A-1", name="'=1+1 in quotes", description="'-- is a separator")
    stored = snapshot()

    result = reimport(export_text())

    assert (result.errors, result.updated, result.unchanged) == ([], 0, 1)
    assert snapshot() == stored


def test_round_trip_of_a_description_with_a_bare_carriage_return():
    ProductFactory(sku="A-1", name="Drill", description="first\rsecond")
    stored = snapshot()

    result = reimport(export_text())

    assert (result.errors, result.unchanged) == ([], 1)
    assert snapshot() == stored


# --- the command ---------------------------------------------------------------------------------


def test_export_command_writes_a_file(tmp_path):
    ProductFactory(sku="A-1", status=ProductStatus.ACTIVE)
    ProductFactory(sku="B-1", status=ProductStatus.DRAFT)
    path = tmp_path / "out.csv"
    stdout = io.StringIO()

    call_command("export_products", str(path), stdout=stdout)

    assert stdout.getvalue() == f"Exported 2 products to {path}.\n"
    assert path.read_bytes().decode("utf-8") == export_text()


def test_export_command_filters_by_status(tmp_path):
    ProductFactory(sku="A-1", status=ProductStatus.ACTIVE)
    ProductFactory(sku="B-1", status=ProductStatus.DRAFT)
    path = tmp_path / "out.csv"

    call_command("export_products", str(path), "--status", "draft", stdout=io.StringIO())

    assert [row[0] for row in csv.reader(io.StringIO(path.read_text(encoding="utf-8")))] == ["sku", "B-1"]


def test_export_command_to_standard_output(capsys):
    ProductFactory(sku="A-1")

    call_command("export_products", "-")

    assert capsys.readouterr().out == export_text()


# --- admin download ------------------------------------------------------------------------------


def download(client, query: str = "") -> tuple:
    response = client.get(reverse("admin:catalog_product_export") + query)
    body = b"".join(response.streaming_content).decode("utf-8")
    return response, body


def test_marketer_can_export(client, marketer):
    ProductFactory(sku="A-1")
    ProductFactory(sku="B-1")
    client.force_login(marketer)

    response, body = download(client)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="products-')
    assert response["Content-Disposition"].endswith('.csv"')
    assert body == export_text()


def test_admin_export_honours_the_changelist_filters(client, specialist):
    ProductFactory(sku="A-1", name="Drill", status=ProductStatus.ACTIVE)
    ProductFactory(sku="B-1", name="Saw", status=ProductStatus.DRAFT)
    ProductFactory(sku="C-1", name="Drill bit", status=ProductStatus.ACTIVE, exclude_from_recommendations=True)
    ProductFactory(sku="D-1", name="Hammer", status=ProductStatus.DISCONTINUED)
    client.force_login(specialist)

    def skus(query: str) -> list[str]:
        response, body = download(client, query)
        assert response.status_code == 200
        return [row[0] for row in csv.reader(io.StringIO(body))][1:]

    assert skus("") == ["A-1", "B-1", "C-1", "D-1"]
    assert skus("?status__exact=active") == ["A-1", "C-1"]
    assert skus("?status__exact=active&exclude_from_recommendations__exact=0") == ["A-1"]
    assert skus("?q=drill") == ["A-1", "C-1"]
    assert skus("?status__exact=discontinued") == ["D-1"]


def test_user_without_a_role_cannot_export(client, no_role_user):
    ProductFactory(sku="A-1")
    client.force_login(no_role_user)

    response = client.get(reverse("admin:catalog_product_export"))

    assert response.status_code == 403
    assert b"A-1" not in response.content
