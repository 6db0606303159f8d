"""Benchmark of the orders CSV import (orders.imports.orders_import).

    python benchmarks/import_orders.py [--lines N] [--database-url URL] [--output PATH]

Generates a realistic orders CSV of N lines (default 1,000,000: orders of 1-40 lines, popular
and rare SKUs, 2% of the rows repeat a SKU of their order and are merged, about 1% are returns
and 0.5% of the orders credit notes), sets up products and customer accounts in a fresh
throwaway database (a SQLite file in a temporary directory, or with --database-url a
database bench_orders_<pid> created on that PostgreSQL server and dropped afterwards), and
measures, each in its own subprocess so that its peak RSS is its own:

- the first import of the file, then importing it again (which must change nothing);
- the first import of the first N/5 lines, in another fresh database: peak RSS must not grow
  with the file;
- a ``bulk_create`` baseline: the same rows parsed with csv.DictReader and written with
  Order/OrderLine bulk_create in batches, on the first min(N, 200000) lines.

Prints lines per second, peak RSS and the ratio to the baseline, and writes them as JSON
(default benchmarks/out/import_orders.json). Exits non-zero if an import does not do what the
scenario expects (a refused import returns early and would otherwise look fast).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "benchmarks" / "out" / "import_orders.json"
BASELINE_MAX_LINES = 200_000
SEED = 20261122
HEADER = ["order_id", "account_id", "ordered_at", "sku", "quantity", "unit_price"]


# --- Generated order history ----------------------------------------------------------------


def sizes(lines: int) -> tuple[int, int]:
    """(SKUs, customer accounts) for a file of ``lines`` lines."""
    return min(20_000, max(500, lines // 50)), min(3_000, max(100, lines // 300))


def sku_of(index: int) -> str:
    return f"SKU-{index:06d}"


def price_of(index: int) -> str:
    return f"{(index * 7919) % 50000 / 100 + 0.5:.2f}"


def generate(path: Path, lines: int) -> dict:
    """Write the CSV; returns what it holds (the expected counts of an import)."""
    rng = random.Random(SEED)
    skus, accounts = sizes(lines)
    moment = datetime.datetime(2022, 1, 3, 8, 0)  # noqa: DTZ001 - local times, as ERP exports write them
    written = returns = credit_rows = merged_rows = orders = credit_orders = 0
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADER)
        number = 0
        while written < lines:
            number += 1
            moment += datetime.timedelta(seconds=rng.randint(1, 90))
            account = f"ACC-{rng.randrange(accounts):05d}"
            credit = rng.random() < 0.005
            order_id = f"C{number:08d}" if credit else f"SO{number:08d}"
            size = min(lines - written, 1 + int(rng.expovariate(1 / 9)) % 40)
            when = moment.isoformat(timespec="seconds")
            chosen: list[int] = []
            for _ in range(size):
                if chosen and rng.random() < 0.02:
                    index = rng.choice(chosen)  # the same SKU again: merged on import
                    quantity = 100 + chosen.count(index)  # never identical to an earlier row
                else:
                    index = int(skus * rng.random() ** 2.5)  # popular SKUs first
                    while index in chosen:
                        index = (index + 1) % skus
                    quantity = rng.randint(1, 24)
                is_return = not credit and rng.random() < 0.01
                if credit or is_return:
                    quantity = -quantity
                else:
                    if index in chosen:
                        merged_rows += 1
                    chosen.append(index)
                writer.writerow([order_id, account, when, sku_of(index), quantity, price_of(index)])
                written += 1
                returns += is_return
                credit_rows += credit
            if credit:
                credit_orders += 1
            elif chosen:
                orders += 1
    return {
        "lines": written,
        "orders": orders,
        "credit_note_rows": credit_rows,
        "return_rows": returns,
        "merged_rows": merged_rows,
        "order_lines": written - returns - credit_rows - merged_rows,
        "skus": skus,
        "accounts": accounts,
    }


def head(source: Path, target: Path, lines: int) -> None:
    """The header and the first ``lines`` lines, cut at an order boundary (whole orders)."""
    with source.open(encoding="utf-8") as inp, target.open("w", encoding="utf-8") as out:
        out.write(inp.readline())
        last_order = None
        for count, text in enumerate(inp):
            order = text.split(",", 1)[0]
            if count >= lines and order != last_order:
                break
            out.write(text)
            last_order = order


def expected_of(path: Path) -> dict:
    """What an import of ``path`` must report (computed independently of the import)."""
    rows = returns = credit = merged = 0
    orders: set[str] = set()
    seen: set[tuple[str, str]] = set()
    with path.open(newline="", encoding="utf-8") as source:
        for order_id, _account, _at, sku, quantity, _price in csv.reader(source):
            if order_id == "order_id":
                continue
            rows += 1
            if order_id.startswith("C"):
                credit += 1
            elif int(quantity) <= 0:
                returns += 1
            elif (order_id, sku) in seen:
                merged += 1
            else:
                seen.add((order_id, sku))
                orders.add(order_id)
    return {
        "rows": rows,
        "orders_created": len(orders),
        "lines_created": len(seen),
        "lines_merged": merged,
        "return_rows": returns,
        "credit_note_rows": credit,
    }


# --- Throwaway databases --------------------------------------------------------------------


class Databases:
    """SQLite files in a temporary directory, or PostgreSQL databases bench_orders_<pid>[_x]
    created on the server the URL names and dropped at the end."""

    def __init__(self, server_url: str | None, directory: Path):
        if server_url and urlsplit(server_url).scheme not in {"postgres", "postgresql", "pgsql"}:
            raise SystemExit(f"--database-url must be a postgres:// URL, not {mask(server_url)}")
        self.server_url = server_url
        self.directory = directory
        self.created: list[str] = []

    @property
    def vendor(self) -> str:
        return "postgresql" if self.server_url else "sqlite"

    def name(self, suffix: str = "") -> str:
        return f"bench_orders_{os.getpid()}{suffix}"

    def url(self, name: str) -> str:
        if not self.server_url:
            return f"sqlite:///{self.directory / (name + '.sqlite3')}"
        return urlunsplit(urlsplit(self.server_url)._replace(scheme="postgres", path="/" + name))

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self._admin_conninfo(), autocommit=True) as connection:
            connection.execute(statement)

    def _admin_conninfo(self) -> str:
        parts = urlsplit(self.server_url)
        path = parts.path if parts.path.strip("/") else "/postgres"
        return urlunsplit(parts._replace(scheme="postgresql", path=path))

    def create(self, name: str, template: str | None = None) -> str:
        if self.server_url:
            self._admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
            self.created.append(name)
        elif template:
            shutil.copyfile(self.directory / (template + ".sqlite3"), self.directory / (name + ".sqlite3"))
        return self.url(name)

    def version(self) -> str:
        if not self.server_url:
            import sqlite3

            return f"SQLite {sqlite3.sqlite_version}"
        import psycopg

        with psycopg.connect(self._admin_conninfo(), autocommit=True) as connection:
            return "PostgreSQL " + connection.execute("SHOW server_version").fetchone()[0]

    def drop_all(self) -> None:
        for name in reversed(self.created):
            try:
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:  # noqa: BLE001 - report and go on dropping the others
                print(f"warning: could not drop database {name}: {exc}", file=sys.stderr)
        self.created.clear()


def mask(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))
    return url


# --- Children: one process per step ---------------------------------------------------------


def run_child(step: str, database_url: str, **options) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result_path = Path(handle.name)
    env = dict(os.environ, DATABASE_URL=database_url)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", step, "--result", str(result_path)]
    command += ["--child-options", json.dumps(options)]
    try:
        completed = subprocess.run(command, cwd=ROOT, env=env, check=False)
        if completed.returncode != 0:
            raise SystemExit(f"step {step} {options} failed (exit code {completed.returncode})")
        return json.loads(result_path.read_text())
    finally:
        result_path.unlink(missing_ok=True)


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "true")
    os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key-not-for-production-0123456789")
    import django

    django.setup()
    from django.conf import settings

    # DEBUG keeps every query's SQL in memory (connection.queries_log); production does not.
    settings.DEBUG = False


def peak_rss_mb() -> float:
    """This process's peak RSS. On Linux from VmHWM: ru_maxrss also counts the parent's memory
    that a subprocess had mapped between fork and exec (Linux keeps it across exec), so it
    would report the benchmark's parent, not the import."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # ru_maxrss: KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024 / 1024
    except OSError:
        return float("nan")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_prepare(options: dict) -> dict:
    from decimal import Decimal

    from django.core.management import call_command
    from django.db import connection

    from accounts.models import CustomerAccount
    from catalog.models import Brand, Category, Product

    call_command("migrate", verbosity=0)
    brand = Brand.objects.create(name="Bench")
    category = Category.objects.create(name="Bench", path="Bench")
    Product.objects.bulk_create(
        [
            Product(
                sku=sku_of(index),
                name=f"Product {index}",
                brand=brand,
                category=category,
                unit_price=Decimal(price_of(index)),
                unit="pcs",
            )
            for index in range(options["skus"])
        ],
        batch_size=2000,
    )
    CustomerAccount.objects.bulk_create(
        [CustomerAccount(external_id=f"ACC-{index:05d}") for index in range(options["accounts"])], batch_size=2000
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    connection.close()
    return {}


def child_import(options: dict) -> dict:
    from django.db import connection

    from orders.imports import orders_import
    from orders.models import Order, OrderLine

    Order.objects.exists()  # connect before the clock starts
    if options.get("without_fk_triggers"):
        # What-if only (needs a superuser): no foreign-key trigger fires on this connection.
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")
    rss_before = current_rss_mb()
    cpu_started, started = cpu_seconds(), time.perf_counter()
    with open(options["csv"], "rb") as source:
        result = orders_import(source=source)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    peak = peak_rss_mb()
    data = {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_mb": peak,
        "rss_before_mb": rss_before,
        "refused": result.refused,
        "bulk_load": result.bulk_load,  # PostgreSQL's big-load path (docs/orders.md)
        "errors": [str(error) for error in result.errors[:5]],
        "timings": result.timings,
        "orders": Order.objects.count(),
        "order_lines": OrderLine.objects.count(),
        **{
            name: getattr(result, name)
            for name in (
                "rows",
                "orders_created",
                "orders_existing",
                "orders_differing",
                "lines_created",
                "lines_merged",
                "accounts_created",
                "return_rows",
                "credit_note_rows",
                "error_count",
            )
        },
    }
    connection.close()
    return data


def child_baseline(options: dict) -> dict:
    """What a straightforward ORM import does: csv.DictReader, dictionaries of products and
    accounts, and bulk_create of orders and lines in batches (no checks beyond the parse)."""
    from decimal import Decimal

    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.models import CustomerAccount
    from catalog.models import Product
    from orders.models import Order, OrderLine

    products = dict(Product.objects.values_list("sku", "id"))
    accounts = dict(CustomerAccount.objects.values_list("external_id", "id"))
    rss_before = current_rss_mb()
    cpu_started, started = cpu_seconds(), time.perf_counter()
    tz = timezone.get_default_timezone()
    rows = 0
    orders: list[Order] = []
    lines: list[list[OrderLine]] = []

    def flush() -> None:
        Order.objects.bulk_create(orders)
        for order, order_lines in zip(orders, lines, strict=True):
            for line in order_lines:
                line.order = order
        OrderLine.objects.bulk_create([line for order_lines in lines for line in order_lines], batch_size=5000)
        orders.clear()
        lines.clear()

    with open(options["csv"], newline="", encoding="utf-8") as source, transaction.atomic():
        current = None
        by_product: dict[int, OrderLine] = {}
        for row in csv.DictReader(source):
            rows += 1
            quantity = int(row["quantity"])
            if row["order_id"].startswith("C") or quantity <= 0:
                continue
            if current is None or current.external_id != row["order_id"]:
                if len(orders) >= 2000:
                    flush()
                ordered_at = datetime.datetime.fromisoformat(row["ordered_at"]).replace(tzinfo=tz)
                current = Order(
                    external_id=row["order_id"], account_id=accounts[row["account_id"]], ordered_at=ordered_at
                )
                by_product = {}
                orders.append(current)
                lines.append([])
            product_id = products[row["sku"]]
            if product_id in by_product:
                by_product[product_id].quantity += quantity
            else:
                line = OrderLine(product_id=product_id, quantity=quantity, unit_price=Decimal(row["unit_price"]))
                by_product[product_id] = line
                lines[-1].append(line)
        flush()
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    data = {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": rss_before,
        "rows": rows,
        "orders": Order.objects.count(),
        "order_lines": OrderLine.objects.count(),
    }
    connection.close()
    return data


CHILD_STEPS = {"prepare": child_prepare, "import": child_import, "baseline": child_baseline}


def child_main(step: str, result_path: str, options: dict) -> None:
    setup_django()
    data = CHILD_STEPS[step](options)
    Path(result_path).write_text(json.dumps(data))


# --- The run --------------------------------------------------------------------------------


def check(name: str, data: dict, **expected) -> None:
    wrong = {key: (data.get(key), value) for key, value in expected.items() if data.get(key) != value}
    if wrong:
        details = ", ".join(f"{key}: got {got}, expected {want}" for key, (got, want) in wrong.items())
        raise SystemExit(f"{name}: {details}; errors: {data.get('errors')}")


def measured(name: str, data: dict) -> dict:
    line = {
        "scenario": name,
        "lines": data["rows"],
        "seconds": round(data["seconds"], 3),
        "lines_per_s": round(data["rows"] / data["seconds"]) if data["seconds"] else None,
        "cpu_seconds": round(data["cpu_seconds"], 2),
        "peak_rss_mb": round(data["peak_rss_mb"], 1),
        "rss_before_mb": round(data["rss_before_mb"], 1),
    }
    if "bulk_load" in data:
        line["bulk_load"] = data["bulk_load"]
    if "timings" in data:
        line["phases"] = data["timings"]
    print(
        f"    {line['seconds']:.2f} s, {line['lines_per_s']} lines/s, peak RSS {line['peak_rss_mb']:.0f} MB",
        flush=True,
    )
    return line


def run(lines: int, database_url: str | None, output: Path, what_if: bool = False) -> dict:
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        print(f"note: load average {load_before:.2f} before the run: other processes compete for the CPUs")
    skus, accounts = sizes(lines)
    small_lines = max(lines // 5, 1)
    baseline_lines = min(lines, BASELINE_MAX_LINES)
    with tempfile.TemporaryDirectory(prefix="bench_orders_") as tmp:
        directory = Path(tmp)
        databases = Databases(database_url, directory)
        try:
            version = databases.version()
            print(f"Database: {version}; generating {lines} lines ...", flush=True)
            csv_path = directory / "orders.csv"
            made = generate(csv_path, lines)
            small_path, baseline_path = directory / "orders_small.csv", directory / "orders_baseline.csv"
            head(csv_path, small_path, small_lines)
            head(csv_path, baseline_path, baseline_lines)
            csv_mb = csv_path.stat().st_size / 1024 / 1024
            print(
                f"CSV: {csv_mb:.1f} MB, {made['lines']} lines, {made['orders']} orders, "
                f"{made['order_lines']} order lines after merging {made['merged_rows']} rows, "
                f"{made['return_rows']} return lines, {made['credit_note_rows']} credit-note rows; "
                f"{skus} SKUs, {accounts} accounts",
                flush=True,
            )
            main_name = databases.name()
            main_url = databases.create(main_name)
            run_child("prepare", main_url, skus=skus, accounts=accounts)
            small_url = databases.create(databases.name("_small"), template=main_name)
            baseline_url = databases.create(databases.name("_baseline"), template=main_name)
            if what_if:
                what_if_url = databases.create(databases.name("_what_if"), template=main_name)

            print("Scenarios:", flush=True)
            expected = expected_of(csv_path)
            print("  first import ...", flush=True)
            first = run_child("import", main_url, csv=str(csv_path))
            check("first import", first, refused=False, error_count=0, accounts_created=0, **expected)
            first_line = measured("first import", first)

            print("  re-import of the same file ...", flush=True)
            again = run_child("import", main_url, csv=str(csv_path))
            check(
                "re-import",
                again,
                refused=False,
                orders_created=0,
                lines_created=0,
                orders_existing=expected["orders_created"],
                orders_differing=0,
                order_lines=expected["lines_created"],
            )
            again_line = measured("re-import (changes nothing)", again)

            small_expected = expected_of(small_path)
            print(f"  first import of N/5 = {small_expected['rows']} lines ...", flush=True)
            small = run_child("import", small_url, csv=str(small_path))
            check("small import", small, refused=False, error_count=0, **small_expected)
            small_line = measured("first import, N/5 lines", small)

            baseline_expected = expected_of(baseline_path)
            print(f"  bulk_create baseline on {baseline_expected['rows']} lines ...", flush=True)
            baseline = run_child("baseline", baseline_url, csv=str(baseline_path))
            check(
                "baseline",
                baseline,
                orders=baseline_expected["orders_created"],
                order_lines=baseline_expected["lines_created"],
            )
            baseline_line = measured("bulk_create baseline", baseline)

            extra = []
            if what_if:
                print("  what-if: first import without foreign-key triggers ...", flush=True)
                unchecked = run_child("import", what_if_url, csv=str(csv_path), without_fk_triggers=True)
                check("what-if", unchecked, refused=False, error_count=0, **expected)
                extra.append(measured("what-if: no FK triggers", unchecked))
        finally:
            databases.drop_all()

    flatness = {
        "lines_small": small_line["lines"],
        "peak_rss_mb_small": small_line["peak_rss_mb"],
        "lines_full": first_line["lines"],
        "peak_rss_mb_full": first_line["peak_rss_mb"],
        "growth_mb": round(first_line["peak_rss_mb"] - small_line["peak_rss_mb"], 1),
    }
    summary = {
        "benchmark": "orders CSV import (orders.imports.orders_import)",
        "date": datetime.datetime.now(datetime.UTC).date().isoformat(),
        "database": databases.vendor,
        "database_version": version,
        "lines": lines,
        "csv_mb": round(csv_mb, 1),
        "generated": made,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "scenarios": [first_line, again_line, small_line, baseline_line, *extra],
        "memory_flatness": flatness,
        "ratio_first_import_to_bulk_create": round(first_line["lines_per_s"] / baseline_line["lines_per_s"], 1),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    print_summary(summary)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nWritten to {output}")
    return summary


def print_summary(summary: dict) -> None:
    print()
    print(
        f"Orders CSV import, {summary['lines']} lines ({summary['csv_mb']:.1f} MB CSV), "
        f"{summary['database_version']}, Python {summary['python']}, {summary['cpu_count']} CPUs, "
        f"load average {summary['load_average_before']:.2f} before / {summary['load_average_after']:.2f} after"
    )
    header = f"{'scenario':<32} {'lines':>9} {'seconds':>9} {'lines/s':>9} {'CPU s':>8} {'peak RSS MB':>12}"
    print(header)
    print("-" * len(header))
    for line in summary["scenarios"]:
        print(
            f"{line['scenario']:<32} {line['lines']:>9} {line['seconds']:>9.2f} {line['lines_per_s']:>9} "
            f"{line['cpu_seconds']:>8.2f} {line['peak_rss_mb']:>12.1f}"
        )
    flat = summary["memory_flatness"]
    print()
    print(
        f"Peak RSS: {flat['peak_rss_mb_small']:.1f} MB for {flat['lines_small']} lines, "
        f"{flat['peak_rss_mb_full']:.1f} MB for {flat['lines_full']} lines ({flat['growth_mb']:+.1f} MB)"
    )
    print(f"First import vs bulk_create baseline: {summary['ratio_first_import_to_bulk_create']:.1f}x the lines/s")
    for line in summary["scenarios"]:
        if line.get("phases"):
            phases = ", ".join(f"{name} {value:.2f}" for name, value in line["phases"].items())
            print(f"Phases of '{line['scenario']}' (s): {phases}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines in the generated CSV (default 1000000)")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432/postgres; the throwaway databases "
        "bench_orders_<pid>* are created there and dropped afterwards (default: temporary SQLite files)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where the JSON summary goes")
    parser.add_argument(
        "--what-if",
        action="store_true",
        help="PostgreSQL as a superuser: also import with foreign-key triggers off (session_replication_role), "
        "to show what the per-row foreign-key checks cost; the import itself never does this",
    )
    parser.add_argument("--child", choices=sorted(CHILD_STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--child-options", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child, args.result, json.loads(args.child_options))
        return
    if args.lines < 100:
        parser.error("--lines must be at least 100")
    if args.what_if and not args.database_url:
        parser.error("--what-if needs --database-url (PostgreSQL)")
    run(args.lines, args.database_url, args.output, args.what_if)


if __name__ == "__main__":
    main()
