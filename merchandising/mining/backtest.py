"""Backtest of a mining configuration: would its suggestions have predicted later orders?

Pure NumPy/SciPy, no Django import. The caller splits the history at a cutoff: the lines
before it are mined exactly as a real run would (``mine_pairs`` with the given options and
exclusions), the orders after it are the test.

Cases: every test order with 2+ distinct products, and each product p of it that was sold
before the cutoff (anywhere in the training lines, whatever the look-back, so that every
configuration is judged on the same cases). For a case, take p's top 10 suggestions by
score (fewer if ``top_k`` < 10 or fewer qualify):

- hit@10 = 1 if some other product of the order is among them, else 0;
- recall@10 = (other products found) / min(number of other products, 10);
- a product without suggestions is a miss (0, 0).

Both are averaged over all cases. The same cases are scored for two baselines:

- "bestsellers": the 10 products in the most training orders (ties: lower index first),
  excluding p itself (then the 11th comes in), restricted to eligible products when
  ``exclusions.eligible`` is given: what a shop shows with no mining at all;
- "co_count": the same mining (same thresholds, exclusions, top_k) ranked by co_count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from merchandising.mining.engine import Exclusions, MiningOptions, PairResult, mine_pairs

K = 10


def backtest(
    train_order_idx: Sequence[int] | np.ndarray,
    train_product_idx: Sequence[int] | np.ndarray,
    train_order_age_days: Sequence[float] | np.ndarray,
    n_products: int,
    test_orders: Sequence[Sequence[int] | np.ndarray],
    options: MiningOptions | None = None,
    exclusions: Exclusions | None = None,
) -> dict:
    """Score ``options`` (default ``MiningOptions()``) against the test orders.

    Training arrays are those of ``mine_pairs`` (ages counted back from the cutoff);
    ``test_orders`` holds one array of product indices per order after the cutoff (duplicates
    count once). Returns ``{"hit_at_10", "recall_at_10", "cases", "baselines":
    {"bestsellers": {"hit_at_10", "recall_at_10"}, "co_count": {...}}}``; with no case at
    all, the rates are 0.0.
    """
    options = options or MiningOptions()
    train_orders = np.asarray(train_order_idx)
    train_products = np.asarray(train_product_idx)
    if not train_orders.size:  # np.asarray([]) is float64
        train_orders, train_products = train_orders.astype(np.int64), train_products.astype(np.int64)
    mined = mine_pairs(train_orders, train_products, train_order_age_days, n_products, options, exclusions)
    by_count = mined
    if options.score != "co_count":
        by_count = mine_pairs(
            train_orders,
            train_products,
            train_order_age_days,
            n_products,
            replace(options, score="co_count"),
            exclusions,
        )

    # Popularity over the whole training history (not the look-back window) so every
    # configuration is judged on the same cases against the same bestsellers.
    order_product = sp.csr_matrix(
        (np.ones(len(train_orders), dtype=np.int32), (train_orders, train_products)),
        shape=(int(train_orders.max()) + 1 if len(train_orders) else 0, n_products),
    )
    order_product.sum_duplicates()
    sold_counts = np.bincount(order_product.indices, minlength=n_products)

    test = _test_matrix(test_orders, n_products)
    case_order, case_product, denominator = _cases(test, sold_counts > 0)
    eligible = None if exclusions is None or exclusions.eligible is None else np.asarray(exclusions.eligible)
    ranked = {
        "configured": _top_lists(mined, n_products),
        "co_count": _top_lists(by_count, n_products),
        "bestsellers": _bestseller_lists(sold_counts, eligible),
    }
    rates = {name: _rates(test, top, case_order, case_product, denominator) for name, top in ranked.items()}
    hit, recall = rates["configured"]
    return {
        "hit_at_10": hit,
        "recall_at_10": recall,
        "cases": len(case_order),
        "baselines": {
            name: {"hit_at_10": rates[name][0], "recall_at_10": rates[name][1]} for name in ("bestsellers", "co_count")
        },
    }


def _test_matrix(test_orders: Sequence[Sequence[int] | np.ndarray], n_products: int) -> sp.csr_matrix:
    lengths = np.array([len(order) for order in test_orders], dtype=np.int64)
    products = (
        np.concatenate([np.asarray(order, dtype=np.int64) for order in test_orders])
        if len(test_orders)
        else np.zeros(0, dtype=np.int64)
    )
    if len(products) and (products.min() < 0 or products.max() >= n_products):
        raise ValueError(f"test order products must be in [0, {n_products})")
    rows = np.repeat(np.arange(len(test_orders)), lengths)
    test = sp.csr_matrix(
        (np.ones(len(products), dtype=np.int32), (rows, products)), shape=(len(test_orders), n_products)
    )
    test.sum_duplicates()
    test.data[:] = 1
    return test


def _cases(test: sp.csr_matrix, sold: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, product) of every case, in order, and its recall denominator."""
    size = np.diff(test.indptr)
    order = np.repeat(np.arange(test.shape[0]), size)
    product = test.indices
    keep = (size[order] >= 2) & sold[product]
    order, product = order[keep], product[keep]
    return order, product, np.minimum(size[order] - 1, K)


def _top_lists(result: PairResult, n_products: int) -> np.ndarray:
    """int64[n_products, K]: row p holds p's first K targets in rank order, -1 padded."""
    top = np.full((n_products, K), -1, dtype=np.int64)
    rank = np.arange(len(result.source)) - np.searchsorted(result.source, result.source, side="left")
    keep = rank < K
    top[result.source[keep], rank[keep]] = result.target[keep]
    return top


def _bestseller_lists(sold_counts: np.ndarray, eligible: np.ndarray | None) -> np.ndarray:
    """Row p: the K best-selling products other than p (so p in the top K lets the K+1th in)."""
    n_products = len(sold_counts)
    candidates = np.flatnonzero(sold_counts > 0)
    if eligible is not None:
        candidates = candidates[eligible[candidates]]
    # Most orders first, lower index first among equals (stable sort on the ascending index).
    best = candidates[np.argsort(-sold_counts[candidates], kind="stable")][: K + 1]
    top = np.full((n_products, K), -1, dtype=np.int64)
    head = best[:K]
    top[:, : len(head)] = head
    for p in head:
        others = best[best != p]
        top[p] = -1
        top[p, : len(others[:K])] = others[:K]
    return top


def _rates(
    test: sp.csr_matrix,
    top: np.ndarray,
    case_order: np.ndarray,
    case_product: np.ndarray,
    denominator: np.ndarray,
) -> tuple[float, float]:
    if not len(case_order):
        return 0.0, 0.0
    # A case's suggestions found in its order: look (order, suggestion) up among the test
    # lines, whose (row, column) keys are sorted in a canonical CSR matrix. p never suggests
    # itself (nor do the bestseller lists), so what is found is always an "other product".
    n_products = test.shape[1]
    line_keys = np.repeat(np.arange(test.shape[0], dtype=np.int64), np.diff(test.indptr)) * n_products + test.indices
    suggested = top[case_product]  # (cases, K)
    keys = case_order[:, None].astype(np.int64) * n_products + suggested
    position = np.searchsorted(line_keys, keys).clip(0, max(len(line_keys) - 1, 0))
    found = (suggested >= 0) & (line_keys[position] == keys)
    hits = found.sum(axis=1)
    return float(np.mean(hits > 0)), float(np.mean(hits / denominator))
