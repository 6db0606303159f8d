"""Orders CSV import (docs/orders.md): one file of order lines from the ERP into the order
history, all of it or nothing (or, with ``skip_invalid``, every order without a bad row).

The file is streamed, never held: each row is parsed in Python (``reading``, the same for
every database) and streamed into a temporary staging table (COPY on PostgreSQL, chunked
executemany on SQLite); the checks that need more than one row, the merge of lines and the
writes are set-based SQL over that table (``staging``), in one transaction. What Python keeps
is bounded: the first ``ERRORS_KEPT`` errors and counters. With ``skip_invalid`` and a reject
file, the file is read a second time to copy the rejected rows, in line order.

A big load on PostgreSQL is first tried as a direct load (``direct``): the rows are grouped
and checked in Python and copied straight into the order and line tables. It gives up on
anything but new orders without a bad row; then its work is rolled back to a savepoint and
the staged import above starts from the beginning of the file, so the result is the same.
"""

from __future__ import annotations

import csv
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from accounts.models import CustomerAccount
from audit.models import AuditEntry, Via
from audit.services import audit_record_many
from catalog.imports import RowError  # one shape for every import's "line N: reason"
from orders.imports import direct
from orders.imports.reading import (
    COLUMNS,
    MAX_QUANTITY,
    CellError,
    FileError,
    Header,
    check_column_map,
    clean_cells,
    parse_account_id,
    parse_codes,
    parse_column_map,
    parse_rows,
    read_header,
    records,
    text_stream,
)
from orders.imports.staging import Kind, Staging
from orders.models import Order

__all__ = [
    "COLUMNS",
    "ERRORS_KEPT",
    "OrdersImportResult",
    "RowError",
    "orders_import",
    "parse_codes",
    "parse_column_map",
]

ERRORS_KEPT = 1000  # errors listed in the result (all of them are counted and in the reject file)
DIFFERING_KEPT = 100
DEFAULT_CREDIT_PREFIX = "C"

logger = logging.getLogger(__name__)


@dataclass
class OrdersImportResult:
    """What an import found and did (or, for a dry run, would do)."""

    dry_run: bool = False
    skip_invalid: bool = False
    applied: bool = False
    # Refused as a whole: the file cannot be read, rows are bad and skip_invalid is off, or
    # the database refused. Nothing was written (a dry run reports what would happen).
    refused: bool = False
    # The orders and lines went in on PostgreSQL's bulk-load path (keys and indexes re-created),
    # streamed straight into their tables while the file was read (``direct``) or not.
    bulk_load: bool = False
    direct_load: bool = False
    rows: int = 0  # data rows read (not the header, not empty lines)
    orders_created: int = 0
    orders_existing: int = 0  # already imported: left exactly as they were
    orders_differing: int = 0  # of those, how many the file has with other content
    lines_created: int = 0  # order lines written (after merging)
    lines_merged: int = 0  # rows added to an earlier row of the same order and SKU
    orders_spread: int = 0  # of the orders created, those whose rows have different times (earliest kept)
    orders_anonymous: int = 0  # of the orders created, those under the ``anonymous`` placeholder account
    anonymous_account: str | None = None
    accounts_created: int = 0
    credit_note_rows: int = 0  # skipped: the order id has the credit-note prefix
    return_rows: int = 0  # skipped: quantity 0 or negative
    non_product_rows: int = 0  # skipped: the SKU is one of the non-product codes (postage, fees)
    repeated_rows: int = 0  # skipped: the same in every column as an earlier row
    rejected_rows: int = 0  # bad rows plus the other rows of their orders
    rejected_orders: int = 0
    error_count: int = 0  # bad rows (all of them; ``errors`` lists the first ERRORS_KEPT)
    errors: list[RowError] = field(default_factory=list)
    differing_orders: list[str] = field(default_factory=list)  # the first DIFFERING_KEPT, sorted
    # Unknown SKUs and their rows, most rows first (the first 20): postage or fee codes show here.
    unknown_skus: list[tuple[str, int]] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase

    @property
    def ok(self) -> bool:
        return not self.error_count

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Abort(Exception):
    """Leave the transaction, rolling it back (the result says why)."""


