"""Reads for mining and suggestions: the order history as arrays, the exclusions as arrays,
the CSV export rows and a run's progress. No writes here (see merchandising/services/)."""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from django.db import connection
from django.db.models import Max, QuerySet
from django.utils import timezone

from accounts.models import CustomerAccount
from catalog.csv_format import escape_formula
from catalog.models import CATEGORY_SEPARATOR, Category, Product, ProductStatus
from merchandising.models import ExclusionRule, MiningRun, Suggestion
from orders.models import Order, OrderLine

CHUNK = 20_000

EXPORT_COLUMNS = (
    "source_sku",
    "target_sku",
    "co_count",
    "support",
    "confidence",
    "lift",
    "score",
    "status",
    "stale",
    "jaccard",
    "decayed_co_count",
    "previous_co_count",
    "accounts",
    "reject_reason",
)


@dataclass(frozen=True)
class OrderHistory:
    """The order lines of the mined window as parallel arrays, one entry per line.

    ``order_idx`` and ``product_idx`` are dense indices (0..orders-1, 0..products-1);
    ``product_ids[i]`` is the database id behind product index ``i`` (sorted ascending),
    ``order_accounts[j]`` the customer account of order index ``j`` (-1 for the placeholder
    account of orders without a customer: they count as baskets, not as an account), and
    ``order_age_days[j]`` its age in days relative to ``reference``.
    """

    order_idx: np.ndarray
    product_idx: np.ndarray
    order_age_days: np.ndarray
    order_accounts: np.ndarray
    product_ids: np.ndarray
    reference: datetime.datetime | None

    @property
    def orders(self) -> int:
        return int(self.order_age_days.shape[0])

    @property
    def lines(self) -> int:
        return int(self.order_idx.shape[0])

    @property
    def products(self) -> int:
        return int(self.product_ids.shape[0])

    @property
    def line_age_days(self) -> np.ndarray:
        return self.order_age_days[self.order_idx]


def start_of_day(day: datetime.date) -> datetime.datetime:
    """Midnight at the start of ``day`` in the configured TIME_ZONE."""
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=timezone.get_current_timezone())


def _empty_history(reference: datetime.datetime | None) -> OrderHistory:
    return OrderHistory(
        order_idx=np.zeros(0, dtype=np.int32),
        product_idx=np.zeros(0, dtype=np.int32),
        order_age_days=np.zeros(0, dtype=np.float64),
        order_accounts=np.zeros(0, dtype=np.int64),
        product_ids=np.zeros(0, dtype=np.int64),
        reference=reference,
    )


def order_history_load(*, before: datetime.date | None = None, lookback_days: int | None = None) -> OrderHistory:
    """The order history to mine: orders before ``before`` (all when None) and at most
    ``lookback_days`` old (no limit when None). Ages count back from midnight of ``before``,
    or else from the newest order."""
    if before is not None:
        reference = start_of_day(before)
    else:
        reference = Order.objects.aggregate(newest=Max("ordered_at"))["newest"]
        if reference is None:
            return _empty_history(None)
    window: dict[str, Any] = {}
    if before is not None:
        window["ordered_at__lt"] = reference
    if lookback_days is not None:
        window["ordered_at__gte"] = reference - datetime.timedelta(days=lookback_days)
    return _history(window=window, reference=reference)


def order_history_around(*, cutoff: datetime.date) -> OrderHistory:
    """All orders, with ages counted back from midnight of ``cutoff``: orders before it have
    a positive age, orders from the cutoff on an age <= 0 (the backtest's test orders)."""
    return _history(window={}, reference=start_of_day(cutoff))


UNIX_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
MICROSECONDS_PER_DAY = 86_400_000_000
MICROSECOND = datetime.timedelta(microseconds=1)


def _pg_arrays(queryset: QuerySet, outer: list[str]) -> list[np.ndarray]:
    """The columns of a values_list queryset as int64 arrays, in one round trip: PostgreSQL
    aggregates each column into an array and sends it in its binary form (array_send), which
    NumPy reads without a Python object per row. ``outer[i]`` is an SQL expression over the
    column ``c{i}`` giving a non-null bigint. Several times faster than a cursor or a COPY,
    whose rows each cost a Python call."""
    sql, params = queryset.query.sql_with_params()
    names = ", ".join(f"c{i}" for i in range(len(outer)))
    select = ", ".join(f"array_send(array_agg({expression}))" for expression in outer)
    connection.ensure_connection()
    # A psycopg cursor of our own, not Django's client-side one: only a server-side-binding
    # cursor can ask for a binary result, and a text result sends the bytea as hex, twice the
    # bytes, decoded into a second copy (at 10M lines: +330 MB of peak memory, +40% time).
    raw = psycopg.Cursor(connection.connection)
    raw.format = psycopg.pq.Format.BINARY  # what connection.cursor(binary=True) sets
    # Wrapped like Django's own cursors, so query logging and execute_wrappers still see it.
    with connection.make_debug_cursor(raw) if connection.queries_logged else connection.make_cursor(raw) as cursor:
        cursor.execute(f"SELECT {select} FROM ({sql}) AS history ({names})", params)
        blobs = cursor.fetchone()
    arrays = []
    for blob in blobs:
        if blob is None:  # no rows at all
            arrays.append(np.zeros(0, dtype=np.int64))
            continue
        # 1-D int8[]: ndim, has-nulls flag, element type, size, lower bound; then per element
        # a 4-byte length (always 8) and the big-endian value.
        elements = np.frombuffer(memoryview(blob)[20:], dtype=[("length", ">i4"), ("value", ">i8")])
        if not (elements["length"] == 8).all():
            raise RuntimeError("unexpected array layout from PostgreSQL")
        arrays.append(elements["value"].astype(np.int64))
    return arrays


