"""Recompute the suggestions from the order history: the one entry point of a mining run.

The command, the Celery task (and so the schedule) and the admin button all end up in
``suggestions_recompute``. Phases: claim (single flight), load the history and exclusions,
mine (blocks in-process, or a Celery chord over workers), count the distinct accounts per
pair, store everything in one transaction.
"""

from __future__ import annotations

import datetime
import io
import logging
from functools import partial
from typing import Any

import numpy as np
import scipy.sparse as sp
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditEntry
from audit.services import audit_record
from merchandising.mining import (
    Exclusions,
    MiningOptions,
    PairResult,
    Prepared,
    UpperPairs,
    block_ranges,
    map_blocks,
    merge,
    mine_block,
    mine_upper,
    pairs_from_upper,
    prepare,
    useful_threads,
)
from merchandising.models import MiningRun, SuggestionStatus
from merchandising.selectors import ExclusionArrays, OrderHistory, exclusion_arrays, order_history_load
from merchandising.services.runs import (
    BLOCKS_PHASE,
    RunHeartbeat,
    RunLost,
    mining_options,
    mining_run_create,
    run_before,
    run_claim,
    run_fail,
    run_progress,
    run_progress_add,
)

logger = logging.getLogger(__name__)

# Progress (percent) at the start of each phase; blocks fill MINING..SCORING.
LOADING, MINING, SCORING, ACCOUNTS, STORING, DONE = 2, 15, 75, 80, 85, 100
STORE_BATCH = 50_000  # pairs per upsert statement
ACCOUNT_LOOKUPS_CHUNK = 2_000_000  # order lookups per chunk in pair_accounts (one chunk per thread at a time)
METRIC_FIELDS = ("co_count", "support", "confidence", "lift", "jaccard", "decayed_co_count", "score", "accounts")
ARRAY_FIELDS = ("source", "target", "co_count", "support", "confidence", "lift", "jaccard", "decayed_co_count", "score")


def suggestions_recompute(
    *,
    run: MiningRun | None = None,
    trigger: str | None = None,
    actor=None,
    overrides: dict[str, Any] | None = None,
    before: datetime.date | None = None,
    distribute: bool = False,
    queue: str | None = None,
    task_id: str | None = None,
) -> MiningRun:
    """Mine the order history and store the suggestions; returns the run.

    Without ``run`` a run is created (``trigger`` and ``actor`` recorded) from the stored
    settings plus ``overrides`` (and ``before``: only orders before that date are mined); a
    queued ``run`` carries its own. A run that cannot claim the single running slot comes
    back SKIPPED; a failure comes back FAILED with its error, the suggestions untouched.
    With ``distribute`` (the Celery task, when a broker is configured) the blocks go to the
    workers as a chord on ``queue`` and the run comes back RUNNING; the chord's last task
    stores the result. ``task_id`` is the Celery task working on the run: its redelivery owns
    the run and takes it over (see run_claim).
    """
    if run is None:
        if trigger is None:
            raise TypeError("a new run needs a trigger (MiningRun.Trigger)")
        run = mining_run_create(trigger=trigger, actor=actor, overrides=overrides, before=before)
    elif overrides or before or actor:
        raise ValueError("a queued run carries its own parameters; pass overrides only without a run")
    if not run_claim(run=run, task_id=task_id):
        return run
    try:
        with RunHeartbeat(run_id=run.pk, attempt=run.attempt):
            _mine(run=run, distribute=distribute, queue=queue)
    except Exception as exc:  # noqa: BLE001 - any failure ends the run as FAILED, suggestions untouched
        run_fail(run_id=run.pk, exc=exc, attempt=run.attempt)
    run.refresh_from_db()
    return run


