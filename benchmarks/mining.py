"""End-to-end benchmark of a mining run on PostgreSQL: read the order history from the
database, mine, store the suggestions (merchandising.services.suggestions_recompute).

    python benchmarks/mining.py [--sizes S,M,L] [--database-url postgres://postgres@127.0.0.1:5432/postgres]
                                [--output PATH] [--python-budget N]

Sizes are those of benchmarks/mining_engine.py (S = 20k orders / 5k products, M = 200k /
20k, L = 800k / 50k; default S,M), the history comes from merchandising.mining.synthetic
with the same seed, spread over two years (``days=730``) so that the default look-back
(730 days) keeps all of it: the run mines every line, with the stored default settings.

Per size, on the PostgreSQL server the URL names, a throwaway database
``bench_mining_<pid>_<size>`` is created and dropped at the end (also on errors and Ctrl-C).
Each step runs in its own process, so that its peak RSS is its own (VmHWM):

1. setup: ``migrate``; brands, categories, products (SKUs ``P000001``.., active, a brand and
   a category each; 2% are pack variants of a base product), customer accounts (as many as
   the generator uses, max(10, orders // 60); the generated history does not say which
   account placed an order, so each order gets a seeded uniform one), orders and order lines
   (duplicate (order, product) lines merged into one line with a larger quantity, as the
   import does) written with binary COPY (foreign-key triggers off for the orders and lines,
   integrity checked with anti-joins afterwards); ``VACUUM ANALYZE``; then the arrays the run
   will read (``order_history_load`` with the run's look-back) are saved for the baselines.
2. run 1: ``suggestions_recompute(trigger="command")`` on the fresh database, timed from the
   call to its return (create and claim the run, read the history, exclusions, prepare, mine,
   accounts per pair, store in one transaction). The phase split comes from wrapping the
   functions the service calls (no change to the service).
3. run 2: the same again on the same data: every suggestion comes back unchanged (the
   steady-state weekly recompute; unchanged suggestions are not written).
4. the engine alone (``mine_pairs``, default ``MiningOptions``) and the two baselines of
   benchmarks/mining_engine.py (pure-Python ``Counter`` over ``itertools.combinations`` on a
   subset of the orders, extrapolated per pair-occurrence; DuckDB SQL self-join), each in its
   own process through mining_engine.py's workers, on the arrays of step 1.

Prints a table and writes JSON (default benchmarks/out/mining.json; the sizes of this run
replace those of earlier runs). DuckDB is a benchmark-only dependency
(``pip install -r requirements-bench.txt``); without it the DuckDB column says "skipped".
Exits non-zero if a run does not succeed or run 2 changes anything.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import mining_engine  # noqa: E402 (benchmarks/mining_engine.py: sizes, seed, workers, baselines)

from merchandising.mining.synthetic import generate  # noqa: E402

DEFAULT_OUTPUT = ROOT / "benchmarks" / "out" / "mining.json"
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
SIZES = mining_engine.SIZES
SEED = mining_engine.SEED
HISTORY_DAYS = 730
HISTORY_END = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)
PG_EPOCH = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
US_PER_DAY = 86_400_000_000
COPY_CHUNK = 1_000_000  # rows per write of a binary COPY
PG_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
PG_COPY_TRAILER = b"\xff\xff"
N_BRANDS, N_ROOTS, N_LEAVES = 25, 10, 5
VARIANT_EVERY = 100  # products i with i % 100 in (1, 2) are pack variants of product i - i % 100
EXPLICIT_ID_TABLES = (
    "catalog_brand",
    "catalog_category",
    "catalog_product",
    "accounts_customeraccount",
    "orders_order",
)
SEGMENTS = ("construction", "facility", "industry", "installation", "retail")
# Repetitions of the engine and DuckDB measurements (best of): fewer for bigger sizes.
REPEAT = {"S": (3, 3), "M": (3, 2), "L": (2, 1)}


# --- Measurements shared by the steps ---------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM): ru_maxrss would also count the memory of the parent
    that a subprocess had mapped before its exec."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "true")
    import django

    django.setup()


# --- Step 1: the database ---------------------------------------------------------------------


def _binary_rows(layout: list[tuple[str, str]], n: int, fields: int) -> np.ndarray:
    rows = np.zeros(n, dtype=[("fields", ">i2"), *layout])
    rows["fields"] = fields
    return rows


def _copy_binary(cursor, table: str, columns: str, rows: np.ndarray) -> None:
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(PG_COPY_HEADER)
        for start in range(0, len(rows), COPY_CHUNK):
            copy.write(rows[start : start + COPY_CHUNK].tobytes())
        copy.write(PG_COPY_TRAILER)


def _prices(n_products: int) -> np.ndarray:
    """Unit price of each product in 1/10000 (0.50 .. 500.49)."""
    index = np.arange(n_products, dtype=np.int64)
    return ((index * 7919) % 50_000 + 50) * 100


def _load_catalog(cursor, n_products: int, now: datetime.datetime, currency: str) -> int:
    with cursor.copy("COPY catalog_brand (id, name, created_at) FROM STDIN") as copy:
        for brand in range(1, N_BRANDS + 1):
            copy.write_row((brand, f"Brand {brand:02d}", now))
    with cursor.copy("COPY catalog_category (id, name, path, parent_id) FROM STDIN") as copy:
        for root in range(1, N_ROOTS + 1):
            copy.write_row((root, f"Group {root:02d}", f"Group {root:02d}", None))
        for root in range(1, N_ROOTS + 1):
            for leaf in range(1, N_LEAVES + 1):
                pk = N_ROOTS + (root - 1) * N_LEAVES + leaf
                copy.write_row((pk, f"Range {leaf}", f"Group {root:02d} > Range {leaf}", root))
    prices = _prices(n_products)
    variants = 0
    columns = (
        "id, sku, name, description, unit_price, currency, pack_quantity, unit, status, "
        "exclude_from_recommendations, attributes, created_at, updated_at, base_id, brand_id, category_id"
    )
    with cursor.copy(f"COPY catalog_product ({columns}) FROM STDIN") as copy:
        for index in range(n_products):
            slot = index % VARIANT_EVERY
            base = index - slot if slot in (1, 2) and index - slot + 1 < n_products else None
            family = base if base is not None else index  # a variant shares its base's brand and category
            pack = (1, 10, 50)[slot] if base is not None else 1
            variants += base is not None
            price = prices[index] * pack
            copy.write_row(
                (
                    index + 1,
                    f"P{index + 1:06d}",
                    f"Product {index + 1}" + (f" (pack of {pack})" if pack > 1 else ""),
                    "",
                    f"{price // 10_000}.{price % 10_000:04d}",
                    currency,
                    pack,
                    "pcs",
                    "active",
                    False,
                    "{}",
                    now,
                    now,
                    None if base is None else base + 1,
                    family % N_BRANDS + 1,
                    N_ROOTS + family % (N_ROOTS * N_LEAVES) + 1,
                )
            )
    return variants


def _load_accounts(cursor, n_accounts: int, now: datetime.datetime) -> None:
    columns = "id, external_id, name, segment, industry, brand_mode, created_at"
    with cursor.copy(f"COPY accounts_customeraccount ({columns}) FROM STDIN") as copy:
        for account in range(n_accounts):
            segment = SEGMENTS[account % len(SEGMENTS)]
            copy.write_row((account + 1, f"A{account + 1:06d}", f"Customer {account + 1}", segment, "", "prefer", now))


def _load_orders(cursor, order_day: np.ndarray, order_account: np.ndarray, now: datetime.datetime) -> None:
    n = len(order_day)
    start_us = (HISTORY_END - datetime.timedelta(days=HISTORY_DAYS) - PG_EPOCH) // datetime.timedelta(microseconds=1)
    layout = [
        ("id_len", ">i4"), ("id", ">i8"),
        ("ext_len", ">i4"), ("ext", "S10"),
        ("account_len", ">i4"), ("account", ">i8"),
        ("ordered_len", ">i4"), ("ordered", ">i8"),
        ("imported_len", ">i4"), ("imported", ">i8"),
    ]  # fmt: skip
    rows = _binary_rows(layout, n, 5)
    rows["id_len"] = rows["account_len"] = rows["ordered_len"] = rows["imported_len"] = 8
    rows["ext_len"] = 10
    rows["id"] = np.arange(1, n + 1)
    rows["ext"] = np.char.add(b"SO", np.char.zfill(np.arange(1, n + 1).astype("S8"), 8))
    rows["account"] = order_account + 1
    rows["ordered"] = start_us + np.rint(order_day * US_PER_DAY).astype(np.int64)
    rows["imported"] = (now - PG_EPOCH) // datetime.timedelta(microseconds=1)
    _copy_binary(cursor, "orders_order", "id, external_id, account_id, ordered_at, imported_at", rows)


def _load_lines(cursor, order_idx: np.ndarray, product_idx: np.ndarray, n_products: int) -> dict:
    """One line per distinct (order, product): duplicates are merged (quantity adds up)."""
    key = order_idx.astype(np.int64) * n_products + product_idx
    distinct, repeats = np.unique(key, return_counts=True)
    rng = np.random.default_rng(SEED)
    quantity = repeats * rng.integers(1, 13, len(distinct))
    product = distinct % n_products
    price = _prices(n_products)[product]  # numeric(12,4) in binary: two base-10000 digits
    layout = [
        ("order_len", ">i4"), ("order", ">i8"),
        ("product_len", ">i4"), ("product", ">i8"),
        ("quantity_len", ">i4"), ("quantity", ">i4"),
        ("price_len", ">i4"), ("ndigits", ">i2"), ("weight", ">i2"), ("sign", ">i2"), ("dscale", ">i2"),
        ("digit0", ">i2"), ("digit1", ">i2"),
    ]  # fmt: skip
    rows = _binary_rows(layout, len(distinct), 4)
    rows["order_len"] = rows["product_len"] = 8
    rows["quantity_len"] = 4
    rows["price_len"] = 12
    rows["ndigits"], rows["dscale"] = 2, 4
    rows["order"] = distinct // n_products + 1
    rows["product"] = product + 1
    rows["quantity"] = quantity
    rows["digit0"], rows["digit1"] = price // 10_000, price % 10_000
    del key, product, price, quantity
    _copy_binary(cursor, "orders_orderline", "order_id, product_id, quantity, unit_price", rows)
    return {"lines_generated": len(order_idx), "lines": len(distinct), "merged": int((repeats - 1).sum())}


def step_setup(size: str, data_path: str) -> dict:
    setup_django()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, transaction

    from merchandising.models import MiningSettings
    from merchandising.selectors import order_history_load

    timings: dict[str, float] = {}
    start = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    timings["migrate"] = time.perf_counter() - start

    n_orders, n_products = SIZES[size]
    start = time.perf_counter()
    history = generate(n_orders, n_products, seed=SEED, days=HISTORY_DAYS)
    order_day = history.order_day[np.r_[0, np.flatnonzero(np.diff(history.order_idx)) + 1]]
    if len(order_day) != n_orders:
        raise RuntimeError(f"the generator made {len(order_day)} orders with lines, expected {n_orders}")
    # Accounts as the generator numbers them (max(10, orders // 60)); the History does not
    # carry the account of an order, so orders get accounts of their own (uniform, seeded).
    n_accounts = max(10, n_orders // 60)
    order_account = getattr(history, "order_account", None)
    if order_account is None:
        order_account = np.random.default_rng(SEED + 1).integers(0, n_accounts, n_orders)
    timings["generate"] = time.perf_counter() - start

    now = datetime.datetime.now(tz=datetime.UTC)
    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as wrapper:
        cursor = wrapper.cursor  # psycopg's cursor, for COPY
        variants = _load_catalog(cursor, n_products, now, settings.DEFAULT_CURRENCY)
        _load_accounts(cursor, n_accounts, now)
        timings["load catalog and accounts"] = time.perf_counter() - start
        start = time.perf_counter()
        # Bulk load: no per-row foreign-key triggers (their 2 lookups per line would dominate);
        # integrity is checked once below.
        cursor.execute("SET LOCAL session_replication_role = replica")
        _load_orders(cursor, order_day, order_account, now)
        timings["copy orders"] = time.perf_counter() - start
        start = time.perf_counter()
        counts = _load_lines(cursor, history.order_idx, history.product_idx, n_products)
        timings["copy order lines"] = time.perf_counter() - start
        cursor.execute("SET LOCAL session_replication_role = origin")
        for table in EXPLICIT_ID_TABLES:
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    del history
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT
                (SELECT count(*) FROM orders_orderline l WHERE NOT EXISTS
                    (SELECT 1 FROM orders_order o WHERE o.id = l.order_id)),
                (SELECT count(*) FROM orders_orderline l WHERE NOT EXISTS
                    (SELECT 1 FROM catalog_product p WHERE p.id = l.product_id)),
                (SELECT count(*) FROM orders_order o WHERE NOT EXISTS
                    (SELECT 1 FROM accounts_customeraccount a WHERE a.id = o.account_id))"""
        )
        dangling = cursor.fetchone()
        if any(dangling):
            raise RuntimeError(f"dangling keys (lines->orders, lines->products, orders->accounts): {dangling}")
    timings["check foreign keys"] = time.perf_counter() - start
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")
        cursor.execute("SELECT pg_total_relation_size('orders_orderline'), pg_total_relation_size('orders_order')")
        line_bytes, order_bytes = cursor.fetchone()
    timings["vacuum analyze"] = time.perf_counter() - start

    # The arrays the run will read, for the engine-alone measurement and the baselines.
    start = time.perf_counter()
    lookback = MiningSettings.load().lookback_days or None
    loaded = order_history_load(lookback_days=lookback)
    if loaded.lines != counts["lines"] or loaded.orders != n_orders:
        raise RuntimeError(
            f"the run would read {loaded.orders} orders / {loaded.lines} lines, "
            f"expected {n_orders} / {counts['lines']} (look-back {lookback} days)"
        )
    np.savez(
        data_path,
        order_idx=loaded.order_idx,
        product_idx=loaded.product_idx,
        age=loaded.line_age_days,
        n_products=loaded.products,
    )
    timings["export arrays"] = time.perf_counter() - start
    return {
        "orders": n_orders,
        "catalog_products": n_products,
        "variants": variants,
        "accounts": n_accounts,
        "mined_products": loaded.products,
        **counts,
        "lookback_days": lookback,
        "table_mb": {"orders_orderline": line_bytes / 2**20, "orders_order": order_bytes / 2**20},
        "timings": timings,
        "peak_rss_mb": peak_rss_mb(),
    }


