"""Benchmark of the review step on PostgreSQL: the review queue page, bulk approve and the
team dashboard, at 100,000 pending suggestions.

    python benchmarks/review.py [--small] [--suggestions N] [--products N] [--requests N]
                                [--bulk N] [--database-url postgres://postgres@127.0.0.1:5432/postgres]
                                [--output PATH]

On the PostgreSQL server the URL names, a throwaway database ``bench_review_<pid>`` is
created, migrated, loaded and dropped at the end (also on errors, Ctrl-C and SIGTERM). Each
step runs in its own process, so that its peak RSS (VmHWM) is its own:

1. setup (not a result): ``migrate``; 25 brands, 10 top-level categories with 5 below each,
   the products (default 20,000; 4% discontinued, 2% draft), 4 successful mining runs a week
   apart, a specialist and a second reviewer; the suggestions: N pending in the queue
   (default 100,000), plus 1% of N snoozed, 2% stale, 20% approved and 10% rejected (a
   twentieth of them by an exclusion rule) with their decisions over the last 60 days, and
   for each approval its link and published copy (80% cross-sell, 15% accessory, 5% spare
   part). Written with COPY, every column from the models' own field list; ``VACUUM ANALYZE``.
2. queue: GET /review/ through ``django.test.Client`` logged in as the specialist, the first
   page and a filtered page (a top-level category with its subtree and min co_count 10);
   server time = the time of ``client.get`` in this process (URL routing, middleware, the
   view, its queries, the template), median and p95 over ``--requests`` requests after 2
   warm-ups; the queries of one request. Also ``review_queue()`` alone, and the baseline: the
   same queryset through Django's ``Paginator`` (an exact COUNT over every pending row, as a
   plain ListView would do).
3. dashboard: GET /dashboard/ the same way, and ``dashboard_overview()`` alone.
4. bulk approve: ``suggestions_bulk_decide`` of ``--bulk`` (default 1,000) pending
   suggestions from the top of the queue, as one call (one transaction, one publish).
5. per-row baseline: the next ``--bulk`` suggestions, each approved by its own
   ``suggestion_approve`` call (its own transaction and publish), as a loop of single
   decisions would.

Settings as in production (DEBUG off), Celery and cache unset (in-process, local memory).
Prints a table and writes JSON (default benchmarks/out/review.json). ``--small`` (5,000
suggestions, 2,000 products, 10 requests, bulk 200) is the CI smoke run, well under a
minute. Exits non-zero if a page does not answer 200 or a bulk approve does not decide all
of its suggestions. Goals (issue 4): queue <= 150 ms server time, bulk approve of 1,000 <= 2 s.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_OUTPUT = ROOT / "benchmarks" / "out" / "review.json"
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
SEED = 20261122
N_BRANDS, N_ROOTS, N_LEAVES, N_RUNS = 25, 10, 5, 4
SPECIALIST, REVIEWER, PASSWORD = "bench_specialist", "bench_reviewer", "bench-password-not-secret"
FULL = {"suggestions": 100_000, "products": 20_000, "requests": 30, "bulk": 1_000}
SMALL = {"suggestions": 5_000, "products": 2_000, "requests": 10, "bulk": 200}
GOAL_QUEUE_MS, GOAL_BULK_1000_S = 150, 2.0
FILTER_MIN_CO_COUNT = 10
WARMUP = 2


# --- Measurements shared by the steps ---------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def summary(samples: list[float]) -> dict:
    """Milliseconds: median, p95 (nearest rank), min, max."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, max(0, int(np.ceil(0.95 * len(ordered))) - 1))]
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(p95 * 1000, 2),
        "min_ms": round(ordered[0] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


# --- Step 1: the database ---------------------------------------------------------------------


def _copy_model(cursor, model, rows: list[dict], now: datetime.datetime) -> None:
    """COPY ``rows`` (dicts keyed by attname) into ``model``'s table, every concrete column:
    a field missing from a row gets its default (auto_now ones ``now``), so that a column
    another issue adds does not break the benchmark."""
    from django.db import models

    fields = model._meta.concrete_fields
    columns = ", ".join(f'"{field.column}"' for field in fields)
    defaults = {}
    for field in fields:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            defaults[field.attname] = now
        else:
            defaults[field.attname] = field.get_default()  # "" for a string column without one
    json_fields = {field.attname for field in fields if isinstance(field, models.JSONField)}
    with cursor.copy(f'COPY "{model._meta.db_table}" ({columns}) FROM STDIN') as copy:
        for row in rows:
            values = []
            for field in fields:
                value = row.get(field.attname, defaults[field.attname])
                if field.attname in json_fields:
                    value = json.dumps(value)
                values.append(value)
            copy.write_row(values)


def _pairs(rng: np.random.Generator, sources: np.ndarray, n_products: int, total: int) -> tuple[np.ndarray, ...]:
    """``total`` distinct (source, target) product indices, no self pair: each source gets
    k targets at distinct random offsets."""
    k = -(-total // len(sources))
    source_list, target_list = [], []
    for source in sources:
        offsets = np.unique(rng.integers(1, n_products, 3 * k))[:k]
        rng.shuffle(offsets)
        source_list.append(np.full(len(offsets), source))
        target_list.append((source + offsets) % n_products)
    src, tgt = np.concatenate(source_list), np.concatenate(target_list)
    order = rng.permutation(len(src))[:total]
    return src[order], tgt[order]


def step_setup(n_pending: int, n_products: int) -> dict:
    setup_django()
    from django.core.management import call_command
    from django.db import connection, transaction

    from accounts.roles import PRODUCT_SPECIALIST
    from accounts.services import user_create
    from catalog.models import Brand, Category, Product, ProductStatus
    from merchandising.models import (
        Decision,
        Link,
        LinkOrigin,
        LinkType,
        MiningRun,
        PublishedLink,
        PublishEvent,
        PublishState,
        RejectReason,
        Suggestion,
        SuggestionStatus,
    )

    timings: dict[str, float] = {}
    start = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    timings["migrate"] = time.perf_counter() - start

    start = time.perf_counter()
    rng = np.random.default_rng(SEED)
    now = datetime.datetime.now(tz=datetime.UTC)
    specialist = user_create(username=SPECIALIST, password=PASSWORD, role=PRODUCT_SPECIALIST)
    reviewer = user_create(username=REVIEWER, password=PASSWORD, role=PRODUCT_SPECIALIST)
    runs = []
    for number in range(N_RUNS):
        at = now - datetime.timedelta(days=7 * (N_RUNS - 1 - number), hours=1)
        runs.append(
            MiningRun.objects.create(
                status=MiningRun.Status.SUCCEEDED,
                trigger=MiningRun.Trigger.SCHEDULE,
                started_at=at,
                finished_at=at + datetime.timedelta(minutes=1),
                progress=100,
            )
        )
    for run in runs:  # created_at is auto_now_add: back-date the runs a week apart
        MiningRun.objects.filter(pk=run.pk).update(created_at=run.started_at)
    run_ids = np.array([run.pk for run in runs])
    latest = int(run_ids[-1])

    # Counts of each kind of suggestion.
    n_snoozed, n_stale = n_pending // 100, n_pending // 50
    n_approved, n_rejected = n_pending // 5, n_pending // 10
    total = n_pending + n_snoozed + n_stale + n_approved + n_rejected

    with transaction.atomic(), connection.cursor() as wrapper:
        cursor = wrapper.cursor
        _copy_model(cursor, Brand, [{"id": b, "name": f"Brand {b:02d}"} for b in range(1, N_BRANDS + 1)], now)
        categories = [{"id": r, "name": f"Group {r:02d}", "path": f"Group {r:02d}"} for r in range(1, N_ROOTS + 1)]
        for root in range(1, N_ROOTS + 1):
            for leaf in range(1, N_LEAVES + 1):
                pk = N_ROOTS + (root - 1) * N_LEAVES + leaf
                categories.append(
                    {"id": pk, "name": f"Range {leaf}", "path": f"Group {root:02d} > Range {leaf}", "parent_id": root}
                )
        _copy_model(cursor, Category, categories, now)
        status = rng.choice(
            [ProductStatus.ACTIVE, ProductStatus.DISCONTINUED, ProductStatus.DRAFT], n_products, p=[0.94, 0.04, 0.02]
        )
        products = [
            {
                "id": index + 1,
                "sku": f"P{index + 1:06d}",
                "name": f"Product {index + 1}",
                "unit_price": f"{(index * 7919) % 50_000 / 100 + 0.5:.2f}",
                "status": str(status[index]),
                "brand_id": index % N_BRANDS + 1,
                "category_id": N_ROOTS + index % (N_ROOTS * N_LEAVES) + 1,
            }
            for index in range(n_products)
        ]
        _copy_model(cursor, Product, products, now)
        timings["catalog"] = time.perf_counter() - start

        start = time.perf_counter()
        sources, targets = _pairs(rng, np.arange(n_products), n_products, total)
        co_count = 3 + rng.geometric(0.08, total)
        confidence = rng.uniform(0.02, 0.8, total)
        lift = np.exp(rng.uniform(0, 3, total))
        score = rng.uniform(0, 1, total)
        kinds = np.repeat(
            np.arange(5), [n_pending, n_snoozed, n_stale, n_approved, n_rejected]
        )  # 0 pending, 1 snoozed, 2 stale, 3 approved, 4 rejected
        # Newer runs found more of what is still pending; decided ones come from older runs.
        run_index = np.where(
            kinds <= 2, rng.choice(N_RUNS, total, p=[0.1, 0.2, 0.3, 0.4]), rng.choice(N_RUNS - 1, total)
        )
        decided_at = [now - datetime.timedelta(seconds=int(s)) for s in rng.integers(0, 60 * 86_400, total)]
        reasons = [RejectReason.UNRELATED, RejectReason.INCOMPATIBLE, RejectReason.WRONG_BRAND, RejectReason.COMPETITOR]
        link_types = rng.choice(
            [LinkType.CROSS_SELL, LinkType.ACCESSORY, LinkType.SPARE_PART], total, p=[0.8, 0.15, 0.05]
        )
        suggestions, decisions, links, published = [], [], [], []
        positions: dict[tuple[int, str], int] = {}
        for i in range(total):
            kind = int(kinds[i])
            co = int(co_count[i])
            row = {
                "id": i + 1,
                "source_id": int(sources[i]) + 1,
                "target_id": int(targets[i]) + 1,
                "co_count": co,
                "support": co / 500_000,
                "confidence": float(confidence[i]),
                "lift": float(lift[i]),
                "jaccard": float(confidence[i]) / 2,
                "decayed_co_count": co * 0.8,
                "score": float(score[i]),
                "previous_co_count": co - 1 if i % 2 else None,
                "accounts": max(1, co // 2),
                "status": SuggestionStatus.PENDING,
                "stale": kind == 2,
                "stale_since": now if kind == 2 else None,
                "first_run_id": int(run_ids[run_index[i]]),
                "last_run_id": latest if kind != 2 else int(run_ids[run_index[i]]),
                "snoozed_run_id": latest if kind == 1 else None,
            }
            if kind >= 3:
                row.update(status=SuggestionStatus.APPROVED, decided_by_id=reviewer.pk, decided_at=decided_at[i])
                decision = {
                    "id": len(decisions) + 1,
                    "suggestion_id": i + 1,
                    "action": Decision.Action.APPROVE,
                    "actor_id": reviewer.pk,
                    "created_at": decided_at[i],
                }
                if kind == 3:
                    link_type = str(link_types[i])
                    key = (row["source_id"], link_type)
                    positions[key] = positions.get(key, 0) + 1
                    link = {
                        "id": len(links) + 1,
                        "source_id": row["source_id"],
                        "target_id": row["target_id"],
                        "type": link_type,
                        "position": positions[key],
                        "origin": LinkOrigin.MINED,
                        "suggestion_id": i + 1,
                        "run_id": row["first_run_id"],
                        "co_count": co,
                        "confidence": row["confidence"],
                        "lift": row["lift"],
                        "created_by_id": reviewer.pk,
                        "created_by_role": PRODUCT_SPECIALIST,
                        "created_at": decided_at[i],
                        "updated_at": decided_at[i],
                    }
                    links.append(link)
                    published.append(
                        {
                            "id": link["id"],
                            "link_id": link["id"],
                            **{k: link[k] for k in ("source_id", "target_id", "type", "position", "origin")},
                            **{k: link[k] for k in ("co_count", "confidence", "lift")},
                            "run_number": link["run_id"],
                            "approved_at": decided_at[i],
                            "approved_by_role": PRODUCT_SPECIALIST,
                            "added_generation": 1,
                            "changed_generation": 1,
                            "updated_at": now,
                        }
                    )
                    decision.update(link_type=link_type, link_id=link["id"])
                else:
                    excluded = i % 20 == 0
                    reason = RejectReason.EXCLUDED if excluded else reasons[i % len(reasons)]
                    row.update(status=SuggestionStatus.REJECTED, reject_reason=reason)
                    decision.update(
                        action=Decision.Action.EXCLUDE if excluded else Decision.Action.REJECT, reject_reason=reason
                    )
                decisions.append(decision)
            elif kind == 1:
                decisions.append(
                    {
                        "id": len(decisions) + 1,
                        "suggestion_id": i + 1,
                        "action": Decision.Action.SNOOZE,
                        "actor_id": reviewer.pk,
                        "created_at": decided_at[i] if decided_at[i] > now - datetime.timedelta(days=7) else now,
                    }
                )
            suggestions.append(row)
        timings["generate"] = time.perf_counter() - start

        start = time.perf_counter()
        _copy_model(cursor, Suggestion, suggestions, now)
        _copy_model(cursor, Link, links, now)
        _copy_model(cursor, PublishedLink, published, now)
        _copy_model(cursor, Decision, decisions, now)
        for table in (
            "catalog_brand",
            "catalog_category",
            "catalog_product",
            "merchandising_suggestion",
            "merchandising_link",
            "merchandising_publishedlink",
            "merchandising_decision",
        ):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        timings["copy suggestions, decisions, links"] = time.perf_counter() - start
    PublishState.load()
    PublishState.objects.filter(pk=1).update(generation=1, published_at=now)
    PublishEvent.objects.create(generation=1, added=len(published))
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")
        cursor.execute("SELECT pg_total_relation_size('merchandising_suggestion')")
        suggestion_bytes = cursor.fetchone()[0]
    timings["vacuum analyze"] = time.perf_counter() - start
    counts = {
        "products": n_products,
        "active_products": int((status == ProductStatus.ACTIVE).sum()),
        "suggestions": total,
        "pending_in_queue": n_pending,
        "snoozed": n_snoozed,
        "stale": n_stale,
        "approved": n_approved,
        "rejected": n_rejected,
        "links": len(links),
        "decisions": len(decisions),
        "runs": N_RUNS,
    }
    return {
        **counts,
        "suggestion_table_mb": round(suggestion_bytes / 2**20, 1),
        "timings": {key: round(value, 3) for key, value in timings.items()},
        "specialist_id": specialist.pk,
        "peak_rss_mb": peak_rss_mb(),
    }


# --- Steps 2 and 3: pages -----------------------------------------------------------------------


def _client():
    """The specialist signed in with both factors, as in production (DEBUG off: MFA required):
    a confirmed authenticator device, and the session marked as verified with it, as
    django_otp.login does after a right code."""
    from django.test import Client
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from accounts.models import User

    user = User.objects.get(username=SPECIALIST)
    device, _ = TOTPDevice.objects.get_or_create(user=user, confirmed=True, defaults={"name": "benchmark"})
    client = Client()
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def _time_page(client, url: str, requests: int) -> dict:
    """Server time of GET ``url`` (median, p95) and the queries of one request."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(WARMUP):
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} answered {response.status_code}")
    samples = []
    for _ in range(requests):
        start = time.perf_counter()
        response = client.get(url)
        samples.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} answered {response.status_code}")
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    return {"url": url, **summary(samples), "queries": len(queries), "bytes": len(response.content)}


def _time_call(function, repeat: int) -> dict:
    function()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return summary(samples)


def step_queue(requests: int) -> dict:
    setup_django()
    from django.core.paginator import Paginator
    from django.urls import reverse

    from accounts.models import User
    from merchandising.selectors.review import (
        PAGE_SIZE,
        latest_run_id,
        parse_filters,
        queue_queryset,
        review_queue,
    )

    client = _client()
    url = reverse("merchandising:review")
    filtered_params = {"category": "1", "min_co_count": str(FILTER_MIN_CO_COUNT)}
    filtered_url = f"{url}?category=1&min_co_count={FILTER_MIN_CO_COUNT}&applied=1"
    result = {"first_page": _time_page(client, f"{url}?applied=1", requests)}
    result["filtered_page"] = _time_page(client, filtered_url, requests)
    user = User.objects.get(username=SPECIALIST)
    result["selector_first_page"] = _time_call(lambda: review_queue(user, {}), requests)
    result["selector_filtered_page"] = _time_call(lambda: review_queue(user, filtered_params), requests)

    def paginator_page(params: dict) -> None:
        queryset = queue_queryset(parse_filters(params), latest_run_id()).select_related(
            "source__brand", "source__category", "target__brand", "target__category"
        )
        page = Paginator(queryset, PAGE_SIZE).page(1)
        list(page.object_list)

    result["baseline_paginator_first_page"] = _time_call(lambda: paginator_page({}), requests)
    result["baseline_paginator_filtered_page"] = _time_call(lambda: paginator_page(filtered_params), requests)
    result["peak_rss_mb"] = peak_rss_mb()
    result["load_average"] = load_average()
    return result


def step_dashboard(requests: int) -> dict:
    setup_django()
    from django.urls import reverse

    from merchandising.selectors.dashboard import dashboard_overview

    client = _client()
    result = {"page": _time_page(client, reverse("merchandising:dashboard"), requests)}
    result["selector"] = _time_call(dashboard_overview, requests)
    result["peak_rss_mb"] = peak_rss_mb()
    result["load_average"] = load_average()
    return result


# --- Steps 4 and 5: approvals -------------------------------------------------------------------


def _queue_ids(count: int) -> list[int]:
    from merchandising.selectors.review import latest_run_id, parse_filters, queue_queryset

    queryset = queue_queryset(parse_filters({}), latest_run_id())
    return list(queryset.values_list("pk", flat=True)[:count])


def _counting(statements: list):
    def wrapper(execute, sql, params, many, context):
        statements.append(1)
        return execute(sql, params, many, context)

    return wrapper


def step_approve(mode: str, bulk: int) -> dict:
    setup_django()
    from django.db import connection

    from accounts.models import User
    from merchandising.models import Decision, Link, PublishedLink, Suggestion, SuggestionStatus
    from merchandising.services import suggestion_approve, suggestions_bulk_decide

    user = User.objects.get(username=SPECIALIST)
    # The top of the queue as it is now (after the bulk step, the next suggestions).
    ids = _queue_ids(bulk)
    if len(ids) != bulk:
        raise RuntimeError(f"only {len(ids)} pending suggestions to approve, wanted {bulk}")
    links_before = PublishedLink.objects.published().count()
    statements: list = []
    start = time.perf_counter()
    with connection.execute_wrapper(_counting(statements)):
        if mode == "bulk":
            outcome = suggestions_bulk_decide(suggestion_ids=ids, action=Decision.Action.APPROVE, actor=user)
            decided = len(outcome.decided)
        else:
            decided = 0
            for suggestion_id in ids:
                suggestion_approve(suggestion_id=suggestion_id, actor=user)
                decided += 1
    seconds = time.perf_counter() - start
    approved = Suggestion.objects.filter(pk__in=ids, status=SuggestionStatus.APPROVED).count()
    new_links = Link.objects.filter(suggestion_id__in=ids).count()
    published_now = PublishedLink.objects.published().count() - links_before
    if decided != bulk or approved != bulk or new_links != bulk or published_now != bulk:
        raise RuntimeError(
            f"{mode}: decided {decided}, approved {approved}, links {new_links}, published {published_now} of {bulk}"
        )
    return {
        "mode": mode,
        "suggestions": bulk,
        "seconds": round(seconds, 3),
        "ms_per_suggestion": round(seconds / bulk * 1000, 3),
        "queries": len(statements),
        "queries_per_suggestion": round(len(statements) / bulk, 2),
        "peak_rss_mb": peak_rss_mb(),
        "load_average": load_average(),
    }


# --- Driver -------------------------------------------------------------------------------------


class BenchmarkError(Exception):
    pass


def _admin(server_url: str, statement: str):
    import psycopg

    parts = urlsplit(server_url)
    with psycopg.connect(urlunsplit(parts._replace(scheme="postgresql")), autocommit=True) as connection:
        cursor = connection.execute(statement)
        return cursor.fetchone() if cursor.description else None


def mask(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))
    return url


def run_step(database_url: str, *args: str) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL", "REQUIRE_SERVICES")
    }
    # Production settings (DEBUG off: no query log, no debug pages), reachable by the test client.
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="false",
        SECRET_KEY="benchmark-only-secret-key-0123456789abcdef0123456789abcdef",
        ALLOWED_HOSTS="testserver",
        SECURE_SSL_REDIRECT="false",
        DATABASE_URL=database_url,
        LOG_LEVEL="WARNING",
    )
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise BenchmarkError(f"step {args} failed (exit {completed.returncode}):\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def bench(server_url: str, sizes: dict) -> dict:
    name = f"bench_review_{os.getpid()}"
    database_url = urlunsplit(urlsplit(server_url)._replace(path="/" + name))
    started = time.perf_counter()
    result: dict = {"database": name, "sizes": sizes, "load_average_start": load_average()}
    _admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        requests, bulk = str(sizes["requests"]), str(sizes["bulk"])
        print(f"setup: migrate, {sizes['products']:,} products, {sizes['suggestions']:,} pending ...", flush=True)
        result["setup"] = run_step(
            database_url, "--step", "setup", "--suggestions", str(sizes["suggestions"]), "--products",
            str(sizes["products"]),
        )  # fmt: skip
        print("queue: GET /review/ ...", flush=True)
        result["queue"] = run_step(database_url, "--step", "queue", "--requests", requests)
        print("dashboard: GET /dashboard/ ...", flush=True)
        result["dashboard"] = run_step(database_url, "--step", "dashboard", "--requests", requests)
        print(f"bulk approve of {bulk} ...", flush=True)
        result["bulk"] = run_step(database_url, "--step", "bulk", "--bulk", bulk)
        print(f"per-row baseline: {bulk} single approvals ...", flush=True)
        result["per_row"] = run_step(database_url, "--step", "per-row", "--bulk", bulk)
    finally:
        try:
            _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception as exc:  # noqa: BLE001 - report, do not hide the original error
            print(f"warning: could not drop database {name}: {exc}", file=sys.stderr)
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    result["load_average_end"] = load_average()
    result["bulk_speedup_vs_per_row"] = round(result["per_row"]["seconds"] / result["bulk"]["seconds"], 2)
    queue = result["queue"]
    result["queue_speedup_vs_paginator"] = {
        page: round(queue[f"baseline_paginator_{page}"]["median_ms"] / queue[f"selector_{page}"]["median_ms"], 2)
        for page in ("first_page", "filtered_page")
    }
    worst_queue = max(queue["first_page"]["p95_ms"], queue["filtered_page"]["p95_ms"])
    bulk_per_1000 = result["bulk"]["seconds"] * 1000 / sizes["bulk"]
    result["goals"] = {
        "queue_p95_ms": worst_queue,
        "queue_met": worst_queue <= GOAL_QUEUE_MS,
        "bulk_seconds_per_1000": round(bulk_per_1000, 3),
        "bulk_met": bulk_per_1000 <= GOAL_BULK_1000_S,
    }
    return result


def print_report(result: dict) -> None:
    setup, queue, dash = result["setup"], result["queue"], result["dashboard"]
    print(
        f"\n{setup['pending_in_queue']:,} pending in the queue ({setup['suggestions']:,} suggestions, "
        f"{setup['suggestion_table_mb']} MB), {setup['products']:,} products, {setup['links']:,} published links, "
        f"{setup['decisions']:,} decisions; setup {sum(setup['timings'].values()):.1f} s"
    )
    print(f"\n{'page / call':44} {'median ms':>9} {'p95 ms':>8} {'queries':>7} {'peak RSS MB':>11}")
    rows = [
        ("GET /review/ first page", queue["first_page"], queue["peak_rss_mb"]),
        ("GET /review/ filtered (category, co_count)", queue["filtered_page"], None),
        ("  review_queue() first page", queue["selector_first_page"], None),
        ("  review_queue() filtered", queue["selector_filtered_page"], None),
        ("  baseline Paginator first page", queue["baseline_paginator_first_page"], None),
        ("  baseline Paginator filtered", queue["baseline_paginator_filtered_page"], None),
        ("GET /dashboard/", dash["page"], dash["peak_rss_mb"]),
        ("  dashboard_overview()", dash["selector"], None),
    ]
    for label, row, rss in rows:
        queries = f"{row['queries']:7d}" if "queries" in row else f"{'':7}"
        rss_text = f"{rss:11.0f}" if rss else ""
        print(f"{label:44} {row['median_ms']:9.1f} {row['p95_ms']:8.1f} {queries} {rss_text}")
    bulk, per_row = result["bulk"], result["per_row"]
    print(f"\n{'approvals':44} {'seconds':>9} {'ms each':>8} {'queries':>7} {'peak RSS MB':>11}")
    for label, row in (
        (f"suggestions_bulk_decide of {bulk['suggestions']}", bulk),
        ("per-row suggestion_approve", per_row),
    ):
        print(
            f"{label:44} {row['seconds']:9.2f} {row['ms_per_suggestion']:8.2f} {row['queries']:7d} "
            f"{row['peak_rss_mb']:11.0f}"
        )
    goals = result["goals"]
    print(
        f"\nbulk vs per-row: {result['bulk_speedup_vs_per_row']}x faster; review_queue vs Paginator (median): "
        f"{result['queue_speedup_vs_paginator']['first_page']}x first page, "
        f"{result['queue_speedup_vs_paginator']['filtered_page']}x filtered"
    )
    print(
        f"goals: queue <= {GOAL_QUEUE_MS} ms (worst p95 {goals['queue_p95_ms']:.1f} ms): "
        f"{'met' if goals['queue_met'] else 'NOT met'}; bulk approve of 1,000 <= {GOAL_BULK_1000_S} s "
        f"({goals['bulk_seconds_per_1000']:.2f} s per 1,000): {'met' if goals['bulk_met'] else 'NOT met'}"
    )
    print(
        f"load average {result['load_average_start']} -> {result['load_average_end']}; "
        f"whole run {result['wall_seconds']:.0f} s"
    )


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
    parser.add_argument("--small", action="store_true", help="CI smoke sizes: " + json.dumps(SMALL))
    parser.add_argument(
        "--suggestions", type=int, help=f"pending suggestions in the queue (default {FULL['suggestions']:,})"
    )
    parser.add_argument("--products", type=int, help=f"products (default {FULL['products']:,})")
    parser.add_argument("--requests", type=int, help=f"timed requests per page (default {FULL['requests']})")
    parser.add_argument(
        "--bulk", type=int, help=f"suggestions approved in bulk, and one by one (default {FULL['bulk']:,})"
    )
    parser.add_argument("--database-url", default=DEFAULT_SERVER, help=f"PostgreSQL server (default {DEFAULT_SERVER})")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--step", choices=["setup", "queue", "dashboard", "bulk", "per-row"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.step:
        if args.step == "setup":
            out = step_setup(args.suggestions, args.products)
        elif args.step == "queue":
            out = step_queue(args.requests)
        elif args.step == "dashboard":
            out = step_dashboard(args.requests)
        else:
            out = step_approve(args.step, args.bulk)
        print(json.dumps(out, default=str))
        return

    if urlsplit(args.database_url).scheme not in {"postgres", "postgresql"}:
        parser.error(f"--database-url must be a postgres:// URL, not {mask(args.database_url)}")
    sizes = dict(SMALL if args.small else FULL)
    for key in sizes:
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    if sizes["suggestions"] < 2 * sizes["bulk"]:
        parser.error("--suggestions must be at least twice --bulk (bulk and per-row approve different ones)")
    signal.signal(signal.SIGTERM, _terminate)
    try:
        server = _admin(args.database_url, "SHOW server_version")[0]
    except Exception as exc:  # noqa: BLE001 - any connection problem: say which server, stop
        raise SystemExit(f"cannot reach PostgreSQL at {mask(args.database_url)}: {exc}") from None
    print(f"PostgreSQL {server} at {mask(args.database_url)}; load average {load_average()}", flush=True)
    try:
        result = bench(args.database_url, sizes)
    except BenchmarkError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
    result["measured_at"] = datetime.datetime.now(tz=datetime.UTC).isoformat(timespec="seconds")
    result["commit"] = _commit()
    result["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "postgresql": server,
    }
    print_report(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, default=str) + "\n")
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    print(f"\nwritten to {shown}")


if __name__ == "__main__":
    main()
