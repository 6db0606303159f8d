"""The import_orders command: its summary, its errors and exit status, and its options."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from accounts.models import CustomerAccount
from orders import imports
from orders.models import Order, OrderLine
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

HEADER = "order_id,account_id,ordered_at,sku,quantity,unit_price"


@pytest.fixture(autouse=True)
def products():
    for sku in ("DRILL", "BITS", "GLOVES"):
        ProductFactory(sku=sku)


def write(path: Path, *rows: str, header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def call(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_orders", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


GOOD = (
    "SO-1,ACME,2024-03-01,DRILL,1,129.00",
    "SO-1,ACME,2024-03-01,BITS,2,5.00",
    "SO-1,ACME,2024-03-01,BITS,1,5.00",
    "SO-1,ACME,2024-03-01,GLOVES,-1,5.00",
    "C-2,ACME,2024-03-02,DRILL,-1,129.00",
)


def unknown(listed: str, codes: str) -> list[str]:
    """What the command adds to the errors when some SKUs are unknown."""
    return [
        f"Unknown SKUs, most rows first: {listed}.",
        f"Codes that are not goods (postage, fees, adjustments) can be skipped: import again with "
        f"--non-product-codes '{codes}' (keep only those that are not products). Missing products: "
        "import_products first.",
    ]


BAD = (
    "SO-1,ACME,2024-03-01,DRILL,1,129.00",
    "SO-2,ACME,2024-03-02,NOPE,1,5.00",
    "SO-2,ACME,2024-03-02,DRILL,1,5.00",
    "SO-3,ACME,someday,DRILL,1,5.00",
)


def test_prints_a_summary(tmp_path):
    out, err = call(str(write(tmp_path / "orders.csv", *GOOD)))

    assert out == (
        "Imported orders.csv: 5 rows; 1 order created with 2 lines (1 row merged into a line of the same SKU), "
        "0 orders already present (left unchanged), 1 new customer account.\n"
        "Skipped: 1 return line (quantity 0 or less), 1 credit-note row.\n"
    )
    assert err == ""
    assert (Order.objects.count(), OrderLine.objects.count()) == (1, 2)


def test_running_it_again_changes_nothing(tmp_path):
    path = write(tmp_path / "orders.csv", *GOOD)
    call(str(path))

    out, _ = call(str(path))

    assert out.splitlines()[0] == (
        "Imported orders.csv: 5 rows; 0 orders created with 0 lines (0 rows merged into a line of the same SKU), "
        "1 order already present (left unchanged), 0 new customer accounts."
    )
    assert (Order.objects.count(), OrderLine.objects.count()) == (1, 2)


def test_bad_rows_fail_with_their_line_numbers_and_write_nothing(tmp_path):
    path = write(tmp_path / "orders.csv", *BAD)
    err = io.StringIO()

    with pytest.raises(CommandError) as caught:
        call_command("import_orders", str(path), stdout=io.StringIO(), stderr=err)

    assert str(caught.value) == f"2 errors in {path}; nothing was written."
    assert caught.value.returncode == 1
    assert err.getvalue() == (
        "line 3: unknown SKU 'NOPE'\n"
        "line 5: ordered_at 'someday' is not an ISO 8601 date and time (e.g. 2024-03-01T14:30:00 or 2024-03-01 14:30)\n"
        + "".join(f"{line}\n" for line in unknown("NOPE (1 row)", "NOPE"))
    )
    assert Order.objects.count() == 0
    assert not (tmp_path / "orders.csv.rejects.csv").exists()


def test_skip_invalid_imports_the_rest_and_writes_the_reject_file_next_to_the_input(tmp_path):
    path = write(tmp_path / "orders.csv", *BAD)

    out, err = call(str(path), "--skip-invalid")

    rejects = tmp_path / "orders.csv.rejects.csv"
    assert out == (
        "Imported orders.csv: 4 rows; 1 order created with 1 line (0 rows merged into a line of the same SKU), "
        "0 orders already present (left unchanged), 1 new customer account.\n"
        "Skipped: 0 return lines (quantity 0 or less), 0 credit-note rows.\n"
        f"Rejected: 3 rows of 2 orders (2 bad rows); see {rejects}.\n"
    )
    assert err.splitlines() == [
        "line 3: unknown SKU 'NOPE'",
        "line 5: ordered_at 'someday' is not an ISO 8601 date and time (e.g. 2024-03-01T14:30:00 or 2024-03-01 14:30)",
        *unknown("NOPE (1 row)", "NOPE"),
    ]
    assert rejects.read_text(encoding="utf-8") == (
        "order_id,account_id,ordered_at,sku,quantity,unit_price,line,reason\n"
        "SO-2,ACME,2024-03-02,NOPE,1,5.00,3,unknown SKU 'NOPE'\n"
        "SO-2,ACME,2024-03-02,DRILL,1,5.00,4,order 'SO-2' is rejected as a whole: line 3 is bad\n"
        "SO-3,ACME,someday,DRILL,1,5.00,5,ordered_at 'someday' is not an ISO 8601 date and time "
        "(e.g. 2024-03-01T14:30:00 or 2024-03-01 14:30)\n"
    )
    assert list(Order.objects.values_list("external_id", flat=True)) == ["SO-1"]


def test_rejects_option_names_the_reject_file_even_without_skip_invalid(tmp_path):
    path = write(tmp_path / "orders.csv", *BAD)
    rejects = tmp_path / "out" / "bad.csv"
    rejects.parent.mkdir()

    with pytest.raises(CommandError) as caught:
        call(str(path), "--rejects", str(rejects))

    assert str(caught.value) == f"2 errors in {path}; nothing was written (the rejected rows are in {rejects})."
    assert rejects.read_text(encoding="utf-8").count("\n") == 4


def test_dry_run_reports_and_writes_nothing(tmp_path):
    out, _ = call(str(write(tmp_path / "orders.csv", *GOOD)), "--dry-run")

    assert out.splitlines()[0].startswith("Would import orders.csv: 5 rows; 1 order created with 2 lines")
    assert out.splitlines()[-1] == "Dry run: nothing was written."
    assert Order.objects.count() == 0


def test_dry_run_with_errors_fails_like_the_real_run(tmp_path):
    with pytest.raises(CommandError, match="^2 errors in .*; nothing was written.$"):
        call(str(write(tmp_path / "orders.csv", *BAD)), "--dry-run")


def test_map_and_credit_prefix_options(tmp_path):
    path = write(
        tmp_path / "erp.csv",
        "536365,DRILL,Power drill,2,2010-12-01 08:26:00,2.55,17850,United Kingdom",
        "C536366,DRILL,Power drill,-1,2010-12-01 08:28:00,2.55,17850,United Kingdom",
        "X536367,BITS,Bits,1,2010-12-01 08:30:00,1.00,17850,United Kingdom",
        header="InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country",
    )
    mapping = "InvoiceNo=order_id,StockCode=sku,InvoiceDate=ordered_at,CustomerID=account_id,UnitPrice=unit_price"

    out, _ = call(str(path), "--map", mapping + ",Quantity=quantity", "--credit-prefix", "X")

    assert "1 return line (quantity 0 or less), 1 credit-note row." in out
    assert out.splitlines()[-1] == "Ignored columns: Description, Country."
    # With credit prefix X, C536366 is an invoice (of one return line, so no order) and X536367 a credit note.
    assert list(Order.objects.values_list("external_id", flat=True)) == ["536365"]
    assert list(OrderLine.objects.values_list("product__sku", "quantity")) == [("DRILL", 2)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--map", "InvoiceNo"], "--map item 'InvoiceNo' is not source=target (e.g. InvoiceNo=order_id)"),
        (["--map", "InvoiceNo=invoice"], "--map target 'invoice' is not a column of the orders format"),
    ],
)
def test_bad_map_is_refused_before_reading(tmp_path, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        call(str(write(tmp_path / "orders.csv", *GOOD)), *args)


def test_map_source_missing_from_the_file_is_an_error_on_line_1(tmp_path):
    err = io.StringIO()
    with pytest.raises(CommandError, match="^1 error in "):
        call_command("import_orders", str(write(tmp_path / "o.csv", *GOOD)), "--map", "InvoiceNo=order_id", stderr=err)
    assert err.getvalue().startswith("line 1: --map names column 'InvoiceNo', which the file does not have")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match=r"^Cannot open .*nope.csv: No such file or directory$"):
        call(str(tmp_path / "nope.csv"))


def test_long_error_lists_are_cut_and_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(imports, "ERRORS_KEPT", 2)
    path = write(tmp_path / "orders.csv", *[f"SO-{n},ACME,2024-03-01,NOPE,1,1" for n in range(5)])
    err = io.StringIO()

    with pytest.raises(CommandError, match="^5 errors in "):
        call_command("import_orders", str(path), stdout=io.StringIO(), stderr=err)

    assert err.getvalue().splitlines() == [
        "line 2: unknown SKU 'NOPE'",
        "line 3: unknown SKU 'NOPE'",
        "... and 3 more errors.",
        *unknown("NOPE (5 rows)", "NOPE"),
    ]


def test_a_known_order_that_differs_is_a_warning(tmp_path):
    call(str(write(tmp_path / "a.csv", "SO-1,ACME,2024-03-01,DRILL,1,1")))

    out, err = call(str(write(tmp_path / "b.csv", "SO-1,ACME,2024-03-01,DRILL,2,1")))

    assert err == "Warning: 1 order already present differs in this file and was left unchanged: SO-1\n"
    assert "1 order already present (left unchanged)" in out
    assert OrderLine.objects.get().quantity == 1


def test_verbosity_2_prints_the_timings(tmp_path):
    out, _ = call(str(write(tmp_path / "orders.csv", *GOOD)), "-v", "2")

    assert out.splitlines()[-1].startswith("Timings (s): read_and_stage ")


# --- real ERP exports: spread-out times, repeated rows, orders without a customer, postage ------

ERP = (
    "536365,17850,2010-12-01 08:26:00,DRILL,6,2.55",
    "536365,17850,2010-12-01 08:27:00,BITS,6,3.39",  # a minute later: the same order
    "536365,17850,2010-12-01 08:26:00,DRILL,6,2.55",  # the same line twice
    "536365,17850,2010-12-01 08:26:00,POST,1,18.00",
    "536366,,2010-12-01 08:28:00,GLOVES,6,1.85",  # no customer
    "536366,,2010-12-01 08:28:00,BITS,2,3.39",
    "536367,,2010-12-01 08:34:00,BANK CHARGES,1,15.00",
    "536367,,2010-12-01 08:34:00,DRILL,1,2.55",
)


def test_an_erp_export_with_its_habits_is_imported_and_each_habit_counted(tmp_path):
    path = write(tmp_path / "erp.csv", *ERP)

    out, err = call(str(path), "--anonymous", "WALK-IN", "--non-product-codes", "POST, BANK CHARGES")

    assert err == ""
    assert out == (
        "Imported erp.csv: 8 rows; 3 orders created with 5 lines (0 rows merged into a line of the same SKU), "
        "0 orders already present (left unchanged), 2 new customer accounts.\n"
        "1 order had lines at different times and was given the earliest.\n"
        "2 orders without a customer loaded under the placeholder account WALK-IN.\n"
        "Skipped: 0 return lines (quantity 0 or less), 0 credit-note rows, 1 repeated row (the same as an earlier "
        "row), 2 non-product rows (--non-product-codes).\n"
    )
    order = Order.objects.get(external_id="536365")
    assert order.ordered_at.isoformat() == "2010-12-01T07:26:00+00:00"
    assert sorted(order.lines.values_list("product__sku", "quantity")) == [("BITS", 6), ("DRILL", 6)]
    assert list(Order.objects.filter(account__external_id="WALK-IN").order_by("external_id").values_list(
        "external_id", "account__is_placeholder")) == [("536366", True), ("536367", True)]  # fmt: skip
    assert list(CustomerAccount.objects.order_by("external_id").values_list("external_id", "is_placeholder")) == [
        ("17850", False),
        ("WALK-IN", True),
    ]

    again_out, _ = call(str(path), "--anonymous", "WALK-IN", "--non-product-codes", "POST,BANK CHARGES")

    assert again_out.splitlines()[0] == (
        "Imported erp.csv: 8 rows; 0 orders created with 0 lines (0 rows merged into a line of the same SKU), "
        "3 orders already present (left unchanged), 0 new customer accounts."
    )
    assert "0 orders without a customer loaded under the placeholder account WALK-IN." in again_out
    assert (Order.objects.count(), OrderLine.objects.count()) == (3, 5)


def test_without_anonymous_an_empty_account_names_the_option_and_codes_are_listed(tmp_path):
    path = write(tmp_path / "erp.csv", *ERP)
    err = io.StringIO()

    with pytest.raises(CommandError, match="^5 errors in "):
        call_command("import_orders", str(path), stdout=io.StringIO(), stderr=err)

    assert err.getvalue().splitlines() == [
        "line 5: unknown SKU 'POST'",
        "line 6: account_id is empty; orders without a customer use --anonymous ACCOUNT_ID",
        "line 7: account_id is empty; orders without a customer use --anonymous ACCOUNT_ID",
        "line 8: account_id is empty; orders without a customer use --anonymous ACCOUNT_ID",
        "line 9: account_id is empty; orders without a customer use --anonymous ACCOUNT_ID",
        *unknown("POST (1 row)", "POST"),
    ]
    assert (Order.objects.count(), CustomerAccount.objects.count()) == (0, 0)


def test_anonymous_must_not_name_a_customer(tmp_path):
    CustomerAccount.objects.create(external_id="17850")
    path = write(tmp_path / "erp.csv", *ERP)

    with pytest.raises(CommandError, match=r"^--anonymous '17850' is a customer account; name an account id"):
        call(str(path), "--anonymous", "17850")
    with pytest.raises(CommandError, match=r"^--anonymous: account_id is longer than 64 characters$"):
        call(str(path), "--anonymous", "A" * 65)
    assert Order.objects.count() == 0
