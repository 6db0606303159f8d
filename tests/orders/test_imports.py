"""Orders CSV import: every refusal with its line number, all-or-nothing, --skip-invalid and
the reject file, --map, returns and credit notes, merging, idempotency, time zones, and the
same result on every database (this module runs on SQLite and on PostgreSQL)."""

from __future__ import annotations

import csv
import datetime
import io
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import override_settings

from accounts.models import CustomerAccount
from orders import imports
from orders.imports import OrdersImportResult, RowError, orders_import, parse_column_map
from orders.imports import direct as direct_module
from orders.imports import staging as staging_module
from orders.models import Order, OrderLine
from tests.factories import ProductFactory
from tests.orders.factories import CustomerAccountFactory, OrderFactory, OrderLineFactory

pytestmark = pytest.mark.django_db

HEADER = "order_id,account_id,ordered_at,sku,quantity,unit_price"
UTC = datetime.UTC
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def make_csv(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def run(data: bytes, **kwargs) -> OrdersImportResult:
    return orders_import(source=io.BytesIO(data), **kwargs)


def run_with_rejects(data: bytes, **kwargs) -> tuple[OrdersImportResult, str]:
    rejects = io.StringIO()
    result = orders_import(source=io.BytesIO(data), rejects=rejects, **kwargs)
    return result, rejects.getvalue()


def history() -> list[tuple]:
    """Every order with its lines, by natural keys, to compare whole databases."""
    lines: dict[int, list[tuple]] = {}
    for line in OrderLine.objects.select_related("product").order_by("product__sku"):
        lines.setdefault(line.order_id, []).append((line.product.sku, line.quantity, line.unit_price))
    return [
        (order.external_id, order.account.external_id, order.ordered_at.astimezone(UTC).isoformat(), lines[order.pk])
        for order in Order.objects.select_related("account").order_by("external_id")
    ]


def counts() -> dict[str, int]:
    return {
        "orders": Order.objects.count(),
        "lines": OrderLine.objects.count(),
        "accounts": CustomerAccount.objects.count(),
    }


@pytest.fixture
def products():
    return {sku: ProductFactory(sku=sku) for sku in ("DRILL", "BITS", "BATTERY", "GLOVES")}


# --- a good file --------------------------------------------------------------------------------


def test_imports_orders_lines_and_accounts(products):
    data = make_csv(
        "SO-1,ACME,2024-03-01T10:15:00,DRILL,1,129.00",
        "SO-1,ACME,2024-03-01T10:15:00,BITS,3,12.5",
        "SO-2,BUILDCO,2024-03-02 08:00:00+00:00,GLOVES,10,2.3456",
    )

    result = run(data)

    assert result.ok and result.applied and not result.refused
    assert (result.rows, result.orders_created, result.lines_created, result.accounts_created) == (3, 2, 3, 2)
    assert (result.orders_existing, result.lines_merged, result.rejected_rows, result.errors) == (0, 0, 0, [])
    assert history() == [
        ("SO-1", "ACME", "2024-03-01T09:15:00+00:00", [("BITS", 3, Decimal("12.5000")), ("DRILL", 1, Decimal("129"))]),
        ("SO-2", "BUILDCO", "2024-03-02T08:00:00+00:00", [("GLOVES", 10, Decimal("2.3456"))]),
    ]
    account = CustomerAccount.objects.get(external_id="ACME")
    assert (account.name, account.segment, account.brand_mode) == ("", "", "prefer")
    assert account.created_at is not None and Order.objects.get(external_id="SO-1").imported_at is not None


def test_existing_accounts_are_used_not_created_again(products):
    account = CustomerAccountFactory(external_id="ACME", name="Acme Ltd", segment="construction")

    result = run(make_csv("SO-1,ACME,2024-03-01,DRILL,1,1", "SO-2,NEW,2024-03-01,DRILL,1,1"))

    assert result.accounts_created == 1
    assert Order.objects.get(external_id="SO-1").account == account
    account.refresh_from_db()
    assert (account.name, account.segment) == ("Acme Ltd", "construction")
    assert sorted(CustomerAccount.objects.values_list("external_id", flat=True)) == ["ACME", "NEW"]


def test_utf8_bom_blank_lines_and_whitespace_are_tolerated(products):
    data = b"\xef\xbb\xbf" + make_csv("", " SO-1 , ACME ,2024-03-01, DRILL , 2 , 1.50 ", ",,,,,", "")

    result = run(data)

    assert (result.rows, result.error_count, result.lines_created) == (1, 0, 1)
    assert history() == [("SO-1", "ACME", "2024-02-29T23:00:00+00:00", [("DRILL", 2, Decimal("1.5"))])]


# --- bad rows: every kind, with its line number -------------------------------------------------


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("SO-1,ACME,2024-03-01,NOPE,1,1.00", "unknown SKU 'NOPE'"),
        ("SO-1,ACME,01/03/2024,DRILL,1,1.00", "ordered_at '01/03/2024' is not an ISO 8601 date and time "
         "(e.g. 2024-03-01T14:30:00 or 2024-03-01 14:30)"),
        ("SO-1,ACME,,DRILL,1,1.00", "ordered_at '' is not an ISO 8601 date and time "
         "(e.g. 2024-03-01T14:30:00 or 2024-03-01 14:30)"),
        ("SO-1,ACME,0001-01-01T00:30:00+01:00,DRILL,1,1.00", "ordered_at '0001-01-01T00:30:00+01:00' is out of range"),
        ("SO-1,ACME,2024-03-01,DRILL,two,1.00", "quantity 'two' is not a whole number"),
        ("SO-1,ACME,2024-03-01,DRILL,1.5,1.00", "quantity '1.5' is not a whole number"),
        ("SO-1,ACME,2024-03-01,DRILL,,1.00", "quantity '' is not a whole number"),
        ("SO-1,ACME,2024-03-01,DRILL,3000000000,1.00", "quantity 3000000000 is too large (at most 2147483647)"),
        ("SO-1,ACME,2024-03-01,DRILL,1,\"9,95\"", "unit_price '9,95' is not a number "
         "(use a dot as decimal separator, e.g. 12.50)"),
        ("SO-1,ACME,2024-03-01,DRILL,1,", "unit_price '' is not a number (use a dot as decimal separator, e.g. 12.50)"),
        ("SO-1,ACME,2024-03-01,DRILL,1,NaN", "unit_price 'NaN' is not a number"),
        ("SO-1,ACME,2024-03-01,DRILL,1,-2.00", "unit_price -2.00 is negative"),
        ("SO-1,ACME,2024-03-01,DRILL,1,1.23456", "unit_price 1.23456 has more than 4 decimals"),
        ("SO-1,ACME,2024-03-01,DRILL,1,100000000", "unit_price 100000000 is too large (at most 99999999.9999)"),
        ("SO-1,,2024-03-01,DRILL,1,1.00", "account_id is empty; orders without a customer use --anonymous ACCOUNT_ID"),
        (",ACME,2024-03-01,DRILL,1,1.00", "order_id is empty"),
        ("SO-1,ACME,2024-03-01,,1,1.00", "sku is empty"),
        ("S" * 65 + ",ACME,2024-03-01,DRILL,1,1.00", "order_id is longer than 64 characters"),
        ("SO-1," + "A" * 65 + ",2024-03-01,DRILL,1,1.00", "account_id is longer than 64 characters"),
        ("SO\u00a01,ACME,2024-03-01,DRILL,1,1.00", "order_id 'SO\\xa01' contains an invisible or control character "
         "(U+00A0)"),
        ("SO-1,ACME,2024-03-01,DRILL,1", "has 5 cells, the header has 6"),
        ("SO-1,ACME,2024-03-01,DRILL,1,1.00,extra", "has 7 cells, the header has 6"),
    ],
    ids=lambda value: value[:40],
)  # fmt: skip
def test_bad_row_is_reported_on_its_line_and_nothing_is_written(products, row, message):
    data = make_csv("SO-0,ACME,2024-03-01,BITS,1,1.00", row, "SO-9,ACME,2024-03-01,BITS,1,1.00")

    result = run(data)

    assert result.errors == [RowError(3, message)]
    assert str(result.errors[0]) == f"line 3: {message}"
    assert (result.error_count, result.rows, result.refused, result.applied) == (1, 3, True, False)
    assert (result.orders_created, result.lines_created, result.accounts_created) == (0, 0, 0)
    assert counts() == {"orders": 0, "lines": 0, "accounts": 0}