# --- Steps 2 and 3: the run -------------------------------------------------------------------

# Functions the service looks up in its module at call time, wrapped to time the phases.
# Top level: they partition the run (the rest is "other"); nested: parts of a top-level one.
TOP_PHASES = (
    ("recompute", "mining_run_create", "create run"),
    ("recompute", "run_claim", "claim"),
    ("recompute", "order_history_load", "read history"),
    ("recompute", "exclusion_arrays", "exclusions"),
    ("recompute", "prepare", "prepare"),
    ("recompute", "mine_upper", "mine blocks"),
    ("recompute", "pairs_from_upper", "score"),
    ("recompute", "pair_accounts", "accounts"),
    ("recompute", "suggestions_store", "store"),
    ("recompute", "run_progress", "progress writes"),
)
NESTED_PHASES = (
    ("selectors", "_pg_arrays", "read history: SQL (array_agg)"),
    ("recompute", "_stage_fill", "store: stage (COPY)"),
    ("recompute", "suggestions_write_batch", "store: upserts"),
)


def _instrument(modules: dict, table: tuple, totals: dict, peaks: dict) -> None:
    """Wrap each function: its total time and calls in ``totals``, the process's peak RSS
    when it last returned in ``peaks`` (the phase where the peak first reaches its final
    value is the one that sets it)."""
    for module_name, name, label in table:
        module = modules[module_name]
        original = getattr(module, name)

        def timed(*args, _original=original, _label=label, **kwargs):
            start = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                seconds, calls = totals.get(_label, (0.0, 0))
                totals[_label] = (seconds + time.perf_counter() - start, calls + 1)
                peaks[_label] = round(peak_rss_mb(), 1)

        setattr(module, name, functools.wraps(original)(timed))


