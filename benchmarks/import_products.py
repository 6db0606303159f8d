"""Benchmark of the products CSV import (catalog.imports.products_import).

    python benchmarks/import_products.py [--rows N] [--database-url URL] [--output PATH]

Generates a realistic products CSV of N rows, runs every scenario in a fresh throwaway
database (a SQLite file in a temporary directory, or with --database-url a dedicated
PostgreSQL database created for the run and dropped afterwards), each scenario in its own
subprocess so that its peak RSS is its own, and prints a summary table that is also written
as JSON (default benchmarks/out/import_products.json). See benchmarks/README.md.

Exits non-zero if an import does not do what the scenario expects (a failed import returns
early and would otherwise look fast).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import functools
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
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "benchmarks" / "out" / "import_products.json"
NAIVE_MAX_ROWS = 5000
SEED = 20261122

# --- Generated catalog ----------------------------------------------------------------------

BRANDS = [
    "Acme",
    "Bosch",
    "Makita",
    "DeWalt",
    "Festool",
    "Hilti",
    "Metabo",
    "Ryobi",
    "Stanley",
    "Wera",
    "Knipex",
    "Fischer",
    "Würth",
    "3M",
    "Loctite",
    "Gardena",
    "Kärcher",
    "Philips",
    "Osram",
    "Legrand",
    "Schneider",
    "Hager",
    "Tesa",
    "Pattex",
    "Sikkens",
]
CATEGORY_TREE = {
    "Tools": ["Drills", "Saws", "Sanders", "Hand tools", "Measuring"],
    "Fasteners": ["Screws", "Bolts", "Nuts", "Wall plugs", "Nails"],
    "Electrical": ["Cables", "Switches", "Sockets", "Fuses", "Lighting"],
    "Plumbing": ["Pipes", "Fittings", "Taps", "Valves", "Sealants"],
    "Paint": ["Wall paint", "Wood stain", "Primers", "Brushes", "Rollers"],
    "Garden": ["Hoses", "Pumps", "Mowers", "Irrigation", "Pots"],
    "Safety": ["Gloves", "Goggles", "Ear protection", "Masks", "Workwear"],
    "Adhesives": ["Glue", "Tape", "Silicone", "Epoxy", "Foam"],
    "Storage": ["Boxes", "Shelving", "Cases", "Bags", "Hooks"],
    "Cleaning": ["Cloths", "Detergents", "Brooms", "Vacuum", "Buckets"],
}  # 10 roots + 50 leaves = 60 categories, two levels deep
NOUNS = ["drill", "saw", "screw", "bolt", "cable", "switch", "pipe", "tap", "brush", "glove", "tape", "box", "hose"]
ADJECTIVES = ["compact", "heavy-duty", "stainless", "galvanised", "cordless", "flexible", "pro", "eco", "mini"]
UNITS = ["pcs", "pcs", "pcs", "box", "m", "kg", "l"]
COLOURS = ["black", "white", "red", "blue", "green", "yellow", "grey"]
PACK_QUANTITIES = [5, 6, 10, 12, 24, 50, 100]
ATTRIBUTES = [
    {"code": "colour", "label": "Colour", "type": "choice", "choices": COLOURS},
    {"code": "weight_kg", "label": "Weight", "type": "number", "unit": "kg"},
]
HEADER = [
    "sku",
    "name",
    "brand",
    "category",
    "unit_price",
    "pack_quantity",
    "unit",
    "status",
    "base_sku",
    "description",
    "exclude_from_recommendations",
] + [f"attr:{attribute['code']}" for attribute in ATTRIBUTES]


def generate_rows(count: int):
    """``count`` rows as (cells, is_variant): base products, each followed by 0-2 pack
    variants (about 45% of the rows are variants). Deterministic."""
    rng = random.Random(SEED)
    leaves = [f"{root} > {leaf}" for root, children in CATEGORY_TREE.items() for leaf in children]
    produced = 0
    number = 0
    while produced < count:
        number += 1
        brand = rng.choice(BRANDS)
        sku = f"{brand[:3].upper()}-{number:07d}".replace("Ü", "U").replace("Ä", "A")
        name = f"{brand} {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {rng.randint(1, 999)}"
        price = Decimal(rng.randint(50, 50000)) / 100
        unit = rng.choice(UNITS)
        status = rng.choices(["active", "draft", "discontinued"], weights=[85, 10, 5])[0]
        description = rng.choice(
            [
                "",
                f"{name}. Sturdy, reliable, for daily use.",
                f'{name}, "professional" quality, 2 year warranty.',
                f"{name}.\nSecond line: see the datasheet for details.",
            ]
        )
        exclude = "true" if rng.random() < 0.05 else "false"
        colour = rng.choice(COLOURS) if rng.random() < 0.8 else ""
        weight = f"{rng.randint(1, 5000) / 100}" if rng.random() < 0.7 else ""
        category = rng.choice(leaves)
        yield [sku, name, brand, category, f"{price:.2f}", "1", unit, status, "", description, exclude, colour, weight]
        produced += 1
        for quantity in rng.sample(PACK_QUANTITIES, rng.choice([0, 0, 1, 1, 2])):
            if produced >= count:
                return
            pack_price = (price * quantity * Decimal("0.9")).quantize(Decimal("0.01"))
            yield [
                f"{sku}-P{quantity}",
                f"{name} (pack of {quantity})",
                brand,
                category,
                f"{pack_price:.2f}",
                str(quantity),
                unit,
                status,
                sku,
                "",
                exclude,
                colour,
                weight,
            ]
            produced += 1


def write_csv_files(count: int, directory: Path) -> tuple[Path, Path, int]:
    """The file, and the same file with the price of every 10th row changed."""
    original, changed = directory / "products.csv", directory / "products_changed.csv"
    changed_rows = 0
    with (
        original.open("w", newline="", encoding="utf-8") as out,
        changed.open("w", newline="", encoding="utf-8") as alt,
    ):
        writer, alt_writer = csv.writer(out), csv.writer(alt)
        writer.writerow(HEADER)
        alt_writer.writerow(HEADER)
        for position, cells in enumerate(generate_rows(count)):
            writer.writerow(cells)
            if position % 10 == 9:
                cells = list(cells)
                cells[4] = f"{Decimal(cells[4]) + Decimal('1.25'):.2f}"
                changed_rows += 1
            alt_writer.writerow(cells)
    return original, changed, changed_rows


# --- Throwaway databases --------------------------------------------------------------------


class Databases:
    """Fresh databases for one run: SQLite files in a temporary directory, or PostgreSQL
    databases bench_import_<pid>[_suffix] created next to the one the URL names."""

    def __init__(self, database_url: str | None, directory: Path):
        self.server_url = database_url
        self.directory = directory
        self.created: list[str] = []
        if database_url and urlsplit(database_url).scheme not in {"postgres", "postgresql", "pgsql"}:
            raise SystemExit(f"--database-url must be a postgres:// URL, not {mask(database_url)}")

    @property
    def vendor(self) -> str:
        return "postgresql" if self.server_url else "sqlite"

    def url(self, name: str) -> str:
        if not self.server_url:
            return f"sqlite:///{self.directory / (name + '.sqlite3')}"
        parts = urlsplit(self.server_url)
        return urlunsplit(parts._replace(scheme="postgres", path="/" + name))

    def name(self, suffix: str = "") -> str:
        return f"bench_import_{os.getpid()}{suffix}"

    def _admin(self, *statements: str) -> None:
        import psycopg

        with psycopg.connect(self._admin_conninfo(), autocommit=True) as connection:
            for statement in statements:
                connection.execute(statement)

    def _admin_conninfo(self) -> str:
        """The database the URL names (``postgres`` if none) to run CREATE/DROP DATABASE from."""
        parts = urlsplit(self.server_url)
        path = parts.path if parts.path.strip("/") else "/postgres"
        return urlunsplit(parts._replace(scheme="postgresql", path=path))

    def create(self, name: str, template: str | None = None) -> str:
        """A new empty database (or a copy of ``template``); returns its URL."""
        if self.server_url:
            self._admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
            self.created.append(name)
        elif template:
            shutil.copyfile(self.directory / (template + ".sqlite3"), self.directory / (name + ".sqlite3"))
        return self.url(name)

    def server_version(self) -> str:
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
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


# --- Children: one process per step ---------------------------------------------------------


def run_child(step: str, database_url: str, **options) -> dict:
    """Run ``step`` in a new Python process against ``database_url``; return its result."""
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

    # DEBUG (on by default here, for the settings' development defaults) also keeps the SQL of
    # the last 9000 queries in memory (connection.queries_log): with multi-row upserts that is
    # tens of MB that production (DEBUG off) never holds, and it makes peak RSS grow with the
    # number of rows. So query logging is off unless --debug-queries asks for it.
    if os.environ.get("BENCH_DEBUG_QUERIES") != "1":
        settings.DEBUG = False


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024 / 1024
    except OSError:
        return float("nan")


def cpu_seconds() -> float:
    """User + system CPU time of this process (not of the database server)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def start_profile(options: dict):
    if not options.get("profile"):
        return None
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