def test_row_that_is_not_utf8_is_reported_as_bad_encoding(products):
    data = make_csv("SO-1,ACME,2024-03-01,DRILL,1,1.00") + "SO-2,M\xfcller,2024-03-01,DRILL,1,1.00\n".encode("latin-1")

    result = run(data)

    assert result.errors == [RowError(3, "bad encoding: this row is not UTF-8 text (save the file as CSV UTF-8)")]


def test_a_repeated_row_is_skipped_and_counted_not_doubled(products):
    data = make_csv(
        "SO-1,ACME,2024-03-01T10:00,DRILL,1,99.00",
        "SO-1,ACME,2024-03-01T10:00,BITS,2,5.00",
        "SO-1,ACME,2024-03-01 10:00:00,DRILL,1,99.0",  # the same values, written differently
        "SO-1,ACME,2024-03-01T10:00,DRILL,1,99.00",
        "SO-1,ACME,2024-03-01T10:00,DRILL,2,99.00",  # another quantity: merged, not a repeat
        "SO-2,ACME,2024-03-01T10:00,DRILL,1,99.00",  # another order: not a repeat
        "SO-2,ACME,2024-03-01T10:00,DRILL,1,98.00",  # another price: merged
    )

    result = run(data)

    assert (result.error_count, result.rows, result.repeated_rows, result.lines_merged) == (0, 7, 2, 2)
    assert (result.orders_created, result.lines_created) == (2, 3)
    assert history() == [
        ("SO-1", "ACME", "2024-03-01T09:00:00+00:00", [("BITS", 2, Decimal("5")), ("DRILL", 3, Decimal("99"))]),
        ("SO-2", "ACME", "2024-03-01T09:00:00+00:00", [("DRILL", 2, Decimal("98.5"))]),
    ]


def test_a_repeated_row_of_a_rejected_order_is_skipped_not_rejected(products):
    data = make_csv(
        "SO-1,ACME,2024-03-01,DRILL,1,1",
        "SO-1,ACME,2024-03-01,DRILL,1,1",
        "SO-1,ACME,2024-03-01,NOPE,1,1",
        "SO-2,ACME,2024-03-01,NOPE,3,1",
        "SO-2,ACME,2024-03-01,NOPE,3,1",
    )

    result, rejects = run_with_rejects(data, skip_invalid=True)

    assert [str(error) for error in result.errors] == ["line 4: unknown SKU 'NOPE'", "line 5: unknown SKU 'NOPE'"]
    assert (result.repeated_rows, result.rejected_rows, result.rejected_orders, result.orders_created) == (2, 3, 2, 0)
    assert result.unknown_skus == [("NOPE", 2)]
    assert [row.split(",")[-2] for row in rejects.splitlines()[1:]] == ["2", "4", "5"]


def test_lines_of_an_order_at_different_times_are_one_order_at_the_earliest(products):
    data = make_csv(
        "SO-1,ACME,2024-03-01T10:01,DRILL,1,1",
        "SO-1,ACME,2024-03-01T10:00,BITS,1,1",
        "SO-1,ACME,2024-03-01T10:02,DRILL,2,1",
        "SO-2,ACME,2024-03-01T11:00,GLOVES,1,1",
        "SO-2,ACME,2024-03-01T10:00:00Z,GLOVES,1,1",  # the same instant: a repeat, not spread out
        "SO-2,ACME,2024-03-01T10:00:00Z,BITS,1,1",
        "SO-3,ACME,2024-03-02,GLOVES,1,1",
        "SO-3,ACME,2024-03-02,GLOVES,1,1",  # a repeat
        "SO-3,ACME,2024-03-02T00:00:01,BATTERY,1,1",
    )

    result = run(data)

    assert (result.error_count, result.orders_created, result.orders_spread, result.repeated_rows) == (0, 3, 2, 2)
    assert history() == [
        ("SO-1", "ACME", "2024-03-01T09:00:00+00:00", [("BITS", 1, Decimal("1")), ("DRILL", 3, Decimal("1"))]),
        ("SO-2", "ACME", "2024-03-01T10:00:00+00:00", [("BITS", 1, Decimal("1")), ("GLOVES", 1, Decimal("1"))]),
        ("SO-3", "ACME", "2024-03-01T23:00:00+00:00", [("BATTERY", 1, Decimal("1")), ("GLOVES", 1, Decimal("1"))]),
    ]


def test_lines_of_an_order_must_agree_on_account(products):
    data = make_csv(
        "SO-1,ACME,2024-03-01T10:00,DRILL,1,1",
        "SO-1,BUILDCO,2024-03-01T10:00,BITS,1,1",
        "SO-1,ACME,2024-03-01T11:00,GLOVES,1,1",
        "SO-1,ACME,2024-03-01T10:00,BATTERY,1,1",
    )

    result = run(data)

    assert result.errors == [RowError(3, "order 'SO-1' has account_id 'BUILDCO' here but 'ACME' on line 2")]
    assert (result.rejected_rows, result.rejected_orders, result.orders_spread) == (4, 1, 0)


def test_merged_quantity_too_large_for_the_column_is_refused(products):
    data = make_csv("SO-1,ACME,2024-03-01,DRILL,2000000000,1", "SO-1,ACME,2024-03-01,DRILL,200000000,1")

    result = run(data)

    message = "the lines of SKU 'DRILL' in order 'SO-1' add up to quantity 2200000000, more than 2147483647"
    assert result.errors == [RowError(2, message), RowError(3, message)]


def test_every_bad_row_is_reported_with_one_reason_each_in_line_order(products):
    data = make_csv(
        "SO-1,ACME,2024-03-01,NOPE,1,1",
        "SO-1,ACME,2024-03-01,NOPE,1,1",  # a repeat (of a line with an unknown SKU): skipped
        "SO-2,,2024-03-01,DRILL,1,1",
        "SO-3,ACME,2024-03-01,DRILL,1,1",
        "SO-3,ACME,yesterday,BITS,1,1",
    )

    result = run(data)

    assert [str(error) for error in result.errors] == [
        "line 2: unknown SKU 'NOPE'",
        "line 4: account_id is empty; orders without a customer use --anonymous ACCOUNT_ID",
        "line 6: ordered_at 'yesterday' is not an ISO 8601 date and time "
        "(e.g. 2024-03-01T14:30:00 or 2024-03-01 14:30)",
    ]
    assert (result.error_count, result.rejected_rows, result.rejected_orders, result.repeated_rows) == (3, 4, 3, 1)


def test_windows_line_ends_are_read_like_any_other(products):
    data = make_csv("SO-1,ACME,2024-03-01,DRILL,1,1", "SO-2,ACME,2024-03-01,NOPE,1,1").replace(b"\n", b"\r\n")

    result = run(data)

    assert result.errors == [RowError(3, "unknown SKU 'NOPE'")]


def test_a_row_with_too_few_or_many_cells_takes_its_order_with_it(products):
    data = make_csv("SO-1,ACME,2024-03-01,DRILL,1,1", "SO-1,ACME,2024-03-01,BITS", "SO-2,ACME,2024-03-01,DRILL,1,1")

    result, rejects = run_with_rejects(data, skip_invalid=True)

    assert (result.orders_created, result.rejected_rows, result.rejected_orders) == (1, 2, 1)
    assert rejects.splitlines()[1:] == [
        "SO-1,ACME,2024-03-01,DRILL,1,1,2,order 'SO-1' is rejected as a whole: line 3 is bad",
        'SO-1,ACME,2024-03-01,BITS,,,3,"has 4 cells, the header has 6"',
    ]


def test_line_numbers_count_physical_lines_of_quoted_multiline_cells(products):
    header = HEADER + ",description"
    data = make_csv(
        'SO-1,ACME,2024-03-01,DRILL,1,1,"first line\nsecond line"',
        "SO-1,ACME,2024-03-01,NOPE,1,1,x",
        header=header,
    )

    result = run(data)

    assert result.errors == [RowError(4, "unknown SKU 'NOPE'")]


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        (b"", [RowError(1, "the file is empty (expected a header row)")]),
        (b"order_id,account_id,ordered_at,sku,quantity\n", [RowError(1, "missing required columns: unit_price")]),
        (
            (HEADER + ",sku\n").encode(),
            [RowError(1, "column 'sku' appears twice")],
        ),
        (b"M\xfcller\n", [RowError(1, "bad encoding: the file is not UTF-8 text (save it as CSV UTF-8)")]),
        (
            make_csv('SO-1,ACME,2024-03-01,DRILL,1,"1'),
            [RowError(2, "cannot be read as CSV: unexpected end of data")],
        ),
    ],
    ids=["empty", "missing column", "twice", "encoding", "unclosed quote"],
)
def test_a_file_that_cannot_be_read_is_refused_even_with_skip_invalid(products, data, errors):
    result, rejects = run_with_rejects(data, skip_invalid=True)

    assert result.errors == errors
    assert (result.refused, result.applied, result.error_count) == (True, False, len(errors))
    assert counts() == {"orders": 0, "lines": 0, "accounts": 0}
    assert rejects == ""