def step_run(label: str) -> dict:
    setup_django()
    from django.db import connection

    from merchandising import selectors
    from merchandising.models import MiningRun, Suggestion
    from merchandising.services import recompute, suggestions_recompute

    totals: dict[str, tuple[float, int]] = {}
    peaks: dict[str, float] = {}
    _instrument({"recompute": recompute, "selectors": selectors}, TOP_PHASES + NESTED_PHASES, totals, peaks)
    statements: dict[str, tuple[float, int]] = {}

    def sql_timer(execute, sql, params, many, context):
        """Every statement the run sends through Django (not the COPY), by its first words."""
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            key = " ".join(sql.split())[:60]
            seconds, calls = statements.get(key, (0.0, 0))
            statements[key] = (seconds + time.perf_counter() - start, calls + 1)

    commit = connection.commit

    def timed_commit():
        start = time.perf_counter()
        try:
            return commit()
        finally:
            seconds, calls = statements.get("COMMIT", (0.0, 0))
            statements["COMMIT"] = (seconds + time.perf_counter() - start, calls + 1)

    connection.ensure_connection()
    connection.commit = timed_commit
    rss_start = peak_rss_mb()
    load_before = load_average()
    cpu_start = cpu_seconds()
    start = time.perf_counter()
    with connection.execute_wrapper(sql_timer):
        run = suggestions_recompute(trigger=MiningRun.Trigger.COMMAND)
    seconds = time.perf_counter() - start
    cpu = cpu_seconds() - cpu_start
    rss = peak_rss_mb()
    if run.status != MiningRun.Status.SUCCEEDED:
        raise RuntimeError(f"{label}: run #{run.pk} ended {run.status}: {run.error}")
    top = {name for _module, _name, name in TOP_PHASES}
    phases = {name: round(value[0], 4) for name, value in totals.items()}
    phases["other"] = round(seconds - sum(value[0] for name, value in totals.items() if name in top), 4)
    fields = (
        "orders", "lines", "products", "pairs_scored",
        "suggestions_new", "suggestions_updated", "suggestions_unchanged", "suggestions_stale",
    )  # fmt: skip
    return {
        "run": label,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "phases": phases,
        "blocks": totals.get("mine blocks", (0, 0))[1],
        "peak_rss_after_phase_mb": peaks,
        "sql": {
            key: {"seconds": round(value[0], 4), "calls": value[1]}
            for key, value in sorted(statements.items(), key=lambda item: -item[1][0])
        },
        "mining_run": {
            **{name: getattr(run, name) for name in fields},
            "id": run.pk,
            "duration_seconds": run.duration.total_seconds(),
        },
        "suggestions": Suggestion.objects.count(),
        "suggestions_stale": Suggestion.objects.filter(stale=True).count(),
        "peak_rss_mb": rss,
        "rss_before_run_mb": rss_start,
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }


# --- Driver -----------------------------------------------------------------------------------


class BenchmarkError(Exception):
    pass


def _admin(server_url: str, statement: str) -> None:
    import psycopg

    parts = urlsplit(server_url)
    with psycopg.connect(urlunsplit(parts._replace(scheme="postgresql")), autocommit=True) as connection:
        connection.execute(statement)


def _server_version(server_url: str) -> str:
    import psycopg

    parts = urlsplit(server_url)
    with psycopg.connect(urlunsplit(parts._replace(scheme="postgresql")), autocommit=True) as connection:
        return connection.execute("SHOW server_version").fetchone()[0]


def mask(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))
    return url


def run_step(step: str, database_url: str, *extra: str) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in ("CELERY_BROKER_URL", "CACHE_URL")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", DEBUG="true", DATABASE_URL=database_url)
    env.pop("CELERY_RESULT_BACKEND", None)
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--step", step, *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise BenchmarkError(f"step {step} failed (exit {completed.returncode}):\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_baseline(kind: str, path: str, *extra: str) -> dict:
    try:
        return mining_engine.run_worker(kind, path, *extra)
    except subprocess.CalledProcessError as exc:
        raise BenchmarkError(f"mining_engine.py worker {kind} failed:\n{(exc.stderr or '')[-4000:]}") from exc


