"""The database side of the orders import: temporary staging tables and set-based SQL.

The parsed rows go into ``import_rows`` (binary COPY on PostgreSQL, chunked executemany on
SQLite); everything after that is the same SQL on both databases, so both give the same
result:

1. ``import_lines``: the rows grouped per (order, SKU), i.e. the order lines after merging,
   with their product; ``import_orders``: the rows grouped per order. On PostgreSQL the
   server groups each chunk of rows while Python reads the next one (``Staging._chunks``),
   and merges the groups of orders whose rows were in several chunks afterwards.
2. Repeated rows (the same in every column as an earlier row: an ERP's habit) are counted
   and deleted, and the groups they were in grouped again. Checks, each adding to
   ``import_errors`` (one reason per line: the first check that finds something wins, in
   this order): parse errors (from Python), unknown SKUs, lines whose account differs from
   their order's first line, and merged quantities too large for the column. Then every
   other row of an order with a bad row is rejected with it, so that an order is never
   imported in part. Rows of one order at different times are one order: it gets the
   earliest time (``ORDERS_OF``'s minimum).
3. Writes: missing customer accounts, new orders (ON CONFLICT DO NOTHING, so an order that
   exists is never touched, whoever inserted it), then the lines of the orders this import
   created, all in the caller's transaction. A big load on PostgreSQL drops the line table's
   keys and indexes and the order table's foreign key and secondary indexes before inserting
   the orders and lines, and re-creates them after (``bulk_load_wanted`` says when;
   docs/orders.md "Big loads on PostgreSQL").

Prices are staged as integers in ten-thousandths of the currency unit (the column has 4
decimals), so that comparing and summing them is exact on SQLite too. Temporary tables are
private to the connection: concurrent imports meet only on the orders' unique order id.
"""

from __future__ import annotations

import csv
import itertools
import logging
import select
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import IntEnum
from typing import Any

from django.db import OperationalError, transaction

from accounts.models import CustomerAccount
from catalog.models import Product
from orders.imports.reading import MAX_QUANTITY
from orders.models import Order, OrderLine

logger = logging.getLogger(__name__)

SQLITE_CHUNK = 5000  # rows per executemany
PAGE = 5000  # rows per page when reading results back
# PostgreSQL settings for the import's transaction: its sorts and hash tables over a million
# staged rows fit in memory instead of spilling to disk (hash tables may use 4 x work_mem),
# JIT compilation (which costs more than it saves on these one-off statements) is off, and
# ANALYZE of a staging table samples 3000 rows (the default 30000 costs 0.15 s a table and
# changes no plan here: row counts and distinct counts are what matter).
POSTGRES_SETTINGS = {"work_mem": "128MB", "hash_mem_multiplier": "4", "jit": "off", "default_statistics_target": "10"}
# The bulk-load path (PostgreSQL, docs/orders.md "Big loads on PostgreSQL"): for a load of at least this
# many new lines that is also at least this share of the lines already stored, the line
# table's keys and indexes and the order table's foreign key and secondary indexes are
# dropped before the orders and lines are written and re-created after, inside the import's
# transaction.
BULK_LOAD_MIN_LINES = 100_000
BULK_LOAD_MIN_SHARE = 0.25
# Below PostgreSQL's default deadlock_timeout (1 s): when this wait is part of a deadlock
# with another import, this import gives up first and takes the regular path, so the other
# one is never cancelled by the deadlock detector.
BULK_LOAD_LOCK_TIMEOUT = "500ms"
BULK_LOAD_MAINTENANCE_WORK_MEM = "256MB"


class Kind(IntEnum):
    """Why a line is rejected; the order is also the checks' priority."""

    PARSE = 1
    UNKNOWN_SKU = 3
    ACCOUNT_DIFFERS = 4
    QUANTITY_TOO_LARGE = 6
    WITH_ORDER = 9  # a good row of an order that has a bad row


TABLES = (
    "import_rows",
    "import_errors",
    "import_lines",
    "import_orders",
    "import_bad_orders",
    "import_prices",
    "import_mixed",
    "import_new_orders",
    "import_present_orders",
    "import_differing_orders",
    "import_created_orders",
    "import_products",
    "import_chunk",
    "import_split",
    "import_merged",
    "import_repeats",
)

_TYPES = {
    "postgresql": {"int": "bigint", "text": "text", "moment": "timestamptz", "price": "numeric(12, 4)"},
    "sqlite": {"int": "INTEGER", "text": "TEXT", "moment": "TEXT", "price": "NUMERIC"},
}
# Staged rows of the (order, SKU) groups that match a condition. Written as a row-value IN so
# that both databases look the few groups up while scanning the rows once (SQLite would
# otherwise index all the staged rows, PostgreSQL hash them all).
IN_GROUPS = "(order_id, sku) IN (SELECT order_id, sku FROM import_lines WHERE {})"
# The staged rows grouped per (order, SKU) with the SKU's product, and per order (step 1).
LINES_OF = (
    "SELECT g.order_id, g.sku, p.id AS product_id, g.quantity, g.price_min, g.price_max, g.n "
    "FROM (SELECT order_id, sku, SUM(quantity) AS quantity, MIN(price) AS price_min, "
    "MAX(price) AS price_max, COUNT(*) AS n FROM {rows} GROUP BY order_id, sku) g "
    "LEFT JOIN {products} p ON p.sku = g.sku"
)
ORDERS_OF = (
    "SELECT order_id, MIN(account_id) AS account_id, MAX(account_id) AS account_max, "
    "MIN(ordered_at) AS ordered_at, MAX(ordered_at) AS ordered_at_max, MIN(line) AS first_line, "
    "COUNT(*) AS n FROM {rows} GROUP BY order_id"
)
# Rows per chunk on PostgreSQL (Staging._chunks): small enough that the server groups a
# chunk in less time than Python takes to read the next one, and that Python holds little.
CHUNK_ROWS = 50_000
# Chunks that get a partition of their own; the later ones (files of more than about 3 million
# rows) go to one more partition through a chunk table that is emptied each time, so that the
# locks one import holds stay few (PostgreSQL's lock table is shared and bounded).
CHUNK_PARTITIONS = 63
COPY_PIECE = 1 << 20  # bytes handed to libpq at a time by send_copy
# What the server does with a chunk's rows (sent without waiting; no parameters), and before
# the first chunk.
CHUNK_SQL = "ANALYZE {rows}; INSERT INTO import_lines {lines}; INSERT INTO import_orders {orders}"
CHUNK_MOVE = "; INSERT INTO import_rows_rest SELECT * FROM import_chunk; TRUNCATE import_chunk"
CHUNK_FIRST = "CREATE TEMPORARY TABLE import_products AS SELECT id, sku FROM {product}; ANALYZE import_products; "
# Orders whose rows do not all have the same account.
DISAGREEING = "import_orders WHERE account_id <> account_max"
UNKNOWN_SKUS_KEPT = 20  # the unknown SKUs listed in the result, most rows first
# An exact price from ten-thousandths (PostgreSQL: numeric division; SQLite: the correctly
# rounded double, the same one SQLite stores for the decimal text).
PRICE = "({} / 10000.0)"