def test_only_the_first_errors_are_listed_but_all_are_counted(products, monkeypatch):
    monkeypatch.setattr(imports, "ERRORS_KEPT", 3)
    monkeypatch.setattr(staging_module, "PAGE", 2)  # and the errors are read in pages
    data = make_csv(*[f"SO-{n},ACME,2024-03-01,NOPE-{n},1,1" for n in range(10)])

    result = run(data)

    assert result.errors == [RowError(line, f"unknown SKU 'NOPE-{line - 2}'") for line in (2, 3, 4)]
    assert (result.error_count, result.rejected_rows, result.rejected_orders) == (10, 10, 10)


# --- all or nothing, --skip-invalid and the reject file ------------------------------------------

MIXED = make_csv(
    "SO-1,ACME,2024-03-01,DRILL,1,129.00",
    "SO-2,ACME,2024-03-02,DRILL,1,129.00",
    "SO-2,ACME,2024-03-02,NOPE,1,5.00",
    "SO-2,ACME,2024-03-02,BITS,-1,5.00",
    "SO-3,BUILDCO,2024-03-03,GLOVES,2,2.50",
    ",BUILDCO,2024-03-03,GLOVES,2,2.50",
    "SO-2,ACME,2024-03-02,BITS,2,5.00",
    "SO-4,NEWCO,2024-03-04,GLOVES,1,2.50",
    "SO-4,NEWCO,2024-03-04,BITS,x,2.50",
)


def test_without_skip_invalid_nothing_is_written_when_a_row_is_bad(products):
    CustomerAccountFactory(external_id="ACME")
    before = counts()

    result = run(MIXED)

    assert result.errors == [
        RowError(4, "unknown SKU 'NOPE'"),
        RowError(7, "order_id is empty"),
        RowError(10, "quantity 'x' is not a whole number"),
    ]
    assert (result.refused, result.applied) == (True, False)
    assert (result.orders_created, result.lines_created, result.accounts_created) == (0, 0, 0)
    assert counts() == before == {"orders": 0, "lines": 0, "accounts": 1}


def test_skip_invalid_imports_the_good_orders_and_rejects_whole_bad_ones(products):
    result, rejects = run_with_rejects(MIXED, skip_invalid=True)

    assert (result.refused, result.applied, result.error_count) == (False, True, 3)
    assert (result.rows, result.return_rows, result.rejected_rows, result.rejected_orders) == (9, 1, 6, 2)
    assert (result.orders_created, result.lines_created, result.accounts_created) == (2, 2, 2)
    assert history() == [
        ("SO-1", "ACME", "2024-02-29T23:00:00+00:00", [("DRILL", 1, Decimal("129"))]),
        ("SO-3", "BUILDCO", "2024-03-02T23:00:00+00:00", [("GLOVES", 2, Decimal("2.5"))]),
    ]
    assert rejects == (
        "order_id,account_id,ordered_at,sku,quantity,unit_price,line,reason\n"
        "SO-2,ACME,2024-03-02,DRILL,1,129.00,3,order 'SO-2' is rejected as a whole: line 4 is bad\n"
        "SO-2,ACME,2024-03-02,NOPE,1,5.00,4,unknown SKU 'NOPE'\n"
        ",BUILDCO,2024-03-03,GLOVES,2,2.50,7,order_id is empty\n"
        "SO-2,ACME,2024-03-02,BITS,2,5.00,8,order 'SO-2' is rejected as a whole: line 4 is bad\n"
        "SO-4,NEWCO,2024-03-04,GLOVES,1,2.50,9,order 'SO-4' is rejected as a whole: line 10 is bad\n"
        "SO-4,NEWCO,2024-03-04,BITS,x,2.50,10,quantity 'x' is not a whole number\n"
    )
    assert not CustomerAccount.objects.filter(external_id="NEWCO").exists()


def test_reject_file_keeps_the_files_own_columns_and_mends_what_cannot_be_written(products, monkeypatch):
    monkeypatch.setattr(staging_module, "PAGE", 2)  # rejected lines are read in pages
    header = "InvoiceNo,Description,CustomerID,InvoiceDate,StockCode,Quantity,UnitPrice"
    rows = [
        'C1,"Credit, note",ACME,2024-03-01,DRILL,-1,1',
        'SO-1,"Drill, ""pro""",ACME,2024-03-01,NOPE,1,1',
        "SO-2,short,ACME",
        "SO-3,x,ACME,2024-03-01,DRILL,1,1",
        "SO-4,x,ACME,2024-03-01,DRILL,1,1",
        "SO-6,x,ACME,2024-03-01,DRILL,1,1",
    ]
    data = make_csv(*rows, header=header)
    data += "SO-5,M\xfcller,ACME,2024-03-01,DRILL,1,1\n".encode("latin-1")
    data += "SO-5,x,ACME,2024-03-01,NOPE,1,1\n".encode("latin-1")
    data += "SO-6,M\xfcller,ACME,2024-03-01,BITS,1,1\n".encode("latin-1")
    column_map = parse_column_map(
        "InvoiceNo=order_id,StockCode=sku,InvoiceDate=ordered_at,CustomerID=account_id,UnitPrice=unit_price,"
        "Quantity=quantity"
    )

    result, rejects = run_with_rejects(data, skip_invalid=True, column_map=column_map)

    # A bad byte in a column the import does not use does not make a row bad (SO-6 is imported).
    assert (result.orders_created, result.credit_note_rows, result.ignored_columns) == (3, 1, ["Description"])
    assert list(csv.reader(io.StringIO(rejects))) == [
        [*header.split(","), "line", "reason"],
        ["SO-1", 'Drill, "pro"', "ACME", "2024-03-01", "NOPE", "1", "1", "3", "unknown SKU 'NOPE'"],
        ["SO-2", "short", "ACME", "", "", "", "", "4", "has 3 cells, the header has 7"],
        [
            "SO-5",
            "M\ufffdller",
            "ACME",
            "2024-03-01",
            "DRILL",
            "1",
            "1",
            "8",
            "order 'SO-5' is rejected as a whole: line 9 is bad",
        ],
        ["SO-5", "x", "ACME", "2024-03-01", "NOPE", "1", "1", "9", "unknown SKU 'NOPE'"],
    ]


def test_reject_file_without_skip_invalid_lists_what_blocked_the_import(products):
    result, rejects = run_with_rejects(make_csv("SO-1,ACME,2024-03-01,NOPE,1,1", "SO-2,ACME,2024-03-01,DRILL,1,1"))

    assert result.refused
    assert rejects == (
        "order_id,account_id,ordered_at,sku,quantity,unit_price,line,reason\n"
        "SO-1,ACME,2024-03-01,NOPE,1,1,2,unknown SKU 'NOPE'\n"
    )
    assert counts()["orders"] == 0


def test_skip_invalid_writes_a_reject_file_with_only_the_header_when_nothing_is_rejected(products):
    result, rejects = run_with_rejects(make_csv("SO-1,ACME,2024-03-01,DRILL,1,1"), skip_invalid=True)

    assert (result.rejected_rows, result.orders_created) == (0, 1)
    assert rejects == "order_id,account_id,ordered_at,sku,quantity,unit_price,line,reason\n"


def test_database_refusal_leaves_nothing_written(products, monkeypatch):
    def refuse(self, *, now):
        CustomerAccount.objects.create(external_id="half-written")
        raise DatabaseError("deadlock detected")

    monkeypatch.setattr(staging_module.Staging, "write", refuse)

    result = run(make_csv("SO-1,ACME,2024-03-01,DRILL,1,1"))

    assert result.errors == [RowError(0, "the database refused the import, nothing was written: deadlock detected")]
    assert (result.refused, result.applied, result.orders_created) == (True, False, 0)
    assert counts() == {"orders": 0, "lines": 0, "accounts": 0}


# --- --map --------------------------------------------------------------------------------------


def test_map_renames_erp_columns_and_ignores_the_others(products):
    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
    data = make_csv(
        "536365,DRILL,POWER DRILL,6,2010-12-01 08:26:00,2.55,17850,United Kingdom",
        "536365,BITS,DRILL BITS,6,2010-12-01 08:26:00,3.39,17850,United Kingdom",
        header=header,
    )
    column_map = parse_column_map(
        "InvoiceNo=order_id, StockCode=sku,InvoiceDate=ordered_at,CustomerID=account_id,UnitPrice=unit_price,"
        "Quantity=quantity,"
    )

    result = run(data, column_map=column_map)

    assert (result.orders_created, result.lines_created, result.ignored_columns) == (1, 2, ["Description", "Country"])
    assert history() == [
        ("536365", "17850", "2010-12-01T07:26:00+00:00", [("BITS", 6, Decimal("3.39")), ("DRILL", 6, Decimal("2.55"))])
    ]