def _mine(*, run: MiningRun, distribute: bool, queue: str | None) -> None:
    """The claimed run's work: load, mine in-process or hand the blocks to the workers, store."""
    run_progress(run=run, phase="loading history", progress=LOADING)
    history = order_history_load(before=run_before(run), lookback_days=run.parameters["lookback_days"] or None)
    exclusions = exclusion_arrays(product_ids=history.product_ids)
    options = mining_options(run.parameters)
    ranges = block_ranges(history.products, options.block_size) or [(0, 0)]
    if distribute and len(ranges) > 1:
        _dispatch(run=run, history=history, exclusions=exclusions, ranges=ranges, queue=queue)
        return
    run_progress(run=run, phase="preparing", progress=MINING - 5)
    prepared = prepare(history.order_idx, history.product_idx, history.line_age_days, history.products, options)
    excluded = engine_exclusions(exclusions)
    parts = []
    # Blocks in threads, settings.MINING_THREADS at a time; progress is saved between
    # batches from this thread (a Django connection belongs to its thread). In one
    # process each unordered pair is counted once (mine_upper), then mirrored and scored.
    step = settings.MINING_THREADS
    threads = useful_threads(prepared, step)  # fewer for a small history
    for done in range(0, len(ranges), step):
        batch = ranges[done : done + step]
        parts += map_blocks(partial(_mine_upper, prepared, options, excluded), batch, threads)
        run_progress(
            run=run,
            phase=f"mining block {done + len(batch)} of {len(ranges)}",
            progress=MINING + (SCORING - MINING) * (done + len(batch)) // len(ranges),
        )
    run_progress(run=run, phase="scoring", progress=SCORING)
    result = pairs_from_upper(prepared, parts, options, workers=threads)
    del prepared
    _finish(run=run, history=history, result=result)


def _mine_upper(
    prepared: Prepared, options: MiningOptions, exclusions: Exclusions, block: tuple[int, int]
) -> UpperPairs:
    return mine_upper(prepared, block[0], block[1], options, exclusions)


def engine_exclusions(exclusions: ExclusionArrays) -> Exclusions:
    return Exclusions(
        eligible=exclusions.eligible,
        family=exclusions.family,
        category=exclusions.category,
        category_pairs=exclusions.category_pairs,
    )


def _finish(*, run: MiningRun, history: OrderHistory, result: PairResult) -> None:
    """Accounts per pair, then the one transaction that stores the result and ends the run."""
    run_progress(run=run, phase="counting accounts", progress=ACCOUNTS)
    accounts = pair_accounts(history=history, result=result, max_basket_size=run.parameters["max_basket_size"] or None)
    run_progress(run=run, phase="storing suggestions", progress=STORING)
    suggestions_store(run=run, history=history, result=result, accounts=accounts)


def pair_accounts(*, history: OrderHistory, result: PairResult, max_basket_size: int | None) -> np.ndarray:
    """For every mined pair, the distinct customer accounts with an order containing both
    (the orders that count for co_count, those within the basket cap), so accounts <= co_count.
    Orders of the placeholder account (account -1: orders without a customer) count for no one.

    Set-based, in NumPy/SciPy: for each pair, every order of its less-ordered product is looked
    up in the other product's column of the orders x products matrix (a binary search within
    the order's few lines); the orders found map to accounts, and the distinct (pair, account)
    keys are counted. The work is the sum over pairs of the smaller side's order count, in
    bounded chunks.
    """
    n_pairs = len(result.source)
    out = np.zeros(n_pairs, dtype=np.int64)
    if not n_pairs:
        return out
    by_order = sp.csr_matrix(
        (np.ones(history.lines, dtype=np.int8), (history.order_idx, history.product_idx)),
        shape=(history.orders, history.products),
    )
    by_order.sum_duplicates()
    basket = np.diff(by_order.indptr)
    keep = (basket >= 2) & (history.order_accounts >= 0)
    if max_basket_size is not None:
        keep &= basket <= max_basket_size
    # Orders renumbered grouped by account: then the orders found for one pair come out in
    # account order, and counting distinct accounts is counting changes along the array (no
    # sort, no hash set).
    kept = np.flatnonzero(keep)
    kept = kept[np.argsort(history.order_accounts[kept], kind="stable")]
    by_order = by_order[kept]
    order_account = history.order_accounts[kept]
    by_order.sort_indices()  # canonical format: lookups are binary searches within a row
    by_product = by_order.T.tocsr()
    by_product.sort_indices()
    orders_of = np.diff(by_product.indptr)

    source = result.source.astype(np.int64)
    target = result.target.astype(np.int64)
    small = np.where(orders_of[source] <= orders_of[target], source, target)
    other = np.where(orders_of[source] <= orders_of[target], target, source)
    work = orders_of[small]
    bounds = np.searchsorted(np.cumsum(work), np.arange(0, int(work.sum()) + 1, ACCOUNT_LOOKUPS_CHUNK), side="right")
    edges = np.unique(np.concatenate([[0], bounds, [n_pairs]]))

    def count(chunk: tuple[int, int]) -> None:
        start, stop = chunk
        counts = work[start:stop]
        pair = np.repeat(np.arange(start, stop, dtype=np.int64), counts)
        first = np.repeat(by_product.indptr[small[start:stop]], counts)
        offset = np.arange(len(pair), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        orders = by_product.indices[first + offset].astype(np.int64)
        both = np.asarray(by_order[orders, other[pair]]).ravel() > 0
        pair, account = pair[both], order_account[orders[both]]
        changes = np.ones(len(pair), dtype=bool)
        changes[1:] = (pair[1:] != pair[:-1]) | (account[1:] != account[:-1])
        out[start:stop] = np.bincount(pair[changes] - start, minlength=stop - start)

    # Chunks write disjoint slices of ``out``: safe in threads (the lookups release the GIL).
    map_blocks(count, list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True)), settings.MINING_THREADS)
    return out


