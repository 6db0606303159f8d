"""backtest() on tiny histories whose hit@10 / recall@10 are computed by hand below."""

from __future__ import annotations

import math

import numpy as np
import pytest

from merchandising.mining import Exclusions, MiningOptions, backtest

# Training orders (before the cutoff), ages in days back from the cutoff:
#   o0 {0, 1} (1), o1 {0, 1} (1), o2 {0, 2} (100), o3 {3, 4} (1), o4 {0, 1, 3} (1)
# Orders per product: 0: 4, 1: 3, 2: 1, 3: 2, 4: 1, 5: 0 (never sold before the cutoff).
TRAIN = [(0, 0, 1), (0, 1, 1), (1, 0, 1), (1, 1, 1), (2, 0, 100), (2, 2, 100), (3, 3, 1), (3, 4, 1)]
TRAIN += [(4, 0, 1), (4, 1, 1), (4, 3, 1)]
# Test orders (after the cutoff). Cases = (order, product sold before) in orders of 2+ products:
#   t0 (0; others {2, 5}), (2; others {0, 5}) -- 5 is no case: never sold before
#   t1 (1; {4}), (4; {1});  t2 is a single product: no case;  t3 (2; {4}), (4; {2})
#   t4 (3; {4}), (4; {3})   => 8 cases.
TEST = [[0, 2, 5], [1, 4], [3], [2, 2, 4], [3, 4]]
N_PRODUCTS = 6


def run(options, exclusions=None, train=TRAIN, test=TEST, n_products=N_PRODUCTS):
    orders, products, ages = (np.array(column) for column in zip(*train, strict=True))
    return backtest(orders, products, ages.astype(float), n_products, test, options, exclusions)


def test_hand_computed_history():
    # Top-1 by lift (n_orders 5): 0 -> 1 (1.25; 0 -> 2 ties at 1.25, the lower index wins),
    # 1 -> 0, 2 -> 0, 3 -> 4 (2.5), 4 -> 3. Hits: (t0, 2) finds 0 (recall 1/2), (t4, 3) finds 4,
    # (t4, 4) finds 3: hit 3/8, recall (1/2 + 1 + 1) / 8.
    # co_count baseline, top-1: the same except 3 -> 0 (co_count 1 with 0, 1 and 4: lowest
    # index), so (t4, 3) misses: hit 2/8, recall 1.5/8.
    # Bestsellers: [0, 1, 3, 2, 4] (only five products were sold; 2 and 4 tie at 1 order),
    # minus p itself: every case finds an other product; recall 1/2 for the two t0 cases
    # (others {2, 5} and {0, 5}), 1 for the six others: hit 1, recall 7/8.
    result = run(MiningOptions(min_count=1, top_k=1, score="lift", half_life_days=math.inf))
    assert result == {
        "hit_at_10": 3 / 8,
        "recall_at_10": 5 / 16,
        "cases": 8,
        "baselines": {
            "bestsellers": {"hit_at_10": 1.0, "recall_at_10": 7 / 8},
            "co_count": {"hit_at_10": 2 / 8, "recall_at_10": 3 / 16},
        },
    }


def test_top_ten_and_misses_without_suggestions():
    # All suggestions, by co_count: 0: [1, 2, 3], 1: [0, 3], 2: [0], 3: [0, 1, 4], 4: [3].
    # Hits: (t0, 0) finds 2 (1/2), (t0, 2) finds 0 (1/2), (t4, 3) and (t4, 4): hit 4/8,
    # recall 3/8; (t1, 1), (t1, 4), (t3, 2), (t3, 4) find nothing.
    result = run(MiningOptions(min_count=1, score="co_count"))
    assert (result["hit_at_10"], result["recall_at_10"], result["cases"]) == (4 / 8, 3 / 8, 8)
    assert result["baselines"]["co_count"] == {"hit_at_10": 4 / 8, "recall_at_10": 3 / 8}
    # Look-back 50 days drops o2, the only order with product 2: it has no suggestion any
    # more, yet stays a case (it was sold before the cutoff) and misses. (t0, 0) now misses
    # too; (t4, 3) and (t4, 4) still hit: hit 2/8, recall 2/8. The bestsellers stay the
    # whole-history ones.
    result = run(MiningOptions(min_count=1, score="co_count", lookback_days=50))
    assert (result["hit_at_10"], result["recall_at_10"], result["cases"]) == (2 / 8, 2 / 8, 8)
    assert result["baselines"]["bestsellers"] == {"hit_at_10": 1.0, "recall_at_10": 7 / 8}


