"""The backtest of a mining configuration on the stored order history (see
merchandising/mining/backtest.py for the metrics)."""

from __future__ import annotations

import datetime
from dataclasses import replace
from typing import Any

import numpy as np

from merchandising.mining import backtest
from merchandising.selectors import exclusion_arrays, order_history_around
from merchandising.services.recompute import engine_exclusions
from merchandising.services.runs import mining_options, mining_parameters


def mining_backtest(*, cutoff: datetime.date, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Mine the orders before ``cutoff`` with the stored settings (plus ``overrides``) and
    score the suggestions against the orders from the cutoff on.

    Returns the engine's ``{"hit_at_10", "recall_at_10", "cases", "baselines"}`` plus, under
    ``"context"``, the parameters and the sizes of the two halves (not part of ``--json``).
    Reads only; nothing is stored.
    """
    parameters = mining_parameters(overrides=overrides, before=cutoff)
    lookback = parameters["lookback_days"] or None
    # The look-back is applied by the engine here: a case counts whenever its product was sold
    # before the cutoff at all, so that every configuration is judged on the same cases.
    options = replace(mining_options(parameters), lookback_days=lookback)
    history = order_history_around(cutoff=cutoff)
    line_ages = history.line_age_days
    train = line_ages > 0
    test_lines = ~train
    test_orders_idx = history.order_idx[test_lines]
    test_products = history.product_idx[test_lines]
    order = np.argsort(test_orders_idx, kind="stable")
    test_orders_idx, test_products = test_orders_idx[order], test_products[order]
    boundaries = np.flatnonzero(np.diff(test_orders_idx)) + 1
    test_orders = np.split(test_products, boundaries) if len(test_products) else []
    exclusions = exclusion_arrays(product_ids=history.product_ids)
    result = backtest(
        history.order_idx[train],
        history.product_idx[train],
        line_ages[train],
        history.products,
        test_orders,
        options,
        engine_exclusions(exclusions),
    )
    result["context"] = {
        "cutoff": cutoff.isoformat(),
        "parameters": parameters,
        "train_orders": int(np.unique(history.order_idx[train]).shape[0]),
        "test_orders": len(test_orders),
    }
    return result