STAGE = "merchandising_suggestion_stage"
_METRIC_LIST = ", ".join(METRIC_FIELDS)
_SAME = " AND ".join(f"s.{name} = t.{name}" for name in METRIC_FIELDS)
COUNT_SQL = f"""
    SELECT COUNT(*),
           COALESCE(SUM(CASE WHEN s.id IS NULL THEN 1 ELSE 0 END), 0),
           COALESCE(SUM(CASE WHEN s.id IS NOT NULL AND s.stale = %s AND {_SAME} THEN 1 ELSE 0 END), 0)
    FROM {STAGE} t
    LEFT JOIN merchandising_suggestion s ON s.source_id = t.source_id AND s.target_id = t.target_id
"""
# The statements below are the whole contract of a recompute. They write metrics, the
# previous co_count (the existing row's), the stale flag and the run; never status,
# reject_reason, reject_note, decided_by, decided_at, first_run or created_at. Unchanged pairs
# (same metrics, not stale) are not written at all: rewriting them cost more than half of a
# steady-state run (every row a new version with an entry in each index). So ``last_run`` is
# the run that last gave a suggestion new metrics (or brought it back from stale), and
# ``previous_co_count`` its co_count before that run; a stale suggestion keeps both. Every
# suggestion that is not stale was produced by the latest successful run.
INSERT_SQL = f"""
    INSERT INTO merchandising_suggestion (
        source_id, target_id, {_METRIC_LIST}, previous_co_count, status, reject_reason, reject_note,
        stale, stale_since, first_run_id, last_run_id, created_at, updated_at
    )
    SELECT t.source_id, t.target_id, {", ".join(f"t.{name}" for name in METRIC_FIELDS)},
           NULL, %s, '', '', %s, NULL, %s, %s, %s, %s
    FROM {STAGE} t
    WHERE t.n >= %s AND t.n < %s
    ON CONFLICT (source_id, target_id) DO NOTHING
"""
UPDATE_SQL = f"""
    UPDATE merchandising_suggestion
    SET {", ".join(f"{name} = t.{name}" for name in METRIC_FIELDS)},
        previous_co_count = merchandising_suggestion.co_count,
        stale = %s,
        stale_since = NULL,
        last_run_id = %s,
        updated_at = %s
    FROM {STAGE} t
    WHERE t.n >= %s AND t.n < %s
      AND merchandising_suggestion.source_id = t.source_id
      AND merchandising_suggestion.target_id = t.target_id
      AND (merchandising_suggestion.stale OR NOT ({_SAME.replace("s.", "merchandising_suggestion.")}))
"""
STALE_SQL = f"""
    UPDATE merchandising_suggestion
    SET stale = %s, stale_since = %s, updated_at = %s
    WHERE stale = %s
      AND NOT EXISTS (
          SELECT 1 FROM {STAGE} t
          WHERE t.source_id = merchandising_suggestion.source_id AND t.target_id = merchandising_suggestion.target_id
      )
"""


STAGE_TYPES = (
    ("n", "integer", ">i4"),
    ("source_id", "bigint", ">i8"),
    ("target_id", "bigint", ">i8"),
    ("co_count", "integer", ">i4"),
    ("support", "double precision", ">f8"),
    ("confidence", "double precision", ">f8"),
    ("lift", "double precision", ">f8"),
    ("jaccard", "double precision", ">f8"),
    ("decayed_co_count", "double precision", ">f8"),
    ("score", "double precision", ">f8"),
    ("accounts", "integer", ">i4"),
)
PG_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no header extension
PG_COPY_TRAILER = b"\xff\xff"