def stop_profile(profiler, options: dict) -> None:
    if profiler is None:
        return
    import pstats

    profiler.disable()
    profiler.dump_stats(options["profile"])
    print(f"    profile written to {options['profile']}; the 15 most expensive calls (cumulative):")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(15)


def child_prepare(options: dict) -> dict:
    from django.core.management import call_command

    from catalog.models import AttributeDefinition

    call_command("migrate", verbosity=0)
    for attribute in ATTRIBUTES:
        AttributeDefinition.objects.create(**attribute)
    from django.db import connection

    connection.close()
    return {}


def child_import(options: dict) -> dict:
    from django.db import connection

    from catalog.imports import products_import
    from catalog.models import Product

    Product.objects.exists()  # connect before the clock starts
    rss_before = current_rss_mb()
    profiler = start_profile(options)
    cpu_started, started = cpu_seconds(), time.perf_counter()
    with open(options["csv"], "rb") as source:
        result = products_import(source=source, dry_run=options["dry_run"], reference="benchmark")
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    peak = peak_rss_mb()
    stop_profile(profiler, options)
    checks = {"products": Product.objects.count(), "variants": Product.objects.filter(base__isnull=False).count()}
    connection.close()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_mb": peak,
        "rss_before_mb": rss_before,
        "ok": result.ok,
        "applied": result.applied,
        "rows": result.rows,
        "created": result.created,
        "updated": result.updated,
        "unchanged": result.unchanged,
        "errors": [str(error) for error in result.errors[:5]],
        **checks,
    }


