"""Load benchmark of the webshop API: gunicorn with 2 workers on PostgreSQL, the demo data,
``wrk`` (Debian's) as the load generator.

    python benchmarks/api_load.py [--small] [--rate 500] [--seconds 20] [--cart-rate 100]
                                  [--database-url postgres://postgres@127.0.0.1:5432/postgres]
                                  [--output PATH]

Needs ``wrk`` on the PATH (``apt-get install -y wrk``; the script says so and exits 2 when it is
missing). Run timed runs alone on the machine: ``flock /tmp/bench.lock .venv/bin/python
benchmarks/api_load.py``.

1. setup (not a result): on the PostgreSQL server the URL names, a throwaway database
   ``bench_api_<pid>`` is created, migrated and filled by ``seed_demo`` (the demo catalog,
   order history, one mining run and the demo review: the published links), and dropped at the
   end (also on errors, Ctrl-C and SIGTERM). An API client with the read and events scopes is
   made by ``manage.py create_api_client --rate 100000000`` (the default rate limit would
   answer 429 at these rates). Settings as in production: DEBUG off, a generated SECRET_KEY,
   ALLOWED_HOSTS=127.0.0.1, SECURE_SSL_REDIRECT off (no TLS proxy in front here); no broker
   and no CACHE_URL, so the cache is each worker's local memory (``--cache-url redis://...``
   for a shared one). gunicorn: ``--workers 2`` (sync workers: one connection per request,
   as behind a proxy), on a free port of 127.0.0.1.
2. The SKUs: active products that are the source of a visible published link (what a
   webshop product page with recommendations asks for), picked at random per request.
3. Measurements, each preceded by an unmeasured warm-up:
   (a) paced: GET /api/v1/products/{random sku}/recommendations/ at a constant ``--rate``
       (default 500 req/s) for ``--seconds`` (default 20), 32 connections. wrk (not wrk2)
       has no constant-rate mode: the Lua script (benchmarks/api_load.lua) hands out send
       times 1/rate apart to whichever connection is free, and latency is wrk's own (from
       writing the request to reading the whole response; connecting is not included).
       Printed: p50/p90/p99/p99.9/max and the achieved rate (if it falls short of the target,
       the server could not keep up and the percentiles understate the queueing).
   (b) saturation: as many requests as 8 connections get through in ``--saturation-seconds``
       (default 10), for the trivial endpoint, then the recommendations, then the trivial
       endpoint again (its two figures averaged, to cancel drift on a shared machine); the
       ratio recommendations / trivial. The trivial endpoint is /healthz/ (no auth, no
       serializer, one ``SELECT 1``): the goal's denominator. Then, for reference only, the
       recommendations URL without a key: a 401 JSON answer from DRF with no database work at
       all (its non-2xx answers are expected and not counted as errors).
   (c) cart: POST /api/v1/cart/recommendations/ with 20 random SKUs at a constant
       ``--cart-rate`` (default 100 req/s) for ``--seconds``: p50/p99.
   For each: CPU seconds the gunicorn workers used per request (utime+stime from /proc) and
   the machine's CPU use over the run. At the end, the peak RSS (VmHWM) of each worker.
Goals (issue 5): p99 <= 10 ms at 500 req/s; saturation >= 40% of the trivial endpoint; cart
of 20 SKUs p99 <= 25 ms. Prints a table, writes JSON (default benchmarks/out/api_load.json).
``--small`` (200 req/s, 3 s runs, 5,000 demo orders) is the CI smoke run, under a minute.
Exits 1 if a run had non-2xx answers or socket errors, 2 if wrk is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "benchmarks" / "api_load.lua"
DEFAULT_OUTPUT = ROOT / "benchmarks" / "out" / "api_load.json"
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
SEED = 20261122
CART_SIZE = 20
WORKERS = 2
CLIENT_NAME = "bench-load"
PACED_CONNECTIONS, SATURATION_CONNECTIONS, CART_CONNECTIONS = 32, 8, 32
FULL = {"rate": 500, "seconds": 20, "saturation_seconds": 10, "cart_rate": 100, "warmup_seconds": 3, "orders": None}
SMALL = {"rate": 200, "seconds": 3, "saturation_seconds": 3, "cart_rate": 50, "warmup_seconds": 1, "orders": 5000}
GOAL_P99_MS, GOAL_SATURATION_SHARE, GOAL_CART_P99_MS = 10.0, 0.40, 25.0
WRK_INSTALL = "wrk is not installed: apt-get install -y wrk (Debian/Ubuntu; it is not a Python package)"

# Read inside the server's environment by `manage.py shell`: the SKUs to ask for and the sizes.
INFO_SCRIPT = """
import json
from django.db.models import Count
from django.utils import timezone
from catalog.models import Product
from merchandising.models import PublishedLink, PublishState, WebshopEvent
from orders.models import Order, OrderLine
visible = PublishedLink.objects.visible(timezone.localdate())
per_source = list(visible.order_by().values("source__sku").annotate(n=Count("id")).values_list("source__sku", "n"))
print(json.dumps({
    "skus": sorted(sku for sku, _ in per_source),
    "products": Product.objects.count(),
    "orders": Order.objects.count(),
    "order_lines": OrderLine.objects.count(),
    "published_links": PublishedLink.objects.published().count(),
    "visible_links": visible.count(),
    "skus_with_links": len(per_source),
    "max_links_per_sku": max((n for _, n in per_source), default=0),
    "generation": PublishState.load().generation,
    "events": WebshopEvent.objects.count(),
}))
"""
#: The benchmark client's rate limit (requests per minute): high enough never to answer 429.
UNTHROTTLED = 100_000_000


class BenchmarkError(Exception):
    pass


# --- processes and /proc -------------------------------------------------------------------------


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def proc_status(pid: int, key: str) -> float | None:
    """A ``kB`` line of /proc/<pid>/status in MB (None once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / ticks


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(child) for child in handle.read().split()]
    except OSError:
        return []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mask(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))
    return url


