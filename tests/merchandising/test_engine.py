"""The mining engine against a brute-force reference (hypothesis) and hand-computed examples.

The reference is deliberately naive: Python sets per order, ``itertools.combinations`` per
basket, a Counter, and the metric formulas written out in plain Python. It implements the
rules of engine.py's docstring (duplicates once, look-back drops orders, the basket cap keeps
a big order in the per-product counts but out of the pair counts, exclusions only remove
pairs). No database is needed.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from merchandising.mining import (
    DEFAULT_SCORE,
    SCORES,
    Exclusions,
    MiningOptions,
    block_ranges,
    merge,
    mine_block,
    mine_pairs,
    mine_upper,
    pairs_from_upper,
    prepare,
    useful_threads,
)
from merchandising.mining import engine as mining_engine

ROOT = Path(__file__).resolve().parents[2]

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# For the properties that mine each example many times over (every block size, twice).
FEWER = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SHRINK = 30.0


# --- The reference ------------------------------------------------------------------------


def reference_score(name, co, na, nb, n, decayed, decayed_a, decayed_b, decayed_n) -> float:
    if name == "co_count":
        return float(co)
    if name == "confidence":
        return co / na
    if name == "lift":
        return co * n / (na * nb)
    if name == "jaccard":
        return co / (na + nb - co)
    if name == "cosine":
        return co / math.sqrt(float(na) * float(nb))
    if name == "npmi":
        support = co / n
        return 1.0 if support == 1 else math.log(co * n / (na * nb)) / -math.log(support)
    if name == "shrunk_confidence":
        return (co + SHRINK * (nb / n)) / (na + SHRINK)
    if name == "shrunk_lift":
        return (co + SHRINK) / (float(na) * float(nb) / n + SHRINK)
    if name == "decayed_co_count":
        return decayed
    if name == "shrunk_decayed_confidence":
        base_rate = decayed_b / decayed_n if decayed_n > 0 else 0.0
        return (decayed + SHRINK * base_rate) / (decayed_a + SHRINK)
    raise AssertionError(name)


def decay(age: float, half_life_days: float) -> float:
    return 1.0 if math.isinf(half_life_days) else 0.5 ** (age / half_life_days)


def reference(lines, n_products, options, exclusions=None):
    """Directed pairs as {(a, b): metrics dict} (all qualifying) and the top-k rows in order."""
    baskets: dict[int, set[int]] = defaultdict(set)
    age: dict[int, float] = {}
    for order, product, order_age in lines:
        if options.lookback_days is not None and order_age > options.lookback_days:
            continue
        baskets[order].add(product)
        age[order] = order_age
    n_orders = len(baskets)
    count = Counter(p for basket in baskets.values() for p in basket)
    weight = {order: decay(age[order], options.half_life_days) for order in baskets}
    decayed_count: dict[int, float] = defaultdict(float)
    for order, basket in baskets.items():
        for product in basket:
            decayed_count[product] += weight[order]
    decayed_n = sum(weight.values())
    co: Counter = Counter()
    decayed: dict[tuple[int, int], float] = defaultdict(float)
    for order, basket in baskets.items():
        if options.max_basket_size is not None and len(basket) > options.max_basket_size:
            continue
        for a, b in itertools.combinations(sorted(basket), 2):
            for pair in ((a, b), (b, a)):
                co[pair] += 1
                decayed[pair] += weight[order]

    def excluded(a, b):
        if exclusions is None:
            return False
        if exclusions.eligible is not None and not (exclusions.eligible[a] and exclusions.eligible[b]):
            return True
        if exclusions.family is not None and exclusions.family[a] >= 0 and exclusions.family[a] == exclusions.family[b]:
            return True
        if exclusions.category_pairs:
            ca, cb = int(exclusions.category[a]), int(exclusions.category[b])
            if ca >= 0 and cb >= 0 and ((ca, cb) in exclusions.category_pairs or (cb, ca) in exclusions.category_pairs):
                return True
        return False

    qualifying = {}
    for (a, b), c in co.items():
        if c < options.min_count or excluded(a, b):
            continue
        na, nb = count[a], count[b]
        metrics = {
            "co_count": c,
            "support": c / n_orders,
            "confidence": c / na,
            "lift": c * n_orders / (na * nb),
            "jaccard": c / (na + nb - c),
            "decayed_co_count": decayed[a, b],
        }
        if metrics["confidence"] < options.min_confidence or metrics["lift"] < options.min_lift:
            continue
        metrics["score"] = reference_score(
            options.score, c, na, nb, n_orders, decayed[a, b], decayed_count[a], decayed_count[b], decayed_n
        )
        qualifying[a, b] = metrics
    rows = []
    by_source = defaultdict(list)
    for (a, b), metrics in qualifying.items():
        by_source[a].append((-metrics["score"], b))
    for a in sorted(by_source):
        ranked = sorted(by_source[a])
        if options.top_k is not None:
            ranked = ranked[: options.top_k]
        rows.extend((a, b) for _, b in ranked)
    counts = [count[p] for p in range(n_products)]
    return qualifying, rows, n_orders, counts


def assert_matches_reference(result, lines, n_products, options, exclusions=None):
    qualifying, rows, n_orders, counts = reference(lines, n_products, options, exclusions)
    assert result.n_orders == n_orders
    assert result.n_products == n_products
    assert result.pairs_scored == len(qualifying)
    assert result.product_counts.tolist() == counts
    assert result.score_name == options.score
    got = list(zip(result.source.tolist(), result.target.tolist(), strict=True))
    assert len(got) == len(rows)
    assert [a for a, _ in got] == [a for a, _ in rows]
    for i, ((a, b), (ra, rb)) in enumerate(zip(got, rows, strict=True)):
        assert (a, b) in qualifying
        metrics = qualifying[a, b]
        assert result.co_count[i] == metrics["co_count"]
        for name in ("support", "confidence", "lift", "jaccard", "decayed_co_count", "score"):
            assert math.isclose(getattr(result, name)[i], metrics[name], rel_tol=1e-9, abs_tol=1e-12), name
        if (a, b) != (ra, rb):
            # Only a tie at float precision (a log computed by libm vs NumPy) may swap places.
            assert math.isclose(metrics["score"], qualifying[ra, rb]["score"], rel_tol=1e-12)
    # Sorted by (source, -score, target), with no duplicate pair.
    keys = [(a, -s, b) for (a, b), s in zip(got, result.score.tolist(), strict=True)]
    assert keys == sorted(keys)
    assert len(set(got)) == len(got)
    assert result.source.dtype == np.int32 and result.target.dtype == np.int32
    assert result.co_count.dtype == np.int64


def as_arrays(lines):
    if not lines:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    orders, products, ages = zip(*lines, strict=True)
    return np.array(orders, np.int64), np.array(products, np.int64), np.array(ages, np.float64)


def assert_same(left, right):
    for name in ("source", "target", "co_count", "support", "confidence", "lift", "jaccard", "decayed_co_count"):
        assert np.array_equal(getattr(left, name), getattr(right, name)), name
    assert np.array_equal(left.score, right.score)
    assert (left.n_orders, left.pairs_scored, left.sources) == (right.n_orders, right.pairs_scored, right.sources)


# --- Strategies ---------------------------------------------------------------------------


@st.composite
def histories(draw, max_products=10, max_orders=24):
    """(lines, n_products): random baskets with duplicate lines, gaps in order numbers,
    one age per order and shuffled line order."""
    n_products = draw(st.integers(1, max_products))
    # Few products and many orders often enough that pairs repeat, pass thresholds and
    # compete for the top-K.
    n_orders = draw(st.integers(0, max_orders) | st.just(max_orders))
    order_numbers = draw(st.lists(st.integers(0, 3 * max_orders), min_size=n_orders, max_size=n_orders, unique=True))
    lines = []
    for order in order_numbers:
        age = draw(st.sampled_from([0.0, 1.0, 30.0, 179.5, 180.0, 365.0, 1000.0, 1100.0]))
        products = draw(st.lists(st.integers(0, n_products - 1), min_size=1, max_size=7))
        lines.extend((order, product, age) for product in products)
    seed = draw(st.integers(0, 2**16))
    random.Random(seed).shuffle(lines)
    return lines, n_products


@st.composite
def mining_options(draw, n_products):
    return MiningOptions(
        min_count=draw(st.sampled_from([0, 1, 1, 2, 3])),
        min_confidence=draw(st.sampled_from([0.0, 0.0, 0.0, 0.25, 1 / 3, 0.5, 1.0])),
        min_lift=draw(st.sampled_from([0.0, 0.0, 0.0, 0.0, 1.0, 1.5, 4 / 3])),
        top_k=draw(st.sampled_from([None, 1, 2, 3, 20])),
        max_basket_size=draw(st.sampled_from([None, None, 50, 50, 1, 2, 3, 4])),
        lookback_days=draw(st.sampled_from([None, None, None, 0.0, 30.0, 180.0, 364.9])),
        half_life_days=draw(st.sampled_from([180.0, 30.0, 1.0, math.inf])),
        block_size=draw(st.integers(1, n_products + 1)),
        score=draw(st.sampled_from(sorted(SCORES))),
    )


@st.composite
def exclusions_for(draw, n_products):
    kinds = draw(st.sets(st.sampled_from(["eligible", "family", "category"])))
    eligible = family = category = None
    pairs: frozenset = frozenset()
    if "eligible" in kinds:
        eligible = np.array(draw(st.lists(st.booleans(), min_size=n_products, max_size=n_products)), dtype=bool)
    if "family" in kinds:
        family = np.array(draw(st.lists(st.integers(-1, 2), min_size=n_products, max_size=n_products)), np.int64)
    if "category" in kinds:
        category = np.array(draw(st.lists(st.integers(-1, 3), min_size=n_products, max_size=n_products)), np.int64)
        pairs = frozenset(draw(st.sets(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=4)))
    return Exclusions(eligible=eligible, family=family, category=category, category_pairs=pairs)


# --- Properties ---------------------------------------------------------------------------


@SETTINGS
@given(data=st.data())
def test_engine_matches_brute_force(data):
    lines, n_products = data.draw(histories())
    options = data.draw(mining_options(n_products))
    exclusions = data.draw(st.none() | exclusions_for(n_products))
    result = mine_pairs(*as_arrays(lines), n_products, options, exclusions)
    assert_matches_reference(result, lines, n_products, options, exclusions)


@FEWER
@given(data=st.data())
def test_dense_histories_rank_like_brute_force(data):
    """Few products, many orders: most pairs repeat, so the top-K cut and its ties (equal
    scores broken by target index) are exercised on nearly every example."""
    lines, n_products = data.draw(histories(max_products=5, max_orders=30))
    options = MiningOptions(
        min_count=1,
        top_k=data.draw(st.integers(1, 3)),
        score=data.draw(st.sampled_from(sorted(SCORES))),
        half_life_days=data.draw(st.sampled_from([30.0, math.inf])),
        block_size=data.draw(st.integers(1, n_products)),
    )
    exclusions = data.draw(st.none() | exclusions_for(n_products))
    result = mine_pairs(*as_arrays(lines), n_products, options, exclusions)
    assert_matches_reference(result, lines, n_products, options, exclusions)


@SETTINGS
@given(data=st.data())
def test_default_options_match_brute_force(data):
    lines, n_products = data.draw(histories(max_products=6, max_orders=30))
    options = MiningOptions(min_count=data.draw(st.integers(1, 2)))
    assert_matches_reference(mine_pairs(*as_arrays(lines), n_products, options), lines, n_products, options)


@FEWER
@given(data=st.data())
def test_result_does_not_depend_on_block_size_or_block_order(data):
    lines, n_products = data.draw(histories())
    options = data.draw(mining_options(n_products))
    exclusions = data.draw(st.none() | exclusions_for(n_products))
    arrays = as_arrays(lines)
    whole = mine_pairs(*arrays, n_products, replace(options, block_size=n_products), exclusions)
    for block_size in range(1, n_products + 1):
        assert_same(mine_pairs(*arrays, n_products, replace(options, block_size=block_size), exclusions), whole)
        # Blocks mined in threads, several at a time (however small the history): the same result.
        threshold, mining_engine.THREAD_PAIR_OCCURRENCES = mining_engine.THREAD_PAIR_OCCURRENCES, 1
        try:
            threaded = mine_pairs(*arrays, n_products, replace(options, block_size=block_size), exclusions, workers=3)
        finally:
            mining_engine.THREAD_PAIR_OCCURRENCES = threshold
        assert_same(threaded, whole)
    # The distributed path: blocks mined in any order, merged afterwards.
    prepared = prepare(*arrays, n_products, options)
    ranges = block_ranges(n_products, options.block_size)
    data.draw(st.randoms()).shuffle(ranges)
    assert_same(merge([mine_block(prepared, a, b, options, exclusions) for a, b in ranges]), whole)


NUMBA_KERNELS = (
    "_count_block",
    "_top_k_order",
    "_mirror_fill",
    "_distinct_rows",
    "_order_ages",
    "_product_totals",
    "_line_structures",
)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_numba_kernels_and_scipy_product_give_the_same_result(data):
    """Four ways to the same result, bit for bit: the Numba kernels (the default: order rows
    read as uint16), the same with int32 order rows (catalogs of more than NARROW_PRODUCTS
    products), the engine without Numba (SciPy's sparse-product kernel called directly, NumPy
    sorts), and SciPy's public ``A @ B`` (the path when that private kernel moved). Both
    through ``mine_pairs`` (each unordered pair counted once) and ``mine_block`` (every pair)."""
    lines, n_products = data.draw(histories())
    options = data.draw(mining_options(n_products))
    exclusions = data.draw(st.none() | exclusions_for(n_products))
    arrays = as_arrays(lines)

    def both_ways():
        prepared = prepare(*arrays, n_products, options)
        blocks = [
            mine_block(prepared, a, b, options, exclusions) for a, b in block_ranges(n_products, options.block_size)
        ]
        return mine_pairs(*arrays, n_products, options, exclusions), merge(blocks) if blocks else None

    fused, fused_blocks = both_ways()
    assert all(getattr(mining_engine, name) not in (None, mining_engine._UNLOADED) for name in NUMBA_KERNELS)
    assert prepare(*arrays, n_products, options).order_products.dtype == np.uint16
    saved = {name: getattr(mining_engine, name) for name in (*NUMBA_KERNELS, "_csr_matmat", "NARROW_PRODUCTS")}
    try:
        mining_engine.NARROW_PRODUCTS = 0
        assert prepare(*arrays, n_products, options).order_products.dtype == np.int32
        wide, wide_blocks = both_ways()
        for name in NUMBA_KERNELS:
            setattr(mining_engine, name, None)
        scipy_direct, scipy_direct_blocks = both_ways()
        mining_engine._csr_matmat = None
        scipy_public, scipy_public_blocks = both_ways()
    finally:
        for name, kernel in saved.items():
            setattr(mining_engine, name, kernel)
    others = (fused_blocks, wide, wide_blocks, scipy_direct, scipy_direct_blocks, scipy_public, scipy_public_blocks)
    for result in others:
        if result is not None:
            assert_same(fused, result)
    assert_matches_reference(scipy_direct, lines, n_products, options, exclusions)


@FEWER
@given(data=st.data())
def test_line_order_and_duplicates_do_not_matter(data):
    lines, n_products = data.draw(histories())
    options = data.draw(mining_options(n_products))
    shuffled = lines + lines[: len(lines) // 2]
    data.draw(st.randoms()).shuffle(shuffled)
    expected = mine_pairs(*as_arrays(lines), n_products, options)
    assert_same(mine_pairs(*as_arrays(shuffled), n_products, options), expected)


# --- Hand-computed examples ---------------------------------------------------------------

# Orders (age in days): 0 {0, 1, 2} (1), 1 {0, 1} (2), 2 {0, 1, 3} (3), 3 {0} (0).
# Orders per product: 0: 4, 1: 3, 2: 1, 3: 1; n_orders 4.
EXAMPLE = [(0, 0, 1), (0, 1, 1), (0, 2, 1), (1, 0, 2), (1, 1, 2), (1, 1, 2), (2, 0, 3), (2, 1, 3), (2, 3, 3), (3, 0, 0)]


def example(options, exclusions=None, lines=EXAMPLE, n_products=5):
    return mine_pairs(*as_arrays(lines), n_products, options, exclusions)


def rows(result):
    return list(zip(result.source.tolist(), result.target.tolist(), strict=True))


def test_hand_computed_metrics():
    result = example(MiningOptions(min_count=1, half_life_days=1.0, score="co_count"))
    assert result.n_orders == 4
    assert result.n_lines == 9  # the duplicate (1, 1) line counts once
    assert result.product_counts.tolist() == [4, 3, 1, 1, 0]
    assert result.pairs_scored == 10
    assert rows(result) == [(0, 1), (0, 2), (0, 3), (1, 0), (1, 2), (1, 3), (2, 0), (2, 1), (3, 0), (3, 1)]
    first = {name: getattr(result, name)[0] for name in ("co_count", "support", "confidence", "lift", "jaccard")}
    # 0 -> 1: in orders 0, 1, 2 of ages 1, 2, 3; half-life 1 day: 1/2 + 1/4 + 1/8.
    assert first == {"co_count": 3, "support": 0.75, "confidence": 0.75, "lift": 1.0, "jaccard": 0.75}
    assert result.decayed_co_count[0] == 0.875
    # 1 -> 2: together once (order 0, age 1): confidence 1/3, lift 1 * 4 / (3 * 1).
    i = rows(result).index((1, 2))
    assert result.co_count[i] == 1
    assert result.confidence[i] == 1 / 3
    assert result.lift[i] == 4 / 3
    assert result.jaccard[i] == 1 / 3
    assert result.decayed_co_count[i] == 0.5
    # 2 -> 1: the other direction of the same pair: confidence 1/1.
    assert result.confidence[rows(result).index((2, 1))] == 1.0


def test_hand_computed_thresholds_and_top_k():
    by_count = MiningOptions(min_count=1, score="co_count")
    assert rows(example(replace(by_count, min_count=2))) == [(0, 1), (1, 0)]
    # confidence >= 0.5 drops 0 -> 2, 0 -> 3 (1/4) and 1 -> 2, 1 -> 3 (1/3).
    assert rows(example(replace(by_count, min_confidence=0.5))) == [(0, 1), (1, 0), (2, 0), (2, 1), (3, 0), (3, 1)]
    # lift > 1 only between 1 and 2, 1 and 3 (4/3); min_lift is inclusive.
    assert rows(example(replace(by_count, min_lift=4 / 3))) == [(1, 2), (1, 3), (2, 1), (3, 1)]
    # top-1 by lift: 1 -> 2 and 1 -> 3 tie at 4/3, the lower target index wins.
    assert rows(example(MiningOptions(min_count=1, top_k=1, score="lift"))) == [(0, 1), (1, 2), (2, 1), (3, 1)]
    assert example(MiningOptions(min_count=1, top_k=1, score="lift")).pairs_scored == 10


def test_hand_computed_lookback_and_basket_cap():
    # Look-back 2 days drops order 2 (age 3) everywhere: 3 orders, product 3 never sold.
    result = example(MiningOptions(min_count=1, lookback_days=2.0, score="co_count"))
    assert result.n_orders == 3
    assert result.product_counts.tolist() == [3, 2, 1, 0, 0]
    assert rows(result) == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
    # Cap 2: the 3-product orders 0 and 2 add no pairs but still count as orders of their products.
    result = example(MiningOptions(min_count=1, max_basket_size=2, score="co_count"))
    assert rows(result) == [(0, 1), (1, 0)]
    assert result.product_counts.tolist() == [4, 3, 1, 1, 0]
    assert (result.co_count.tolist(), result.confidence.tolist(), result.lift.tolist()) == (
        [1, 1],
        [1 / 4, 1 / 3],
        [1 / 3, 1 / 3],
    )


def test_hand_computed_exclusions():
    base = MiningOptions(min_count=1, score="co_count")
    eligible = np.array([True, True, False, True, True])
    assert rows(example(base, Exclusions(eligible=eligible))) == [(0, 1), (0, 3), (1, 0), (1, 3), (3, 0), (3, 1)]
    # 0 and 1 are pack variants of one product; -1 never groups.
    family = np.array([7, 7, -1, -1, -1])
    without_0_1 = [(0, 2), (0, 3), (1, 2), (1, 3), (2, 0), (2, 1), (3, 0), (3, 1)]
    assert rows(example(base, Exclusions(family=family))) == without_0_1
    assert len(example(base, Exclusions(family=np.array([-1, -1, -1, -1, -1])))) == 10
    category = np.array([1, 2, 2, 3, -1])
    # (2, 2): never within category 2 (1 -> 2); (3, 1) unordered: 0 <-> 3 in both directions.
    only = example(base, Exclusions(category=category, category_pairs=frozenset({(2, 2), (3, 1)})))
    assert rows(only) == [(0, 1), (0, 2), (1, 0), (1, 3), (2, 0), (3, 1)]
    # Same category is not excluded implicitly.
    assert len(example(base, Exclusions(category=category))) == 10


def test_hand_computed_scores():
    # 1 -> 2: co_count 1, orders with 1: 3, with 2: 1, n_orders 4; shrink 30 pseudo-orders.
    def score_of(name, **kwargs):
        result = example(MiningOptions(min_count=1, score=name, **kwargs))
        return result.score[rows(result).index((1, 2))]

    assert mining_engine.SHRINK_ORDERS == 30.0
    assert score_of("co_count") == 1.0
    assert score_of("confidence") == 1 / 3
    assert score_of("lift") == 4 / 3
    assert score_of("jaccard") == 1 / 3
    assert score_of("cosine") == 1 / math.sqrt(3)
    assert score_of("npmi") == math.log(4 / 3) / -math.log(1 / 4)
    assert score_of("shrunk_confidence") == (1 + 30 * (1 / 4)) / (3 + 30)  # towards P(2) = 1/4
    assert score_of("shrunk_lift") == (1 + 30) / (3 * 1 / 4 + 30)  # towards lift 1
    # Decayed with a half-life of 1 day: order ages 1, 2, 3, 0 weigh 1/2, 1/4, 1/8, 1.
    # 1 -> 2 only in order 0 (1/2); orders with 1 weigh 1/2 + 1/4 + 1/8; with 2: 1/2; all: 15/8.
    assert score_of("decayed_co_count", half_life_days=1.0) == 0.5
    assert score_of("shrunk_decayed_confidence", half_life_days=1.0) == (0.5 + 30 * (0.5 / (15 / 8))) / (7 / 8 + 30)
    # Every decay weight underflows to 0 (ages of thousands of half-lives): no recent evidence,
    # a score of 0 everywhere, no division by zero.
    old = [(order, product, 5000.0) for order, product, _ in EXAMPLE]
    result = mine_pairs(*as_arrays(old), 5, MiningOptions(min_count=1, half_life_days=1.0))
    assert result.decayed_co_count.tolist() == [0.0] * 10
    assert result.score.tolist() == [0.0] * 10


def test_decay_disabled_equals_count():
    result = example(MiningOptions(min_count=1, half_life_days=math.inf))
    assert result.decayed_co_count.tolist() == result.co_count.astype(float).tolist()


def test_empty_and_degenerate_inputs():
    empty = mine_pairs([], [], [], 3, MiningOptions())
    assert (len(empty), empty.n_orders, empty.pairs_scored, empty.product_counts.tolist()) == (0, 0, 0, [0, 0, 0])
    none = mine_pairs([], [], [], 0, MiningOptions())
    assert (len(none), none.n_products) == (0, 0)
    singles = mine_pairs([0, 1, 2], [0, 0, 1], [0, 0, 0], 2, MiningOptions(min_count=1))
    assert (len(singles), singles.n_orders, singles.product_counts.tolist()) == (0, 3, [2, 1])


@pytest.mark.parametrize(
    ("lines", "n_products", "message"),
    [
        ([(0, 3, 0)], 3, "product_idx"),
        ([(-1, 0, 0)], 3, "order_idx"),
        ([(0, 0, -1)], 3, "order_age_days"),
        ([(0, 0, math.nan)], 3, "order_age_days"),
        ([(0, 0, 1), (0, 1, 2)], 3, "same on every line"),
    ],
)
def test_bad_input_is_rejected(lines, n_products, message):
    with pytest.raises(ValueError, match=message):
        mine_pairs(*as_arrays(lines), n_products, MiningOptions())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_count": -1},
        {"min_confidence": 1.5},
        {"min_lift": -1},
        {"top_k": 0},
        {"max_basket_size": 0},
        {"lookback_days": -1},
        {"half_life_days": 0},
        {"block_size": 0},
        {"score": "taste"},
        {"top_k": True},
    ],
)
def test_bad_options_are_rejected(kwargs):
    with pytest.raises(ValueError):
        MiningOptions(**kwargs)


def test_blocks_must_tile_and_come_from_one_mining():
    options = MiningOptions(min_count=1, block_size=2)
    prepared = prepare(*as_arrays(EXAMPLE), 5, options)
    blocks = [mine_block(prepared, a, b, options) for a, b in block_ranges(5, 2)]
    assert block_ranges(5, 2) == [(0, 2), (2, 4), (4, 5)]
    assert_same(merge(blocks), example(options))
    with pytest.raises(ValueError, match="tile"):
        merge(blocks[:2])
    with pytest.raises(ValueError, match="tile"):
        merge([*blocks, blocks[0]])
    other = prepare(*as_arrays(EXAMPLE[:3]), 5, options)
    with pytest.raises(ValueError, match="different minings"):
        merge([mine_block(other, 0, 2, options), *blocks[1:]])
    with pytest.raises(ValueError, match="prepare"):
        mine_block(prepared, 0, 2, replace(options, half_life_days=10.0))
    with pytest.raises(ValueError, match="inside"):
        mine_block(prepared, 4, 6, options)


def test_upper_parts_must_tile_and_are_consumed():
    options = MiningOptions(min_count=1, block_size=2)
    prepared = prepare(*as_arrays(EXAMPLE), 5, options)
    parts = [mine_upper(prepared, a, b, options) for a, b in block_ranges(5, 2)]
    # Each unordered pair once, at its smaller product: (0,1) (0,2) (0,3) (1,2) (1,3), from the
    # blocks [0, 2) and [2, 4); none from [4, 5).
    assert [list(zip(p.source.tolist(), p.target.tolist(), strict=True)) for p in parts] == [
        [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)],
        [],
        [],
    ]
    assert parts[0].co_count.tolist() == [3, 1, 1, 1, 1]
    # The same result as every block counted fully (mine_block), whatever order the parts come in.
    blocks = merge([mine_block(prepared, a, b, options) for a, b in block_ranges(5, 2)])
    for order in (parts, parts[::-1]):
        given_parts = list(order)
        assert_same(pairs_from_upper(prepared, given_parts, options, workers=2), blocks)
        assert given_parts == []
    with pytest.raises(ValueError, match="tile"):
        pairs_from_upper(prepared, parts[:2], options)
    with pytest.raises(ValueError, match="tile"):
        pairs_from_upper(prepared, [*parts, parts[0]], options)
    with pytest.raises(ValueError, match="prepare"):
        mine_upper(prepared, 0, 2, replace(options, max_basket_size=3))


def test_a_small_history_takes_fewer_threads(monkeypatch):
    prepared = prepare(*as_arrays(EXAMPLE), 5, MiningOptions())
    assert prepared.pair_occurrences == 14  # orders of 3, 2 and 3 distinct products: 6 + 2 + 6

    assert [useful_threads(prepared, workers) for workers in (1, 2, 4)] == [1, 1, 1]
    monkeypatch.setattr(mining_engine, "THREAD_PAIR_OCCURRENCES", 4)
    assert [useful_threads(prepared, workers) for workers in (1, 2, 4)] == [1, 2, 3]
    monkeypatch.setattr(mining_engine, "THREAD_PAIR_OCCURRENCES", 15)
    assert useful_threads(prepared, 2) == 1


def test_workers_must_be_a_positive_integer():
    for workers in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="workers must be an integer >= 1"):
            mine_pairs([0, 0], [0, 1], [0.0, 0.0], 2, workers=workers)


def test_exclusion_arrays_are_checked():
    with pytest.raises(ValueError, match="eligible"):
        example(MiningOptions(), Exclusions(eligible=np.ones(4, dtype=bool)))
    with pytest.raises(ValueError, match="category"):
        example(MiningOptions(), Exclusions(category_pairs=frozenset({(1, 2)})))


def test_default_score_is_a_known_score():
    assert MiningOptions().score == DEFAULT_SCORE
    assert DEFAULT_SCORE in SCORES


def test_kernels_compile_where_no_cache_directory_is_writable(monkeypatch):
    """Numba refuses cache=True when neither the code's directory nor a user cache directory
    is writable: the kernels are then compiled without a cache instead of failing the import."""
    from merchandising.mining import kernel

    real_njit = kernel.numba.njit
    calls = []

    def njit(*args, **options):
        if "cache" in options:  # the kernel module's call (Numba calls njit itself too)
            calls.append(options["cache"])
            if options["cache"]:
                raise RuntimeError("cannot cache function '_product_totals': no locator available for file 'kernel.py'")
        return real_njit(*args, **options)

    monkeypatch.setattr(kernel.numba, "njit", njit)
    product_totals = kernel._compiled(kernel._product_totals)
    counts, decayed = product_totals(np.array([0, 2, 3]), np.array([1, 0, 1], dtype=np.int32), np.array([1.0, 0.5]), 2)
    assert calls == [True, False]
    assert counts.tolist() == [1, 2]
    assert decayed.tolist() == [1.0, 1.5]


def test_numba_is_imported_only_by_a_process_that_mines():
    """Importing Numba costs about 100 MB per process: the web workers, which import the
    services (and so the engine) but never mine, must not pay it."""
    code = (
        "import sys, django, numpy as np; django.setup();"
        "import merchandising.services.recompute, merchandising.mining;"
        "assert 'numba' not in sys.modules, 'numba imported at start-up';"
        "from merchandising.mining import MiningOptions, mine_pairs;"
        "mine_pairs(np.array([0, 0]), np.array([0, 1]), np.zeros(2), 2, MiningOptions(min_count=1));"
        "assert 'numba' in sys.modules; print('ok')"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