def child_naive(options: dict) -> dict:
    """The baseline: what a straightforward per-row ORM import would do."""
    from django.db import connection, transaction

    from catalog.models import AttributeDefinition, Brand, Category, Product

    definitions = {d.code: d for d in AttributeDefinition.objects.all()}
    rss_before = current_rss_mb()
    profiler = start_profile(options)
    cpu_started, started = cpu_seconds(), time.perf_counter()
    rows = 0
    with open(options["csv"], newline="", encoding="utf-8") as source, transaction.atomic():
        for row in csv.DictReader(source):
            if rows >= options["limit"]:
                break
            brand, _ = Brand.objects.get_or_create(name=row["brand"])
            category = None
            for part in row["category"].split(" > "):
                path = f"{category.path} > {part}" if category else part
                category, _ = Category.objects.get_or_create(path=path, defaults={"name": part, "parent": category})
            attributes = {}
            for code, definition in definitions.items():
                value = row[f"attr:{code}"]
                if value:
                    attributes[code] = float(value) if definition.type == "number" else value
            Product.objects.update_or_create(
                sku=row["sku"],
                defaults={
                    "name": row["name"],
                    "brand": brand,
                    "category": category,
                    "unit_price": Decimal(row["unit_price"]),
                    "pack_quantity": int(row["pack_quantity"]),
                    "unit": row["unit"],
                    "status": row["status"],
                    "base": Product.objects.get(sku=row["base_sku"]) if row["base_sku"] else None,
                    "description": row["description"],
                    "exclude_from_recommendations": row["exclude_from_recommendations"] == "true",
                    "attributes": attributes,
                },
            )
            rows += 1
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    peak = peak_rss_mb()
    stop_profile(profiler, options)
    products = Product.objects.count()
    connection.close()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_mb": peak,
        "rss_before_mb": rss_before,
        "rows": rows,
        "products": products,
    }


CHILD_STEPS = {"prepare": child_prepare, "import": child_import, "naive": child_naive}


def child_main(step: str, result_path: str, options: dict) -> None:
    setup_django()
    result = CHILD_STEPS[step](options)
    Path(result_path).write_text(json.dumps(result))


# --- The run ----------------------------------------------------------------------------------


def measured(name: str, rows: int, data: dict, **extra) -> dict:
    seconds = data["seconds"]
    return {
        "scenario": name,
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds) if seconds else None,
        "cpu_seconds": round(data["cpu_seconds"], 3),
        "peak_rss_mb": round(data["peak_rss_mb"], 1),
        "rss_before_mb": round(data["rss_before_mb"], 1),
        **extra,
    }


