"""The direct load (PostgreSQL): a big load of new orders streamed straight into the order and
line tables while the file is read (docs/orders.md, "Big loads on PostgreSQL").

The staged import (``staging``) copies every row into a temporary table, groups and checks the
rows there, and then inserts the orders and lines with INSERT ... SELECT. For a big load that
leaves the server most of its work after the last row is read: grouping a million rows, and
inserting a million lines one WAL record at a time. The direct load groups and checks the rows
in Python instead, an order at a time (the rows of an order follow each other in an ERP
export: they are merged and checked as soon as the next order starts), and copies each chunk's
orders and lines into their tables (binary COPY, which writes a page at a time) while Python
reads on, holding the big load's locks and with its keys and indexes dropped. Re-creating
those is what is left after the last row.

It takes only the common case of a big load: new orders, no bad row (an order's rows at
different times, repeated rows and the ``anonymous`` placeholder's orders are common in ERP
exports: it takes those as the staged import does). Anything else makes it
give up (``Fallback``): its work is rolled back to a savepoint (the rows written, the dropped
keys and indexes and the locks alike) and the staged import starts again from the beginning of
the file. That happens for a bad row of any kind (the staged import reports them all with
their line numbers), an order whose rows do not follow each other, an order that is already
stored (the staged import compares it with the file), and tables that another session is
using. So every result is the staged import's (a test compares the two on random files);
only the time differs.

Hand-written because no library streams a CSV into two related tables with their keys: the
grouping is a dictionary per order, the writes are psycopg's COPY.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import IO, Any

from accounts.models import CustomerAccount
from orders.imports.reading import MAX_QUANTITY
from orders.imports.staging import Staging, average_price

SAMPLE_BYTES = 1 << 16  # read to estimate the file's rows
KEY_BLOCK = 10_000  # order ids taken from their sequence at a time
# Of a parsed row (line, order id, account id, time, SKU, quantity, price).
_ORDER_ID, _SKU, _ACCOUNT_AND_TIME = operator.itemgetter(1), operator.itemgetter(4), operator.itemgetter(2, 3)
# What reading.parse_rows calls: stage a row, reject a row, end a chunk.
Callbacks = tuple[Callable[[tuple], Any], Callable[[int, str | None, str], Any], Callable[[], Any]]


class _PriceCells(dict):
    """Ten-thousandths -> the price as a cell of a text COPY (129000 -> "12.9000")."""

    def __missing__(self, price: int) -> str:
        cell = self[price] = f"{price // 10000}.{price % 10000:04d}"
        return cell


class Fallback(Exception):
    """The direct load gives up; the staged import takes over. The message says why."""


def estimated_rows(source: IO[bytes]) -> int:
    """The file's rows (its header included), estimated from its size and the line breaks in
    its first 64 KiB; ``source`` is left at its start."""
    source.seek(0, 2)
    size = source.tell()
    source.seek(0)
    sample = source.read(SAMPLE_BYTES)
    source.seek(0)
    breaks = sample.count(b"\n")
    if not sample or size <= len(sample):
        return breaks
    return size * breaks // len(sample)


def wanted(staging: Staging, source: IO[bytes]) -> bool:
    """Whether to try the direct load: PostgreSQL, bulk loads allowed, and the file is big by
    the bulk-load rule (it weighs the staged rows of new orders; the file's rows stand in for
    them here, since the direct load gives up on a stored order anyway)."""
    return staging.vendor == "postgresql" and staging.bulk_load_wanted(estimated_rows(source))


class DirectLoad:
    """One direct load on the connection of ``staging`` (whose bulk-load locks, drops and
    rebuild it uses), inside a savepoint of the import's transaction."""

    def __init__(self, staging: Staging, *, now: datetime):
        self.staging = staging
        self.now = now
        self.names = staging.names
        # Under the locks: SKU -> the product's id as a cell of a line ("17\t"), account id ->
        # its primary key; ten-thousandths -> the price as a cell ("12.5000").
        self.products: dict[str, str] = {}
        self.accounts: dict[str, int] = {}
        self.prices = _PriceCells()
        self.sequence = ""  # of the order table's primary key
        self.keys: Iterator[int] = iter(())  # order ids taken from the sequence, not used yet
        self.last_key: int | None = None
        self.dropped: list[str] | None = None  # what bulk_load_rebuild re-creates
        self.rows: list[tuple] = []  # parsed rows not written yet
        self.orders_created = self.lines_created = self.rows_written = self.accounts_created = 0
        self.repeated_rows = self.orders_spread = self.orders_anonymous = 0
        self.anonymous = staging.anonymous  # the placeholder account's id, or None

    @contextmanager
    def loader(self) -> Iterator[Callbacks]:
        """(stage a row, reject a row, end a chunk), as ``Staging.loader`` gives them to
        ``reading.parse_rows``; the rest of the rows go in when the file is through."""
        self._start()

        def reject(line: int, order_id: str | None, message: str) -> None:
            raise Fallback(f"line {line} is bad ({message})")

        try:
            yield self.rows.append, reject, self.end_chunk
            self._write(self.rows)
            self.rows.clear()
            self.staging.wait()
        except BaseException:
            # The connection is the caller's again once the copy on its way is through; the
            # copy's own error, if any, is second to this one.
            self.staging.wait(raise_error=False)
            raise
        if not self.orders_created:  # returns and credit notes only: no big load after all
            raise Fallback("the file has no order to write")
        self._return_keys()

    def _start(self) -> None:
        staging = self.staging
        if not staging.bulk_load_lock():
            raise Fallback("the tables are busy")
        with staging.connection.cursor() as cursor:
            cursor.execute("SELECT sku, id FROM {product}".format(**self.names))
            self.products = {sku: f"{key}\t" for sku, key in cursor.fetchall()}
            cursor.execute("SELECT external_id, id FROM {account}".format(**self.names))
            self.accounts = dict(cursor.fetchall())
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", (staging.names["order"],))
            self.sequence = cursor.fetchone()[0]

    def end_chunk(self) -> None:
        """Write the rows read so far, but for the last order's: its rows may go on. (An order
        of more rows than the staged import holds at a time, 4 chunks, is left to it.)"""
        rows = self.rows
        last = len(rows) - 1
        while last > 0 and rows[last - 1][1] == rows[-1][1]:
            last -= 1
        if len(rows) - last >= 4 * self.staging.chunk_rows:
            raise Fallback(f"order {rows[-1][1]!r} has more than {len(rows) - last} rows")
        if last > 0:
            chunk = rows[:last]
            del rows[:last]  # in place: parse_rows appends to this list
            self._write(chunk)

    # --- grouping and checking, an order at a time ------------------------------------------

    def _group(self, rows: list[tuple]) -> tuple[list[tuple], list[str], int]:
        """The orders of ``rows`` (parsed rows: line, order id, account id, time, SKU, quantity,
        price; each order complete), as (id, order id, account id, time), their lines as rows
        of a text COPY, and the number of rows written (repeated rows are skipped). Gives up
        on the first thing that the staged import would report: an unknown SKU, a row whose
        account differs from its order's first row, a merged quantity too large for the
        column, or an order met twice (its rows do not follow each other; one written with an
        earlier chunk is found when this chunk goes in)."""
        orders: list[tuple] = []
        lines: list[str] = []
        seen: set[str] = set()
        products, prices, keys = self.products, self.prices, self.keys
        key = None
        written = len(rows)
        anonymous = self.anonymous
        for order_id, group in itertools.groupby(rows, key=_ORDER_ID):
            if order_id in seen:
                raise Fallback(f"the rows of order {order_id!r} do not follow each other")
            seen.add(order_id)
            order_rows = list(group)
            first = order_rows[0]
            key = next(keys, None)
            if key is None:
                self.keys = keys = self._take_keys()
                key = next(keys)
            prefix = f"{key}\t"
            count = len(order_rows)
            moment = first[3]
            # The common case, nothing to merge, checked by C loops (map, set).
            if count == 1 or (
                len(set(map(_SKU, order_rows))) == count and len(set(map(_ACCOUNT_AND_TIME, order_rows))) == 1
            ):
                try:
                    lines += [f"{prefix}{products[row[4]]}{row[5]}\t{prices[row[6]]}\n" for row in order_rows]
                except KeyError:
                    raise Fallback(f"order {order_id!r} (line {first[0]}) has an unknown SKU") from None
            else:
                merged, moment, repeated = self._merged(order_id, order_rows)
                lines += [f"{prefix}{product}{quantity}\t{prices[price]}\n" for product, quantity, price in merged]
                written -= repeated
            orders.append((key, order_id, first[2], moment))
            if first[2] == anonymous:
                self.orders_anonymous += 1
        self.last_key = key
        return orders, lines, written

    def _merged(self, order_id: str, rows: list[tuple]) -> tuple[list[tuple[str, int, int]], datetime, int]:
        """An order with several rows of a SKU or rows at different times: its lines (product
        cell, quantity, price), its time (the earliest of its rows), and the rows skipped as
        repeats of an earlier row (the same in every column, as the staged import finds them)."""
        account, moment = rows[0][2:4]
        earliest, spread = moment, False
        by_sku: dict[str, list[tuple[int, int]]] = {}
        seen: set[tuple] = set()
        for line, _, row_account, row_moment, sku, quantity, price in rows:
            if row_account != account:
                raise Fallback(f"line {line} has another account than the first row of its order")
            if row_moment != moment:
                earliest, spread = min(earliest, row_moment), True
            if (sku, quantity, price, row_moment) in seen:
                continue
            seen.add((sku, quantity, price, row_moment))
            by_sku.setdefault(sku, []).append((quantity, price))
        lines = []
        for sku, merged in by_sku.items():
            product = self.products.get(sku)
            if product is None:
                raise Fallback(f"order {order_id!r} has an unknown SKU")
            quantity = sum(quantity for quantity, _ in merged)
            if quantity > MAX_QUANTITY:
                raise Fallback(f"order {order_id!r} has a merged quantity that is too large")
            prices = {price for _, price in merged}
            price = prices.pop() if len(prices) == 1 else average_price(sum(q * p for q, p in merged), quantity)
            lines.append((product, quantity, price))
        self.orders_spread += spread
        repeated = len(rows) - len(seen)
        self.repeated_rows += repeated
        return lines, earliest, repeated

    def _take_keys(self) -> Iterator[int]:
        """The next KEY_BLOCK order ids: the sequence is moved past them at once (no one else
        can insert an order while the locks are held; one that took an id anyway would break
        the order table's primary key, which stays in place, and the import would be refused)."""
        self.staging.wait()
        with self.staging.connection.cursor() as cursor:
            cursor.execute("SELECT nextval(%s)", (self.sequence,))
            first = cursor.fetchone()[0]
            cursor.execute("SELECT setval(%s, %s)", (self.sequence, first + KEY_BLOCK - 1))
        return iter(range(first, first + KEY_BLOCK))

    def _return_keys(self) -> None:
        """Give the ids taken and not used back to the sequence, so that they stay dense."""
        if self.last_key is not None:
            self.staging.execute("SELECT setval(%s, %s)", (self.sequence, self.last_key), raw=True)

    # --- writing, a chunk at a time ---------------------------------------------------------

    def _write(self, rows: list[tuple]) -> None:
        """Write the orders of ``rows``: give up if one is stored already, create the missing
        accounts, copy the orders, and send their lines without waiting for the server: it
        writes them while Python reads the next chunk (the next use of the connection waits
        for it first: Staging.wait)."""
        if not rows:
            return
        orders, lines, row_count = self._group(rows)
        staging, names = self.staging, self.names
        staging.wait()
        with staging.connection.cursor() as cursor:
            cursor.execute(
                "SELECT external_id FROM {order} WHERE external_id = ANY(%s) LIMIT 1".format(**names),
                ([order[1] for order in orders],),
            )
            stored = cursor.fetchone()
            if stored is not None:
                raise Fallback(f"order {stored[0]!r} is stored already (or its rows do not follow each other)")
            if self.dropped is None:  # the first chunk: a file of stored orders never gets here
                staging.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE refuses pending trigger events
                self.dropped = staging.bulk_load_drop()
            self._create_accounts(cursor, {order[2] for order in orders} - self.accounts.keys())
            copy_orders = (
                "COPY {order} (id, external_id, account_id, ordered_at, imported_at) FROM STDIN (FORMAT BINARY)"
            )
            with cursor.cursor.copy(copy_orders.format(**names)) as copy:
                copy.set_types(["int8", "text", "int8", "timestamptz", "timestamptz"])
                accounts, now = self.accounts, self.now
                for key, order_id, account, moment in orders:
                    copy.write_row((key, order_id, accounts[account], moment, now))
        # Text, not binary: the lines are numbers only (no cell to escape), and formatting them
        # in Python costs half of what psycopg's binary rows do.
        copy_lines = "COPY {line} (order_id, product_id, quantity, unit_price) FROM STDIN"
        staging.send_copy(copy_lines.format(**names), "".join(lines).encode())
        self.orders_created += len(orders)
        self.lines_created += len(lines)
        self.rows_written += row_count

    def _create_accounts(self, cursor, missing: set[str]) -> None:
        """The customer accounts that the orders name and that do not exist, as the staged
        import creates them."""
        if not missing:
            return
        cursor.execute(
            "INSERT INTO {account} (external_id, name, segment, industry, brand_mode, created_at, is_placeholder) "
            "SELECT a, '', '', '', %s, %s, a = %s FROM unnest(%s::text[]) AS a ORDER BY a "
            "ON CONFLICT (external_id) DO NOTHING RETURNING external_id, id".format(**self.names),
            (CustomerAccount.BrandMode.PREFER.value, self.now, self.anonymous or "", sorted(missing)),
        )
        created = dict(cursor.fetchall())
        if len(created) != len(missing):  # under the locks no one else can have created one
            raise Fallback("customer accounts were created meanwhile")
        self.accounts.update(created)
        self.accounts_created += len(created)

    def rebuild(self) -> None:
        self.staging.bulk_load_rebuild(self.dropped or [])