def bench_size(size: str, server_url: str, tmp: str, python_budget: int) -> dict:
    name = f"bench_mining_{os.getpid()}_{size.lower()}"
    database_url = urlunsplit(urlsplit(server_url)._replace(path="/" + name))
    data = os.path.join(tmp, f"history_{size}.npz")
    engine_repeat, duck_repeat = REPEAT[size]
    started = time.perf_counter()
    row: dict = {"database": name, "load_average_start": load_average()}
    _admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        print(f"[{size}] setup: migrate, generate, COPY, VACUUM ANALYZE ...", flush=True)
        row["setup"] = run_step("setup", database_url, "--size", size, "--data", data)
        print(f"[{size}] run 1 (fresh database) ...", flush=True)
        row["run1"] = run_step("run", database_url, "--label", "first")
        print(f"[{size}] run 2 (same data) ...", flush=True)
        row["run2"] = run_step("run", database_url, "--label", "steady")
    finally:
        try:
            _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception as exc:  # noqa: BLE001 - report, do not hide the original error
            print(f"warning: could not drop database {name}: {exc}", file=sys.stderr)
    print(f"[{size}] engine alone, pure Python, DuckDB ...", flush=True)
    row["engine"] = run_baseline("engine", data, "--repeat", str(engine_repeat))
    row["python"] = run_baseline("python", data, "--python-budget", str(python_budget), "--repeat", "3")
    row["duckdb"] = run_baseline("duckdb", data, "--repeat", str(duck_repeat))
    os.unlink(data)
    row["load_average_end"] = load_average()
    row["wall_seconds"] = time.perf_counter() - started

    engine, duck, run1, run2 = row["engine"], row["duckdb"], row["run1"], row["run2"]
    occurrences = engine["pair_occurrences"]
    row["pair_occurrences"] = occurrences
    row["compute_pair_occurrences_per_second"] = occurrences / engine["seconds"]
    row["end_to_end_pair_occurrences_per_second"] = occurrences / run1["seconds"]
    row["speedup_vs_python"] = row["python"]["seconds_extrapolated"] / engine["seconds"]
    row["end_to_end_speedup_vs_python"] = row["python"]["seconds_extrapolated"] / run1["seconds"]
    if "seconds" in duck:
        row["compute_vs_duckdb"] = engine["seconds"] / duck["seconds"]
        row["end_to_end_vs_duckdb"] = run1["seconds"] / duck["seconds"]
    steady = run2["mining_run"]
    row["steady_state_unchanged"] = (
        steady["suggestions_new"] == 0
        and steady["suggestions_updated"] == 0
        and steady["suggestions_stale"] == 0
        and steady["suggestions_unchanged"] == run1["suggestions"] == run2["suggestions"]
    )
    return row