def check(name: str, data: dict, **expected) -> None:
    wrong = {key: (data.get(key), value) for key, value in expected.items() if data.get(key) != value}
    if wrong:
        details = ", ".join(f"{key}={got!r} (expected {want!r})" for key, (got, want) in wrong.items())
        errors = "; ".join(data.get("errors") or [])
        raise SystemExit(f"scenario {name!r} did not do what it should: {details}. {errors}")


def profile_path(profile_dir: Path | None, name: str) -> str | None:
    if profile_dir is None:
        return None
    slug = "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")
    while "__" in slug:
        slug = slug.replace("__", "_")
    return str(profile_dir / f"import_products_{slug}.prof")


def import_scenario(
    name: str,
    url: str,
    csv_path: Path,
    rows: int,
    *,
    profile_dir: Path | None,
    dry_run: bool = False,
    **expected,
) -> dict:
    print(f"  {name} ...", flush=True)
    data = run_child("import", url, csv=str(csv_path), dry_run=dry_run, profile=profile_path(profile_dir, name))
    check(name, data, ok=True, rows=rows, applied=not dry_run, **expected)
    line = measured(name, rows, data, created=data["created"], updated=data["updated"], unchanged=data["unchanged"])
    print(f"    {line['seconds']:.2f} s, {line['rows_per_s']} rows/s, peak RSS {line['peak_rss_mb']:.0f} MB")
    return line


def variants_in(csv_path: Path) -> int:
    with csv_path.open(newline="", encoding="utf-8") as source:
        return sum(1 for row in csv.DictReader(source) if row["base_sku"])


def head_csv(source: Path, target: Path, rows: int) -> None:
    with source.open(newline="", encoding="utf-8") as inp, target.open("w", newline="", encoding="utf-8") as out:
        reader, writer = csv.reader(inp), csv.writer(out)
        for position, cells in enumerate(reader):
            if position > rows:
                break
            writer.writerow(cells)


