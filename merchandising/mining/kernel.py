"""The fused pair-counting kernel: one block of rows of X^T X, thresholded as it is counted.

Why hand-written (with Numba) instead of SciPy's sparse product: ``X[:, block]^T @ X``
materialises every co-occurring pair of the block (at 200k orders / 20k products, 18 million
entries for 37 million pair-occurrences) as complex numbers, and NumPy then scans all of them
to keep the few that reach ``min_count`` (1.9 million there). No maintained library counts a
sparse product's rows and filters them in the same pass. This kernel does Gustavson's
row-by-row product (the algorithm SciPy's kernel uses) with an int32 count and a float64
decayed count per target, and writes out only the targets of a row that reach ``min_count``,
so nothing of size "all pairs" is ever allocated. Measured in benchmarks/mining_engine.py.

Exactness: counts are exact integers; the decayed count of a pair adds the same float64
weights in the same order (the source's orders ascending) as SciPy's product does, so both
paths give bit-identical results (tests/merchandising/test_engine.py checks it).

Numba compiles the function on first use (about a second; ``cache=True`` keeps the machine
code on disk for the next process) and releases the GIL while it runs (``nogil=True``), so
blocks mined in threads (``engine.map_blocks``) use all cores. Without Numba (a platform
without its wheels) ``count_block`` is None and the engine uses SciPy's product.
"""

from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - Numba is in requirements.txt; this keeps the engine usable without it
    numba = None

_INITIAL_CAPACITY = 1 << 16


def _grow(array: np.ndarray, size: int) -> np.ndarray:
    bigger = np.empty(max(2 * len(array), size), dtype=array.dtype)
    bigger[: len(array)] = array
    return bigger


