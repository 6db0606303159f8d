"""Benchmark of the pure mining engine (merchandising.mining.mine_pairs), and the backtest
that chose its default score.

    python benchmarks/mining_engine.py [--sizes S,M,L] [--scores] [--output PATH]

Sizes (synthetic histories from merchandising.mining.synthetic, seed fixed):
S = 20k orders / 5k products (~0.26M lines; a few seconds, the CI smoke run),
M = 200k orders / 20k products (~2.6M lines), L = 800k orders / 50k products (~10M lines).
Default: S,M.

For each size the history is generated once and saved to a temporary .npz; every measurement
then runs in its own subprocess, which loads the arrays and reports its own peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, so it includes the interpreter, the
libraries and the input arrays):

- engine: ``mine_pairs`` with the default ``MiningOptions`` (basket cap 50, top 20, min count
  3, default score); time from the raw line arrays to the final sorted top-K pairs, with as
  many block threads as the process may use (``workers``; also printed: one thread);
- pure Python: ``Counter`` over ``itertools.combinations`` of each deduplicated basket (same
  cap). It only counts unordered pairs (half the directed work, no metrics, no top-K), so it
  is a generous lower bound of a pure-Python engine. It runs on the first orders up to
  ``--python-budget`` pair-occurrences and is extrapolated linearly per pair-occurrence;
- DuckDB: one SQL statement doing the same as the engine (distinct lines, basket cap,
  self-join on the order, counts and decayed counts, metrics, default score, thresholds,
  top-K per source with QUALIFY), timed from a DuckDB table of the raw lines to the result
  table. DuckDB is a benchmark-only dependency (``pip install duckdb``); without it the
  script prints "duckdb not installed: skipped".

pair-occurrences = sum over the orders that contribute pairs of k*(k-1) (k = distinct
products, orders of 2..50 products): the directed pairs the engine counts.

``--scores`` also runs the score backtest (regimes x seeds, see ``score_backtest``) and
prints hit@10 / recall@10 per score next to the bestsellers baseline.

Results go to benchmarks/out/mining_engine.json (keys of this run replace those of earlier
runs). Goals (issue 3): engine <= 1x DuckDB, >= 20x pure Python, peak RSS at L <= 1.2 GB.
No assertion on wall-clock time: figures are printed, not tested.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from merchandising.mining import DEFAULT_SCORE, SCORES, MiningOptions, backtest, mine_pairs, prepare  # noqa: E402
from merchandising.mining import engine as mining_engine  # noqa: E402
from merchandising.mining.synthetic import generate  # noqa: E402

DEFAULT_OUTPUT = ROOT / "benchmarks" / "out" / "mining_engine.json"
SIZES = {"S": (20_000, 5_000), "M": (200_000, 20_000), "L": (800_000, 50_000)}
SEED = 20261122
PYTHON_BUDGET = 3_000_000


# --- Workers (each in its own process) ------------------------------------------------------


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _load(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    data = np.load(path)
    return data["order_idx"], data["product_idx"], data["age"], int(data["n_products"])


def worker_engine(path: str, repeat: int) -> dict:
    orders, products, ages, n_products = _load(path)
    options = MiningOptions()
    # Warm up: imports, and Numba's kernels (compiled on a process's first use, or loaded from
    # its on-disk cache; reported as first_call_seconds, not part of the timed runs).
    start = time.perf_counter()
    mine_pairs(orders[:1000], products[:1000], ages[:1000], n_products, options)
    first_call = time.perf_counter() - start
    # With as many block threads as this process may use (what a run does, MINING_THREADS'
    # default), and with one thread, to show what the threads add.
    threads = len(os.sched_getaffinity(0)) or 1
    times, single = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        result = mine_pairs(orders, products, ages, n_products, options, workers=threads)
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
        mine_pairs(orders, products, ages, n_products, options, workers=1)
        single.append(time.perf_counter() - start)
        rss = _peak_rss_mb()
    prepared = prepare(orders, products, ages, n_products, options)
    return {
        "seconds": min(times),
        "threads": threads,
        "seconds_one_thread": min(single),
        "first_call_seconds": first_call,
        "peak_rss_mb": rss,
        "pairs": len(result),
        "pairs_scored": result.pairs_scored,
        "co_count_sum": int(result.co_count.sum()),
        "n_orders": result.n_orders,
        "n_lines": result.n_lines,
        "pair_occurrences": prepared.pair_occurrences,
    }


def python_pairs(orders: list[int], products: list[int], cap: int) -> Counter:
    """The pure-Python baseline: baskets as sets, a Counter over their 2-combinations."""
    baskets: dict[int, set[int]] = defaultdict(set)
    for order, product in zip(orders, products, strict=True):
        baskets[order].add(product)
    counts: Counter = Counter()
    for basket in baskets.values():
        if 2 <= len(basket) <= cap:
            counts.update(itertools.combinations(sorted(basket), 2))
    return counts


def worker_python(path: str, budget: int, repeat: int) -> dict:
    orders, products, _ages, _n_products = _load(path)
    cap = MiningOptions().max_basket_size
    # Orders are numbered in date order: take the first ones up to the budget.
    basket = np.bincount(_distinct_orders(orders, products), minlength=int(orders.max()) + 1).astype(np.int64)
    per_order = np.where((basket >= 2) & (basket <= cap), basket * (basket - 1), 0)
    total = int(per_order.sum())
    cumulative = np.cumsum(per_order)
    n_subset = int(np.searchsorted(cumulative, min(budget, total), side="right"))
    n_subset = max(n_subset, 1)
    subset_occurrences = int(cumulative[n_subset - 1])
    lines = orders < n_subset
    order_list, product_list = orders[lines].tolist(), products[lines].tolist()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        counts = python_pairs(order_list, product_list, cap)
        times.append(time.perf_counter() - start)
    seconds = min(times)
    return {
        "subset_orders": n_subset,
        "subset_pair_occurrences": subset_occurrences,
        "subset_seconds": seconds,
        "subset_unordered_pairs": len(counts),
        "seconds_extrapolated": seconds * total / max(subset_occurrences, 1),
        "peak_rss_mb": _peak_rss_mb(),
    }


def _distinct_orders(orders: np.ndarray, products: np.ndarray) -> np.ndarray:
    """The order of each distinct (order, product) line."""
    key = np.unique(orders.astype(np.int64) * (int(products.max()) + 1) + products)
    return key // (int(products.max()) + 1)


DUCKDB_SQL = """
CREATE TABLE result AS
WITH lines AS (SELECT DISTINCT o, p, age FROM raw),
orders AS (
    SELECT o, count(*) AS k, pow(0.5, any_value(age) / {half_life}) AS w FROM lines GROUP BY o
),
products AS (
    SELECT l.p, count(*) AS n, sum(orders.w) AS dn FROM lines l JOIN orders USING (o) GROUP BY l.p
),
totals AS (SELECT count(*) AS n_orders, sum(w) AS dn FROM orders),
pair_lines AS (
    SELECT l.o, l.p, orders.w FROM lines l JOIN orders USING (o) WHERE orders.k BETWEEN 2 AND {cap}
),
pairs AS (
    SELECT x.p AS a, y.p AS b, count(*) AS co, sum(x.w) AS dco
    FROM pair_lines x JOIN pair_lines y ON x.o = y.o AND x.p <> y.p
    GROUP BY x.p, y.p
    HAVING count(*) >= {min_count}
),
scored AS (
    SELECT a, b, co,
        co / t.n_orders AS support,
        co / pa.n AS confidence,
        co * t.n_orders / (pa.n * pb.n) AS lift,
        co / (pa.n + pb.n - co) AS jaccard,
        dco,
        (dco + {shrink} * pb.dn / t.dn) / (pa.dn + {shrink}) AS score
    FROM pairs JOIN products pa ON pa.p = a JOIN products pb ON pb.p = b, totals t
)
SELECT * FROM scored
WHERE confidence >= {min_confidence} AND lift >= {min_lift}
QUALIFY row_number() OVER (PARTITION BY a ORDER BY score DESC, b) <= {top_k}
"""


def worker_duckdb(path: str, repeat: int) -> dict:
    try:
        import duckdb
    except ImportError:
        return {"skipped": "duckdb not installed: skipped"}
    orders, products, ages, _n_products = _load(path)
    options = MiningOptions()
    if options.score != "shrunk_decayed_confidence":
        return {"skipped": f"the SQL implements shrunk_decayed_confidence, not {options.score}"}
    con = duckdb.connect()
    raw_lines = {"o": orders, "p": products, "age": ages}  # noqa: F841 (found by DuckDB's replacement scan)
    con.execute("CREATE TABLE raw AS SELECT * FROM raw_lines")
    sql = DUCKDB_SQL.format(
        half_life=options.half_life_days,
        cap=options.max_basket_size,
        min_count=options.min_count,
        shrink=mining_engine.SHRINK_ORDERS,
        min_confidence=options.min_confidence,
        min_lift=options.min_lift,
        top_k=options.top_k,
    )
    times = []
    for _ in range(repeat):
        con.execute("DROP TABLE IF EXISTS result")
        start = time.perf_counter()
        con.execute(sql)
        times.append(time.perf_counter() - start)
    pairs, co_sum = con.execute("SELECT count(*), sum(co) FROM result").fetchone()
    return {
        "seconds": min(times),
        "peak_rss_mb": _peak_rss_mb(),
        "pairs": int(pairs),
        "co_count_sum": int(co_sum or 0),
        "threads": int(con.execute("SELECT current_setting('threads')").fetchone()[0]),
        "version": duckdb.__version__,
    }


# --- Score backtest ---------------------------------------------------------------------------

REGIMES = {
    "default": {},
    "strong_bestsellers": {
        "bestseller_rates": (0.22, 0.15, 0.12, 0.09, 0.08, 0.07, 0.05, 0.04, 0.03, 0.03),
        "head_offset": 10.0,
    },
    "weak_bestsellers": {
        "bestseller_rates": (0.04, 0.03, 0.02, 0.02, 0.02, 0.01, 0.01, 0.01, 0.01, 0.01),
        "head_offset": 60.0,
    },
    "few_complements": {"anchor_share": 0.1},
}


def score_backtest(n_orders: int, n_products: int, seeds: tuple[int, ...]) -> dict:
    """hit@10 / recall@10 of every score on every regime x seed (cutoff at 90% of the
    history), with the share of top-10 slots taken by the 10 bestsellers."""
    out: dict = {}
    for regime, kwargs in REGIMES.items():
        runs: dict[str, list] = defaultdict(list)
        for seed in seeds:
            history = generate(n_orders, n_products, seed=seed, **kwargs)
            orders, products, ages, test = history.split(history.days * 0.9)
            sold = np.bincount(products, minlength=n_products)
            top_sellers = np.argsort(-sold, kind="stable")[:10]
            for score in SCORES:
                options = MiningOptions(score=score)
                result = backtest(orders, products, ages, n_products, test, options)
                mined = mine_pairs(orders, products, ages, n_products, options)
                rank = np.arange(len(mined)) - np.searchsorted(mined.source, mined.source)
                share = float(np.isin(mined.target[rank < 10], top_sellers).mean()) if len(mined) else 0.0
                runs[score].append((result["hit_at_10"], result["recall_at_10"], share))
            best = result["baselines"]["bestsellers"]
            runs["(bestsellers baseline)"].append((best["hit_at_10"], best["recall_at_10"], 1.0))
        out[regime] = {
            name: {
                "hit_at_10": float(np.mean([r[0] for r in values])),
                "recall_at_10": float(np.mean([r[1] for r in values])),
                "hit_at_10_per_seed": [round(r[0], 4) for r in values],
                "bestseller_share_of_top10": float(np.mean([r[2] for r in values])),
            }
            for name, values in runs.items()
        }
    names = list(out["default"])
    out["mean_over_regimes"] = {
        name: {
            key: float(np.mean([out[regime][name][key] for regime in REGIMES]))
            for key in ("hit_at_10", "recall_at_10", "bestseller_share_of_top10")
        }
        for name in names
    }
    return {"orders": n_orders, "products": n_products, "seeds": list(seeds), "regimes": out}


def print_scores(scores: dict) -> None:
    print(f"\nScore backtest: {scores['orders']} orders, {scores['products']} products, seeds {scores['seeds']}")
    print(f"default score: {DEFAULT_SCORE} (shrink {mining_engine.SHRINK_ORDERS:g} orders)")
    for regime, table in scores["regimes"].items():
        print(f"== {regime}")
        for name, row in sorted(table.items(), key=lambda item: -item[1]["hit_at_10"]):
            print(
                f"  {name:28s} hit@10 {row['hit_at_10']:.4f}  recall@10 {row['recall_at_10']:.4f}"
                f"  bestsellers in top 10 {row['bestseller_share_of_top10']:.0%}"
            )


# --- Driver -----------------------------------------------------------------------------------


def run_worker(kind: str, path: str, *extra: str) -> dict:
    completed = subprocess.run(
        [sys.executable, __file__, "--worker", kind, "--data", path, *extra],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def bench_size(name: str, tmp: str, python_budget: int) -> dict:
    n_orders, n_products = SIZES[name]
    start = time.perf_counter()
    history = generate(n_orders, n_products, seed=SEED)
    generated = time.perf_counter() - start
    path = os.path.join(tmp, f"history_{name}.npz")
    np.savez(
        path,
        order_idx=history.order_idx,
        product_idx=history.product_idx,
        age=history.days - history.order_day,
        n_products=n_products,
    )
    # Best of a few runs: the figures are for a machine that may be busy with other work.
    repeat = "3" if len(history.order_idx) < 5_000_000 else "2"
    engine = run_worker("engine", path, "--repeat", repeat)
    python = run_worker("python", path, "--python-budget", str(python_budget), "--repeat", "3")
    duck = run_worker("duckdb", path, "--repeat", repeat)
    row = {
        "orders": n_orders,
        "products": n_products,
        "lines": len(history.order_idx),
        "generate_seconds": generated,
        "engine": engine,
        "engine_pair_occurrences_per_second": engine["pair_occurrences"] / engine["seconds"],
        "python": python,
        "speedup_vs_python": python["seconds_extrapolated"] / engine["seconds"],
        "duckdb": duck,
    }
    if "seconds" in duck:
        row["engine_vs_duckdb"] = engine["seconds"] / duck["seconds"]
        same = (duck["pairs"], duck["co_count_sum"]) == (engine["pairs"], engine["co_count_sum"])
        row["same_result_as_duckdb"] = same
    return row


def print_table(results: dict) -> None:
    header = (
        f"{'size':4} {'orders':>8} {'lines':>10} {'products':>8} {'pair-occ':>11} {'engine s':>9} "
        f"{'pair-occ/s':>11} {'RSS MB':>7} {'python s*':>10} {'x python':>9} {'duckdb s':>9} "
        f"{'duck RSS':>8} {'eng/duck':>8}"
    )
    print(header)
    for name, row in results.items():
        engine, duck = row["engine"], row["duckdb"]
        duck_s = f"{duck['seconds']:9.2f}" if "seconds" in duck else f"{'-':>9}"
        duck_rss = f"{duck['peak_rss_mb']:8.0f}" if "seconds" in duck else f"{'-':>8}"
        ratio = f"{row['engine_vs_duckdb']:8.2f}" if "engine_vs_duckdb" in row else f"{'-':>8}"
        print(
            f"{name:4} {row['orders']:8d} {engine['n_lines']:10d} {row['products']:8d} "
            f"{engine['pair_occurrences']:11d} {engine['seconds']:9.2f} "
            f"{row['engine_pair_occurrences_per_second']:11.3g} {engine['peak_rss_mb']:7.0f} "
            f"{row['python']['seconds_extrapolated']:10.1f} {row['speedup_vs_python']:9.1f} {duck_s} {duck_rss} {ratio}"
        )
        print(
            f"     engine with 1 thread instead of {engine['threads']}: {engine['seconds_one_thread']:.2f} s,"
            f" x python {row['python']['seconds_extrapolated'] / engine['seconds_one_thread']:.1f};"
            f" first call (Numba compiles or loads its kernels): {engine['first_call_seconds']:.2f} s"
        )
        if "skipped" in duck:
            print(f"     {duck['skipped']}")
    print(
        "lines = distinct order lines; pair-occ = sum of k*(k-1) over orders of 2..50 products;"
        " RSS = peak of the measuring process;\n* pure Python extrapolated per pair-occurrence from"
        " a subset of the orders (see the JSON); eng/duck <= 1 means the engine is faster."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="S,M", help="comma-separated from S, M, L (default S,M)")
    parser.add_argument("--scores", action="store_true", help="also run the score backtest")
    parser.add_argument("--score-orders", type=int, default=60_000)
    parser.add_argument("--score-products", type=int, default=8_000)
    parser.add_argument("--python-budget", type=int, default=PYTHON_BUDGET)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--worker", choices=["engine", "python", "duckdb"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        if args.worker == "engine":
            out = worker_engine(args.data, args.repeat)
        elif args.worker == "python":
            out = worker_python(args.data, args.python_budget, args.repeat)
        else:
            out = worker_duckdb(args.data, args.repeat)
        print(json.dumps(out))
        return

    sizes = [size.strip().upper() for size in args.sizes.split(",") if size.strip()]
    unknown = [size for size in sizes if size not in SIZES]
    if unknown:
        parser.error(f"unknown sizes {unknown}; choose from {sorted(SIZES)}")
    report: dict = {}
    if args.output.exists():
        try:
            report = json.loads(args.output.read_text())
        except ValueError:
            report = {}
    report["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    report["options"] = {"default_score": DEFAULT_SCORE, **{k: v for k, v in vars(MiningOptions()).items()}}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            results[size] = bench_size(size, tmp, args.python_budget)
    report.setdefault("sizes", {}).update(results)
    print_table(results)
    if args.scores:
        report["scores"] = score_backtest(args.score_orders, args.score_products, seeds=(1, 2, 3))
        print_scores(report["scores"])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(f"\nwritten to {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")


if __name__ == "__main__":
    main()