def run(rows: int, database_url: str | None, output: Path, profile_dir: Path | None = None) -> dict:
    started = time.perf_counter()
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        print(f"note: load average {load_before[0]:.2f} before the run: other processes compete for the CPUs")
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        print(f"note: profiling under cProfile into {profile_dir}: the times are inflated (often 2x)")
    scenario = functools.partial(import_scenario, profile_dir=profile_dir)
    small_rows = max(rows // 5, 1)
    naive_rows = min(rows, NAIVE_MAX_ROWS)
    with tempfile.TemporaryDirectory(prefix="bench_import_") as tmp:
        directory = Path(tmp)
        databases = Databases(database_url, directory)
        try:
            print(f"Database: {databases.server_version()}; generating {rows} rows ...", flush=True)
            csv_path, changed_path, changed_rows = write_csv_files(rows, directory)
            small_path = directory / "products_small.csv"
            head_csv(csv_path, small_path, small_rows)
            csv_bytes = csv_path.stat().st_size
            csv_mb = csv_bytes / 1024 / 1024
            variants = variants_in(csv_path)
            print(f"CSV: {csv_bytes} bytes ({csv_mb:.1f} MB), {rows} rows, {variants} pack variants")

            main_name = databases.name()
            main_url = databases.create(main_name)
            run_child("prepare", main_url)  # migrations and attribute definitions, not timed
            small_url = databases.create(databases.name("_small"), template=main_name)
            naive_url = databases.create(databases.name("_naive"), template=main_name)

            print("Scenarios:", flush=True)
            scenarios = [
                scenario("first import", main_url, csv_path, rows, created=rows, products=rows, variants=variants),
                scenario("re-import, no changes", main_url, csv_path, rows, unchanged=rows, created=0),
                scenario(
                    "re-import, 10% prices changed", main_url, changed_path, rows, updated=changed_rows, created=0
                ),
                scenario(
                    "dry run (of the first file)",
                    main_url,
                    csv_path,
                    rows,
                    dry_run=True,
                    updated=changed_rows,
                    unchanged=rows - changed_rows,
                ),
            ]
            small = scenario(
                f"first import of N/5 = {small_rows} rows", small_url, small_path, small_rows, created=small_rows
            )
            flatness = {
                "rows_small": small_rows,
                "peak_rss_mb_small": small["peak_rss_mb"],
                "rows_full": rows,
                "peak_rss_mb_full": scenarios[0]["peak_rss_mb"],
                "ratio": round(scenarios[0]["peak_rss_mb"] / small["peak_rss_mb"], 3),
                "growth_mb": round(scenarios[0]["peak_rss_mb"] - small["peak_rss_mb"], 1),
            }
            print(f"  naive per-row ORM loop over {naive_rows} rows ...", flush=True)
            naive_name = f"naive per-row ORM loop ({naive_rows} rows)"
            naive_data = run_child(
                "naive", naive_url, csv=str(csv_path), limit=naive_rows, profile=profile_path(profile_dir, naive_name)
            )
            if naive_data["rows"] != naive_rows or naive_data["products"] != naive_rows:
                raise SystemExit(f"naive baseline did not import {naive_rows} rows: {naive_data}")
            naive = measured(naive_name, naive_rows, naive_data)
            print(f"    {naive['seconds']:.2f} s, {naive['rows_per_s']} rows/s", flush=True)
            server_version = databases.server_version()
        finally:
            databases.drop_all()

    summary = {
        "benchmark": "products CSV import (catalog.imports.products_import)",
        "date": datetime.datetime.now(datetime.UTC).date().isoformat(),
        "database": databases.vendor,
        "database_version": server_version,
        "database_url": mask(database_url) if database_url else "sqlite (temporary file)",
        "rows": rows,
        "pack_variants": variants,
        "changed_rows": changed_rows,
        "csv_bytes": csv_bytes,
        "csv_mb": round(csv_mb, 2),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_before": round(load_before[0], 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "profiled": profile_dir is not None,
        "debug_query_log": os.environ.get("BENCH_DEBUG_QUERIES") == "1",
        "scenarios": scenarios,
        "memory_flatness": flatness,
        "small_import": small,
        "naive_baseline": naive,
        "speedup_first_import_vs_naive": round(scenarios[0]["rows_per_s"] / naive["rows_per_s"], 1),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    print_summary(summary)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    print(f"\nWritten to {output}")
    return summary


def git_commit() -> str | None:
    """The commit measured (catalog/ changes not yet committed are not part of it)."""
    try:
        completed = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return completed.stdout.strip() or None


def print_summary(summary: dict) -> None:
    print()
    print(
        f"Products CSV import, {summary['rows']} rows ({summary['csv_mb']:.1f} MB CSV), "
        f"{summary['database_version']}, Python {summary['python']}, {summary['cpu_count']} CPUs"
    )
    header = f"{'scenario':<42} {'rows':>8} {'seconds':>9} {'rows/s':>9} {'CPU s':>8} {'peak RSS MB':>12}"
    print(header)
    print("-" * len(header))
    lines = [*summary["scenarios"], summary["small_import"], summary["naive_baseline"]]
    for line in lines:
        print(
            f"{line['scenario']:<42} {line['rows']:>8} {line['seconds']:>9.2f} "
            f"{line['rows_per_s']:>9} {line['cpu_seconds']:>8.2f} {line['peak_rss_mb']:>12.1f}"
        )
    flat = summary["memory_flatness"]
    print()
    print(
        f"Memory flatness: peak RSS {flat['peak_rss_mb_small']:.1f} MB for {flat['rows_small']} rows, "
        f"{flat['peak_rss_mb_full']:.1f} MB for {flat['rows_full']} rows: ratio {flat['ratio']:.2f} "
        f"({flat['growth_mb']:+.1f} MB for {flat['rows_full'] - flat['rows_small']} more rows)"
    )
    print(f"First import vs naive per-row ORM loop: {summary['speedup_first_import_vs_naive']:.1f}x faster")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the generated CSV (default 100000)")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server URL, e.g. postgres://postgres@127.0.0.1:5432/postgres; throwaway databases "
        "bench_import_<pid>* are created on it and dropped afterwards (default: temporary SQLite files)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where the JSON summary goes")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run each measured step under cProfile and write DIR/import_products_<scenario>.prof "
        "(the times are then inflated; for finding bottlenecks, not for figures)",
    )
    parser.add_argument(
        "--debug-queries",
        action="store_true",
        help="keep Django's DEBUG query log on in the measured processes (costs memory and time)",
    )
    parser.add_argument("--child", choices=sorted(CHILD_STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--child-options", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child, args.result, json.loads(args.child_options))
        return
    if args.rows < 10:
        parser.error("--rows must be at least 10")
    if args.debug_queries:
        os.environ["BENCH_DEBUG_QUERIES"] = "1"  # inherited by the children
    run(args.rows, args.database_url, args.output, args.profile)


if __name__ == "__main__":
    main()