def _count_block(
    source_indptr: np.ndarray,
    source_orders: np.ndarray,
    order_indptr: np.ndarray,
    order_products: np.ndarray,
    order_weights: np.ndarray,
    positions: np.ndarray,
    upper: bool,
    start: int,
    stop: int,
    min_count: int,
    eligible: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For every eligible source a in [start, stop): the targets b != a, eligible, that share
    at least ``min_count`` orders with a; with that count and the decayed count (the sum of
    the shared orders' weights). With ``upper``, only the targets b > a.

    ``source_indptr``/``source_orders``: products x orders (CSR, orders ascending in a row);
    ``order_indptr``/``order_products``: orders x products (CSR, products ascending in a row
    when ``upper``); ``order_weights``: per order; ``positions``: for every products x orders
    entry, the position of the same line in ``order_products`` (used only when ``upper``:
    the targets b > a of an order are the rest of its row after a). Returns (source, target,
    co_count, decayed), grouped by source ascending, targets of a source in first-seen order.
    """
    n_products = len(eligible)
    count = np.zeros(n_products, dtype=np.int32)
    decayed = np.zeros(n_products, dtype=np.float64)
    touched = np.empty(n_products + 1, dtype=np.int32)  # +1: the branch-free append writes one past
    out_source = np.empty(_INITIAL_CAPACITY, dtype=np.int32)
    out_target = np.empty(_INITIAL_CAPACITY, dtype=np.int32)
    out_count = np.empty(_INITIAL_CAPACITY, dtype=np.int32)
    out_decayed = np.empty(_INITIAL_CAPACITY, dtype=np.float64)
    n_out = 0
    for a in range(start, stop):
        if not eligible[a]:
            continue
        n_touched = 0
        for position in range(source_indptr[a], source_indptr[a + 1]):
            # Unsigned indices: Numba then skips its negative-index wrap-around on every access
            # (10% of the kernel's time).
            order = np.uintp(source_orders[position])
            weight = order_weights[order]
            first = positions[position] + 1 if upper else order_indptr[order]
            for line in range(first, order_indptr[order + 1]):
                b = np.uintp(order_products[line])
                # Branch-free "remember b the first time": whether b was seen before is a coin
                # toss per line, and a mispredicted branch costs more than the unconditional
                # store (measured: 0.30 s against 0.44 s for all blocks at 200k orders).
                seen = count[b]
                touched[n_touched] = b
                n_touched += seen == 0
                count[b] = seen + 1
                decayed[b] += weight
        if n_out + n_touched > len(out_source):
            out_source = _grow(out_source, n_out + n_touched)
            out_target = _grow(out_target, n_out + n_touched)
            out_count = _grow(out_count, n_out + n_touched)
            out_decayed = _grow(out_decayed, n_out + n_touched)
        for i in range(n_touched):
            b = touched[i]
            if count[b] >= min_count and b != a and eligible[b]:
                out_source[n_out] = a
                out_target[n_out] = b
                out_count[n_out] = count[b]
                out_decayed[n_out] = decayed[b]
                n_out += 1
            count[b] = 0
            decayed[b] = 0.0
    return out_source[:n_out].copy(), out_target[:n_out].copy(), out_count[:n_out].copy(), out_decayed[:n_out].copy()


def _order_ages(orders: np.ndarray, ages: np.ndarray, n_rows: int) -> tuple[np.ndarray, bool]:
    """(age of each order, NaN for numbers without a line; whether every line of an order
    has the same age)."""
    age_of_order = np.full(n_rows, np.nan)
    for i in range(len(orders)):
        order = orders[i]
        if np.isnan(age_of_order[order]):
            age_of_order[order] = ages[i]
        elif age_of_order[order] != ages[i]:
            return age_of_order, False
    return age_of_order, True


def _distinct_rows(
    orders: np.ndarray, products: np.ndarray, n_rows: int, n_products: int
) -> tuple[np.ndarray, np.ndarray]:
    """CSR structure (indptr, indices) of the orders x products 0/1 matrix: duplicate lines
    merged, a row's products in the order of their first line.

    What ``scipy.sparse.csr_matrix((ones, (orders, products))).sum_duplicates()`` gives, up
    to the order within a row, in two linear passes instead of a sort: a counting sort by
    order, then duplicates dropped with a last-row-seen mark per product. (0.02 s against
    0.08 s for 2.6 million lines; nothing downstream depends on the order within a row.)
    """
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    for i in range(len(orders)):
        indptr[np.uintp(orders[i]) + 1] += 1
    for row in range(n_rows):
        indptr[row + 1] += indptr[row]
    fill = indptr[:-1].copy()
    indices = np.empty(len(orders), dtype=np.int32)
    for i in range(len(orders)):
        order = np.uintp(orders[i])
        slot = np.uintp(fill[order])
        indices[slot] = products[i]
        fill[order] = slot + 1
    last_row = np.full(n_products, -1, dtype=np.int64)
    kept = 0
    start = 0
    for row in range(n_rows):
        stop = indptr[row + 1]
        indptr[row] = kept
        for j in range(start, stop):
            product = np.uintp(indices[j])
            if last_row[product] != row:
                last_row[product] = row
                indices[kept] = product
                kept += 1
        start = stop
    indptr[n_rows] = kept
    return indptr, indices[:kept]  # a view: duplicates are few, a copy would cost more


def _product_totals(
    indptr: np.ndarray, indices: np.ndarray, order_weight: np.ndarray, n_products: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per product: the orders containing it, and the sum of those orders' weights (added in
    ascending order, as ``np.bincount(indices, weights=...)`` does, so bit-identical to it)."""
    counts = np.zeros(n_products, dtype=np.int64)
    decayed = np.zeros(n_products, dtype=np.float64)
    for row in range(len(indptr) - 1):
        weight = order_weight[row]
        for j in range(indptr[row], indptr[row + 1]):
            product = np.uintp(indices[j])
            counts[product] += 1
            decayed[product] += weight
    return counts, decayed


def _line_structures(
    order_indptr: np.ndarray,
    order_products: np.ndarray,
    source_indptr: np.ndarray,
    source_orders: np.ndarray,
    sorted_products: np.ndarray,
    positions: np.ndarray,
) -> None:
    """Fill the other two views of the orders x products structure (order_indptr,
    order_products: CSR, any order within a row): ``source_indptr``/``source_orders`` (products
    x orders, orders ascending in a row; what ``X.T.tocsr()`` gives), ``sorted_products`` (the
    same rows as ``order_products``, products ascending) and ``positions`` (for every products
    x orders entry, where that line is in ``sorted_products``). Two counting sorts (measured
    faster than sorting each row in place and one counting sort)."""
    n_rows = len(order_indptr) - 1
    n_products = len(source_indptr) - 1
    source_indptr[:] = 0
    for j in range(len(order_products)):
        source_indptr[np.uintp(order_products[j]) + 1] += 1
    for product in range(n_products):
        source_indptr[product + 1] += source_indptr[product]
    fill = source_indptr[:-1].copy()
    for row in range(n_rows):
        for j in range(order_indptr[row], order_indptr[row + 1]):
            product = np.uintp(order_products[j])
            slot = np.uintp(fill[product])
            source_orders[slot] = row
            fill[product] = slot + 1
    fill = order_indptr[:-1].astype(np.int64)
    for product in range(n_products):
        for j in range(source_indptr[product], source_indptr[product + 1]):
            row = np.uintp(source_orders[j])
            slot = np.uintp(fill[row])
            sorted_products[slot] = product
            positions[j] = slot
            fill[row] = slot + 1


def _mirror_fill(
    source: np.ndarray,
    target: np.ndarray,
    co_count: np.ndarray,
    decayed: np.ndarray,
    low: int,
    high: int,
    fill: np.ndarray,
    out_target: np.ndarray,
    out_count: np.ndarray,
    out_decayed: np.ndarray,
) -> None:
    """Write each pair a -> b of one part and its mirror b -> a at the next free slot of its
    source's group (``fill``: per source, the next free slot; a counting sort by source), for
    the sources in [low, high) only: threads that fill disjoint source ranges never write to
    the same slot."""
    for i in range(len(source)):
        a = np.uintp(source[i])
        b = np.uintp(target[i])
        if low <= a < high:
            slot = fill[a]
            out_target[slot] = b
            out_count[slot] = co_count[i]
            out_decayed[slot] = decayed[i]
            fill[a] = slot + 1
        if low <= b < high:
            slot = fill[b]
            out_target[slot] = a
            out_count[slot] = co_count[i]
            out_decayed[slot] = decayed[i]
            fill[b] = slot + 1


def _ranks_before(score: np.ndarray, target: np.ndarray, i: int, j: int) -> bool:
    """Pair i comes before pair j of the same source: higher score, then lower target."""
    return score[i] > score[j] or (score[i] == score[j] and target[i] < target[j])


def _top_k_order(source: np.ndarray, target: np.ndarray, score: np.ndarray, top_k: int) -> np.ndarray:
    """Indices of the ``top_k`` best pairs of each source, sorted by (source, -score, target).

    ``source`` must be grouped in ascending runs and ``score`` free of NaN. Per source, a
    sorted buffer of at most ``top_k`` entries takes a pair only if it beats the buffer's
    worst: with ~100 candidates per source and top_k 20 this is one comparison for most
    pairs, where a full sort of the block (what NumPy would do) sorts everything.
    """
    n = len(source)
    out = np.empty(n, dtype=np.int64)
    n_out = 0
    buffer = np.empty(top_k, dtype=np.int64)
    begin = 0
    while begin < n:
        end = begin
        while end < n and source[end] == source[begin]:
            end += 1
        size = 0
        for i in range(begin, end):
            if size == top_k:
                if not _ranks_before(score, target, i, buffer[size - 1]):
                    continue
                size -= 1
            # Insert i after every entry that ranks before it.
            slot = size
            while slot > 0:
                other = buffer[slot - 1]
                if _ranks_before(score, target, other, i):
                    break
                buffer[slot] = other
                slot -= 1
            buffer[slot] = i
            size += 1
        for j in range(size):
            out[n_out] = buffer[j]
            n_out += 1
        begin = end
    return out[:n_out].copy()


def _compiled(function):
    """``function`` compiled by Numba on first use, without the GIL, its machine code cached
    on disk (next to this file, or in NUMBA_CACHE_DIR). Where no cache directory is
    writable, Numba refuses ``cache=True`` at import: compile in every process instead."""
    try:
        return numba.njit(cache=True, nogil=True)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(cache=False, nogil=True)(function)


if numba is not None:
    _grow = _compiled(_grow)
    _ranks_before = _compiled(_ranks_before)
    count_block = _compiled(_count_block)
    top_k_order = _compiled(_top_k_order)
    order_ages = _compiled(_order_ages)
    distinct_rows = _compiled(_distinct_rows)
    product_totals = _compiled(_product_totals)
    line_structures = _compiled(_line_structures)
    mirror_fill = _compiled(_mirror_fill)
else:  # pragma: no cover
    count_block = top_k_order = order_ages = distinct_rows = product_totals = line_structures = mirror_fill = None
