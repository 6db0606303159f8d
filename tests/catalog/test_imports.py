"""Products CSV import: every refusal with its line number, all-or-nothing writes, dry runs,
idempotent re-imports, update semantics, base products, the command and the admin pages."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import IntegrityError
from django.urls import reverse

from catalog import imports
from catalog.imports import ImportResult, RowError, products_import
from catalog.models import (
    AttributeDefinition,
    AttributeType,
    Brand,
    Category,
    ChangeSource,
    Product,
    ProductChange,
    ProductImport,
)
from catalog.services import category_save
from tests.factories import AttributeDefinitionFactory, BrandFactory, CategoryFactory, ProductFactory

pytestmark = pytest.mark.django_db

COLUMNS = ["sku", "name", "brand", "category", "unit_price", "pack_quantity", "unit", "status"]
HEADER = ",".join(COLUMNS)
DEFAULTS = {
    "sku": "A-1",
    "name": "Drill",
    "brand": "Bosch",
    "category": "Tools",
    "unit_price": "4.95",
    "pack_quantity": "1",
    "unit": "pcs",
    "status": "active",
}


def make_csv(*rows: dict[str, str], columns: list[str] | None = None) -> bytes:
    """A products CSV: the required columns, then any other column a row names, in order."""
    if columns is None:
        columns = list(COLUMNS)
        for row in rows:
            columns.extend(column for column in row if column not in columns)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        values = {**DEFAULTS, **row}
        writer.writerow([values.get(column, "") for column in columns])
    return out.getvalue().encode()


def run(data: bytes, **kwargs) -> ImportResult:
    return products_import(source=io.BytesIO(data), **kwargs)


def counts() -> dict[str, int]:
    return {
        "products": Product.objects.count(),
        "brands": Brand.objects.count(),
        "categories": Category.objects.count(),
        "changes": ProductChange.objects.count(),
    }


def snapshot() -> dict[str, tuple]:
    """Every product as stored, to prove a refused or dry-run import left it alone."""
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
def attribute_definitions() -> dict[str, AttributeDefinition]:
    return {
        d.code: d
        for d in [
            AttributeDefinitionFactory(code="length_mm", type=AttributeType.NUMBER, unit="mm"),
            AttributeDefinitionFactory(code="cordless", type=AttributeType.BOOLEAN),
            AttributeDefinitionFactory(code="size", type=AttributeType.CHOICE, choices=["S", "M", "L"]),
            AttributeDefinitionFactory(code="colour", type=AttributeType.TEXT),
        ]
    }


@pytest.fixture
def drill() -> Product:
    """An existing product that the DEFAULTS row matches exactly (so it imports unchanged)."""
    return ProductFactory(
        sku="A-1",
        name="Drill",
        brand=BrandFactory(name="Bosch"),
        category=CategoryFactory(name="Tools"),
        unit_price=Decimal("4.95"),
        description="Keep me",
        exclude_from_recommendations=True,
        attributes={"length_mm": 40, "cordless": True},
    )


# --- refusals: every error kind with its line number -------------------------------------------


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"unit_price": "-1.50"}, "unit_price -1.50 is negative"),
        ({"unit_price": "12,50"}, "unit_price '12,50' is not a number (use a dot as decimal separator, e.g. 12.50)"),
        ({"unit_price": "abc"}, "unit_price 'abc' is not a number (use a dot as decimal separator, e.g. 12.50)"),
        ({"unit_price": ""}, "unit_price '' is not a number (use a dot as decimal separator, e.g. 12.50)"),
        ({"unit_price": "NaN"}, "unit_price 'NaN' is not a number"),
        ({"unit_price": "1.23456"}, "unit_price 1.23456 has more than 4 decimals"),
        ({"unit_price": "100000000"}, "unit_price 100000000 is too large (at most 99999999.9999)"),
        ({"status": "archived"}, "status 'archived' is unknown (use one of: draft, active, discontinued)"),
        ({"pack_quantity": "0"}, "pack_quantity 0 is below 1"),
        ({"pack_quantity": "-3"}, "pack_quantity -3 is below 1"),
        ({"pack_quantity": "1.5"}, "pack_quantity '1.5' is not a whole number"),
        ({"pack_quantity": "six"}, "pack_quantity 'six' is not a whole number"),
        ({"sku": ""}, "sku is empty"),
        ({"sku": "A 1"}, "sku 'A 1' may only hold letters, digits and . _ / -: replace the space"),
        ({"sku": "BANK CHARGES"}, "sku 'BANK CHARGES' may only hold letters, digits and . _ / -: replace the space"),
        ({"sku": "A&B #1"}, "sku 'A&B #1' may only hold letters, digits and . _ / -: replace '&', the space and '#'"),
        ({"sku": "Caf\u00e9"}, "sku 'Caf\u00e9' may only hold letters, digits and . _ / -: replace '\u00e9' (U+00E9)"),
        ({"sku": "_POST"}, "sku '_POST' must start with a letter or digit, not '_'"),
        ({"sku": "X" * 65}, "sku is longer than 64 characters"),
        ({"name": ""}, "name is empty"),
        ({"name": "n" * 256}, "name is longer than 255 characters"),
        ({"unit": ""}, "unit is empty (e.g. pcs, box, m, kg, l)"),
        (
            {"category": "Tools >  > Drills"},
            "category 'Tools >  > Drills' has an empty level (write paths as 'Tools > Drills')",
        ),
        ({"base_sku": "A-1"}, "base_sku 'A-1' is the product itself"),
        (
            {"exclude_from_recommendations": "perhaps"},
            "exclude_from_recommendations 'perhaps' is not true/false",
        ),
        ({"attr:length_mm": "long"}, "attr:length_mm 'long' is not a number"),
        ({"attr:length_mm": "inf"}, "attr:length_mm 'inf' is not a number"),
        ({"attr:cordless": "maybe"}, "attr:cordless 'maybe' is not true/false"),
        ({"attr:size": "XL"}, "attr:size 'XL' is not one of: S, M, L"),
    ],
    ids=lambda value: value if isinstance(value, str) else next(iter(value)),
)
def test_bad_cell_is_reported_on_its_line_and_nothing_is_written(attribute_definitions, row, message):
    data = make_csv(row, {"sku": "B-1"})
    before = counts()

    result = run(data)

    assert result.errors == [RowError(2, message)]
    assert str(result.errors[0]) == f"line 2: {message}"
    assert result.rows == 2
    assert (result.applied, result.created, result.updated, result.unchanged) == (False, 0, 0, 0)
    assert counts() == before == {"products": 0, "brands": 0, "categories": 0, "changes": 0}


def test_duplicate_sku_is_reported_at_the_second_occurrence_naming_the_first():
    data = make_csv({"sku": "A-1"}, {"sku": "B-1"}, {"sku": "A-1", "name": "Other drill"})

    result = run(data)

    assert result.errors == [RowError(4, "duplicate SKU 'A-1' (first on line 2)")]
    assert counts()["products"] == 0


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (HEADER + ",colour", "unknown column 'colour'"),
        (HEADER + ",attr:weight", "unknown attribute 'weight' in column 'attr:weight'"),
        ("sku,name,brand,category,unit_price,pack_quantity", "missing required columns: unit, status"),
        (HEADER + ",name", "column 'name' appears twice"),
    ],
    ids=["unknown column", "unknown attribute", "missing required", "twice"],
)
def test_bad_header_is_reported_on_line_1(attribute_definitions, header, message):
    cells = len(header.split(","))
    data = (header + "\n" + ",".join(["x"] * cells) + "\n").encode()

    result = run(data)

    assert result.errors == [RowError(1, message)]
    assert result.rows == 0
    assert counts()["products"] == 0


def test_several_header_problems_are_all_reported():
    data = b"sku,name,colour,attr:weight\nA-1,Drill,red,3\n"

    result = run(data)

    assert result.errors == [
        RowError(1, "unknown column 'colour'"),
        RowError(1, "missing required columns: brand, category, unit_price, pack_quantity, unit, status"),
        RowError(1, "unknown attribute 'weight' in column 'attr:weight'"),
    ]


def test_empty_file():
    result = run(b"")

    assert result.errors == [RowError(1, "the file is empty (expected a header row)")]
    assert result.rows == 0


def test_header_only_file_imports_nothing_without_error():
    result = run((HEADER + "\n").encode())

    assert (result.errors, result.rows, result.created, result.applied) == ([], 0, 0, True)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"B-1,Saw,Bosch,Tools,4.95,1,pcs", "has 7 cells, the header has 8"),
        (b"B-1,Saw,Bosch,Tools,4.95,1,pcs,active,extra", "has 9 cells, the header has 8"),
    ],
    ids=["too few", "too many"],
)
def test_wrong_number_of_cells(line, message):
    data = make_csv({"sku": "A-1"}) + line + b"\n"

    result = run(data)

    assert result.errors == [RowError(3, message)]
    assert counts()["products"] == 0


def test_bad_encoding_is_reported_on_its_line_only():
    data = make_csv({"sku": "A-1"}) + "B-1,Schlüssel,Bosch,Tools,4.95,1,pcs,active\n".encode("latin-1")
    data += make_csv({"sku": "C-1", "name": "Zange"}).split(b"\n", 1)[1]

    result = run(data)

    assert result.errors == [RowError(3, "bad encoding: this row is not UTF-8 text")]
    assert result.rows == 3
    assert counts()["products"] == 0


def test_bad_encoding_in_the_header():
    data = (HEADER + ",beschreibung_ä\n").encode("latin-1")

    result = run(data)

    assert result.errors == [RowError(1, "bad encoding: the file is not UTF-8 text (save it as CSV UTF-8)")]


def test_broken_quoting_is_reported_on_its_line():
    data = make_csv({"sku": "A-1"}) + b'B-1,"Saw"x,Bosch,Tools,4.95,1,pcs,active\n'

    result = run(data)

    assert result.errors == [RowError(3, "cannot be read as CSV: ',' expected after '\"'")]
    assert counts()["products"] == 0


# --- refusals: base products -------------------------------------------------------------------


def test_base_sku_that_does_not_exist():
    data = make_csv({"sku": "A-1"}, {"sku": "V-1", "base_sku": "NOPE"})

    result = run(data)

    assert result.errors == [RowError(3, "base_sku 'NOPE' does not exist")]
    assert counts()["products"] == 0


def test_base_sku_pointing_to_a_variant_in_the_file():
    data = make_csv({"sku": "A-1"}, {"sku": "V-1", "base_sku": "A-1"}, {"sku": "V-2", "base_sku": "V-1"})

    result = run(data)

    assert result.errors == [
        RowError(3, "'V-1' has pack variants ('V-2', line 4) so it cannot be a variant itself"),
        RowError(4, "base_sku 'V-1' is itself a pack variant (line 3)"),
    ]
    assert counts()["products"] == 0


def test_base_sku_pointing_to_a_variant_in_the_database():
    base = ProductFactory(sku="A-1")
    ProductFactory(sku="V-1", base=base)
    before, stored = counts(), snapshot()

    result = run(make_csv({"sku": "N-1", "base_sku": "V-1"}))

    assert result.errors == [RowError(2, "base_sku 'V-1' is itself a pack variant")]
    assert (counts(), snapshot()) == (before, stored)


def test_a_database_variant_made_standalone_in_the_file_may_be_a_base():
    """File rows win over the database: V-1 stops being a variant in the same file."""
    base = ProductFactory(sku="A-1", brand=BrandFactory(name="Bosch"), category=CategoryFactory(name="Tools"))
    ProductFactory(sku="V-1", base=base, brand=base.brand, category=base.category)

    result = run(make_csv({"sku": "V-1", "base_sku": ""}, {"sku": "N-1", "base_sku": "V-1"}))

    assert result.errors == []
    assert Product.objects.get(sku="V-1").base is None
    assert Product.objects.get(sku="N-1").base.sku == "V-1"


def test_a_product_with_variants_in_the_database_cannot_become_a_variant():
    base = ProductFactory(sku="A-1")
    ProductFactory(sku="V-1", base=base)
    ProductFactory(sku="B-1")
    before, stored = counts(), snapshot()

    result = run(make_csv({"sku": "A-1", "base_sku": "B-1"}))

    assert result.errors == [RowError(2, "'A-1' has pack variants ('V-1') so it cannot be a variant itself")]
    assert (counts(), snapshot()) == (before, stored)


def test_a_base_with_variants_may_become_a_variant_when_the_file_moves_them_away():
    bosch, tools = BrandFactory(name="Bosch"), CategoryFactory(name="Tools")
    base = ProductFactory(sku="A-1", brand=bosch, category=tools)
    ProductFactory(sku="V-1", base=base, brand=bosch, category=tools)
    ProductFactory(sku="B-1", brand=bosch, category=tools)

    result = run(make_csv({"sku": "A-1", "base_sku": "B-1"}, {"sku": "V-1", "base_sku": "B-1"}))

    assert result.errors == []
    assert dict(Product.objects.values_list("sku", "base__sku")) == {"A-1": "B-1", "B-1": None, "V-1": "B-1"}


def test_several_bad_rows_are_all_reported_sorted_by_line():
    data = (
        make_csv(
            {"sku": "V-1", "base_sku": "NOPE"},  # 2: found only after all rows are read
            {"sku": "A-1"},  # 3: fine
            {"sku": "B-1", "unit_price": "-1"},  # 4
            {"sku": "A-1"},  # 5
            {"sku": "C-1", "status": "archived"},  # 6
            {"sku": "E-1", "pack_quantity": "0"},  # 7
        )
        + b"D-1,Saw\n"
    )  # 8

    result = run(data)

    assert [str(error) for error in result.errors] == [
        "line 2: base_sku 'NOPE' does not exist",
        "line 4: unit_price -1 is negative",
        "line 5: duplicate SKU 'A-1' (first on line 3)",
        "line 6: status 'archived' is unknown (use one of: draft, active, discontinued)",
        "line 7: pack_quantity 0 is below 1",
        "line 8: has 2 cells, the header has 9",
    ]
    assert result.rows == 7
    assert counts() == {"products": 0, "brands": 0, "categories": 0, "changes": 0}


def test_a_refused_file_leaves_existing_products_untouched(drill):
    before, stored = counts(), snapshot()
    data = make_csv(
        {"sku": "A-1", "unit_price": "5.25", "category": "Garden > Hoses", "brand": "Makita"},
        {"sku": "N-1"},
        {"sku": "B-1", "unit_price": "x"},
    )

    result = run(data)

    assert result.errors == [RowError(4, "unit_price 'x' is not a number (use a dot as decimal separator, e.g. 12.50)")]
    assert (result.applied, result.new_brands, result.new_categories) == (False, [], [])
    assert (counts(), snapshot()) == (before, stored)


def test_a_database_refusal_during_apply_rolls_everything_back(monkeypatch, drill):
    def refuse(pending_bases):
        raise IntegrityError("boom")

    monkeypatch.setattr(imports, "_apply_bases", refuse)
    before, stored = counts(), snapshot()
    data = make_csv({"sku": "A-1", "unit_price": "5.25"}, {"sku": "N-1", "brand": "Makita", "category": "Garden"})

    result = run(data)

    assert result.errors == [RowError(0, "the database refused the import, nothing was written: boom")]
    assert (result.applied, result.created, result.updated, result.unchanged) == (False, 0, 0, 0)
    assert (counts(), snapshot()) == (before, stored)


def test_a_huge_number_attribute_is_a_row_error(attribute_definitions):
    result = run(make_csv({"sku": "A-1", "attr:length_mm": "1e5000"}))

    assert [error.line for error in result.errors] == [2]
    assert result.errors[0].message.startswith("attr:length_mm '1e5000' ")
    assert counts()["products"] == 0


def test_a_category_path_longer_than_the_column_is_a_row_error():
    path = " > ".join(letter * 100 for letter in "abcdef")  # 6 x 100 + 5 x 3 = 615 characters

    result = run(make_csv({"sku": "A-1", "category": path}))

    assert [error.line for error in result.errors] == [2]
    assert "category" in result.errors[0].message
    assert counts()["categories"] == 0


# --- the command ---------------------------------------------------------------------------------


def test_command_refuses_a_bad_file_prints_every_error_and_writes_nothing(tmp_path):
    path = tmp_path / "products.csv"
    path.write_bytes(make_csv({"sku": "A-1"}, {"sku": "B-1", "unit_price": "-1"}, {"sku": "C-1", "status": "x"}))
    stdout, stderr = io.StringIO(), io.StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("import_products", str(path), stdout=stdout, stderr=stderr)

    assert str(raised.value) == f"2 error(s) in {path}; nothing was written."
    assert raised.value.returncode == 1
    assert stderr.getvalue() == (
        "line 3: unit_price -1 is negative\nline 4: status 'x' is unknown (use one of: draft, active, discontinued)\n"
    )
    assert stdout.getvalue() == ""
    assert counts() == {"products": 0, "brands": 0, "categories": 0, "changes": 0}


def test_command_imports_a_valid_file_and_records_the_command(tmp_path):
    path = tmp_path / "products.csv"
    path.write_bytes(make_csv({"sku": "A-1", "category": "Tools > Drills"}, {"sku": "B-1"}))
    stdout = io.StringIO()

    call_command("import_products", str(path), stdout=stdout)

    assert stdout.getvalue() == (
        "Imported 2 rows: 2 created, 0 updated, 0 unchanged.\n"
        "New brands (1): Bosch\n"
        "New categories (2): Tools, Tools > Drills\n"
    )
    assert sorted(Product.objects.values_list("sku", "category__path")) == [
        ("A-1", "Tools > Drills"),
        ("B-1", "Tools"),
    ]
    assert set(ProductChange.objects.values_list("source", "reference", "actor", "action")) == {
        (ChangeSource.COMMAND, "import_products products.csv", None, ProductChange.Action.CREATED)
    }


def test_command_dry_run_reports_and_writes_nothing(tmp_path, drill):
    path = tmp_path / "products.csv"
    path.write_bytes(make_csv({"sku": "A-1", "unit_price": "5.25"}, {"sku": "N-1", "brand": "Makita"}))
    before, stored = counts(), snapshot()
    stdout = io.StringIO()

    call_command("import_products", str(path), "--dry-run", stdout=stdout)

    assert stdout.getvalue() == (
        "Would import 2 rows: 1 created, 1 updated, 0 unchanged.\n"
        "New brands (1): Makita\n"
        "Dry run: nothing was written.\n"
    )
    assert (counts(), snapshot()) == (before, stored)


def test_command_with_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match=r"^Cannot open .*nothing\.csv: No such file or directory$"):
        call_command("import_products", str(tmp_path / "nothing.csv"))


# --- dry run -------------------------------------------------------------------------------------


def test_dry_run_reports_exactly_and_writes_nothing(drill):
    ProductFactory(sku="U-1", name="Saw", brand=drill.brand, category=drill.category, unit_price=Decimal("9.95"))
    before, stored = counts(), snapshot()
    data = make_csv(
        {"sku": "A-1", "unit_price": "5.25"},  # updated
        {"sku": "U-1", "name": "Saw", "unit_price": "9.95"},  # unchanged
        {"sku": "N-1", "brand": "Makita", "category": "Garden > Hoses"},  # created
        {"sku": "N-2", "brand": "MAKITA", "category": "tools > Saws"},  # created
    )

    result = run(data, dry_run=True)

    assert result.errors == []
    assert (result.dry_run, result.applied, result.rows) == (True, False, 4)
    assert (result.created, result.updated, result.unchanged) == (2, 1, 1)
    assert result.new_brands == ["Makita"]
    assert result.new_categories == ["Garden", "Garden > Hoses", "Tools > Saws"]
    assert result.sample[0] == {"sku": "A-1", "action": "updated", "changes": {"unit_price": ["4.95", "5.25"]}}
    assert [(item["sku"], item["action"]) for item in result.sample] == [
        ("A-1", "updated"),
        ("N-1", "created"),
        ("N-2", "created"),
    ]
    assert (counts(), snapshot()) == (before, stored)


# --- applying ------------------------------------------------------------------------------------


def test_new_products_are_created_with_history(specialist, attribute_definitions):
    data = make_csv(
        {
            "sku": "A-1",
            "description": 'Line one\nLine two, with "quotes"',
            "exclude_from_recommendations": "yes",
            "attr:length_mm": "40",
            "attr:cordless": "true",
            "attr:size": "",
        },
        {"sku": "B-1", "name": "Saw", "status": "Draft", "unit_price": "0.125", "pack_quantity": "12"},
    )

    result = run(data, actor=specialist, reference="upload 1")

    assert (result.errors, result.applied, result.created, result.updated, result.unchanged) == ([], True, 2, 0, 0)
    a1 = Product.objects.with_relations().get(sku="A-1")
    assert (a1.name, a1.brand.name, a1.category.path, a1.unit_price, a1.pack_quantity, a1.unit) == (
        "Drill",
        "Bosch",
        "Tools",
        Decimal("4.95"),
        1,
        "pcs",
    )
    assert (a1.status, a1.description, a1.exclude_from_recommendations, a1.currency) == (
        "active",
        'Line one\nLine two, with "quotes"',
        True,
        settings.DEFAULT_CURRENCY,
    )
    assert a1.attributes == {"length_mm": 40, "cordless": True}
    b1 = Product.objects.get(sku="B-1")
    assert (b1.status, b1.unit_price, b1.pack_quantity, b1.attributes) == ("draft", Decimal("0.125"), 12, {})
    change = ProductChange.objects.get(product=a1)
    assert (change.action, change.actor, change.source, change.reference) == (
        "created",
        specialist,
        ChangeSource.IMPORT,
        "upload 1",
    )
    assert change.changes == {
        "name": [None, "Drill"],
        "brand": [None, "Bosch"],
        "category": [None, "Tools"],
        "unit_price": [None, "4.95"],
        "pack_quantity": [None, 1],
        "unit": [None, "pcs"],
        "status": [None, "active"],
        "description": [None, 'Line one\nLine two, with "quotes"'],
        "exclude_from_recommendations": [None, True],
        "attributes": [None, {"length_mm": 40, "cordless": True}],
    }


def test_reimporting_the_same_file_changes_nothing(attribute_definitions):
    data = make_csv(
        {"sku": "A-1", "description": 'Cuts, drills; "fast"', "attr:length_mm": "40.5", "attr:size": "M"},
        {"sku": "V-1", "base_sku": "A-1", "pack_quantity": "10", "unit_price": "45.00", "attr:cordless": "no"},
        {"sku": "B-1", "category": "Tools > Drills", "brand": "Makita", "exclude_from_recommendations": "1"},
    )
    first = run(data)
    assert (first.errors, first.created) == ([], 3)
    changes_before = ProductChange.objects.count()
    stored = snapshot()

    second = run(data)

    assert second.errors == []
    assert (second.created, second.updated, second.unchanged, second.rows) == (0, 0, 3, 3)
    assert (second.new_brands, second.new_categories, second.sample) == ([], [], [])
    assert ProductChange.objects.count() == changes_before == 3
    assert snapshot() == stored


def test_changed_price_updates_one_product_and_records_who_and_how(drill, specialist):
    ProductFactory(sku="B-1", name="Saw", brand=drill.brand, category=drill.category, unit_price=Decimal("9.95"))
    data = make_csv({"sku": "A-1", "unit_price": "5.25"}, {"sku": "B-1", "name": "Saw", "unit_price": "9.95"})

    result = run(data, actor=specialist, reference="prices.csv")

    assert (result.errors, result.created, result.updated, result.unchanged) == ([], 0, 1, 1)
    change = ProductChange.objects.get()
    assert change.product == drill
    assert (change.action, change.actor, change.source, change.reference) == (
        ProductChange.Action.UPDATED,
        specialist,
        ChangeSource.IMPORT,
        "prices.csv",
    )
    assert change.changes == {"unit_price": ["4.95", "5.25"]}
    drill.refresh_from_db()
    assert drill.unit_price == Decimal("5.25")


def test_columns_absent_from_the_file_are_left_untouched(drill):
    base = ProductFactory(sku="B-1", brand=drill.brand, category=drill.category)
    Product.objects.filter(pk=drill.pk).update(base=base)

    result = run(make_csv({"sku": "A-1", "name": "Drill 2"}))

    assert (result.errors, result.updated) == ([], 1)
    drill.refresh_from_db()
    assert (drill.name, drill.description, drill.exclude_from_recommendations, drill.attributes, drill.base) == (
        "Drill 2",
        "Keep me",
        True,
        {"length_mm": 40, "cordless": True},
        base,
    )
    assert ProductChange.objects.get(product=drill).changes == {"name": ["Drill", "Drill 2"]}


def test_an_empty_attribute_cell_removes_the_attribute(drill, attribute_definitions):
    result = run(make_csv({"sku": "A-1", "attr:length_mm": "", "attr:cordless": "true"}))

    assert (result.errors, result.updated) == ([], 1)
    drill.refresh_from_db()
    assert drill.attributes == {"cordless": True}
    assert ProductChange.objects.get(product=drill).changes == {
        "attributes": [{"length_mm": 40, "cordless": True}, {"cordless": True}]
    }


def test_brand_is_matched_case_insensitively(drill):
    result = run(make_csv({"sku": "A-1", "brand": "BOSCH"}, {"sku": "B-1", "brand": "bosch"}))

    assert (result.errors, result.created, result.unchanged, result.new_brands) == ([], 1, 1, [])
    assert list(Brand.objects.values_list("name", flat=True)) == ["Bosch"]
    assert Product.objects.get(sku="B-1").brand == drill.brand


def test_categories_are_created_on_demand_with_their_parents():
    tools = category_save(category=Category(name="Tools"))

    result = run(
        make_csv(
            {"sku": "A-1", "category": "Garden > Hoses > Spiral"},
            {"sku": "B-1", "category": "tools > Drills"},
            {"sku": "C-1", "category": "Garden > Hoses"},
        )
    )

    assert result.errors == []
    assert result.new_categories == ["Garden", "Garden > Hoses", "Garden > Hoses > Spiral", "Tools > Drills"]
    assert list(Category.objects.values_list("path", "name", "parent__path")) == [
        ("Garden", "Garden", None),
        ("Garden > Hoses", "Hoses", "Garden"),
        ("Garden > Hoses > Spiral", "Spiral", "Garden > Hoses"),
        ("Tools", "Tools", None),
        ("Tools > Drills", "Drills", "Tools"),
    ]
    assert Category.objects.get(path="Tools") == tools
    assert dict(Product.objects.values_list("sku", "category__path")) == {
        "A-1": "Garden > Hoses > Spiral",
        "B-1": "Tools > Drills",
        "C-1": "Garden > Hoses",
    }


def test_empty_brand_and_category_clear_them(drill):
    result = run(make_csv({"sku": "A-1", "brand": "", "category": ""}))

    assert result.errors == []
    drill.refresh_from_db()
    assert (drill.brand, drill.category) == (None, None)
    assert ProductChange.objects.get(product=drill).changes == {"brand": ["Bosch", ""], "category": ["Tools", ""]}


def test_bom_crlf_and_blank_lines_are_accepted():
    data = b"\xef\xbb\xbf" + make_csv({"sku": "A-1"}, {"sku": "B-1"}).replace(b"\n", b"\r\n") + b"\r\n\r\n"

    result = run(data)

    assert (result.errors, result.rows, result.created) == ([], 2, 2)


def test_whitespace_around_cells_is_ignored(drill):
    data = (HEADER + "\n" + " A-1 , Drill ,Bosch , Tools , 4.95 , 1 , pcs , Active \n").encode()

    result = run(data)

    assert (result.errors, result.unchanged) == ([], 1)


# --- base products -------------------------------------------------------------------------------


def test_variant_rows_may_come_before_their_base():
    data = make_csv(
        {"sku": "V-1", "base_sku": "A-1", "pack_quantity": "10"},
        {"sku": "A-1"},
    )

    result = run(data)

    assert (result.errors, result.created) == ([], 2)
    assert dict(Product.objects.values_list("sku", "base__sku")) == {"A-1": None, "V-1": "A-1"}
    assert ProductChange.objects.get(product__sku="V-1").changes["base_sku"] == [None, "A-1"]


def test_variants_before_their_base_across_chunks(monkeypatch):
    monkeypatch.setattr(imports, "CHUNK_SIZE", 1)
    data = make_csv(
        {"sku": "V-1", "base_sku": "A-1"},
        {"sku": "V-2", "base_sku": "A-1"},
        {"sku": "A-1"},
        {"sku": "B-1"},
    )

    result = run(data)

    assert (result.errors, result.created) == ([], 4)
    assert dict(Product.objects.values_list("sku", "base__sku")) == {
        "A-1": None,
        "B-1": None,
        "V-1": "A-1",
        "V-2": "A-1",
    }


def test_moving_a_variant_to_another_base(drill, specialist):
    other = ProductFactory(sku="B-1", brand=drill.brand, category=drill.category)
    variant = ProductFactory(sku="V-1", name="Drill", brand=drill.brand, category=drill.category, base=drill)

    result = run(make_csv({"sku": "V-1", "base_sku": "B-1", "unit_price": "9.95"}), actor=specialist)

    assert (result.errors, result.updated) == ([], 1)
    variant.refresh_from_db()
    assert variant.base == other
    assert ProductChange.objects.get(product=variant).changes == {"base_sku": ["A-1", "B-1"]}


def test_making_a_variant_a_standalone_product(drill):
    variant = ProductFactory(sku="V-1", name="Drill", brand=drill.brand, category=drill.category, base=drill)

    result = run(make_csv({"sku": "V-1", "base_sku": "", "unit_price": "9.95"}))

    assert (result.errors, result.updated) == ([], 1)
    variant.refresh_from_db()
    assert variant.base is None
    assert ProductChange.objects.get(product=variant).changes == {"base_sku": ["A-1", ""]}


def test_swapping_base_and_variant_in_one_file(drill):
    variant = ProductFactory(sku="V-1", name="Drill", brand=drill.brand, category=drill.category, base=drill)

    result = run(
        make_csv(
            {"sku": "A-1", "base_sku": "V-1"},
            {"sku": "V-1", "base_sku": "", "unit_price": "9.95"},
        )
    )

    assert (result.errors, result.updated) == ([], 2)
    drill.refresh_from_db()
    variant.refresh_from_db()
    assert (drill.base, variant.base) == (variant, None)


# --- admin pages ---------------------------------------------------------------------------------


def upload(client, data: bytes, name: str = "products.csv"):
    return client.post(
        reverse("admin:catalog_product_import"), {"file": SimpleUploadedFile(name, data, content_type="text/csv")}
    )


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_admin_upload_preview_and_confirm(client, specialist):
    BrandFactory(name="Bosch")
    client.force_login(specialist)
    data = make_csv({"sku": "A-1", "brand": "bosch"}, {"sku": "B-1", "brand": "Makita", "category": "Tools > Saws"})

    response = upload(client, data)

    product_import = ProductImport.objects.get()
    preview_url = reverse("admin:catalog_product_import_preview", args=[product_import.pk])
    assert response.status_code == 302
    assert response["Location"] == preview_url
    assert (product_import.status, product_import.file_name, product_import.created_by) == (
        ProductImport.Status.PREVIEWED,
        "products.csv",
        specialist,
    )
    assert bytes(product_import.content) == data
    assert Product.objects.count() == 0

    page = client.get(preview_url)

    assert page.status_code == 200
    html = page.content.decode()
    for fragment in [
        '<strong id="import-status">Previewed</strong>',
        "<tr><th>Rows</th><td>2</td></tr>",
        "<tr><th>New products</th><td>2</td></tr>",
        "<tr><th>Updated products</th><td>0</td></tr>",
        "<tr><th>Unchanged products</th><td>0</td></tr>",
        "<tr><th>New brands</th><td>Makita</td></tr>",
        "<tr><th>New categories</th><td>Tools, Tools &gt; Saws</td></tr>",
        'value="Apply import"',
    ]:
        assert fragment in html
    assert Product.objects.count() == 0

    applied = client.post(preview_url)

    assert applied.status_code == 302
    assert applied["Location"] == reverse("admin:catalog_product_changelist")
    assert messages_of(applied) == ["Imported products.csv: 2 created, 0 updated, 0 unchanged."]
    product_import.refresh_from_db()
    assert product_import.status == ProductImport.Status.APPLIED
    assert product_import.applied_at is not None
    assert (product_import.summary["created"], product_import.summary["applied"]) == (2, True)
    assert dict(Product.objects.values_list("sku", "brand__name")) == {"A-1": "Bosch", "B-1": "Makita"}
    assert set(ProductChange.objects.values_list("actor", "source", "reference")) == {
        (specialist.pk, ChangeSource.IMPORT, f"import #{product_import.pk} products.csv")
    }
    applied_page = client.get(preview_url).content.decode()
    assert '<strong id="import-status">Applied</strong>' in applied_page
    assert 'value="Apply import"' not in applied_page

    again = client.post(preview_url)

    assert again.status_code == 302
    assert again["Location"] == preview_url
    assert messages_of(again) == [f"Import {product_import.pk} was already applied or rejected."]
    assert (Product.objects.count(), ProductChange.objects.count()) == (2, 2)
    product_import.refresh_from_db()
    assert product_import.status == ProductImport.Status.APPLIED


def test_admin_file_with_errors_shows_them_and_cannot_be_confirmed(client, specialist):
    client.force_login(specialist)
    data = make_csv({"sku": "A-1"}, {"sku": "B-1", "unit_price": "-1"}, {"sku": "C-1", "pack_quantity": "0"})

    response = upload(client, data)

    product_import = ProductImport.objects.get()
    assert product_import.status == ProductImport.Status.REJECTED
    preview_url = reverse("admin:catalog_product_import_preview", args=[product_import.pk])
    assert response["Location"] == preview_url
    html = client.get(preview_url).content.decode()
    assert "<h2>2 errors: nothing will be written</h2>" in html
    assert "<tr><td>3</td><td>unit_price -1 is negative</td></tr>" in html
    assert "<tr><td>4</td><td>pack_quantity 0 is below 1</td></tr>" in html
    assert "Apply import" not in html

    forced = client.post(preview_url)

    assert messages_of(forced) == [f"Import {product_import.pk} was already applied or rejected."]
    assert counts() == {"products": 0, "brands": 0, "categories": 0, "changes": 0}


def test_admin_confirm_validates_again_against_the_current_catalog(client, specialist):
    bosch, tools = BrandFactory(name="Bosch"), CategoryFactory(name="Tools")
    base = ProductFactory(sku="A-1", brand=bosch, category=tools)
    client.force_login(specialist)
    upload(client, make_csv({"sku": "V-1", "base_sku": "A-1"}))
    product_import = ProductImport.objects.get()
    assert product_import.status == ProductImport.Status.PREVIEWED
    # Meanwhile A-1 became a variant itself, so the previewed file is no longer valid.
    Product.objects.filter(pk=base.pk).update(base=ProductFactory(sku="B-1", brand=bosch, category=tools))
    before = counts()

    response = client.post(reverse("admin:catalog_product_import_preview", args=[product_import.pk]))

    assert messages_of(response) == ["The import was refused; nothing was written. See the errors below."]
    product_import.refresh_from_db()
    assert product_import.status == ProductImport.Status.REJECTED
    assert product_import.summary["errors"] == [{"line": 2, "message": "base_sku 'A-1' is itself a pack variant"}]
    assert counts() == before


def test_marketer_may_not_use_the_import_pages(client, marketer, specialist):
    client.force_login(specialist)
    upload(client, make_csv({"sku": "A-1"}))
    product_import = ProductImport.objects.get()
    preview_url = reverse("admin:catalog_product_import_preview", args=[product_import.pk])
    client.force_login(marketer)

    assert client.get(reverse("admin:catalog_product_import")).status_code == 403
    assert upload(client, make_csv({"sku": "B-1"})).status_code == 403
    assert client.get(preview_url).status_code == 403
    assert client.post(preview_url).status_code == 403

    assert ProductImport.objects.count() == 1
    product_import.refresh_from_db()
    assert product_import.status == ProductImport.Status.PREVIEWED
    assert counts() == {"products": 0, "brands": 0, "categories": 0, "changes": 0}