def test_bestsellers_exclude_the_product_itself():
    # Product i (0..11) is in 20 - i single-product orders: the bestsellers are 0..9, the 11th is 10.
    train = [(order, i, 1.0) for i in range(12) for order in range(100 * i, 100 * i + 20 - i)]
    # (t0, 0): 0 is a bestseller, so its list is 1..10, which finds 10. (t0, 10): 0..9 finds 0.
    # (t1, 5): 1..4, 6..10 misses 11. (t1, 11): 0..9 finds 5. (t2, 10) and (t2, 11) miss.
    test = [[0, 10], [5, 11], [10, 11]]
    result = run(MiningOptions(), train=train, test=test, n_products=12)
    assert result["cases"] == 6
    assert result["baselines"]["bestsellers"] == {"hit_at_10": 3 / 6, "recall_at_10": 3 / 6}
    # No pair was ever bought together: the mined rankings suggest nothing and miss every case.
    assert (result["hit_at_10"], result["recall_at_10"]) == (0.0, 0.0)
    assert result["baselines"]["co_count"] == {"hit_at_10": 0.0, "recall_at_10": 0.0}
    # Ineligible products are not shown as bestsellers either: without 0 the list is 1..10
    # and 11 comes in for a bestseller p: (t0, 0) finds 10, (t0, 10) misses 0, (t1, 5) finds
    # 11, (t1, 11) finds 5, (t2, 10) finds 11, (t2, 11) finds 10: hit 5/6.
    eligible = np.ones(12, dtype=bool)
    eligible[0] = False
    result = run(MiningOptions(), Exclusions(eligible=eligible), train=train, test=test, n_products=12)
    assert result["baselines"]["bestsellers"] == {"hit_at_10": 5 / 6, "recall_at_10": 5 / 6}


def test_recall_denominator_is_capped_at_ten():
    # One training order of 12 products: everything co-occurs with 0 once.
    train = [(0, i, 1.0) for i in range(12)]
    test = [list(range(12))]
    result = run(MiningOptions(min_count=1, score="co_count"), train=train, test=test, n_products=12)
    # Every product has 11 others, its 10 suggestions are all among them: recall 10 / min(11, 10).
    assert result == {
        "hit_at_10": 1.0,
        "recall_at_10": 1.0,
        "cases": 12,
        "baselines": {
            "bestsellers": {"hit_at_10": 1.0, "recall_at_10": 1.0},
            "co_count": {"hit_at_10": 1.0, "recall_at_10": 1.0},
        },
    }


def test_no_cases():
    result = run(MiningOptions(), test=[[1], []])
    assert result["cases"] == 0
    assert (result["hit_at_10"], result["recall_at_10"]) == (0.0, 0.0)
    assert result["baselines"]["bestsellers"] == {"hit_at_10": 0.0, "recall_at_10": 0.0}


def test_empty_training_history():
    result = backtest([], [], [], 3, [[0, 1]], MiningOptions())
    assert result == {
        "hit_at_10": 0.0,
        "recall_at_10": 0.0,
        "cases": 0,
        "baselines": {
            "bestsellers": {"hit_at_10": 0.0, "recall_at_10": 0.0},
            "co_count": {"hit_at_10": 0.0, "recall_at_10": 0.0},
        },
    }


def test_unknown_test_product_is_rejected():
    with pytest.raises(ValueError, match="test order products"):
        run(MiningOptions(), test=[[0, 6]])