class Staging:
    """The staging tables of one import on one connection (inside the caller's transaction)."""

    COPY_VENDORS = frozenset({"postgresql"})  # loaded with COPY by chunks; the others with executemany
    # Compared with the stored orders by one FULL JOIN (see _find_differing); the others by a
    # join and a count per order (SQLite has no hash join: the full join took more than 14
    # minutes instead of 0.5 s for a re-import of 200000 lines).
    FULL_JOIN_VENDORS = frozenset({"postgresql"})

    def __init__(self, connection, *, allow_bulk_load: bool = True, anonymous: str | None = None):
        if connection.vendor not in _TYPES:
            raise NotImplementedError(f"the orders import supports PostgreSQL and SQLite, not {connection.vendor}")
        self.connection = connection
        self.vendor = connection.vendor
        self.mixed_prices = 0  # merged lines whose rows differ in price (see merge_prices)
        self.bulk_load = False  # the lines were written on the bulk-load path
        self.allow_bulk_load = allow_bulk_load  # False: always the regular path (no table locks)
        self.anonymous = anonymous  # the placeholder account of orders without a customer id
        self.repeated_rows = 0  # rows the same as an earlier one, skipped (see check)
        self.timings: dict[str, float] = {}  # seconds of the write's steps
        self._pending = False  # statements sent by _send() whose answer was not read yet
        quote = connection.ops.quote_name
        self.names = {
            "product": quote(Product._meta.db_table),
            "account": quote(CustomerAccount._meta.db_table),
            "order": quote(Order._meta.db_table),
            "line": quote(OrderLine._meta.db_table),
            **_TYPES[self.vendor],
        }

    @property
    def chunk_rows(self) -> int:
        return CHUNK_ROWS

    # --- plumbing -------------------------------------------------------------------------

    def execute(self, sql: str, params: tuple | list = (), *, raw: bool = False) -> int:
        """Run ``sql`` with the table names and types filled in (``raw``: as it is)."""
        started = time.perf_counter()
        with self.connection.cursor() as cursor:
            cursor.execute(sql if raw else sql.format(**self.names), params)
            rowcount = cursor.rowcount
        logger.debug("%.3f s, %s rows: %s", time.perf_counter() - started, rowcount, " ".join(sql.split())[:100])
        return rowcount

    def value(self, sql: str, params: tuple | list = ()) -> Any:
        with self.connection.cursor() as cursor:
            cursor.execute(sql.format(**self.names), params)
            return cursor.fetchone()[0]

    def pages(self, sql: str) -> Iterator[tuple]:
        """Rows of ``sql``, which selects an increasing key first and ends in ``WHERE key > %s
        ORDER BY key``; fetched a page at a time so that the client never holds them all."""
        after = 0
        while True:
            with self.connection.cursor() as cursor:
                cursor.execute(sql.format(**self.names) + f" LIMIT {PAGE}", (after,))
                page = cursor.fetchall()
            yield from page
            if len(page) < PAGE:
                return
            after = page[-1][0]

    def moment_value(self, moment: datetime) -> Any:
        """A UTC datetime as the staging table takes it (SQLite: Django's text format)."""
        if self.vendor == "sqlite":
            return str(moment.replace(tzinfo=None))
        return moment

    def analyze(self, table: str) -> None:
        """Temporary tables get no statistics by themselves; the planner needs them to join
        a million staged rows sensibly."""
        if self.vendor == "postgresql":
            self.execute(f"ANALYZE {table}")

    # --- tables ---------------------------------------------------------------------------

    def create(self) -> None:
        if self.vendor == "postgresql":
            for name, setting in POSTGRES_SETTINGS.items():
                self.execute(f"SET LOCAL {name} = '{setting}'")
        self.drop()
        self.execute(
            "CREATE TEMPORARY TABLE import_rows (line {int} NOT NULL, order_id {text} NOT NULL, "
            "account_id {text} NOT NULL, ordered_at {moment} NOT NULL, sku {text} NOT NULL, "
            "quantity {int} NOT NULL, price {int} NOT NULL)"
            # Loaded by chunks, one partition each (see _chunks).
            + (" PARTITION BY RANGE (line)" if self.vendor in self.COPY_VENDORS else "")
        )
        self.execute(
            "CREATE TEMPORARY TABLE import_errors (line {int} PRIMARY KEY, order_id {text}, kind {int} NOT NULL, "
            "message {text}, value {text}, ref_line {int}, ref_value {text})"
        )
        self.execute("CREATE TEMPORARY TABLE import_prices (order_id {text}, sku {text}, price {int})")
        self.execute("CREATE TEMPORARY TABLE import_created_orders (id {int}, external_id {text})")

    def drop(self) -> None:
        for table in TABLES:
            self.execute(f"DROP TABLE IF EXISTS {table}")

    # --- loading --------------------------------------------------------------------------

    @contextmanager
    def loader(
        self,
    ) -> Iterator[tuple[Callable[[tuple], Any], Callable[[int, str | None, str], Any], Callable[[], Any] | None]]:
        """(stage a row, reject a row with its message, end a chunk or None). Rejections are
        spooled to a temporary file while rows stream in (a COPY allows nothing else on the
        connection) and loaded after the rows. With a chunk callback (PostgreSQL), the rows
        are grouped a chunk at a time while the next chunk is read (see _chunks)."""
        with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as spool:
            spool_writer = csv.writer(spool)

            def reject(line: int, order_id: str | None, message: str) -> None:
                spool_writer.writerow((line, "" if order_id is None else order_id, message))

            if self.vendor in self.COPY_VENDORS:
                with self._chunks() as (stage, end_chunk):
                    yield stage, reject, end_chunk
            else:
                chunk: list[tuple] = []

                def stage(row: tuple) -> None:
                    chunk.append(row)
                    if len(chunk) >= SQLITE_CHUNK:
                        self._insert_rows(chunk)
                        chunk.clear()

                yield stage, reject, None
                self._insert_rows(chunk)
            spool.seek(0)
            self._load_rejections(csv.reader(spool))

    @contextmanager
    def _chunks(self) -> Iterator[tuple[Callable[[tuple], Any], Callable[[], Any]]]:
        """PostgreSQL: the rows go in by chunks of about CHUNK_ROWS (cut where an order id
        changes, see reading.parse_rows), each copied into a partition of ``import_rows`` of
        its own (binary COPY: the server need not parse text times and numbers; after
        CHUNK_PARTITIONS chunks, into ``import_chunk`` and from there into one last
        partition). Then the server groups the chunk into ``import_lines`` and
        ``import_orders`` (step 1 of the module docstring): sent without waiting for the
        answer, so that it works on its CPU while Python reads the next chunk. An order whose
        rows are in several chunks has a row per chunk there, which check() merges. The
        products are looked up in one snapshot of the catalog (``import_products``), as one
        statement would."""
        # The tables' columns exactly as step 1 makes them from all the rows at once.
        lines_of = LINES_OF.format(rows="import_rows", products="{product}")
        self.execute(f"CREATE TEMPORARY TABLE import_lines AS {lines_of} WITH NO DATA")
        self.execute(f"CREATE TEMPORARY TABLE import_orders AS {ORDERS_OF.format(rows='import_rows')} WITH NO DATA")
        rows: list[tuple] = []
        chunks = 0

        def end_chunk() -> None:
            nonlocal chunks
            if not rows:
                return
            self.wait()
            chunks += 1
            if chunks <= CHUNK_PARTITIONS:
                part = f"import_rows_{chunks}"
                self.execute(
                    f"CREATE TEMPORARY TABLE {part} PARTITION OF import_rows "
                    f"FOR VALUES FROM ({rows[0][0]:d}) TO ({rows[-1][0] + 1:d})"
                )
            else:
                part = "import_chunk"
                if chunks == CHUNK_PARTITIONS + 1:
                    self.execute("CREATE TEMPORARY TABLE import_rows_rest PARTITION OF import_rows DEFAULT")
                    self.execute("CREATE TEMPORARY TABLE import_chunk (LIKE import_rows)")
            copy_sql = (
                f"COPY {part} (line, order_id, account_id, ordered_at, sku, quantity, price) FROM STDIN (FORMAT BINARY)"
            )
            with self.connection.cursor() as cursor, cursor.cursor.copy(copy_sql) as copy:
                copy.set_types(["int8", "text", "text", "timestamptz", "text", "int8", "int8"])
                for row in rows:
                    copy.write_row(row)
            rows.clear()
            grouping = CHUNK_SQL.format(
                rows=part,
                lines=LINES_OF.format(rows=part, products="import_products"),
                orders=ORDERS_OF.format(rows=part),
            )
            first = CHUNK_FIRST.format(**self.names) if chunks == 1 else ""
            self._send(first + grouping + (CHUNK_MOVE if part == "import_chunk" else ""))

        failed = True
        try:
            yield rows.append, end_chunk
            end_chunk()
            failed = False
        finally:
            self.wait(raise_error=not failed)
        if chunks > CHUNK_PARTITIONS:
            self.analyze("import_rows_rest")

    def _send(self, sql: str) -> None:
        """Send ``sql`` (statements without parameters) and return at once; wait() reads the
        answer. Nothing else may use the connection in between."""
        pgconn = self.connection.connection.pgconn
        with self.connection.wrap_database_errors:
            pgconn.send_query(sql.encode())
            while pgconn.flush():  # the socket is full: wait until it takes more
                select.select([], [pgconn.socket], [])
        self._pending = True

    def send_copy(self, sql: str, data: bytes) -> None:
        """Start ``sql`` (a COPY ... FROM STDIN), send ``data`` and the copy's end, and return
        as soon as the socket has taken them, before the server is done; wait() reads the
        answer. Nothing else may use the connection in between."""
        from psycopg import errors, pq

        pgconn = self.connection.connection.pgconn
        socket = [pgconn.socket]
        with self.connection.wrap_database_errors:
            pgconn.send_query(sql.encode())
            while pgconn.flush():
                select.select([], socket, [])
            started = pgconn.get_result()
            if started.status != pq.ExecStatus.COPY_IN:
                while pgconn.get_result() is not None:
                    pass
                raise errors.error_from_result(started, encoding=self.connection.connection.info.encoding)
            # In pieces: libpq refuses too large a piece for as long as its buffer is full.
            for start in range(0, len(data), COPY_PIECE):
                while not pgconn.put_copy_data(data[start : start + COPY_PIECE]):
                    select.select([], socket, [])
                    pgconn.flush()
            while not pgconn.put_copy_end(None):
                select.select([], socket, [])
                pgconn.flush()
            while pgconn.flush():
                select.select([], socket, [])
        self._pending = True

    def wait(self, *, raise_error: bool = True) -> None:
        """Wait for what _send() or send_copy() sent; raise the first error (as Django's
        DatabaseError)."""
        from psycopg import errors, pq

        if not self._pending:
            return
        self._pending = False
        pgconn = self.connection.connection.pgconn
        error = None
        while (result := pgconn.get_result()) is not None:
            if error is None and result.status == pq.ExecStatus.FATAL_ERROR:
                error = errors.error_from_result(result, encoding=self.connection.connection.info.encoding)
        if error is not None and raise_error:
            with self.connection.wrap_database_errors:
                raise error

    def _insert_rows(self, rows: list[tuple]) -> None:
        if rows:
            with self.connection.cursor() as cursor:
                cursor.executemany("INSERT INTO import_rows VALUES (%s, %s, %s, %s, %s, %s, %s)", rows)

    def _load_rejections(self, spooled: Iterator[list[str]]) -> None:
        sql = "INSERT INTO import_errors (line, order_id, kind, message) VALUES (%s, %s, %s, %s)"
        with self.connection.cursor() as cursor:
            for chunk in _batched(spooled):
                rows = [(int(line), order_id or None, Kind.PARSE, text) for line, order_id, text in chunk]
                cursor.executemany(sql, rows)

    # --- checks ---------------------------------------------------------------------------

    def check(self) -> None:
        """Steps 1 and 2 of the module docstring."""
        x = self.execute
        if self.vendor in self.COPY_VENDORS:
            self._merge_chunks()  # grouped (and each chunk analysed) while loading
        else:
            self.analyze("import_rows")
            x("CREATE TEMPORARY TABLE import_lines AS " + LINES_OF.format(rows="import_rows", products="{product}"))
            x("CREATE TEMPORARY TABLE import_orders AS " + ORDERS_OF.format(rows="import_rows"))
        self.analyze("import_lines")
        self.analyze("import_orders")
        # Which of the checks over all the rows can find something (one pass over the lines;
        # usually most of them cannot, and each costs a pass over the rows).
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT COALESCE(SUM(CASE WHEN n > 1 THEN 1 ELSE 0 END), 0), "
                "COALESCE(SUM(CASE WHEN product_id IS NULL THEN 1 ELSE 0 END), 0), "
                "COALESCE(SUM(CASE WHEN quantity > %s THEN 1 ELSE 0 END), 0) FROM import_lines",
                (MAX_QUANTITY,),
            )
            merged, unknown, too_large = cursor.fetchone()
        # Repeated rows: the same in every column as an earlier row (rows of one order and SKU
        # that differ in quantity, price or time are merged instead). Only groups of several
        # rows can hold one.
        if merged and self._skip_repeats() and too_large:
            too_large = self.value("SELECT COUNT(*) FROM import_lines WHERE quantity > %s", (MAX_QUANTITY,))
        if unknown:
            x(
                "INSERT INTO import_errors (line, order_id, kind, value) "
                f"SELECT r.line, r.order_id, {Kind.UNKNOWN_SKU:d}, r.sku FROM import_rows r "
                "WHERE r.sku IN (SELECT sku FROM import_lines WHERE product_id IS NULL) "
                "ON CONFLICT (line) DO NOTHING"
            )
        # An order's first line sets its account; later lines must agree (their times may
        # differ: the order gets the earliest).
        x(
            "INSERT INTO import_errors (line, order_id, kind, value, ref_line, ref_value) "
            f"SELECT r.line, r.order_id, {Kind.ACCOUNT_DIFFERS:d}, r.account_id, f.line, f.account_id "
            f"FROM (SELECT * FROM import_rows WHERE order_id IN (SELECT order_id FROM {DISAGREEING})) r "
            f"JOIN (SELECT * FROM import_rows WHERE line IN (SELECT first_line FROM {DISAGREEING})) f "
            "ON f.order_id = r.order_id WHERE r.account_id <> f.account_id "
            "ON CONFLICT (line) DO NOTHING"
        )
        if too_large:
            x(
                "INSERT INTO import_errors (line, order_id, kind, value, ref_value) "
                f"SELECT r.line, r.order_id, {Kind.QUANTITY_TOO_LARGE:d}, r.sku, CAST(g.quantity AS {{text}}) "
                f"FROM (SELECT line, order_id, sku FROM import_rows WHERE {IN_GROUPS.format('quantity > %s')}) r "
                "JOIN (SELECT order_id, sku, quantity FROM import_lines WHERE quantity > %s) g "
                "ON g.order_id = r.order_id AND g.sku = r.sku WHERE true ON CONFLICT (line) DO NOTHING",
                (MAX_QUANTITY, MAX_QUANTITY),
            )
        x(
            "CREATE TEMPORARY TABLE import_bad_orders AS SELECT order_id, MIN(line) AS first_bad_line "
            "FROM import_errors WHERE order_id IS NOT NULL GROUP BY order_id"
        )
        x(
            "INSERT INTO import_errors (line, order_id, kind, ref_line) "
            f"SELECT r.line, r.order_id, {Kind.WITH_ORDER:d}, b.first_bad_line "
            "FROM (SELECT line, order_id FROM import_rows "
            "WHERE order_id IN (SELECT order_id FROM import_bad_orders)) r "
            "JOIN import_bad_orders b ON b.order_id = r.order_id WHERE true ON CONFLICT (line) DO NOTHING"
        )

    def _skip_repeats(self) -> int:
        """Count and delete the staged rows that repeat an earlier row in every column (the
        same values, however written), and group the lines and orders they were in again;
        returns their number."""
        x = self.execute
        x(
            "CREATE TEMPORARY TABLE import_repeats AS SELECT line, order_id, sku FROM ("
            "SELECT r.line, r.order_id, r.sku, MIN(r.line) OVER (PARTITION BY r.order_id, r.sku, r.quantity, "
            "r.price, r.account_id, r.ordered_at) AS first_line "
            f"FROM import_rows r WHERE {IN_GROUPS.format('n > 1')}) d WHERE d.line <> d.first_line"
        )
        self.repeated_rows = self.value("SELECT COUNT(*) FROM import_repeats")
        if not self.repeated_rows:
            return 0
        x("DELETE FROM import_rows WHERE line IN (SELECT line FROM import_repeats)")
        products = "import_products" if self.vendor in self.COPY_VENDORS else "{product}"
        lines = "(order_id, sku) IN (SELECT order_id, sku FROM import_repeats)"
        orders = "order_id IN (SELECT order_id FROM import_repeats)"
        x(f"DELETE FROM import_lines WHERE {lines}")
        x(
            "INSERT INTO import_lines "
            + LINES_OF.format(rows=f"(SELECT * FROM import_rows WHERE {lines}) r", products=products)
        )
        x(f"DELETE FROM import_orders WHERE {orders}")
        x("INSERT INTO import_orders " + ORDERS_OF.format(rows=f"(SELECT * FROM import_rows WHERE {orders}) r"))
        return self.repeated_rows

    def unknown_skus(self, limit: int = UNKNOWN_SKUS_KEPT) -> list[tuple[str, int]]:
        """The unknown SKUs with their number of rows, most rows first: what to look at for
        codes that are not products (postage, fees; docs/orders.md)."""
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT value, COUNT(*) FROM import_errors WHERE kind = {Kind.UNKNOWN_SKU:d} "
                "GROUP BY value ORDER BY COUNT(*) DESC, value LIMIT %s",
                (limit,),
            )
            return [(sku, count) for sku, count in cursor.fetchall()]

    def _merge_chunks(self) -> None:
        """The orders whose rows were in several chunks have a row per chunk in import_orders,
        and so may their lines in import_lines: merge those into one (sums, minimums and
        maximums of the chunks' are those of all the rows)."""
        x = self.execute
        x(
            "CREATE TEMPORARY TABLE import_split AS "
            "SELECT order_id FROM import_orders GROUP BY order_id HAVING COUNT(*) > 1"
        )
        if not self.value("SELECT COUNT(*) FROM import_split"):
            return
        split = "order_id IN (SELECT order_id FROM import_split)"
        for table, merged in (
            (
                "import_lines",
                "SELECT order_id, sku, MIN(product_id) AS product_id, SUM(quantity) AS quantity, "
                "MIN(price_min) AS price_min, MAX(price_max) AS price_max, SUM(n) AS n "
                "FROM import_lines WHERE {split} GROUP BY order_id, sku",
            ),
            (
                "import_orders",
                "SELECT order_id, MIN(account_id) AS account_id, MAX(account_max) AS account_max, "
                "MIN(ordered_at) AS ordered_at, MAX(ordered_at_max) AS ordered_at_max, "
                "MIN(first_line) AS first_line, SUM(n) AS n FROM import_orders WHERE {split} GROUP BY order_id",
            ),
        ):
            x(f"CREATE TEMPORARY TABLE import_merged AS {merged.format(split=split)}")
            x(f"DELETE FROM {table} WHERE {split}")
            x(f"INSERT INTO {table} SELECT * FROM import_merged")
            x("DROP TABLE import_merged")

    def counts(self) -> dict[str, int]:
        return {
            "errors": self.value(f"SELECT COUNT(*) FROM import_errors WHERE kind <> {Kind.WITH_ORDER:d}"),
            "rejected_rows": self.value("SELECT COUNT(*) FROM import_errors"),
            "rejected_orders": self.value("SELECT COUNT(*) FROM import_bad_orders"),
        }

    def rejections(self, *, errors_only: bool = False) -> Iterator[tuple]:
        """(line, order_id, kind, message, value, ref_line, ref_value) by line."""
        only = f"kind <> {Kind.WITH_ORDER:d} AND " if errors_only else ""
        return self.pages(
            "SELECT line, order_id, kind, message, value, ref_line, ref_value "
            f"FROM import_errors WHERE {only}line > %s ORDER BY line"
        )

    # --- writes ---------------------------------------------------------------------------

    def merge_prices(self) -> int:
        """The unit price of a merged line whose rows differ in price: the quantity-weighted
        average, rounded half up to 4 decimals; computed here so that no database rounds it
        its own way. Returns the number of such lines."""
        if not self.value("SELECT COUNT(*) FROM import_lines WHERE price_min <> price_max"):
            return 0
        self.execute(
            "CREATE TEMPORARY TABLE import_mixed AS "
            "SELECT ROW_NUMBER() OVER (ORDER BY r.order_id, r.sku, r.line) AS seq, "
            "r.order_id, r.sku, r.quantity, r.price FROM import_rows r "
            f"WHERE {IN_GROUPS.format('price_min <> price_max')}"
        )
        self.execute("CREATE INDEX import_mixed_seq ON import_mixed (seq)")  # for reading it in pages
        rows = self.pages("SELECT seq, order_id, sku, quantity, price FROM import_mixed WHERE seq > %s ORDER BY seq")
        batch: list[tuple[str, str, int]] = []
        written = 0
        with self.connection.cursor() as cursor:
            for (order_id, sku), group in itertools.groupby(rows, key=lambda row: (row[1], row[2])):
                value = quantity = 0
                for _seq, _order_id, _sku, row_quantity, price in group:
                    value += row_quantity * price
                    quantity += row_quantity
                batch.append((order_id, sku, average_price(value, quantity)))
                if len(batch) >= PAGE:
                    cursor.executemany(INSERT_PRICE, batch)
                    written += len(batch)
                    batch.clear()
            if batch:
                cursor.executemany(INSERT_PRICE, batch)
                written += len(batch)
        self.execute("DROP TABLE import_mixed")
        self.analyze("import_prices")
        self.mixed_prices = written
        return written

    def _line_price(self) -> tuple[str, str]:
        """(join, expression) for a merged line's price; the join only when some line needs it."""
        if not self.mixed_prices:
            return "", PRICE.format("g.price_min")
        join = "LEFT JOIN import_prices w ON w.order_id = g.order_id AND w.sku = g.sku "
        return join, PRICE.format("COALESCE(w.price, g.price_min)")

    def write(self, *, now: datetime) -> dict[str, int]:
        """Step 3: accounts, orders, lines. Returns the counts."""
        x = self.execute
        x(
            "CREATE TEMPORARY TABLE import_new_orders AS SELECT o.order_id, o.account_id, o.ordered_at "
            "FROM import_orders o "
            "WHERE NOT EXISTS (SELECT 1 FROM import_bad_orders b WHERE b.order_id = o.order_id) "
            "AND NOT EXISTS (SELECT 1 FROM {order} x WHERE x.external_id = o.order_id)"
        )
        x(
            "CREATE TEMPORARY TABLE import_present_orders AS SELECT o.order_id, x.id AS order_pk "
            "FROM import_orders o JOIN {order} x ON x.external_id = o.order_id "
            "WHERE NOT EXISTS (SELECT 1 FROM import_bad_orders b WHERE b.order_id = o.order_id)"
        )
        self.analyze("import_new_orders")
        self.analyze("import_present_orders")
        good_orders = self.value(
            "SELECT COUNT(*) FROM import_orders o "
            "WHERE NOT EXISTS (SELECT 1 FROM import_bad_orders b WHERE b.order_id = o.order_id)"
        )
        differing = self._find_differing()
        accounts = x(
            "INSERT INTO {account} (external_id, name, segment, industry, brand_mode, created_at, is_placeholder) "
            "SELECT DISTINCT account_id, '', '', '', %s, %s, account_id = %s FROM import_new_orders WHERE true "
            "ORDER BY account_id ON CONFLICT (external_id) DO NOTHING",
            # No placeholder: an account id is never empty, so the comparison is always false.
            (CustomerAccount.BrandMode.PREFER.value, now, self.anonymous or ""),
        )
        # The staged rows of the orders to create (each one is a line or merged into one):
        # whether that is a big load is decided before the orders are written, so that they
        # take the bulk-load path too.
        new_rows = "SELECT COALESCE(SUM(o.n), 0) FROM import_orders o JOIN {created} c ON c.{key} = o.order_id"
        wanted = int(self.value(new_rows.format(created="import_new_orders", key="order_id")))
        self.bulk_load = self.bulk_load_wanted(wanted) and self.bulk_load_lock()
        started = time.perf_counter()
        if self.bulk_load:
            # No one else can write orders now, and the orders that someone else created
            # before this import took its locks are visible: drop those, and the rest are
            # exactly the orders to create (no ON CONFLICT needed).
            x("DELETE FROM import_new_orders n WHERE EXISTS (SELECT 1 FROM {order} x WHERE x.external_id = n.order_id)")
            # ALTER TABLE refuses a table with pending trigger events.
            x("SET CONSTRAINTS ALL IMMEDIATE")
            dropped = self.bulk_load_drop()
            x(
                "WITH created AS (INSERT INTO {order} (external_id, account_id, ordered_at, imported_at) "
                "SELECT n.order_id, a.id, n.ordered_at, %s FROM import_new_orders n "
                "JOIN {account} a ON a.external_id = n.account_id RETURNING id, external_id) "
                "INSERT INTO import_created_orders (id, external_id) SELECT id, external_id FROM created",
                (now,),
            )
        else:
            # Sorted by order id so that two imports inserting the same orders lock them in
            # the same order (no deadlock); an order someone else inserted meanwhile is left
            # alone.
            insert_orders = (
                "INSERT INTO {order} (external_id, account_id, ordered_at, imported_at) "
                "SELECT n.order_id, a.id, n.ordered_at, %s FROM import_new_orders n "
                "JOIN {account} a ON a.external_id = n.account_id WHERE true ORDER BY n.order_id "
                "ON CONFLICT (external_id) DO NOTHING"
            )
            if self.vendor == "postgresql":
                x(
                    f"WITH created AS ({insert_orders} RETURNING id, external_id) "
                    "INSERT INTO import_created_orders (id, external_id) SELECT id, external_id FROM created",
                    (now,),
                )
            else:
                # SQLite has one writer at a time (BEGIN IMMEDIATE): no one else inserted meanwhile.
                x(insert_orders, (now,))
                x(
                    "INSERT INTO import_created_orders (id, external_id) SELECT x.id, x.external_id "
                    "FROM {order} x JOIN import_new_orders n ON n.order_id = x.external_id"
                )
        self.timings["write_orders"] = round(time.perf_counter() - started, 3)
        self.analyze("import_created_orders")
        created = self.value("SELECT COUNT(*) FROM import_created_orders")
        rows = int(self.value(new_rows.format(created="import_created_orders", key="external_id")))
        # No ON CONFLICT here: these orders were created by this transaction a moment ago, so
        # no one else can have lines for them (and a plain insert is cheaper). In order of the
        # unique (order, product) index, unless that index is built afterwards anyway.
        join, price = self._line_price()
        insert_lines = (
            "INSERT INTO {line} (order_id, product_id, quantity, unit_price) "
            f"SELECT c.id, g.product_id, g.quantity, {price} "
            f"FROM import_lines g JOIN import_created_orders c ON c.external_id = g.order_id {join}"
            + ("" if self.bulk_load else "ORDER BY c.id")
        )
        started = time.perf_counter()
        lines = x(insert_lines)
        self.timings["write_lines"] = round(time.perf_counter() - started, 3)
        if self.bulk_load:
            started = time.perf_counter()
            self.bulk_load_rebuild(dropped)
            self.timings["rebuild"] = round(time.perf_counter() - started, 3)
        spread = anonymous = 0
        created_orders = "import_orders o JOIN import_created_orders c ON c.external_id = o.order_id"
        if self.value("SELECT COUNT(*) FROM import_orders WHERE ordered_at <> ordered_at_max"):
            spread = self.value(f"SELECT COUNT(*) FROM {created_orders} WHERE o.ordered_at <> o.ordered_at_max")
        if self.anonymous is not None:
            anonymous = self.value(f"SELECT COUNT(*) FROM {created_orders} WHERE o.account_id = %s", (self.anonymous,))
        return {
            "accounts_created": accounts,
            "orders_spread": spread,
            "orders_anonymous": anonymous,
            "orders_created": created,
            "orders_existing": good_orders - created,
            "orders_differing": differing,
            "lines_created": lines,
            "lines_merged": rows - lines,
        }

    # --- the bulk-load path (PostgreSQL) ----------------------------------------------------

    def bulk_load_wanted(self, lines: int) -> bool:
        """Whether writing ``lines`` new order lines (staged rows: merged rows count too) is a
        big load (docs/orders.md, "Big loads on PostgreSQL"): at least BULK_LOAD_MIN_LINES,
        and at least BULK_LOAD_MIN_SHARE of the lines already stored, which the rebuild works
        through too. The stored count is the planner's estimate (pg_class.reltuples; from the
        table's size if it was never analysed)."""
        if not self.allow_bulk_load or self.vendor != "postgresql" or lines < BULK_LOAD_MIN_LINES:
            return False
        stored = self.value(
            "SELECT CASE WHEN c.reltuples >= 0 THEN c.reltuples "
            "ELSE pg_relation_size(c.oid) / 50 END FROM pg_class c WHERE c.oid = %s::regclass",
            (OrderLine._meta.db_table,),
        )
        return lines >= BULK_LOAD_MIN_SHARE * float(stored)

    def bulk_load_lock(self) -> bool:
        """Take the locks that dropping the foreign keys of the line and order tables takes
        anyway (ACCESS EXCLUSIVE on those two and on the tables they reference: products and
        customer accounts), all at once, before any order is written, and waiting at most
        BULK_LOAD_LOCK_TIMEOUT: a busy table (another import, an open transaction that read
        products) means the regular path instead. The locks are held until the import's
        transaction ends."""
        # The orders table first: an import that has written orders but no lines yet holds it,
        # so this waits there holding nothing the other one needs.
        tables = ", ".join(self.names[name] for name in ("order", "line", "product", "account"))
        try:
            with transaction.atomic(using=self.connection.alias):
                previous = self.value("SELECT current_setting('lock_timeout')")
                self.execute("SELECT set_config('lock_timeout', %s, true)", (BULK_LOAD_LOCK_TIMEOUT,))
                self.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")
                self.execute("SELECT set_config('lock_timeout', %s, true)", (previous,))
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) not in {"55P03", "40P01"}:  # lock timeout, deadlock
                raise
            logger.info("orders import: the tables are busy, writing the lines on the regular path")
            return False
        return True

    def bulk_load_drop(self, *, line_keys: bool = True) -> list[str]:
        """Drop what makes writing a row cost more than the row itself: the line table's
        foreign keys, unique constraint, primary key (unless a foreign key of another table
        needs it; ``line_keys=False``: keep both keys) and other indexes, and the order
        table's foreign key and indexes other than its primary key and unique order id (which
        concurrent imports meet on). Check constraints stay (they cost little per row).
        Returns the statements that re-create what was dropped exactly (same names, same
        definitions): keys and indexes first, so that validating the foreign keys comes last."""
        keys: list[str] = []
        indexes: list[str] = []
        foreign_keys: list[str] = []
        for model, kinds in ((OrderLine, "fup" if line_keys else "f"), (Order, "f")):
            table = model._meta.db_table
            with self.connection.cursor() as cursor:
                cursor.execute(
                    "SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint k "
                    "WHERE conrelid = %s::regclass AND contype = ANY(%s) AND NOT (contype = 'p' AND EXISTS "
                    "(SELECT 1 FROM pg_constraint r WHERE r.contype = 'f' AND r.conindid = k.conindid)) "
                    "ORDER BY contype DESC, conname",
                    (table, list(kinds)),
                )
                constraints = cursor.fetchall()
                cursor.execute(
                    "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                    "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass "
                    "AND NOT i.indisprimary "
                    "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) "
                    "ORDER BY c.relname",
                    (table,),
                )
                table_indexes = cursor.fetchall()
            quote = self.connection.ops.quote_name
            name = quote(table)
            if constraints:
                drops = ", ".join(f"DROP CONSTRAINT {quote(conname)}" for conname, _, _ in constraints)
                self.execute(f"ALTER TABLE {name} {drops}", raw=True)
            for index, _ in table_indexes:
                self.execute(f"DROP INDEX {quote(index)}", raw=True)
            for kind in "pu":
                keys += [
                    f"ALTER TABLE {name} ADD CONSTRAINT {quote(conname)} {definition}"
                    for conname, definition, contype in constraints
                    if contype == kind
                ]
            indexes += [definition for _, definition in table_indexes]
            foreign_keys += [
                f"ALTER TABLE {name} ADD CONSTRAINT {quote(conname)} {definition}"
                for conname, definition, contype in constraints
                if contype == "f"
            ]
        return [*keys, *indexes, *foreign_keys]

    def bulk_load_rebuild(self, statements: list[str]) -> None:
        """Re-create what bulk_load_drop dropped: each index is built by one sort, each foreign
        key validated by one join over the whole table; a line that breaks one raises here and
        the transaction rolls everything back, the dropped constraints included."""
        self.execute(f"SET LOCAL maintenance_work_mem = '{BULK_LOAD_MAINTENANCE_WORK_MEM}'")
        for statement in statements:
            self.execute(statement, raw=True)
        # Fresh statistics, as after any bulk load: autovacuum comes later, and until then the
        # planner would take the grown tables for small ones (a re-import took 4 s longer).
        self.execute("SET LOCAL default_statistics_target TO DEFAULT")
        self.execute("ANALYZE {line}")
        self.execute("ANALYZE {order}")
        self.execute(f"SET LOCAL default_statistics_target = '{POSTGRES_SETTINGS['default_statistics_target']}'")

    def _find_differing(self) -> int:
        """Orders already present whose rows in the file differ from what is stored (account,
        time, or lines): they are left as they are and reported."""
        if not self.value("SELECT COUNT(*) FROM import_present_orders"):
            self.execute("CREATE TEMPORARY TABLE import_differing_orders (order_id {text})")
            return 0
        join, price = self._line_price()
        other_header = (
            "CREATE TEMPORARY TABLE import_differing_orders AS "
            "SELECT p.order_id FROM import_present_orders p JOIN {order} x ON x.id = p.order_pk "
            "JOIN {account} a ON a.id = x.account_id JOIN import_orders o ON o.order_id = p.order_id "
            "WHERE a.external_id <> o.account_id OR x.ordered_at <> o.ordered_at "
            "UNION "
        )
        if self.vendor in self.FULL_JOIN_VENDORS:
            # One pass over both sides: the file's lines and the stored lines of the present
            # orders, matched on (order, product); an order differs where a line is on one
            # side only or has another quantity or price (one hash join instead of a join and
            # a count per order: 1.6 to 1.9 s instead of 2.3 s for a million lines).
            self.execute(
                other_header + "SELECT p.order_id FROM import_present_orders p WHERE p.order_pk IN ("
                "SELECT COALESCE(f.order_pk, s.order_id) FROM ("
                f"SELECT p.order_pk, g.product_id, g.quantity, {price} AS price FROM import_lines g "
                f"JOIN import_present_orders p ON p.order_id = g.order_id {join}"
                ") f FULL JOIN ("
                "SELECT l.order_id, l.product_id, l.quantity, l.unit_price FROM {line} l "
                "JOIN import_present_orders p ON p.order_pk = l.order_id"
                ") s ON s.order_id = f.order_pk AND s.product_id = f.product_id "
                "WHERE f.order_pk IS NULL OR s.order_id IS NULL OR s.quantity <> f.quantity "
                "OR s.unit_price <> f.price)"
            )
            return self.value("SELECT COUNT(*) FROM import_differing_orders")
        self.execute(
            other_header
            + "SELECT g.order_id FROM import_lines g JOIN import_present_orders p ON p.order_id = g.order_id "
            f"{join}LEFT JOIN {{line}} l ON l.order_id = p.order_pk AND l.product_id = g.product_id "
            f"WHERE l.id IS NULL OR l.quantity <> g.quantity OR l.unit_price <> {price} "
            # Stored lines that the file does not have: the counts differ. CROSS JOIN makes
            # SQLite walk the few present orders and look their lines up, not the other way.
            "UNION "
            "SELECT order_id FROM ("
            "SELECT g.order_id, 1 AS in_file FROM import_lines g "
            "JOIN import_present_orders p ON p.order_id = g.order_id "
            "UNION ALL "
            "SELECT p.order_id, 0 AS in_file FROM import_present_orders p CROSS JOIN {line} l "
            "WHERE l.order_id = p.order_pk"
            ") t GROUP BY order_id HAVING 2 * SUM(in_file) <> COUNT(*)"
        )
        return self.value("SELECT COUNT(*) FROM import_differing_orders")

    def differing_sample(self, limit: int) -> list[str]:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT order_id FROM import_differing_orders ORDER BY order_id LIMIT %s", (limit,))
            return [row[0] for row in cursor.fetchall()]

    def check_constraints(self) -> None:
        """Run PostgreSQL's deferred foreign-key checks now rather than at commit, so that a
        failure surfaces inside the import (and the time is measured where it is spent)."""
        if self.vendor == "postgresql":
            self.execute("SET CONSTRAINTS ALL IMMEDIATE")


INSERT_PRICE = "INSERT INTO import_prices (order_id, sku, price) VALUES (%s, %s, %s)"


def average_price(value: int, quantity: int) -> int:
    """The price of a line merged from rows of different prices (all in ten-thousandths): the
    quantity-weighted average, ``value`` being the sum of quantity x price, rounded half up."""
    return int((Decimal(value) / quantity).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _batched(rows: Iterator[list[str]]) -> Iterator[list[list[str]]]:
    chunk: list[list[str]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= SQLITE_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