def orders_import(
    *,
    source: IO[bytes],
    dry_run: bool = False,
    column_map: dict[str, str] | None = None,
    skip_invalid: bool = False,
    rejects: IO[str] | None = None,
    credit_prefix: str = DEFAULT_CREDIT_PREFIX,
    allow_bulk_load: bool = True,
    anonymous: str | None = None,
    non_product_codes: Iterable[str] = (),
    actor="command:import_orders",
) -> OrdersImportResult:
    """Import an orders CSV (``source``: a seekable binary file).

    Nothing is written if any row is bad, unless ``skip_invalid``: then every order without a
    bad row is imported and the orders with one are not (never half an order). Orders whose id
    is already stored are left as they are, so importing a file again changes nothing. Rows
    whose order id starts with ``credit_prefix`` (credit notes; "" for none) and rows with a
    quantity of 0 or less (returns) are skipped and counted. If ``rejects`` (a text file) is
    given, every rejected row is written to it as CSV: the file's columns plus ``line`` and
    ``reason``. ``column_map`` renames the file's columns ({"InvoiceNo": "order_id", ...});
    a target that is not a column of the format raises ValueError. ``allow_bulk_load=False``
    keeps a big load on the regular path (no exclusive table locks; docs/orders.md).

    Rows the same in every column as an earlier row are skipped and counted; rows of one order
    at different times make one order at the earliest. Rows without an account id belong to
    the ``anonymous`` account, a placeholder created if missing (ValueError if that id is a
    real customer's); without it they are errors. Rows whose SKU is one of
    ``non_product_codes`` (postage, fees: not goods) are skipped and counted.
    An applied import leaves one audit row with its counts (not one per order or line).
    """
    column_map = dict(column_map or {})
    check_column_map(column_map)
    if anonymous is not None:
        anonymous = _placeholder_id(anonymous)
    non_products = frozenset(code.strip() for code in non_product_codes if code.strip())
    result = OrdersImportResult(dry_run=dry_run, skip_invalid=skip_invalid, anonymous_account=anonymous)
    started = time.perf_counter()
    try:
        with transaction.atomic():
            staging = Staging(connection, allow_bulk_load=allow_bulk_load, anonymous=anonymous)
            reading = {"credit_prefix": credit_prefix, "anonymous": anonymous, "non_products": non_products}
            try:
                _run(staging, result, source, column_map, reading, rejects, started)
            except _Abort:
                result.refused = True
                transaction.set_rollback(True)
            else:
                if dry_run:
                    transaction.set_rollback(True)
                else:
                    staging.drop()
                    _audit(result, actor=actor, file_name=getattr(source, "name", ""))
            mark = time.perf_counter()
        result.timings["commit"] = round(time.perf_counter() - mark, 3)
    except DatabaseError as exc:
        # The checks passed but the database refused (e.g. a concurrent change): nothing was kept.
        result.errors = [RowError(0, f"the database refused the import, nothing was written: {exc}")]
        result.error_count = 1
        result.applied = False
        result.refused = True
        for name in ("orders_created", "lines_created", "lines_merged", "accounts_created", "orders_spread",
                     "orders_anonymous"):  # fmt: skip
            setattr(result, name, 0)
    result.timings["total"] = round(time.perf_counter() - started, 3)
    return result


def _placeholder_id(account_id: str) -> str:
    """The ``anonymous`` account id, checked as the file's are; ValueError if it is not one or
    names a real customer (whose orders must not mix with unknown ones)."""
    try:
        account_id = parse_account_id(account_id)
    except CellError as exc:
        raise ValueError(f"--anonymous: {exc}") from None
    if CustomerAccount.objects.customers().filter(external_id=account_id).exists():
        raise ValueError(
            f"--anonymous {account_id!r} is a customer account; name an account id that no customer has "
            "(it is created as a placeholder)"
        )
    return account_id
#: The counts an import's audit row keeps.
AUDITED_COUNTS = (
    "rows",
    "orders_created",
    "orders_existing",
    "lines_created",
    "lines_merged",
    "orders_spread",
    "orders_anonymous",
    "accounts_created",
    "credit_note_rows",
    "return_rows",
    "non_product_rows",
    "repeated_rows",
    "rejected_rows",
    "rejected_orders",
)


def _audit(result: OrdersImportResult, *, actor, file_name) -> None:
    """One summary row per applied import, in its transaction: an import writes up to millions
    of lines set-based, and the orders it stores are never changed afterwards."""
    counts = {name: getattr(result, name) for name in AUDITED_COUNTS}
    audit_record_many(
        model=Order,
        rows=[("", f"orders import: {result.orders_created} orders", {k: [None, v] for k, v in counts.items()})],
        action=AuditEntry.Action.CREATE,
        actor=actor,
        via=Via.IMPORT,
        extra={"file": str(file_name)} if file_name else None,
    )


def _lap(result: OrdersImportResult, phase: str, since: float) -> float:
    now = time.perf_counter()
    result.timings[phase] = round(now - since, 3)
    return now


def _run(
    staging: Staging,
    result: OrdersImportResult,
    source: IO[bytes],
    column_map: dict[str, str],
    reading: dict[str, Any],
    rejects: IO[str] | None,
    started: float,
) -> None:
    if direct.wanted(staging, source):
        try:
            with transaction.atomic(using=staging.connection.alias):
                _direct_load(staging, result, source, column_map, reading, rejects, started)
            return
        except direct.Fallback as exc:
            logger.info("orders import: the direct load gave up (%s); the staged import takes over", exc)
            started = _lap(result, "direct_load_given_up", started)
    staging.create()
    header = _stage(staging, staging.loader, result, source, column_map, reading)
    lap = _lap(result, "read_and_stage", started)

    staging.check()
    counts = staging.counts()
    result.error_count += counts["errors"]
    result.rejected_rows = counts["rejected_rows"]
    result.rejected_orders = counts["rejected_orders"]
    result.repeated_rows = staging.repeated_rows
    result.errors = [
        RowError(row[0], _reason(row)) for row in itertools.islice(staging.rejections(errors_only=True), ERRORS_KEPT)
    ]
    result.unknown_skus = staging.unknown_skus()
    lap = _lap(result, "check", lap)

    if rejects is not None:
        _write_rejects(staging.rejections(), source, header, rejects)
        lap = _lap(result, "rejects", lap)
    if result.error_count and not result.skip_invalid:
        raise _Abort

    staging.merge_prices()
    for name, value in staging.write(now=timezone.now()).items():
        setattr(result, name, value)
    result.differing_orders = staging.differing_sample(DIFFERING_KEPT)
    result.bulk_load = staging.bulk_load
    lap = _lap(result, "write", lap)
    result.timings.update(staging.timings)  # the write's steps (included in "write")
    staging.check_constraints()
    _lap(result, "constraints", lap)
    result.applied = not result.dry_run