def _stage_fill(cursor, columns: dict[str, np.ndarray]) -> None:
    """The run's pairs into a temporary table: on PostgreSQL one binary COPY built by NumPy
    (no Python object per pair), on SQLite executemany."""
    names = ", ".join(name for name, _sql, _binary in STAGE_TYPES)
    definition = ", ".join(f"{name} {sql}" for name, sql, _binary in STAGE_TYPES)
    if connection.vendor == "postgresql":
        cursor.execute(f"CREATE TEMPORARY TABLE {STAGE} ({definition}) ON COMMIT DROP")
        layout = [("fields", ">i2")]
        for name, _sql, binary in STAGE_TYPES:
            layout += [(f"{name}_length", ">i4"), (name, binary)]
        rows = np.empty(len(columns["n"]), dtype=layout)
        rows["fields"] = len(STAGE_TYPES)
        for name, _sql, binary in STAGE_TYPES:
            rows[f"{name}_length"] = np.dtype(binary).itemsize
            rows[name] = columns[name]
        with cursor.cursor.copy(f"COPY {STAGE} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(PG_COPY_HEADER + rows.tobytes() + PG_COPY_TRAILER)
    else:
        cursor.execute(f"DROP TABLE IF EXISTS temp.{STAGE}")
        cursor.execute(f"CREATE TEMPORARY TABLE {STAGE} ({definition})")
        rows = zip(*(columns[name].tolist() for name, _sql, _binary in STAGE_TYPES), strict=True)
        cursor.executemany(f"INSERT INTO {STAGE} ({names}) VALUES ({', '.join(['%s'] * len(STAGE_TYPES))})", rows)
    cursor.execute(f"CREATE INDEX {STAGE}_n ON {STAGE} (n)")
    cursor.execute(f"CREATE UNIQUE INDEX {STAGE}_pair ON {STAGE} (source_id, target_id)")
    if connection.vendor == "postgresql":
        cursor.execute(f"ANALYZE {STAGE}")  # temporary tables are never auto-analyzed: real row counts for the joins


def suggestions_write_batch(cursor, *, run: MiningRun, now, start: int, stop: int) -> None:
    """Write the staged pairs numbered [start, stop): update the changed ones, then insert the
    new ones (see UPDATE_SQL and INSERT_SQL). The insert finds the existing pairs through the
    unique index (ON CONFLICT DO NOTHING: no write for them), not with an anti-join: a NOT
    EXISTS over the table being inserted into can be planned as a scan that re-reads the
    rows the same statement just wrote, quadratic in the batch (measured: 20 s for 52k pairs)."""
    stamp = connection.ops.adapt_datetimefield_value(now)
    cursor.execute(UPDATE_SQL, [False, run.pk, stamp, start, stop])
    cursor.execute(INSERT_SQL, [SuggestionStatus.PENDING, False, run.pk, run.pk, stamp, stamp, start, stop])


def suggestions_store(*, run: MiningRun, history: OrderHistory, result: PairResult, accounts: np.ndarray) -> None:
    """Store a run's pairs and finish the run, all in one transaction.

    New pairs arrive pending; existing pairs with new metrics get them (previous_co_count keeps
    the old co_count), stale ones lose the flag; unchanged ones are not written; the review
    state is never written. Pairs this run did not produce are flagged stale, whatever their
    status. A failure anywhere rolls
    all of it back: the suggestions stay exactly as the previous run left them.

    The pairs go through a temporary table and set-based SQL (an update and an insert per
    batch on the natural key, one join for the counts, one anti-join for the stale flags)
    rather than model instances: at 200k pairs,
    ``bulk_create(update_conflicts=True)`` spends over a minute preparing objects.
    """
    now = timezone.now()
    n_pairs = len(result.source)
    source_ids = history.product_ids[result.source] if n_pairs else np.zeros(0, dtype=np.int64)
    target_ids = history.product_ids[result.target] if n_pairs else np.zeros(0, dtype=np.int64)
    columns = {name: accounts if name == "accounts" else getattr(result, name) for name in METRIC_FIELDS}
    columns.update(n=np.arange(n_pairs, dtype=np.int64), source_id=source_ids, target_id=target_ids)
    with transaction.atomic(), connection.cursor() as cursor:
        _stage_fill(cursor, columns)
        cursor.execute(COUNT_SQL, [False])
        total, new, unchanged = (int(value) for value in cursor.fetchone())
        for start in range(0, n_pairs, STORE_BATCH):
            suggestions_write_batch(cursor, run=run, now=now, start=start, stop=start + STORE_BATCH)
        stamp = connection.ops.adapt_datetimefield_value(now)
        cursor.execute(STALE_SQL, [True, stamp, stamp, False])
        gone_stale = cursor.rowcount
        cursor.execute(f"DROP TABLE {STAGE}")
        finished = MiningRun.objects.filter(pk=run.pk, status=MiningRun.Status.RUNNING, attempt=run.attempt).update(
            status=MiningRun.Status.SUCCEEDED,
            phase="done",
            progress=DONE,
            heartbeat_at=now,
            finished_at=timezone.now(),  # after storing: the duration shown must include it
            orders=result.n_orders,
            lines=result.n_lines,
            products=result.n_products,
            pairs_scored=result.pairs_scored,
            suggestions_new=new,
            suggestions_updated=total - new - unchanged,
            suggestions_unchanged=unchanged,
            suggestions_stale=gone_stale,
        )
        if not finished:
            raise RunLost(f"Run #{run.pk} was taken over while storing; its result is discarded.")
        # One summary row for the run's whole store (not one per suggestion: a run writes
        # hundreds of thousands of rows set-based; the run's counts say what changed).
        audit_record(
            obj=run,
            action=AuditEntry.Action.UPDATE,
            actor=run,
            changes={"status": [MiningRun.Status.RUNNING, MiningRun.Status.SUCCEEDED]},
            extra={
                "suggestions_new": new,
                "suggestions_updated": total - new - unchanged,
                "suggestions_unchanged": unchanged,
                "suggestions_stale": gone_stale,
            },
        )


# --- the distributed path: a Celery chord over workers -------------------------------------


def _snapshot_key(run_id: int, attempt: int | None) -> str:
    # Per attempt: the store of an earlier attempt, delivered late, must not delete this one's.
    return f"merchandising:mining:run:{run_id}:{attempt}:input"


def _snapshot_timeout() -> int:
    return settings.CELERY_TASK_TIME_LIMIT * 2


def _snapshot_save(*, run: MiningRun, history: OrderHistory, exclusions: ExclusionArrays) -> None:
    """The run's input, as the coordinator loaded it, in the shared cache (Redis whenever a
    broker is configured): every block works on exactly the same history, even if orders
    are imported meanwhile, and the database is read once, not once per block."""
    pairs = np.array(sorted(exclusions.category_pairs), dtype=np.int64).reshape(-1, 2)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        order_idx=history.order_idx,
        product_idx=history.product_idx,
        order_age_days=history.order_age_days,
        order_accounts=history.order_accounts,
        product_ids=history.product_ids,
        eligible=exclusions.eligible,
        family=exclusions.family,
        category=exclusions.category,
        category_pairs=pairs,
    )
    cache.set(_snapshot_key(run.pk, run.attempt), buffer.getvalue(), timeout=_snapshot_timeout())