def _order_rows(window: dict[str, Any]) -> np.ndarray:
    """(id, account, us) of the orders in the window; us = microseconds since the Unix epoch,
    exact integers, so that ages are exact differences (the newest order has age 0.0)."""
    dtype = [("id", np.int64), ("account", np.int64), ("us", np.int64)]
    orders = Order.objects.filter(**window).order_by().values_list("id", "account_id", "ordered_at")
    if connection.vendor == "postgresql":
        ids, accounts, us = _pg_arrays(orders, ["c0", "c1", "(EXTRACT(EPOCH FROM c2) * 1000000)::bigint"])
        rows = np.empty(len(ids), dtype=dtype)
        rows["id"], rows["account"], rows["us"] = ids, accounts, us
        return rows
    return np.fromiter(
        (
            (pk, account, (ordered_at - UNIX_EPOCH) // MICROSECOND)
            for pk, account, ordered_at in orders.iterator(chunk_size=CHUNK)
        ),
        dtype=dtype,
    )


def _line_rows(window: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(order ids, product ids) of the lines of the orders in the window."""
    lines = (
        OrderLine.objects.filter(**{f"order__{key}": value for key, value in window.items()})
        .order_by()
        .values_list("order_id", "product_id")
    )
    if connection.vendor == "postgresql":
        line_orders, line_products = _pg_arrays(lines, ["c0", "c1"])
        return line_orders, line_products
    flat = np.fromiter(itertools.chain.from_iterable(lines.iterator(chunk_size=CHUNK)), dtype=np.int64)
    return flat[0::2].copy(), flat[1::2].copy()


def _history(*, window: dict[str, Any], reference: datetime.datetime) -> OrderHistory:
    """Read in two streamed queries (orders, then lines), never as model instances."""
    order_rows = _order_rows(window)
    if order_rows.shape[0] == 0:
        return _empty_history(reference)
    order_rows.sort(order="id")
    line_orders, line_products = _line_rows(window)
    # An order imported between the two queries has lines but no order row here: leave it out.
    position = np.searchsorted(order_rows["id"], line_orders).clip(0, order_rows.shape[0] - 1)
    known = order_rows["id"][position] == line_orders
    if not known.all():
        line_products, position = line_products[known], position[known]
    if position.shape[0] == 0:
        return _empty_history(reference)
    # Orders without lines do not exist for the miner: dense indices over the orders that have lines.
    used, order_idx = np.unique(position, return_inverse=True)
    product_ids, product_idx = np.unique(line_products, return_inverse=True)
    used_orders = order_rows[used]
    placeholders = list(CustomerAccount.objects.placeholders().values_list("id", flat=True))
    if placeholders:
        used_orders["account"][np.isin(used_orders["account"], placeholders)] = -1
    return OrderHistory(
        order_idx=order_idx.astype(np.int32),
        product_idx=product_idx.astype(np.int32),
        order_age_days=((reference - UNIX_EPOCH) // MICROSECOND - used_orders["us"]) / MICROSECONDS_PER_DAY,
        order_accounts=used_orders["account"].copy(),
        product_ids=product_ids,
        reference=reference,
    )


@dataclass(frozen=True)
class ExclusionArrays:
    """What may never be paired, per dense product index (see ``exclusion_arrays``); the
    fields of ``merchandising.mining.Exclusions``.

    ``eligible[i]``: the product may appear in a suggestion at all; ``family[i]``: products
    of one family (a base product and its pack variants) are never paired with each other;
    ``category[i]``: the product's category id (-1 without one); ``category_pairs``: unordered
    pairs of category ids never paired (a rule expanded over both subtrees).
    """

    eligible: np.ndarray
    family: np.ndarray
    category: np.ndarray
    category_pairs: frozenset[tuple[int, int]]


def _subtree(paths: dict[int, str], root: int) -> list[int]:
    root_path = paths[root]
    prefix = root_path + CATEGORY_SEPARATOR
    return [pk for pk, path in paths.items() if path == root_path or path.startswith(prefix)]


def exclusion_arrays(*, product_ids: np.ndarray) -> ExclusionArrays:
    """Eligibility, families and category pairs of the products behind ``product_ids``
    (sorted database ids), from the catalog and the ExclusionRule table.

    Not eligible: products that are not active, flagged "exclude from recommendations", or
    covered by a product, brand or category rule (a category rule covers the category and
    every category below it, by path prefix). A category-pair rule covers every category of
    one subtree against every category of the other. The family of a product is its base
    product's id, or its own id: pack variants of one base share a family.
    """
    n = int(product_ids.shape[0])
    rules = list(
        ExclusionRule.objects.values_list("kind", "product_id", "brand_id", "category_id", "other_category_id")
    )
    paths = dict(Category.objects.values_list("id", "path")) if any(r[3] for r in rules) else {}
    excluded_products = {r[1] for r in rules if r[0] == ExclusionRule.Kind.PRODUCT}
    excluded_brands = {r[2] for r in rules if r[0] == ExclusionRule.Kind.BRAND}
    excluded_categories: set[int] = set()
    pairs: set[tuple[int, int]] = set()
    for kind, _product, _brand, category, other in rules:
        if kind == ExclusionRule.Kind.CATEGORY:
            excluded_categories.update(_subtree(paths, category))
        elif kind == ExclusionRule.Kind.CATEGORY_PAIR:
            for a in _subtree(paths, category):
                for b in _subtree(paths, other):
                    pairs.add((min(a, b), max(a, b)))

    eligible = np.zeros(n, dtype=bool)
    family = np.zeros(n, dtype=np.int64)
    category_of = np.full(n, -1, dtype=np.int64)
    if n:
        catalog = Product.objects.order_by().values_list(
            "id", "status", "exclude_from_recommendations", "brand_id", "category_id", "base_id"
        )
        rows = np.fromiter(
            (
                (
                    pk,
                    status == ProductStatus.ACTIVE
                    and not flagged
                    and pk not in excluded_products
                    and brand not in excluded_brands
                    and category not in excluded_categories,
                    pk if base is None else base,
                    -1 if category is None else category,
                )
                for pk, status, flagged, brand, category, base in catalog.iterator(chunk_size=CHUNK)
            ),
            dtype=[("id", np.int64), ("eligible", bool), ("family", np.int64), ("category", np.int64)],
        )
        rows.sort(order="id")
        # Order lines protect their products from deletion (PROTECT), so every id is found.
        mine = rows[np.searchsorted(rows["id"], product_ids)]
        eligible, family, category_of = mine["eligible"].copy(), mine["family"].copy(), mine["category"].copy()
    return ExclusionArrays(eligible=eligible, family=family, category=category_of, category_pairs=frozenset(pairs))


def _format_float(value: float) -> str:
    return repr(float(value))


def suggestions_export_rows(*, queryset: QuerySet[Suggestion] | None = None) -> Iterator[list[str]]:
    """Header, then one formula-escaped row per suggestion, streamed in chunks."""
    yield list(EXPORT_COLUMNS)
    queryset = Suggestion.objects.all() if queryset is None else queryset
    fields = [{"source_sku": "source__sku", "target_sku": "target__sku"}.get(c, c) for c in EXPORT_COLUMNS]
    rows = queryset.order_by("source__sku", "-score", "target__sku").values_list(*fields)
    for row in rows.iterator(chunk_size=CHUNK):
        (source, target, co_count, support, confidence, lift, score, status, stale, jaccard, decayed, previous,
         accounts, reason) = row  # fmt: skip
        cells = [
            source,
            target,
            str(co_count),
            _format_float(support),
            _format_float(confidence),
            _format_float(lift),
            _format_float(score),
            status,
            "true" if stale else "false",
            _format_float(jaccard),
            _format_float(decayed),
            "" if previous is None else str(previous),
            str(accounts),
            reason,
        ]
        yield [escape_formula(cell) for cell in cells]


def mining_run_progress(*, run: MiningRun) -> dict[str, Any]:
    """What the admin's progress bar polls."""
    return {
        "id": run.pk,
        "status": run.status,
        "status_display": run.get_status_display(),
        "phase": run.phase,
        "progress": run.progress,
        "finished": run.status not in (MiningRun.Status.QUEUED, MiningRun.Status.RUNNING),
        "error": run.error,
        "suggestions_new": run.suggestions_new,
        "suggestions_updated": run.suggestions_updated,
        "suggestions_unchanged": run.suggestions_unchanged,
        "suggestions_stale": run.suggestions_stale,
    }