def _direct_load(
    staging: Staging,
    result: OrdersImportResult,
    source: IO[bytes],
    column_map: dict[str, str],
    reading: dict[str, Any],
    rejects: IO[str] | None,
    started: float,
) -> None:
    """The direct load (``direct``); raises direct.Fallback, having written nothing that its
    savepoint does not take back, where the staged import must do the work."""
    load = direct.DirectLoad(staging, now=timezone.now())
    header = _stage(staging, load.loader, result, source, column_map, reading)
    lap = _lap(result, "read_and_write", started)
    if rejects is not None:
        _write_rejects([], source, header, rejects)
    load.rebuild()
    lap = _lap(result, "rebuild", lap)
    result.bulk_load = result.direct_load = True
    result.orders_created = load.orders_created
    result.lines_created = load.lines_created
    result.lines_merged = load.rows_written - load.lines_created
    result.repeated_rows = load.repeated_rows
    result.orders_spread = load.orders_spread
    result.orders_anonymous = load.orders_anonymous
    result.accounts_created = load.accounts_created
    staging.check_constraints()
    _lap(result, "constraints", lap)
    result.applied = not result.dry_run


def _stage(
    staging: Staging,
    loader: Callable[[], AbstractContextManager],
    result: OrdersImportResult,
    source: IO[bytes],
    column_map: dict[str, str],
    reading: dict[str, Any],
) -> Header:
    """Read the file into ``loader``'s tables (``Staging.loader`` or ``DirectLoad.loader``);
    raise _Abort (with the errors in ``result``) if the file itself cannot be read."""
    text = text_stream(source)
    try:
        lines = records(text)
        try:
            first = next(lines, None)
            if first is None:
                raise FileError(1, "the file is empty (expected a header row)")
            header, problems = read_header(first[1], column_map)
            if header is None:
                result.errors = [RowError(1, problem) for problem in problems]
                result.error_count = len(problems)
                raise _Abort
            result.ignored_columns = header.ignored
            with loader() as (stage, reject, end_chunk):
                counts = parse_rows(
                    lines,
                    header,
                    tz=timezone.get_default_timezone(),
                    moment_value=staging.moment_value,
                    stage=stage,
                    reject=reject,
                    end_chunk=end_chunk,
                    chunk_rows=staging.chunk_rows,
                    **reading,
                )
        except FileError as exc:
            result.errors = [RowError(exc.line, exc.message)]
            result.error_count = 1
            raise _Abort from None
    finally:
        text.detach()  # the caller's file stays open
    result.rows = counts.rows
    result.credit_note_rows = counts.credit_note_rows
    result.return_rows = counts.return_rows
    result.non_product_rows = counts.non_product_rows
    return header


def _reason(row: tuple) -> str:
    """The message for a rejected line of the staging area (see staging.Kind)."""
    line, order_id, kind, message, value, ref_line, ref_value = row
    if kind == Kind.PARSE:
        return message
    if kind == Kind.UNKNOWN_SKU:
        return f"unknown SKU {value!r}"
    if kind == Kind.ACCOUNT_DIFFERS:
        return f"order {order_id!r} has account_id {value!r} here but {ref_value!r} on line {ref_line}"
    if kind == Kind.QUANTITY_TOO_LARGE:
        return (
            f"the lines of SKU {value!r} in order {order_id!r} add up to quantity {ref_value}, more than {MAX_QUANTITY}"
        )
    return f"order {order_id!r} is rejected as a whole: line {ref_line} is bad"


def _write_rejects(rejections: Iterable[tuple], source: IO[bytes], header: Header, rejects: IO[str]) -> None:
    """Every rejected row as it is in the file, plus its line number and reason, in line order:
    the rejected lines (from the database, in pages) are matched against a second read of the
    file."""
    writer = csv.writer(rejects, lineterminator="\n")
    text = text_stream(source)
    try:
        lines = records(text)
        next(lines)  # the header, as read the first time
        writer.writerow([*clean_cells(header.cells), "line", "reason"])
        width = header.width
        for row in rejections:
            wanted = row[0]
            for line, cells in lines:
                if line == wanted:
                    padded = cells + [""] * (width - len(cells))
                    writer.writerow([*clean_cells(padded), line, _reason(row)])
                    break
    finally:
        text.detach()