def test_map_may_rename_only_some_columns(products):
    data = make_csv("SO-1,ACME,2024-03-01,DRILL,1,1", header="order_id,customer,ordered_at,sku,quantity,unit_price")

    result = run(data, column_map={"customer": "account_id"})

    assert (result.orders_created, result.ignored_columns) == (1, [])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("InvoiceNo", "--map item 'InvoiceNo' is not source=target (e.g. InvoiceNo=order_id)"),
        ("=order_id", "--map item '=order_id' is not source=target (e.g. InvoiceNo=order_id)"),
        ("InvoiceNo=invoice", "--map target 'invoice' is not a column of the orders format "
         "(use one of: order_id, account_id, ordered_at, sku, quantity, unit_price)"),
        ("A=order_id,B=order_id", "--map renames several columns to 'order_id'"),
        ("A=order_id,A=sku", "--map names column 'A' twice"),
    ],
)  # fmt: skip
def test_malformed_map_is_a_clear_error(text, message):
    with pytest.raises(ValueError) as caught:
        parse_column_map(text)
    assert str(caught.value) == message


def test_map_target_that_is_no_column_is_refused_by_the_service_too():
    with pytest.raises(ValueError, match="--map target 'invoice' is not a column"):
        run(make_csv(), column_map={"InvoiceNo": "invoice"})


@pytest.mark.parametrize(
    ("header", "column_map", "message"),
    [
        (HEADER, {"InvoiceNo": "order_id"}, "--map names column 'InvoiceNo', which the file does not have "
         "(its columns: order_id, account_id, ordered_at, sku, quantity, unit_price)"),
        (HEADER, {"account_id": "order_id"}, "column 'order_id' appears twice (after --map renamed 'account_id')"),
    ],
    ids=["unknown source", "clash"],
)  # fmt: skip
def test_map_that_does_not_fit_the_file_is_reported_on_line_1(header, column_map, message):
    result = run(make_csv(header=header), column_map=column_map)

    assert result.errors[0] == RowError(1, message)
    assert result.refused


# --- returns and credit notes -------------------------------------------------------------------


def test_returns_and_credit_notes_are_skipped_and_counted(products):
    data = make_csv(
        "SO-1,ACME,2024-03-01,DRILL,2,129.00",
        "SO-1,ACME,2024-03-01,BITS,-1,5.00",  # a return line in an invoice
        "SO-1,ACME,2024-03-01,GLOVES,0,5.00",  # quantity 0 counts as a return too
        "C-1,ACME,2024-03-05,DRILL,-1,129.00",  # a credit note ...
        "C-1,ACME,not a date,NOPE,x,y",  # ... is skipped without reading its other cells
        "SO-2,ACME,2024-03-06,BITS,-3,5.00",  # an invoice of returns only: no order
        "SO-3,ACME,2024-03-06,BITS,-3,not a price",  # a return's cells after the quantity are not read
    )

    result = run(data)

    assert result.ok
    assert (result.rows, result.return_rows, result.credit_note_rows) == (7, 4, 2)
    assert (result.orders_created, result.lines_created) == (1, 1)
    assert history() == [("SO-1", "ACME", "2024-02-29T23:00:00+00:00", [("DRILL", 2, Decimal("129"))])]


def test_credit_prefix_is_an_option_and_empty_disables_it(products):
    data = make_csv(
        "CX-1,ACME,2024-03-01,DRILL,2,1", "SO-1,ACME,2024-03-01,DRILL,2,1", "CR-1,ACME,2024-03-01,DRILL,-2,1"
    )

    with_cr = run(data, credit_prefix="CR", dry_run=True)
    without = run(data, credit_prefix="")

    assert (with_cr.credit_note_rows, with_cr.return_rows, with_cr.orders_created) == (1, 0, 2)
    assert (without.credit_note_rows, without.return_rows, without.orders_created) == (0, 1, 2)
    assert [order[0] for order in history()] == ["CX-1", "SO-1"]


def test_a_bad_row_in_a_credit_note_or_return_line_does_not_count(products):
    result = run(make_csv("C-1,,,,,", "SO-1,,,NOPE,-1,", "SO-2,ACME,2024-03-01,DRILL,1,1"))

    assert (result.error_count, result.credit_note_rows, result.return_rows, result.orders_created) == (0, 1, 1, 1)


# --- merging the same SKU -----------------------------------------------------------------------


def test_same_sku_twice_in_an_order_is_merged_with_quantities_added(products):
    data = make_csv(
        "SO-1,ACME,2024-03-01,DRILL,1,100.00",
        "SO-1,ACME,2024-03-01,BITS,2,5.00",
        "SO-1,ACME,2024-03-01,DRILL,2,100.00",
        "SO-1,ACME,2024-03-01,DRILL,4,100.0000",
        "SO-2,ACME,2024-03-01,DRILL,1,100.00",
    )

    result = run(data)

    assert (result.lines_created, result.lines_merged, result.error_count) == (3, 2, 0)
    assert history()[0][3] == [("BITS", 2, Decimal("5")), ("DRILL", 7, Decimal("100"))]


def test_merged_rows_with_different_prices_get_the_quantity_weighted_average(products, monkeypatch):
    monkeypatch.setattr(staging_module, "PAGE", 2)  # the rows are read back in pages
    data = make_csv(
        "SO-1,ACME,2024-03-01,DRILL,1,10.00",
        "SO-1,ACME,2024-03-01,DRILL,2,11.00",  # (10 + 22) / 3 = 10.66666.. -> 10.6667
        "SO-1,ACME,2024-03-01,BITS,1,0.0001",
        "SO-1,ACME,2024-03-01,BITS,1,0.0000",  # 0.00005 -> rounded half up: 0.0001
        "SO-2,ACME,2024-03-01,DRILL,3,1.00",
        "SO-2,ACME,2024-03-01,GLOVES,1,2.00",
        "SO-2,ACME,2024-03-01,DRILL,1,0.00",  # 3 / 4 = 0.75
    )

    result = run(data)

    assert result.lines_merged == 3
    assert history() == [
        (
            "SO-1",
            "ACME",
            "2024-02-29T23:00:00+00:00",
            [("BITS", 2, Decimal("0.0001")), ("DRILL", 3, Decimal("10.6667"))],
        ),
        ("SO-2", "ACME", "2024-02-29T23:00:00+00:00", [("DRILL", 4, Decimal("0.75")), ("GLOVES", 1, Decimal("2"))]),
    ]


def test_lines_of_an_order_need_not_follow_each_other(products):
    data = make_csv(
        "SO-1,ACME,2024-03-01,DRILL,1,1",
        "SO-2,ACME,2024-03-02,DRILL,1,1",
        "SO-1,ACME,2024-03-01,BITS,1,1",
        "SO-1,ACME,2024-03-01,DRILL,2,1",
    )

    result = run(data)

    assert (result.orders_created, result.lines_created, result.lines_merged) == (2, 3, 1)
    assert history()[0][3] == [("BITS", 1, Decimal("1")), ("DRILL", 3, Decimal("1"))]


# --- idempotency --------------------------------------------------------------------------------

GOOD = make_csv(
    "SO-1,ACME,2024-03-01T10:00,DRILL,1,129.00",
    "SO-1,ACME,2024-03-01T10:00,BITS,3,12.50",
    "SO-1,ACME,2024-03-01T10:00,BITS,1,12.00",
    "SO-2,BUILDCO,2024-03-02,GLOVES,10,2.35",
)


def test_importing_the_same_file_again_changes_nothing(products):
    run(GOOD)
    before = history()
    stamps = dict(Order.objects.values_list("external_id", "imported_at"))
    ids = sorted(OrderLine.objects.values_list("id", flat=True))

    result = run(GOOD)

    assert result.ok and result.applied
    assert (result.orders_created, result.orders_existing, result.orders_differing) == (0, 2, 0)
    assert (result.lines_created, result.lines_merged, result.accounts_created) == (0, 0, 0)
    assert history() == before
    assert dict(Order.objects.values_list("external_id", "imported_at")) == stamps
    assert sorted(OrderLine.objects.values_list("id", flat=True)) == ids