def _fmt_phases(run: dict) -> str:
    p = run["phases"]
    read, sql = p.get("read history", 0.0), p.get("read history: SQL (array_agg)", 0.0)
    store = p.get("store", 0.0)
    stage, upserts = p.get("store: stage (COPY)", 0.0), p.get("store: upserts", 0.0)
    claim = p.get("create run", 0.0) + p.get("claim", 0.0) + p.get("progress writes", 0.0) + p.get("other", 0.0)
    return (
        f"read {read:.2f} (SQL {sql:.2f}) | excl {p.get('exclusions', 0.0):.2f} | prepare {p.get('prepare', 0.0):.2f}"
        f" | mine {p.get('mine blocks', 0.0):.2f} ({run['blocks']} blocks) | score {p.get('score', 0.0):.2f}"
        f" | accounts {p.get('accounts', 0.0):.2f}"
        f" | store {store:.2f} (stage {stage:.2f}, upserts {upserts:.2f}, rest {store - stage - upserts:.2f})"
        f" | run bookkeeping {claim:.2f}"
    )


def _peak_phase(run: dict) -> str:
    """The first top-level phase after which the peak RSS had reached its final value."""
    peaks = run.get("peak_rss_after_phase_mb", {})
    order = [label for _module, _name, label in TOP_PHASES if label in peaks]
    order.sort(key=lambda label: peaks[label])
    final = max(peaks.values(), default=0.0)
    reached = [label for label in order if peaks[label] >= final - 0.5]
    return ", ".join(reached[:1]) or "?"


