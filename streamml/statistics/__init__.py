"""StatisticsGen: mergeable, bounded-memory feature statistics over a stream.

Modules, one job each:

* :mod:`~streamml.statistics.kll`, :mod:`~streamml.statistics.hll`,
  :mod:`~streamml.statistics.topk` — the sketches (quantiles, distinct count,
  frequent values), each mergeable and JSON-serializable with a documented bound;
* :mod:`~streamml.statistics.columns` — micro-batch → typed columns (pyarrow);
* :mod:`~streamml.statistics.batch` — one micro-batch of examples as columns, built
  once and shared by StatisticsGen and the ExampleValidator's vectorized checks;
* :mod:`~streamml.statistics.numeric`, :mod:`~streamml.statistics.categorical`,
  :mod:`~streamml.statistics.feature`, :mod:`~streamml.statistics.dataset` —
  TFDV-style create/add/merge/extract accumulators;
* :mod:`~streamml.statistics.windows` — count, event-time and cumulative windows;
* :mod:`~streamml.statistics.processor` — the ``StatisticsGen`` processor;
* :mod:`~streamml.statistics.store` — a DuckDB store of windows.

>>> acc = StatisticsAccumulator()
>>> acc.add_batch([{"fare": 1.0}, {"fare": 3.0}])
>>> acc.extract()["fare"].numeric.mean
2.0
"""

from streamml.statistics.dataset import StatisticsAccumulator
from streamml.statistics.feature import FeatureAccumulator
from streamml.statistics.hll import HyperLogLog
from streamml.statistics.kll import RANK_ERROR, KLLSketch
from streamml.statistics.options import StatisticsOptions
from streamml.statistics.topk import MisraGries

__all__ = [
    "RANK_ERROR",
    "FeatureAccumulator",
    "HyperLogLog",
    "KLLSketch",
    "MisraGries",
    "StatisticsAccumulator",
    "StatisticsOptions",
]