def test_a_file_with_new_and_known_orders_adds_only_the_new_ones(products):
    run(GOOD)

    result = run(GOOD + b"SO-3,ACME,2024-03-03,DRILL,1,129.00\n")

    assert (result.orders_created, result.orders_existing, result.lines_created) == (1, 2, 1)
    assert [order[0] for order in history()] == ["SO-1", "SO-2", "SO-3"]


SO_2 = "SO-2,BUILDCO,2024-03-02,GLOVES,10,2.35"


@pytest.mark.parametrize(
    "so_1",
    [
        ["SO-1,ACME,2024-03-01T10:00,DRILL,2,129.00", "SO-1,ACME,2024-03-01T10:00,BITS,4,12.375"],
        ["SO-1,ACME,2024-03-01T10:00,DRILL,1,130.00", "SO-1,ACME,2024-03-01T10:00,BITS,4,12.375"],
        ["SO-1,OTHER,2024-03-01T10:00,DRILL,1,129.00", "SO-1,OTHER,2024-03-01T10:00,BITS,4,12.375"],
        ["SO-1,ACME,2024-03-01T11:00,DRILL,1,129.00", "SO-1,ACME,2024-03-01T11:00,BITS,4,12.375"],
        [
            "SO-1,ACME,2024-03-01T10:00,DRILL,1,129.00",
            "SO-1,ACME,2024-03-01T10:00,BITS,4,12.375",
            "SO-1,ACME,2024-03-01T10:00,GLOVES,1,2.35",
        ],
        ["SO-1,ACME,2024-03-01T10:00,DRILL,1,129.00"],
    ],
    ids=["quantity", "price", "account", "time", "a line more", "a line less"],
)
def test_a_known_order_that_differs_in_the_file_is_reported_not_overwritten(products, so_1):
    run(GOOD)
    before = history()
    unchanged = make_csv("SO-1,ACME,2024-03-01T10:00,DRILL,1,129.00", "SO-1,ACME,2024-03-01T10:00,BITS,4,12.375", SO_2)
    assert run(unchanged).orders_differing == 0  # the merged lines of GOOD, written as one line each

    result = run(make_csv(*so_1, SO_2))

    assert result.ok
    assert (result.orders_created, result.orders_existing, result.orders_differing) == (0, 2, 1)
    assert result.differing_orders == ["SO-1"]
    assert history() == before


def test_an_order_stored_otherwise_is_compared_too(products):
    order = OrderFactory(
        external_id="SO-1",
        account=CustomerAccountFactory(external_id="ACME"),
        ordered_at=datetime.datetime(2024, 3, 1, 9, tzinfo=UTC),
    )
    OrderLineFactory(order=order, product=products["DRILL"], quantity=1, unit_price=Decimal("129"))

    same = run(make_csv("SO-1,ACME,2024-03-01T10:00,DRILL,1,129"))
    other = run(make_csv("SO-1,ACME,2024-03-01T10:00,DRILL,1,129.0001"))

    assert (same.orders_existing, same.orders_differing) == (1, 0)
    assert (other.orders_existing, other.orders_differing, other.differing_orders) == (1, 1, ["SO-1"])


# --- dry run ------------------------------------------------------------------------------------


def test_dry_run_reports_what_would_happen_and_writes_nothing(products):
    result, rejects = run_with_rejects(MIXED, dry_run=True, skip_invalid=True)

    assert (result.dry_run, result.applied, result.refused) == (True, False, False)
    assert (result.orders_created, result.lines_created, result.accounts_created, result.rejected_rows) == (2, 2, 2, 6)
    assert counts() == {"orders": 0, "lines": 0, "accounts": 0}
    assert rejects.count("\n") == 7  # a dry run still reports the rejected rows


# --- time zones ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "stored"),
    [
        ("2024-03-01T10:15:00", datetime.datetime(2024, 3, 1, 9, 15, tzinfo=UTC)),  # naive: Europe/Amsterdam (CET)
        ("2024-07-01 10:15", datetime.datetime(2024, 7, 1, 8, 15, tzinfo=UTC)),  # summer time (CEST)
        ("2024-03-01", datetime.datetime(2024, 2, 29, 23, 0, tzinfo=UTC)),  # a date: local midnight
        ("2024-03-01T10:15:00Z", datetime.datetime(2024, 3, 1, 10, 15, tzinfo=UTC)),
        ("2024-03-01T10:15:00-05:00", datetime.datetime(2024, 3, 1, 15, 15, tzinfo=UTC)),
        ("2024-03-01T10:15:30.250+01:00", datetime.datetime(2024, 3, 1, 9, 15, 30, 250000, tzinfo=UTC)),
        ("2024-10-27T02:30:00", datetime.datetime(2024, 10, 27, 0, 30, tzinfo=UTC)),  # twice that night: the first
        ("20240301T101500", datetime.datetime(2024, 3, 1, 9, 15, tzinfo=UTC)),  # ISO 8601 basic format
    ],
)
def test_times_without_offset_are_read_in_the_configured_time_zone(products, cell, stored):
    run(make_csv(f"SO-1,ACME,{cell},DRILL,1,1"))

    order = Order.objects.get()
    assert order.ordered_at == stored
    assert order.ordered_at.tzinfo is not None


@override_settings(TIME_ZONE="America/New_York")
def test_the_time_zone_comes_from_the_settings(products):
    run(make_csv("SO-1,ACME,2024-03-01T10:15:00,DRILL,1,1"))

    assert Order.objects.get().ordered_at == datetime.datetime(2024, 3, 1, 15, 15, tzinfo=UTC)


def test_the_same_instant_written_in_two_zones_is_one_time(products):
    data = make_csv("SO-1,ACME,2024-03-01T10:15:00+01:00,DRILL,1,1", "SO-1,ACME,2024-03-01T09:15:00Z,BITS,1,1")

    result = run(data)

    assert (result.error_count, result.lines_created) == (0, 2)


# --- every database gives the same result -------------------------------------------------------

EVERYTHING = make_csv(
    "SO-10,ACME,2024-03-01T10:00:00,DRILL,1,129.00",
    "SO-10,ACME,2024-03-01T10:00:00,BITS,2,12.50",
    "SO-10,ACME,2024-03-01T10:00:00,DRILL,2,128.50",
    "SO-10,ACME,2024-03-01T10:00:00,GLOVES,-1,2.00",
    "SO-11,BUILDCO,2024-03-31T02:30:00+02:00,GLOVES,10,2.3456",
    "C-11,BUILDCO,2024-04-01,GLOVES,-10,2.3456",
    "SO-12,ACME,2024-04-02,NOPE,1,1",
    "SO-12,ACME,2024-04-02,DRILL,1,1",
    "SO-13,NEWCO,2024-04-03,BATTERY,5,39.99",
    "SO-13,NEWCO,2024-04-03,BATTERY,5,39.99",
    "SO-14,NEWCO,2024-04-03,BATTERY,5,0",
    "SO-14,OTHERCO,2024-04-03,BITS,5,0",
    "SO-15,ACME,2024-04-04 23:59:59.999999,BATTERY,3,39.99",
    "SO-15,ACME,2024-04-04T23:30,GLOVES,1,2",
)
EVERYTHING_HISTORY = [
    (
        "SO-10",
        "ACME",
        "2024-03-01T09:00:00+00:00",
        [("BITS", 2, Decimal("12.5")), ("DRILL", 3, Decimal("128.6667"))],
    ),
    ("SO-11", "BUILDCO", "2024-03-31T00:30:00+00:00", [("GLOVES", 10, Decimal("2.3456"))]),
    ("SO-13", "NEWCO", "2024-04-02T22:00:00+00:00", [("BATTERY", 5, Decimal("39.99"))]),
    (
        "SO-15",
        "ACME",
        "2024-04-04T21:30:00+00:00",
        [("BATTERY", 3, Decimal("39.99")), ("GLOVES", 1, Decimal("2"))],
    ),
]
EVERYTHING_REJECTS = (
    "order_id,account_id,ordered_at,sku,quantity,unit_price,line,reason\n"
    "SO-12,ACME,2024-04-02,NOPE,1,1,8,unknown SKU 'NOPE'\n"
    "SO-12,ACME,2024-04-02,DRILL,1,1,9,order 'SO-12' is rejected as a whole: line 8 is bad\n"
    "SO-14,NEWCO,2024-04-03,BATTERY,5,0,12,order 'SO-14' is rejected as a whole: line 13 is bad\n"
    "SO-14,OTHERCO,2024-04-03,BITS,5,0,13,order 'SO-14' has account_id 'OTHERCO' here but 'NEWCO' on line 12\n"
)