def print_table(results: dict) -> None:
    header = (
        f"{'size':4} {'orders':>7} {'lines':>9} {'products':>13} {'pair-occ':>11} {'compute s':>9} "
        f"{'e2e s':>6} {'run2 s':>6} {'pocc/s comp':>11} {'pocc/s e2e':>10} {'RSS MB':>6} {'eng RSS':>7} "
        f"{'python s*':>9} {'x python':>8} {'duckdb s':>8} {'eng/duck':>8} {'e2e/duck':>8} {'suggestions':>11}"
    )
    print(header)
    for size, row in results.items():
        if "error" in row:
            print(f"{size:4} failed: {row['error'].splitlines()[0]}")
            continue
        setup, engine, duck, run1, run2 = row["setup"], row["engine"], row["duckdb"], row["run1"], row["run2"]
        products = f"{setup['mined_products']}/{setup['catalog_products']}"
        has_duck = "seconds" in duck
        duck_s = f"{duck['seconds']:8.2f}" if has_duck else f"{'skipped':>8}"
        eng_duck = f"{row['compute_vs_duckdb']:8.3f}" if has_duck else f"{'-':>8}"
        e2e_duck = f"{row['end_to_end_vs_duckdb']:8.2f}" if has_duck else f"{'-':>8}"
        print(
            f"{size:4} {setup['orders']:7d} {setup['lines']:9d} {products:>13} {row['pair_occurrences']:11d} "
            f"{engine['seconds']:9.2f} {run1['seconds']:6.2f} {run2['seconds']:6.2f} "
            f"{row['compute_pair_occurrences_per_second']:11.3g} {row['end_to_end_pair_occurrences_per_second']:10.3g} "
            f"{run1['peak_rss_mb']:6.0f} {engine['peak_rss_mb']:7.0f} {row['python']['seconds_extrapolated']:9.1f} "
            f"{row['speedup_vs_python']:8.1f} {duck_s} {eng_duck} {e2e_duck} {run1['suggestions']:11d}"
        )
    print(
        "lines = distinct order lines in the database; products = mined (with lines) / in the catalog;"
        " pair-occ = sum of k*(k-1) over orders of 2..50 products;\ncompute = mine_pairs alone (best of"
        " repeats); e2e = suggestions_recompute on a fresh database (read, mine, store); run2 = the same"
        " again, nothing changed;\nRSS = peak of the run-1 process; * pure Python extrapolated from a subset"
        " (see the JSON); x python = python s / compute s; eng/duck, e2e/duck <= 1: faster than DuckDB."
    )
    for size, row in results.items():
        if "error" not in row and "seconds_one_thread" in row["engine"]:
            engine = row["engine"]
            print(
                f"{size}: compute with 1 thread instead of {engine['threads']}: {engine['seconds_one_thread']:.2f} s,"
                f" x python {row['python']['seconds_extrapolated'] / engine['seconds_one_thread']:.1f}"
            )
    print("\nPhase split (seconds):")
    for size, row in results.items():
        if "error" in row:
            continue
        for key in ("run1", "run2"):
            run = row[key]
            print(f"{size} {key} {run['seconds']:6.2f} s (CPU {run['cpu_seconds']:.2f}): {_fmt_phases(run)}")
            slow = [f"{value['seconds']:.2f} s {sql!r} x{value['calls']}" for sql, value in run["sql"].items()]
            print("      statements: " + "; ".join(slow[:6]))
            print(f"      peak RSS {run['peak_rss_mb']:.0f} MB, set in: {_peak_phase(run)}")
    print("\nLoad average (1, 5, 15 min) at the start / end of each size, and around run 1:")
    for size, row in results.items():
        if "error" in row:
            continue
        run1 = row["run1"]
        print(
            f"{size}: {row['load_average_start']} / {row['load_average_end']}; run 1 "
            f"{run1['load_average_before']} -> {run1['load_average_after']}; whole size {row['wall_seconds']:.0f} s"
        )
        if "skipped" in row["duckdb"]:
            print(f"{size}: {row['duckdb']['skipped']}")
        if not row["steady_state_unchanged"]:
            print(f"{size}: WARNING: run 2 changed suggestions: {row['run2']['mining_run']}")


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)  # unwinds through the finally that drops the database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="S,M", help="comma-separated from S, M, L (default S,M)")
    parser.add_argument("--database-url", default=DEFAULT_SERVER, help=f"PostgreSQL server (default {DEFAULT_SERVER})")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--python-budget", type=int, default=mining_engine.PYTHON_BUDGET)
    parser.add_argument("--step", choices=["setup", "run"], help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--label", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.step:
        out = step_setup(args.size, args.data) if args.step == "setup" else step_run(args.label)
        print(json.dumps(out, default=float))
        return

    if urlsplit(args.database_url).scheme not in {"postgres", "postgresql"}:
        parser.error(f"--database-url must be a postgres:// URL, not {mask(args.database_url)}")
    sizes = [size.strip().upper() for size in args.sizes.split(",") if size.strip()]
    unknown = [size for size in sizes if size not in SIZES]
    if unknown:
        parser.error(f"unknown sizes {unknown}; choose from {sorted(SIZES)}")
    signal.signal(signal.SIGTERM, _terminate)

    try:
        server = _server_version(args.database_url)
    except Exception as exc:  # noqa: BLE001 - any connection problem: say which server, stop
        raise SystemExit(f"cannot reach PostgreSQL at {mask(args.database_url)}: {exc}") from None
    print(f"PostgreSQL {server} at {mask(args.database_url)}; load average {load_average()}", flush=True)
    report: dict = {}
    if args.output.exists():
        try:
            report = json.loads(args.output.read_text())
        except ValueError:
            report = {}
    report["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "postgresql": server,
    }
    results: dict = {}
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            try:
                row = bench_size(size, args.database_url, tmp, args.python_budget)
            except BenchmarkError as exc:
                print(f"[{size}] {exc}", file=sys.stderr)
                results[size] = {"error": str(exc)}
                failed = True
                continue
            row["measured_at"] = datetime.datetime.now(tz=datetime.UTC).isoformat(timespec="seconds")
            row["commit"] = _commit()
            results[size] = row
            failed |= not row["steady_state_unchanged"]
    report.setdefault("sizes", {}).update({size: row for size, row in results.items() if "error" not in row})
    print()
    print_table(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=float) + "\n")
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    print(f"\nwritten to {shown}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
