"""The mining engine: pure Python/NumPy/SciPy, no Django import (see engine.py).

Public API (import from here, not from the submodules):

- ``MiningOptions``, ``Exclusions``: what to mine and what never to pair.
- ``mine_pairs(order_idx, product_idx, order_age_days, n_products, options, exclusions)``:
  the whole computation in-process (``workers=N``: N blocks at a time in threads), returns a
  ``PairResult``; ``map_blocks`` is that thread pool, for callers that mine block by block.
- ``prepare`` -> ``Prepared``, ``block_ranges``, ``mine_block`` -> ``PairResult``, ``merge``:
  the same computation split so that the blocks can run anywhere (a Celery group/chord);
  ``mine_block`` returns the final pairs of the sources in [start, stop) (thresholds and
  top-K already applied), ``merge`` checks that the blocks tile all products and
  concatenates them: ``merge(mine_block(p, a, b, ...) for a, b in block_ranges(...))`` is
  bit-identical to ``mine_pairs`` whatever the block size or order.
- ``mine_upper`` -> ``UpperPairs``, ``pairs_from_upper``: how ``mine_pairs`` does it in one
  process: each block counts only its pairs a -> b with b > a (each unordered pair once,
  half the counting), and ``pairs_from_upper`` mirrors them and finishes every block. Its
  blocks are not independent (a source's pairs come from all blocks before it), so a run
  spread over Celery workers uses ``mine_block``.
- ``SCORES``: the names ``MiningOptions.score`` accepts; ``DEFAULT_SCORE`` is the default.
- ``backtest(...)``: hit@10 / recall@10 of a configuration against the bestsellers and
  co-count baselines (see backtest.py).

``synthetic.generate`` (not exported: a tool for benchmarks and score selection) makes a
realistic synthetic order history.
"""

from merchandising.mining.backtest import backtest
from merchandising.mining.engine import (
    DEFAULT_SCORE,
    SCORES,
    Exclusions,
    MiningOptions,
    PairResult,
    Prepared,
    UpperPairs,
    block_ranges,
    map_blocks,
    merge,
    mine_block,
    mine_pairs,
    mine_upper,
    pairs_from_upper,
    prepare,
    useful_threads,
)

__all__ = [
    "DEFAULT_SCORE",
    "SCORES",
    "Exclusions",
    "MiningOptions",
    "PairResult",
    "Prepared",
    "UpperPairs",
    "backtest",
    "block_ranges",
    "map_blocks",
    "merge",
    "mine_block",
    "mine_pairs",
    "mine_upper",
    "pairs_from_upper",
    "prepare",
    "useful_threads",
]