def _snapshot_load(run_id: int, attempt: int | None) -> tuple[OrderHistory, ExclusionArrays]:
    data = cache.get(_snapshot_key(run_id, attempt))
    if data is None:
        raise RuntimeError(f"the input of run #{run_id} is gone from the cache (expired or evicted)")
    with np.load(io.BytesIO(data)) as arrays:
        history = OrderHistory(
            order_idx=arrays["order_idx"],
            product_idx=arrays["product_idx"],
            order_age_days=arrays["order_age_days"],
            order_accounts=arrays["order_accounts"],
            product_ids=arrays["product_ids"],
            reference=None,
        )
        exclusions = ExclusionArrays(
            eligible=arrays["eligible"],
            family=arrays["family"],
            category=arrays["category"],
            category_pairs=frozenset((int(a), int(b)) for a, b in arrays["category_pairs"]),
        )
    return history, exclusions


def _dispatch(
    *,
    run: MiningRun,
    history: OrderHistory,
    exclusions: ExclusionArrays,
    ranges: list[tuple[int, int]],
    queue: str | None,
) -> None:
    from celery import chord

    from merchandising.tasks import mine_suggestions_block, store_suggestions

    _snapshot_save(run=run, history=history, exclusions=exclusions)
    run_progress(run=run, phase=f"{BLOCKS_PHASE} ({len(ranges)})", progress=MINING)
    options = {"queue": queue} if queue else {}
    header = [mine_suggestions_block.si(run.pk, start, stop, run.attempt).set(**options) for start, stop in ranges]
    chord(header)(store_suggestions.s(run.pk, run.attempt).set(**options))