def test_this_database_gives_the_agreed_result(products):
    """The same literal expectations on SQLite and PostgreSQL (CI runs this module on both)."""
    result, rejects = run_with_rejects(EVERYTHING, skip_invalid=True)

    assert history() == EVERYTHING_HISTORY
    assert rejects == EVERYTHING_REJECTS
    assert [str(error) for error in result.errors] == [
        "line 8: unknown SKU 'NOPE'",
        "line 13: order 'SO-14' has account_id 'OTHERCO' here but 'NEWCO' on line 12",
    ]
    summary = {key: value for key, value in result.to_dict().items() if key not in ("errors", "timings")}
    assert summary == {
        "dry_run": False,
        "skip_invalid": True,
        "applied": True,
        "refused": False,
        "bulk_load": False,
        "direct_load": False,
        "rows": 14,
        "orders_created": 4,
        "orders_existing": 0,
        "orders_differing": 0,
        "lines_created": 6,
        "lines_merged": 1,
        "orders_spread": 1,
        "orders_anonymous": 0,
        "anonymous_account": None,
        "accounts_created": 3,
        "credit_note_rows": 1,
        "return_rows": 1,
        "non_product_rows": 0,
        "repeated_rows": 1,
        "rejected_rows": 4,
        "rejected_orders": 2,
        "error_count": 2,
        "differing_orders": [],
        "unknown_skus": [("NOPE", 1)],
        "ignored_columns": [],
    }
    assert sorted(CustomerAccount.objects.values_list("external_id", flat=True)) == ["ACME", "BUILDCO", "NEWCO"]


@pytest.mark.postgres
def test_copy_and_executemany_loading_agree(products, monkeypatch):
    """On PostgreSQL the rows go in by COPY; loading them as SQLite does gives the same."""
    copied, copied_rejects = run_with_rejects(EVERYTHING, skip_invalid=True, dry_run=True)
    monkeypatch.setattr(staging_module.Staging, "COPY_VENDORS", frozenset())
    inserted, inserted_rejects = run_with_rejects(EVERYTHING, skip_invalid=True, dry_run=True)

    assert copied_rejects == inserted_rejects == EVERYTHING_REJECTS
    ignore = {"timings"}
    assert {k: v for k, v in copied.to_dict().items() if k not in ignore} == {
        k: v for k, v in inserted.to_dict().items() if k not in ignore
    }
    assert connection.vendor == "postgresql"


# --- the bulk-load path (PostgreSQL) ------------------------------------------------------------