def admin_sql(server_url: str, statement: str) -> None:
    import psycopg

    parts = urlsplit(server_url)
    with psycopg.connect(urlunsplit(parts._replace(scheme="postgresql")), autocommit=True) as connection:
        connection.execute(statement)


def server_env(database_url: str, cache_url: str | None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL", "REQUIRE_SERVICES", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="false",
        SECRET_KEY=secrets.token_hex(32),
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false",
        DATABASE_URL=database_url,
        LOG_LEVEL="WARNING",
    )
    if cache_url:
        env["CACHE_URL"] = cache_url
    return env


def manage(env: dict[str, str], *args: str) -> str:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise BenchmarkError(
            f"manage.py {' '.join(args[:2])} failed (exit {completed.returncode}):\n{completed.stderr[-4000:]}"
        )
    return completed.stdout


def parse_key(output: str) -> str:
    """The key ``create_api_client`` prints (alone on stdout): ``mk_<prefix>_<secret>``."""
    found = re.search(r"\bmk_[A-Za-z0-9]+_[A-Za-z0-9_\-]+", output)
    if found is None:
        raise BenchmarkError(f"no API key found in the output of create_api_client:\n{output}")
    return found.group(0)


class Server:
    """gunicorn with ``WORKERS`` sync workers, stopped (the whole process group) on exit."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--workers", str(WORKERS),
             "--bind", f"127.0.0.1:{self.port}", "--graceful-timeout", "5"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.log_path = log_path

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchmarkError(
                    f"gunicorn exited ({self.process.returncode}):\n{self.log_path.read_text()[-4000:]}"
                )
            try:
                with urllib.request.urlopen(self.base + "/healthz/", timeout=2) as answer:
                    if answer.status == 200 and len(self.workers()) == WORKERS:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise BenchmarkError(f"gunicorn did not answer /healthz/ within {timeout:.0f} s")

    def workers(self) -> list[int]:
        return children(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


# --- HTTP checks and wrk -------------------------------------------------------------------------


def fetch(url: str, key: str | None, body: dict | None = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    if key is not None:  # outside /api/ a Bearer header is refused (403)
        request.add_header("Authorization", f"Bearer {key}")
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def run_wrk(
    server: Server, *, url: str, mode: str, rate: int, seconds: int, connections: int, sku_file: Path, key: str
) -> dict:
    """One wrk run (1 thread: the generator must leave the 2 cores to the server); its
    figures, the workers' CPU per request and the machine's CPU use."""
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(LUA), url, "--",
        mode, str(sku_file), key, str(rate), "1", str(CART_SIZE), str(SEED),
    ]  # fmt: skip
    workers = server.workers()
    cpu_before, machine_before = cpu_seconds(workers), machine_cpu()
    completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=seconds + 60)
    cpu_after, machine_after = cpu_seconds(workers), machine_cpu()
    lines = [line for line in completed.stdout.splitlines() if line.startswith("WRK_JSON ")]
    if completed.returncode != 0 or not lines:
        raise BenchmarkError(f"wrk failed (exit {completed.returncode}):\n{completed.stdout}\n{completed.stderr}")
    raw = json.loads(lines[-1][len("WRK_JSON ") :])
    requests, duration = raw["requests"], raw["duration_us"] / 1e6
    busy = machine_after[0] - machine_before[0]
    total = machine_after[1] - machine_before[1]
    return {
        "mode": mode,
        "url": url,
        "target_rate": rate or None,
        "seconds": seconds,
        "connections": connections,
        "requests": requests,
        "rate": round(requests / duration, 1),
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "p99_9_ms": raw["p99_9_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "mean_ms": round(raw["mean_us"] / 1000, 3),
        "bytes_per_request": round(raw["bytes"] / requests) if requests else 0,
        "errors": {name[7:]: value for name, value in raw.items() if name.startswith("errors_") and value},
        "worker_cpu_ms_per_request": round((cpu_after - cpu_before) * 1000 / requests, 3) if requests else None,
        "machine_cpu_busy": round(busy / total, 3) if total else None,
        "wrk_output": completed.stdout,
    }


def describe(run: dict) -> str:
    errors = ", ".join(f"{name} {value}" for name, value in run["errors"].items()) or "none"
    return (
        f"{run['rate']:8.1f} req/s  p50 {run['p50_ms']:6.2f}  p90 {run['p90_ms']:6.2f}  p99 {run['p99_ms']:6.2f}  "
        f"max {run['max_ms']:7.2f} ms  worker CPU {run['worker_cpu_ms_per_request']} ms/req  "
        f"machine CPU {run['machine_cpu_busy']:.0%}  errors: {errors}"
    )


# --- the benchmark -------------------------------------------------------------------------------


def bench(server_url: str, sizes: dict, cache_url: str | None) -> dict:
    name = f"bench_api_{os.getpid()}"
    database_url = urlunsplit(urlsplit(server_url)._replace(path="/" + name))
    env = server_env(database_url, cache_url)
    result: dict = {
        "database": name,
        "sizes": sizes,
        "workers": WORKERS,
        "cache": "redis (shared)" if cache_url else "local memory (per worker)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "load_average_start": load_average(),
    }
    started = time.perf_counter()
    server = None
    admin_sql(server_url, f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory(prefix="bench_api_") as scratch:
            timings = {}
            print(f"setup: database {name} on {mask(server_url)}: migrate, seed_demo ...", flush=True)
            clock = time.perf_counter()
            manage(env, "migrate", "--noinput")
            timings["migrate_s"] = round(time.perf_counter() - clock, 1)
            clock = time.perf_counter()
            seed_args = [] if sizes["orders"] is None else ["--orders", str(sizes["orders"])]
            result["seed_output"] = manage(env, "seed_demo", *seed_args).strip().splitlines()
            timings["seed_demo_s"] = round(time.perf_counter() - clock, 1)
            key = parse_key(
                manage(env, "create_api_client", CLIENT_NAME, "--scopes", "read,events", "--rate", str(UNTHROTTLED))
            )
            info = json.loads(manage(env, "shell", "-c", INFO_SCRIPT).strip().splitlines()[-1])
            skus = info.pop("skus")
            if not skus:
                raise BenchmarkError("the demo data has no visible published links: nothing to ask for")
            result["data"] = info
            result["setup_timings"] = timings
            sku_file = Path(scratch) / "skus.txt"
            sku_file.write_text("\n".join(skus) + "\n")
            print(
                f"data: {info['products']:,} products, {info['order_lines']:,} order lines, "
                f"{info['visible_links']:,} visible published links from {info['skus_with_links']:,} SKUs "
                f"(at most {info['max_links_per_sku']} per SKU), generation {info['generation']}",
                flush=True,
            )

            server = Server(env, Path(scratch) / "gunicorn.log")
            server.wait_ready()
            base = server.base
            recs_url = f"{base}/api/v1/products/{skus[0]}/recommendations/"
            cart_url = f"{base}/api/v1/cart/recommendations/"
            checks = {
                "recommendations": fetch(recs_url, key),
                "cart": fetch(cart_url, key, {"skus": skus[:CART_SIZE], "touchpoint": "cart"}),
                "trivial": fetch(base + "/healthz/", None),
            }
            for label, (status, body) in checks.items():
                if status != 200:
                    raise BenchmarkError(f"{label}: answered {status}: {body[:500]!r}")
            result["response_bytes"] = {label: len(body) for label, (_, body) in checks.items()}

            common = {"sku_file": sku_file, "key": key}
            warm = sizes["warmup_seconds"]
            print("warm-up ...", flush=True)
            run_wrk(server, url=base + "/", mode="recommendations", rate=0, seconds=warm, connections=8, **common)
            run_wrk(server, url=base + "/", mode="cart", rate=0, seconds=warm, connections=8, **common)
            run_wrk(server, url=base + "/healthz/", mode="plain", rate=0, seconds=warm, connections=8, **common)

            rate, seconds, saturation = sizes["rate"], sizes["seconds"], sizes["saturation_seconds"]
            print(f"(a) recommendations paced at {rate} req/s for {seconds} s ...", flush=True)
            paced = run_wrk(
                server, url=base + "/", mode="recommendations", rate=rate, seconds=seconds,
                connections=PACED_CONNECTIONS, **common,
            )  # fmt: skip
            print("    " + describe(paced), flush=True)
            print(f"(b) saturation, {SATURATION_CONNECTIONS} connections, {saturation} s each ...", flush=True)
            saturated = {}
            for label, url, mode in (
                ("trivial_before", base + "/healthz/", "plain"),
                ("recommendations", base + "/", "recommendations"),
                ("trivial_after", base + "/healthz/", "plain"),
            ):
                saturated[label] = run_wrk(
                    server, url=url, mode=mode, rate=0, seconds=saturation, connections=SATURATION_CONNECTIONS,
                    **common,
                )  # fmt: skip
                print(f"    {label:16} " + describe(saturated[label]), flush=True)
            # A second reference without any database work: the same URL without a key, answered
            # 401 (JSON) by DRF before any query. Not the goal's denominator (see the README).
            no_db = run_wrk(
                server, url=recs_url, mode="plain", rate=0, seconds=saturation, connections=SATURATION_CONNECTIONS,
                **common,
            )  # fmt: skip
            print(f"    {'no-db 401':16} " + describe(no_db), flush=True)
            cart_rate = sizes["cart_rate"]
            print(f"(c) cart of {CART_SIZE} SKUs paced at {cart_rate} req/s for {seconds} s ...", flush=True)
            cart = run_wrk(
                server, url=base + "/", mode="cart", rate=cart_rate, seconds=seconds, connections=CART_CONNECTIONS,
                **common,
            )  # fmt: skip
            print("    " + describe(cart), flush=True)

            result["worker_memory_mb"] = [
                {"pid": pid, "peak_rss": proc_status(pid, "VmHWM"), "rss": proc_status(pid, "VmRSS")}
                for pid in server.workers()
            ]
            result["paced"] = paced
            result["saturation"] = saturated
            result["saturation_no_db_401"] = no_db
            result["cart"] = cart
    finally:
        if server is not None:
            server.stop()
        try:
            admin_sql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception as exc:  # noqa: BLE001 - report, do not hide the original error
            print(f"warning: could not drop database {name}: {exc}", file=sys.stderr)

    trivial = (saturated["trivial_before"]["rate"] + saturated["trivial_after"]["rate"]) / 2
    share = saturated["recommendations"]["rate"] / trivial if trivial else 0.0
    rate_reached = paced["rate"] >= 0.95 * rate
    result["saturation_share"] = round(share, 3)
    result["saturation_share_of_no_db_401"] = round(saturated["recommendations"]["rate"] / no_db["rate"], 3)
    result["trivial_rate_mean"] = round(trivial, 1)
    result["goals"] = {
        "paced_rate_reached": rate_reached,
        "p99_ms": paced["p99_ms"],
        "p99_met": rate_reached and paced["p99_ms"] <= GOAL_P99_MS,
        "saturation_share": round(share, 3),
        "saturation_met": share >= GOAL_SATURATION_SHARE,
        "cart_p99_ms": cart["p99_ms"],
        "cart_met": cart["rate"] >= 0.95 * cart_rate and cart["p99_ms"] <= GOAL_CART_P99_MS,
    }
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    result["load_average_end"] = load_average()
    return result


def print_report(result: dict) -> None:
    paced, cart, saturated, goals = result["paced"], result["cart"], result["saturation"], result["goals"]
    memory = ", ".join(f"{worker['peak_rss']:.0f} MB" for worker in result["worker_memory_mb"])
    print(
        f"\nsizes: {result['data']['visible_links']:,} visible links, {result['data']['skus_with_links']:,} SKUs asked "
        f"for at random; answer sizes {result['response_bytes']} bytes; setup {result['setup_timings']}"
    )
    print(f"gunicorn {result['workers']} sync workers, cache: {result['cache']}; peak RSS per worker: {memory}")
    print(
        f"(a) recommendations at {paced['target_rate']} req/s: achieved {paced['rate']:.0f} req/s, "
        f"p50 {paced['p50_ms']:.2f} ms, p99 {paced['p99_ms']:.2f} ms (goal <= {GOAL_P99_MS:.0f} ms): "
        f"{'met' if goals['p99_met'] else 'NOT met'}"
    )
    print(
        f"(b) saturation: recommendations {saturated['recommendations']['rate']:.0f} req/s, trivial /healthz/ "
        f"{result['trivial_rate_mean']:.0f} req/s (before {saturated['trivial_before']['rate']:.0f}, after "
        f"{saturated['trivial_after']['rate']:.0f}): {result['saturation_share']:.0%} "
        f"(goal >= {GOAL_SATURATION_SHARE:.0%}): {'met' if goals['saturation_met'] else 'NOT met'}; against the "
        f"no-database 401 answer ({result['saturation_no_db_401']['rate']:.0f} req/s): "
        f"{result['saturation_share_of_no_db_401']:.0%}"
    )
    print(
        f"(c) cart of {CART_SIZE} SKUs at {cart['target_rate']} req/s: achieved {cart['rate']:.0f} req/s, p50 "
        f"{cart['p50_ms']:.2f} ms, p99 {cart['p99_ms']:.2f} ms (goal <= {GOAL_CART_P99_MS:.0f} ms): "
        f"{'met' if goals['cart_met'] else 'NOT met'}"
    )
    print(
        f"load average {result['load_average_start']} -> {result['load_average_end']}; "
        f"whole run {result['wall_seconds']:.0f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="CI smoke run: short runs at low rates, small demo.")
    parser.add_argument("--rate", type=int, help="paced rate of (a), requests per second (default 500)")
    parser.add_argument("--cart-rate", type=int, help="paced rate of (c), requests per second (default 100)")
    parser.add_argument("--seconds", type=int, help="length of the paced runs (default 20)")
    parser.add_argument("--saturation-seconds", type=int, help="length of each saturation run (default 10)")
    parser.add_argument("--database-url", default=DEFAULT_SERVER, help=f"PostgreSQL server (default {DEFAULT_SERVER})")
    parser.add_argument("--cache-url", help="a Redis URL for the API cache (default: each worker's local memory)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print(WRK_INSTALL, file=sys.stderr)
        return 2
    sizes = dict(SMALL if args.small else FULL)
    for option in ("rate", "cart_rate", "seconds", "saturation_seconds"):
        if getattr(args, option) is not None:
            sizes[option] = getattr(args, option)

    def terminate(signum, frame):
        raise SystemExit(128 + signum)  # runs the finally blocks: gunicorn stopped, database dropped

    signal.signal(signal.SIGTERM, terminate)
    try:
        result = bench(args.database_url, sizes, args.cache_url)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_report(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"JSON: {args.output}")
    runs = [result["paced"], result["cart"], *result["saturation"].values()]
    return 1 if any(run["errors"] for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
