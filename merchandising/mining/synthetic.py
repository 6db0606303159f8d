"""A realistic synthetic B2B order history, for choosing the default score and benchmarking.

Pure NumPy, deterministic for a given seed, vectorised (10M lines in a few seconds). What
makes it realistic enough to choose a ranking on, rather than a toy:

- power-law product popularity (Zipf exponent ~1), so most products are rare;
- a product life cycle: part of the range is launched or discontinued during the history,
  and popularity drifts, so old co-counts go stale;
- a few consumables ("bestsellers": gloves, tape, screws) that land in a large share of
  all baskets regardless of what else is in them;
- planted complementary pairs: an anchor product pulls in each of its 1-4 complements with
  its own probability (a drill pulls in bits and batteries), complements skewed towards
  less popular products (accessories);
- customer habits: every account has favourites it re-buys, a genuine but account-local
  association that a global ranking should not over-learn;
- basket sizes from a lognormal (median a handful of lines, long tail) plus 0.5% project /
  stock-up orders of 50-200 lines, and duplicate lines (the engine counts them once).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class History:
    """Order lines (``order_idx``, ``product_idx``, ``order_day`` in [0, days)) with orders
    numbered in date order, plus what was planted: ``anchor -> complement`` pairs."""

    order_idx: np.ndarray  # int32
    product_idx: np.ndarray  # int32
    order_day: np.ndarray  # float64, day of the order
    n_orders: int
    n_products: int
    days: int
    planted_source: np.ndarray  # int32 anchors
    planted_target: np.ndarray  # int32 their complements
    bestsellers: np.ndarray  # int32

    def split(self, cutoff_day: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
        """Training lines before ``cutoff_day`` (ages counted back from the cutoff) and the
        test orders from the cutoff on, as ``backtest`` wants them."""
        train = self.order_day < cutoff_day
        test_lines = ~train
        order_t = self.order_idx[test_lines]
        product_t = self.product_idx[test_lines]
        bounds = np.flatnonzero(np.diff(order_t)) + 1
        test_orders = np.split(product_t, bounds) if len(order_t) else []
        return (
            self.order_idx[train],
            self.product_idx[train],
            cutoff_day - self.order_day[train],
            test_orders,
        )


def generate(
    n_orders: int,
    n_products: int,
    *,
    seed: int = 0,
    days: int = 3 * 365,
    mean_basket: float = 13.0,
    n_accounts: int | None = None,
    bestseller_rates: tuple[float, ...] = (0.12, 0.09, 0.07, 0.06, 0.05, 0.04, 0.04, 0.03, 0.03, 0.02),
    anchor_share: float = 0.3,
    favourite_share: float = 0.25,
    zipf: float = 1.0,
    head_offset: float = 30.0,
) -> History:
    """A history of ``n_orders`` orders over ``n_products`` products (about ``mean_basket``
    lines per order on average, duplicates included)."""
    rng = np.random.default_rng(seed)
    n_accounts = n_accounts or max(10, n_orders // 60)

    # Popularity: Zipf over a random ranking, and a life cycle in 12 periods.
    rank = rng.permutation(n_products)
    popularity = 1.0 / (rank + head_offset) ** zipf
    n_periods = 12
    launch = np.where(rng.random(n_products) < 0.2, rng.integers(0, n_periods, n_products), 0)
    end = np.where(rng.random(n_products) < 0.15, rng.integers(0, n_periods, n_products) + 1, n_periods)
    end = np.maximum(end, launch + 1)
    trend = rng.normal(0.0, 0.08, n_products)
    periods = np.arange(n_periods)
    alive = (periods[None, :] >= launch[:, None]) & (periods[None, :] < end[:, None])
    weight = popularity[:, None] * np.exp(trend[:, None] * (periods[None, :] - n_periods / 2)) * alive
    cdf = np.cumsum(weight, axis=0)
    cdf /= cdf[-1]

    bestsellers = np.argsort(rank)[: len(bestseller_rates)].astype(np.int32)
    # Bestsellers are drawn by their own rates below, not from the popularity draw.
    order_day = np.sort(rng.random(n_orders) ** 0.8 * days)
    order_period = np.minimum((order_day / days * n_periods).astype(np.int64), n_periods - 1)
    account = rng.integers(0, n_accounts, n_orders)

    # Base lines: lognormal basket sizes (plus rare project orders), products by popularity.
    # Calibrated so that lines per order (complements, consumables, projects) average mean_basket.
    base_mean = max((mean_basket - 0.005 * 125 - sum(bestseller_rates)) / (1 + anchor_share * 0.75), 1.0)
    size = np.maximum(1, np.rint(rng.lognormal(np.log(base_mean) - 0.32, 0.8, n_orders))).astype(np.int64)
    project = rng.random(n_orders) < 0.005
    size[project] = rng.integers(50, 200, int(project.sum()))
    line_order = np.repeat(np.arange(n_orders), size)
    line_period = order_period[line_order]
    draw = rng.random(len(line_order))
    line_product = np.empty(len(line_order), dtype=np.int64)
    for period in range(n_periods):
        in_period = line_period == period
        line_product[in_period] = np.searchsorted(cdf[:, period], draw[in_period], side="right")
    line_product = np.minimum(line_product, n_products - 1)

    # Habits: a share of the lines are one of the account's favourites instead.
    n_fav = 12
    favourites = rng.choice(n_products, size=(n_accounts, n_fav), p=popularity / popularity.sum())
    habitual = rng.random(len(line_order)) < favourite_share
    line_product[habitual] = favourites[account[line_order[habitual]], rng.integers(0, n_fav, int(habitual.sum()))]

    # Planted complements: anchors pull in 1-4 complements, mostly less popular products.
    anchors = np.flatnonzero(rng.random(n_products) < anchor_share)
    n_comp = rng.integers(1, 5, len(anchors))
    comp_source = np.repeat(anchors, n_comp)
    accessory_p = popularity**0.5
    comp_target = rng.choice(n_products, size=len(comp_source), p=accessory_p / accessory_p.sum())
    distinct = comp_target != comp_source
    comp_source, comp_target = comp_source[distinct], comp_target[distinct]
    comp_prob = rng.uniform(0.1, 0.5, len(comp_source))
    by_anchor = np.argsort(comp_source, kind="stable")
    comp_source, comp_target, comp_prob = comp_source[by_anchor], comp_target[by_anchor], comp_prob[by_anchor]
    comp_start = np.searchsorted(comp_source, np.arange(n_products), side="left")
    comp_count = np.searchsorted(comp_source, np.arange(n_products), side="right") - comp_start
    per_line = comp_count[line_product]
    parent = np.repeat(np.arange(len(line_product)), per_line)
    offset = np.arange(len(parent)) - np.repeat(np.cumsum(per_line) - per_line, per_line)
    which = comp_start[line_product[parent]] + offset
    pulled = rng.random(len(parent)) < comp_prob[which]
    add_order = line_order[parent[pulled]]
    add_product = comp_target[which[pulled]]

    # Consumables: each bestseller lands in a basket at its own rate.
    rates = np.asarray(bestseller_rates)
    chosen = rng.random((n_orders, len(rates))) < rates[None, :]
    best_order, best_which = np.nonzero(chosen)

    order_idx = np.concatenate([line_order, add_order, best_order])
    product_idx = np.concatenate([line_product, add_product, bestsellers[best_which]])
    by_order = np.argsort(order_idx, kind="stable")
    order_idx = order_idx[by_order].astype(np.int32)
    product_idx = product_idx[by_order].astype(np.int32)
    return History(
        order_idx=order_idx,
        product_idx=product_idx,
        order_day=order_day[order_idx],
        n_orders=n_orders,
        n_products=n_products,
        days=days,
        planted_source=comp_source.astype(np.int32),
        planted_target=comp_target.astype(np.int32),
        bestsellers=bestsellers,
    )