def _part_to_json(part: PairResult) -> dict[str, Any]:
    data: dict[str, Any] = {name: getattr(part, name).tolist() for name in ARRAY_FIELDS}
    data.update(
        n_orders=part.n_orders,
        n_products=part.n_products,
        n_lines=part.n_lines,
        pairs_scored=part.pairs_scored,
        score_name=part.score_name,
        sources=list(part.sources),
    )
    return data


_JSON_DTYPES = {"source": np.int32, "target": np.int32, "co_count": np.int64}


def _part_from_json(data: dict[str, Any], product_counts: np.ndarray) -> PairResult:
    arrays = {name: np.array(data[name], dtype=_JSON_DTYPES.get(name, np.float64)) for name in ARRAY_FIELDS}
    return PairResult(
        **arrays,
        n_orders=data["n_orders"],
        n_products=data["n_products"],
        n_lines=data["n_lines"],
        pairs_scored=data["pairs_scored"],
        product_counts=product_counts,
        score_name=data["score_name"],
        sources=tuple(data["sources"]),
    )


def _running(run_id: int, attempt: int | None) -> MiningRun | None:
    """The run if it is running in ``attempt`` (None: any attempt, for a message sent before
    attempts were recorded)."""
    running = MiningRun.objects.filter(pk=run_id, status=MiningRun.Status.RUNNING)
    if attempt is not None:
        running = running.filter(attempt=attempt)
    return running.first()


def mining_block_run(*, run_id: int, start: int, stop: int, attempt: int | None = None) -> dict[str, Any] | None:
    """One block of a distributed run (a chord header task): prepare from the snapshot, mine
    sources [start, stop), return the pairs as JSON lists. None if the run is not running in
    ``attempt`` (the block of an attempt that was taken over or failed). A block whose worker
    died is delivered again and simply mined again: it writes nothing but its result."""
    run = _running(run_id, attempt)
    if run is None:
        return None
    try:
        with RunHeartbeat(run_id=run_id, attempt=run.attempt):
            history, exclusions = _snapshot_load(run_id, run.attempt)
            options = mining_options(run.parameters)
            prepared = prepare(history.order_idx, history.product_idx, history.line_age_days, history.products, options)
            part = mine_block(prepared, start, stop, options, engine_exclusions(exclusions))
            blocks = len(block_ranges(history.products, options.block_size))
            run_progress_add(run_id=run_id, attempt=run.attempt, step=(ACCOUNTS - MINING) // max(blocks, 1))
            return _part_to_json(part)
    except Exception as exc:
        run_fail(run_id=run_id, exc=exc, attempt=run.attempt)
        raise


def mining_blocks_finish(
    *, run_id: int, parts: list[dict[str, Any] | None], attempt: int | None = None
) -> MiningRun | None:
    """The chord's body: merge the blocks, count accounts, store; the run ends here. Delivered
    again after its worker died, it does the same from the same snapshot (the store's
    transaction of the killed delivery rolled back)."""
    run = _running(run_id, attempt)
    if run is None:
        if attempt is not None:
            cache.delete(_snapshot_key(run_id, attempt))
        return None
    try:
        with RunHeartbeat(run_id=run_id, attempt=run.attempt):
            if any(part is None for part in parts):
                raise RuntimeError("a block came back empty")
            shared_counts = np.zeros(0, dtype=np.int64)  # merge() compares them; blocks do not ship them
            result = merge(_part_from_json(part, shared_counts) for part in parts)
            history, _exclusions = _snapshot_load(run_id, run.attempt)
            _finish(run=run, history=history, result=result)
    except Exception as exc:  # noqa: BLE001 - any failure ends the run as FAILED, suggestions untouched
        run_fail(run_id=run_id, exc=exc, attempt=run.attempt)
    cache.delete(_snapshot_key(run_id, run.attempt))
    run.refresh_from_db()
    return run