def line_table_schema() -> dict[str, list[tuple]]:
    """The line table's constraints and indexes with their definitions, as PostgreSQL has them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, contype, pg_get_constraintdef(oid), condeferrable, condeferred, convalidated "
            "FROM pg_constraint WHERE conrelid = 'orders_orderline'::regclass ORDER BY conname"
        )
        constraints = cursor.fetchall()
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'orders_orderline' ORDER BY 1")
        indexes = cursor.fetchall()
    return {"constraints": constraints, "indexes": indexes}


@pytest.fixture(params=["direct", "staged"])
def bulk_load(request, monkeypatch):
    """Every load is a big load: the bulk-load path on the tests' small files, tried first by
    the direct load (orders.imports.direct) and, for "staged", by the staged import only."""
    monkeypatch.setattr(staging_module, "BULK_LOAD_MIN_LINES", 1)
    monkeypatch.setattr(staging_module, "BULK_LOAD_MIN_SHARE", 0)
    if request.param == "staged":
        monkeypatch.setattr(direct_module, "wanted", lambda staging, source: False)
    return request.param


BULK_FILE = make_csv(
    "SO-1,ACME,2024-03-01T10:00,DRILL,1,129.00",
    "SO-1,ACME,2024-03-01T10:00,BITS,2,12.50",
    "SO-1,ACME,2024-03-01T10:00,DRILL,2,128.50",
    "SO-2,BUILDCO,2024-03-02,GLOVES,10,2.3456",
)


@pytest.mark.postgres
def test_a_bulk_load_recreates_the_same_constraints_and_indexes(products, bulk_load):
    OrderLineFactory(order=OrderFactory(external_id="SO-0"), product=products["BATTERY"])
    before = line_table_schema()
    assert [name for name, *_ in before["constraints"]] == [
        "orders_line_one_per_product",
        "orders_line_price_not_negative",
        "orders_line_quantity_positive",
        "orders_orderline_order_id_17f8f3ef_fk_orders_order_id",
        "orders_orderline_pkey",
        "orders_orderline_product_id_a68772b6_fk_catalog_product_id",
        "orders_orderline_quantity_check",
    ]

    result = run(BULK_FILE)

    assert (result.bulk_load, result.error_count, result.orders_created, result.lines_created) == (True, 0, 2, 3)
    assert result.direct_load is (bulk_load == "direct")
    assert result.timings["rebuild"] >= 0
    assert line_table_schema() == before
    assert history()[1:] == [
        (
            "SO-1",
            "ACME",
            "2024-03-01T09:00:00+00:00",
            [("BITS", 2, Decimal("12.5")), ("DRILL", 3, Decimal("128.6667"))],
        ),
        ("SO-2", "BUILDCO", "2024-03-01T23:00:00+00:00", [("GLOVES", 10, Decimal("2.3456"))]),
    ]
    # The re-created unique constraint is enforced.
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        with pytest.raises(DatabaseError, match="orders_line_one_per_product"):
            cursor.execute(
                "INSERT INTO orders_orderline (order_id, product_id, quantity, unit_price) "
                "SELECT order_id, product_id, 1, 1 FROM orders_orderline LIMIT 1"
            )


@pytest.mark.postgres
def test_small_loads_keep_the_regular_path(products):
    result = run(BULK_FILE)

    assert (result.bulk_load, result.lines_created) == (False, 3)
    assert "rebuild" not in result.timings


@pytest.mark.postgres
def test_no_bulk_load_keeps_a_big_load_on_the_regular_path(products, bulk_load):
    result = run(BULK_FILE, allow_bulk_load=False)

    assert (result.bulk_load, result.lines_created) == (False, 3)
    assert "rebuild" not in result.timings


@pytest.mark.postgres
def test_the_rule_weighs_the_load_against_the_stored_lines(monkeypatch):
    staging = staging_module.Staging(connection)
    monkeypatch.setattr(staging_module, "BULK_LOAD_MIN_LINES", 100)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE orders_orderline")  # an empty table: reltuples 0

    assert (staging.bulk_load_wanted(99), staging.bulk_load_wanted(100)) == (False, True)


@pytest.mark.postgres
def test_a_bulk_load_that_the_database_refuses_leaves_everything_as_it_was(products, bulk_load, monkeypatch):
    """A line that breaks a foreign key is caught when the key is re-created: the import is
    refused and the dropped constraints and indexes are back, with nothing written."""
    OrderLineFactory(order=OrderFactory(external_id="SO-0"), product=products["BATTERY"])
    before_schema, before_history = line_table_schema(), history()
    rebuild = staging_module.Staging.bulk_load_rebuild

    def break_a_line(self, statements):
        self.execute("UPDATE {line} SET product_id = -1 WHERE id = (SELECT MAX(id) FROM {line})")
        rebuild(self, statements)

    monkeypatch.setattr(staging_module.Staging, "bulk_load_rebuild", break_a_line)

    result = run(BULK_FILE)

    assert (result.refused, result.applied, result.orders_created, result.lines_created) == (True, False, 0, 0)
    assert "orders_orderline_product_id_a68772b6_fk_catalog_product_id" in result.errors[0].message
    assert line_table_schema() == before_schema
    assert history() == before_history
    assert counts() == {"orders": 1, "lines": 1, "accounts": 1}


@pytest.mark.postgres
def test_a_bad_row_still_aborts_a_bulk_load(products, bulk_load):
    before_schema = line_table_schema()

    result = run(BULK_FILE + b"SO-3,ACME,2024-03-03,NOPE,1,1\n")

    assert (result.refused, result.error_count, [str(e) for e in result.errors]) == (
        True,
        1,
        ["line 6: unknown SKU 'NOPE'"],
    )
    assert counts() == {"orders": 0, "lines": 0, "accounts": 0}
    assert line_table_schema() == before_schema


@pytest.mark.postgres
@pytest.mark.parametrize("busy", ["catalog_product", "accounts_customeraccount"])
def test_a_bulk_load_falls_back_to_the_regular_path_when_the_tables_are_busy(products, bulk_load, monkeypatch, busy):
    """Another session reads the products or the accounts (an open transaction holds its lock):
    the bulk-load locks are not granted in time, so the orders and lines go in on the regular
    path, still all of them."""
    import psycopg

    monkeypatch.setattr(staging_module, "BULK_LOAD_LOCK_TIMEOUT", "100ms")
    before_schema = line_table_schema()
    params = connection.settings_dict
    with psycopg.connect(
        dbname=params["NAME"],
        user=params["USER"],
        password=params["PASSWORD"],
        host=params["HOST"],
        port=params["PORT"],
    ) as other:
        other.execute(f"SELECT COUNT(*) FROM {busy}")  # its transaction stays open

        result = run(BULK_FILE)

    assert (result.bulk_load, result.error_count, result.orders_created, result.lines_created) == (False, 0, 2, 3)
    assert line_table_schema() == before_schema


@pytest.mark.postgres
def test_a_bulk_load_recreates_the_order_tables_key_and_indexes(products, bulk_load, monkeypatch):
    """The order table's foreign key and secondary indexes are dropped for a bulk load too (its
    primary key and unique order id stay): they are back, the same, and enforced."""

    def order_table_schema() -> dict[str, list[tuple]]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT conname, contype, pg_get_constraintdef(oid), condeferrable, condeferred, convalidated "
                "FROM pg_constraint WHERE conrelid = 'orders_order'::regclass ORDER BY conname"
            )
            constraints = cursor.fetchall()
            cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'orders_order' ORDER BY 1")
            return {"constraints": constraints, "indexes": cursor.fetchall()}

    before = order_table_schema()
    assert [name for name, *_ in before["indexes"]] == [
        "orders_order_account_id_cf843c80",
        "orders_order_external_id_69693fd3_like",
        "orders_order_external_id_key",
        "orders_order_ordered_at_6ce09183",
        "orders_order_pkey",
    ]
    dropped: list[list[str]] = []
    drop = staging_module.Staging.bulk_load_drop

    def spy(self):
        statements = drop(self)
        dropped.append(statements)
        return statements

    monkeypatch.setattr(staging_module.Staging, "bulk_load_drop", spy)

    result = run(BULK_FILE)

    assert (result.bulk_load, result.orders_created, result.lines_created) == (True, 2, 3)
    assert result.direct_load is (bulk_load == "direct")
    assert [statement.split(" ADD CONSTRAINT ")[-1].split(" ON ")[0] for statement in dropped[0]] == [
        '"orders_orderline_pkey" PRIMARY KEY (id)',
        '"orders_line_one_per_product" UNIQUE (order_id, product_id)',
        "CREATE INDEX orders_line_product_idx",
        "CREATE INDEX orders_order_account_id_cf843c80",
        "CREATE INDEX orders_order_external_id_69693fd3_like",
        "CREATE INDEX orders_order_ordered_at_6ce09183",
        '"orders_orderline_order_id_17f8f3ef_fk_orders_order_id" FOREIGN KEY (order_id) '
        "REFERENCES orders_order(id) DEFERRABLE INITIALLY DEFERRED",
        '"orders_orderline_product_id_a68772b6_fk_catalog_product_id" FOREIGN KEY (product_id) '
        "REFERENCES catalog_product(id) DEFERRABLE INITIALLY DEFERRED",
        '"orders_order_account_id_cf843c80_fk_accounts_customeraccount_id" FOREIGN KEY (account_id) '
        "REFERENCES accounts_customeraccount(id) DEFERRABLE INITIALLY DEFERRED",
    ]
    assert order_table_schema() == before
    # The line ids are unique and the re-created keys are enforced.
    assert len(set(OrderLine.objects.values_list("id", flat=True))) == 3
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        with pytest.raises(DatabaseError, match="orders_orderline_pkey"), transaction.atomic():
            cursor.execute(
                "INSERT INTO orders_orderline (id, order_id, product_id, quantity, unit_price) "
                "SELECT id, order_id, (SELECT MIN(id) FROM catalog_product WHERE sku = 'BATTERY'), 1, 1 "
                "FROM orders_orderline LIMIT 1"
            )
        with pytest.raises(DatabaseError, match="orders_order_account_id_cf843c80_fk"), transaction.atomic():
            cursor.execute("UPDATE orders_order SET account_id = -1 WHERE external_id = 'SO-1'")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_order_created_by_someone_else_just_before_the_bulk_load_locks_is_left_alone(
    products, bulk_load, monkeypatch
):
    """The orders to create are known before the bulk-load locks are taken; one that another
    session creates in between is then present, counted as such, and not written twice. (The
    direct load, which takes the locks first, finds it stored and leaves the file to the
    staged import.)"""
    lock = staging_module.Staging.bulk_load_lock

    def someone_else_first(self):
        import psycopg

        params = connection.settings_dict
        with psycopg.connect(
            dbname=params["NAME"], user=params["USER"], password=params["PASSWORD"], host=params["HOST"],
            port=params["PORT"], autocommit=True,
        ) as other:  # fmt: skip
            other.execute(
                "INSERT INTO orders_order (external_id, account_id, ordered_at, imported_at) "
                "SELECT 'SO-2', id, '2024-01-01T00:00:00Z', now() FROM accounts_customeraccount "
                "WHERE external_id = 'OTHER' ON CONFLICT (external_id) DO NOTHING"
            )
        return lock(self)

    CustomerAccountFactory(external_id="OTHER")
    monkeypatch.setattr(staging_module.Staging, "bulk_load_lock", someone_else_first)

    result = run(BULK_FILE)

    assert (result.bulk_load, result.direct_load, result.error_count) == (True, False, 0)
    assert ("direct_load_given_up" in result.timings) is (bulk_load == "direct")
    assert (result.orders_created, result.orders_existing, result.lines_created, result.lines_merged) == (1, 1, 2, 1)
    assert sorted(
        OrderLine.objects.values_list("order__external_id", "order__account__external_id", "product__sku", "quantity")
    ) == [("SO-1", "ACME", "BITS", 2), ("SO-1", "ACME", "DRILL", 3)]
    assert list(Order.objects.order_by("external_id").values_list("external_id", "account__external_id")) == [
        ("SO-1", "ACME"),
        ("SO-2", "OTHER"),
    ]


# --- loading by chunks (PostgreSQL) ---------------------------------------------------------------


def test_rows_are_cut_into_chunks_where_an_order_changes_or_when_a_chunk_is_full():
    from orders.imports.reading import parse_rows, read_header

    header, _ = read_header(HEADER.split(","), {})
    orders = ["A", "A", "B", "B", "B", "C", "C", "C", "C", "C", "C", "C", "C", "C", "D"]
    lines = [(n, [order, "ACME", "2024-03-01", "DRILL", "1", "1"]) for n, order in enumerate(orders, start=2)]
    chunks: list[list[str]] = [[]]

    counts = parse_rows(
        iter(lines),
        header,
        tz=UTC,
        credit_prefix="",
        moment_value=lambda moment: moment,
        stage=lambda row: chunks[-1].append(row[1]),
        reject=lambda *args: None,
        end_chunk=lambda: chunks.append([]),
        chunk_rows=2,
    )

    # A chunk ends at the first order change after 2 rows, or after 4 x 2 rows in any case.
    assert chunks == [["A", "A"], ["B", "B", "B"], ["C"] * 8, ["C", "D"]]
    assert counts.staged_rows == 15


# Orders whose rows are far apart, so that small chunks split them: merges, a weighted price,
# repeated rows, rows at different times and disagreeing rows across chunks, each found as in
# one pass.
INTERLEAVED = make_csv(
    "SO-1,ACME,2024-03-01T10:00,DRILL,1,10.00",
    "SO-2,BUILDCO,2024-03-02,GLOVES,5,2.00",
    "SO-1,ACME,2024-03-01T10:00,BITS,2,5.00",
    "SO-3,ACME,2024-03-03,DRILL,1,1.00",
    "SO-1,ACME,2024-03-01T10:00,DRILL,2,11.00",
    "SO-2,BUILDCO,2024-03-02,GLOVES,5,2.00",
    "SO-3,OTHERCO,2024-03-03,BITS,1,1.00",
    "SO-4,ACME,2024-03-04,DRILL,2000000000,1",
    "SO-5,ACME,2024-03-05,BATTERY,1,39.99",
    "SO-4,ACME,2024-03-04,DRILL,200000000,1",
    "SO-5,ACME,2024-03-05,NOPE,1,1",
    "SO-6,ACME,2024-03-06,BATTERY,1,39.99",
    "SO-6,ACME,2024-03-06,BATTERY,1,39.99",
    "SO-7,ACME,2024-03-07,GLOVES,1,2.00",
    "SO-7,ACME,2024-03-07,GLOVES,1,2.00",
    "SO-7,ACME,2024-03-07,GLOVES,1,2.00",
    "SO-1,ACME,2024-03-01T10:00,GLOVES,1,2.00",
    "SO-8,BUILDCO,2024-03-08,BITS,1,5.00",
    "SO-8,BUILDCO,2024-03-08,DRILL,1,129.00",
    "SO-1,ACME,2024-03-01T09:59,BATTERY,1,39.99",
)
INTERLEAVED_ERRORS = [
    "line 8: order 'SO-3' has account_id 'OTHERCO' here but 'ACME' on line 5",
    "line 9: the lines of SKU 'DRILL' in order 'SO-4' add up to quantity 2200000000, more than 2147483647",
    "line 11: the lines of SKU 'DRILL' in order 'SO-4' add up to quantity 2200000000, more than 2147483647",
    "line 12: unknown SKU 'NOPE'",
]
INTERLEAVED_HISTORY = [
    (
        "SO-1",
        "ACME",
        "2024-03-01T08:59:00+00:00",
        [
            ("BATTERY", 1, Decimal("39.99")),
            ("BITS", 2, Decimal("5")),
            ("DRILL", 3, Decimal("10.6667")),
            ("GLOVES", 1, Decimal("2")),
        ],
    ),
    ("SO-2", "BUILDCO", "2024-03-01T23:00:00+00:00", [("GLOVES", 5, Decimal("2"))]),
    ("SO-6", "ACME", "2024-03-05T23:00:00+00:00", [("BATTERY", 1, Decimal("39.99"))]),
    ("SO-7", "ACME", "2024-03-06T23:00:00+00:00", [("GLOVES", 1, Decimal("2"))]),
    ("SO-8", "BUILDCO", "2024-03-07T23:00:00+00:00", [("BITS", 1, Decimal("5")), ("DRILL", 1, Decimal("129"))]),
]


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("chunk_rows", "partitions"),
    [(1, 63), (2, 63), (3, 63), (50_000, 63), (1, 2), (2, 0)],
    ids=["1", "2", "3", "50000", "1, then through the chunk table", "2, all through the chunk table"],
)
def test_loading_by_chunks_gives_the_result_of_one_pass(products, monkeypatch, chunk_rows, partitions):
    monkeypatch.setattr(staging_module, "CHUNK_ROWS", chunk_rows)
    monkeypatch.setattr(staging_module, "CHUNK_PARTITIONS", partitions)
    chunked, chunked_rejects = run_with_rejects(INTERLEAVED, skip_invalid=True, dry_run=True)
    with monkeypatch.context() as one_pass:
        one_pass.setattr(staging_module.Staging, "COPY_VENDORS", frozenset())
        whole, whole_rejects = run_with_rejects(INTERLEAVED, skip_invalid=True, dry_run=True)

    assert [str(error) for error in chunked.errors] == INTERLEAVED_ERRORS
    assert chunked_rejects == whole_rejects
    assert chunked_rejects.count("\n") == 1 + 6  # the header and every row of the three bad orders
    ignore = {"timings"}
    assert {k: v for k, v in chunked.to_dict().items() if k not in ignore} == {
        k: v for k, v in whole.to_dict().items() if k not in ignore
    }
    assert (chunked.orders_created, chunked.lines_created, chunked.lines_merged) == (5, 9, 1)
    assert (chunked.rejected_orders, chunked.repeated_rows, chunked.orders_spread) == (3, 4, 1)

    result = run(INTERLEAVED, skip_invalid=True)

    assert (result.applied, result.orders_created, result.lines_created) == (True, 5, 9)
    assert history() == INTERLEAVED_HISTORY


@pytest.mark.postgres
def test_the_agreed_result_holds_with_the_smallest_chunks(products, monkeypatch):
    monkeypatch.setattr(staging_module, "CHUNK_ROWS", 1)

    result, rejects = run_with_rejects(EVERYTHING, skip_invalid=True)

    assert history() == EVERYTHING_HISTORY
    assert rejects == EVERYTHING_REJECTS
    assert (result.orders_created, result.lines_created, result.lines_merged, result.error_count) == (4, 6, 1, 2)
    assert (result.repeated_rows, result.orders_spread) == (1, 1)


@pytest.mark.postgres
def test_a_chunk_the_database_refuses_refuses_the_import_and_the_connection_goes_on(products, monkeypatch):
    monkeypatch.setattr(staging_module, "CHUNK_ROWS", 1)
    monkeypatch.setattr(staging_module, "CHUNK_SQL", "SELECT 1 / 0; " + staging_module.CHUNK_SQL)

    result = run(GOOD)

    assert (result.refused, result.applied, result.orders_created, result.error_count) == (True, False, 0, 1)
    assert result.errors[0].message.startswith("the database refused the import, nothing was written: division by zero")
    assert counts() == {"orders": 0, "lines": 0, "accounts": 0}
    monkeypatch.undo()
    assert (run(GOOD).orders_created, counts()) == (2, {"orders": 2, "lines": 3, "accounts": 2})


@pytest.mark.postgres
def test_a_file_that_breaks_off_while_a_chunk_is_grouped_is_refused_cleanly(products, monkeypatch):
    monkeypatch.setattr(staging_module, "CHUNK_ROWS", 1)
    data = make_csv(
        "SO-1,ACME,2024-03-01,DRILL,1,1", "SO-2,ACME,2024-03-01,DRILL,1,1", 'SO-3,ACME,2024-03-01,DRILL,1,"1'
    )

    result = run(data)

    assert result.errors == [RowError(4, "cannot be read as CSV: unexpected end of data")]
    assert (result.refused, counts()) == (True, {"orders": 0, "lines": 0, "accounts": 0})
    assert run(GOOD).orders_created == 2


# --- comparing with the stored orders -------------------------------------------------------------

STORED = make_csv(
    "SO-1,ACME,2024-03-01T10:00,DRILL,1,129.00",
    "SO-1,ACME,2024-03-01T10:00,BITS,3,12.50",
    "SO-2,ACME,2024-03-02,DRILL,2,129.00",
    "SO-3,ACME,2024-03-03,DRILL,1,129.00",
    "SO-3,ACME,2024-03-03,BITS,1,12.50",
    "SO-4,ACME,2024-03-04,DRILL,1,129.00",
    "SO-5,ACME,2024-03-05,DRILL,1,129.00",
    "SO-6,ACME,2024-03-06,DRILL,1,129.00",
    "SO-7,ACME,2024-03-07,GLOVES,4,2.00",
    "SO-8,ACME,2024-03-08,GLOVES,4,2.00",
)
AGAIN = make_csv(
    "SO-1,ACME,2024-03-01T10:00,DRILL,1,129.00",  # the same, merged otherwise
    "SO-1,ACME,2024-03-01T10:00,BITS,1,12.50",
    "SO-1,ACME,2024-03-01T10:00,BITS,2,12.50",
    "SO-2,ACME,2024-03-02,DRILL,3,129.00",  # another quantity
    "SO-3,ACME,2024-03-03,DRILL,1,129.00",  # a line less
    "SO-4,ACME,2024-03-04,DRILL,1,129.00",  # a line more
    "SO-4,ACME,2024-03-04,BITS,1,12.50",
    "SO-5,ACME,2024-03-05,DRILL,1,129.0001",  # another price
    "SO-6,BUILDCO,2024-03-06,DRILL,1,129.00",  # another account
    "SO-7,ACME,2024-03-07T01:00,GLOVES,4,2.00",  # another time
    "SO-8,ACME,2024-03-08,BITS,4,2.00",  # another product
    "SO-9,ACME,2024-03-09,DRILL,1,1.00",  # new
)


@pytest.mark.postgres
def test_both_ways_of_comparing_with_the_stored_orders_agree(products, monkeypatch):
    """PostgreSQL compares by one full join; the join-and-count of SQLite finds the same."""
    run(STORED)

    full_join = run(AGAIN, dry_run=True)
    monkeypatch.setattr(staging_module.Staging, "FULL_JOIN_VENDORS", frozenset())
    join_and_count = run(AGAIN, dry_run=True)

    expected = ["SO-2", "SO-3", "SO-4", "SO-5", "SO-6", "SO-7", "SO-8"]
    assert (full_join.orders_differing, full_join.differing_orders) == (7, expected)
    assert (join_and_count.orders_differing, join_and_count.differing_orders) == (7, expected)
    assert (full_join.orders_existing, full_join.orders_created) == (8, 1)


def test_every_kind_of_difference_from_the_stored_orders_is_found(products):
    run(STORED)

    result = run(AGAIN)

    assert (result.orders_existing, result.orders_differing, result.orders_created) == (8, 7, 1)
    assert result.differing_orders == ["SO-2", "SO-3", "SO-4", "SO-5", "SO-6", "SO-7", "SO-8"]
