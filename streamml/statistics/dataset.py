"""Dataset accumulator: the statistics of every feature over a set of examples.

TFDV's create/add/merge/extract over micro-batches. ``add_batch`` takes a list
of example ``features`` dicts or a pyarrow Table; a feature first seen after
``n`` examples is backfilled as missing in those ``n``, and merging two
accumulators counts a feature one side lacks as missing on that side, so
``count + num_missing == num_examples`` for every feature, always.

>>> acc = StatisticsAccumulator()
>>> acc.add_batch([{"fare": 7.25, "pay": "Cash"}, {"fare": 2.75}])
>>> other = StatisticsAccumulator(); other.add_batch([{"fare": None, "tips": 1.0}])
>>> acc.merge(other); stats = acc.extract()
>>> acc.num_examples, stats["fare"].count, stats["pay"].num_missing, stats["tips"].num_missing
(3, 2, 2, 2)
>>> StatisticsAccumulator.from_dict(acc.to_dict()).extract() == stats
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import pyarrow as pa

from streamml.payloads.statistics import FeatureStatistics, StatisticsWindow
from streamml.statistics.columns import Column, columns_from_rows, columns_from_table
from streamml.statistics.feature import FeatureAccumulator
from streamml.statistics.options import StatisticsOptions

Batch: TypeAlias = Sequence[Mapping[str, Any]] | pa.Table


class StatisticsAccumulator:
    """create/add/merge/extract statistics of all features (see module docs).

    >>> import pyarrow as pa
    >>> acc = StatisticsAccumulator()
    >>> acc.add_batch(pa.table({"x": [1.0, 2.0, None]}))
    >>> acc.extract()["x"].numeric.std_dev
    0.5
    """

    __slots__ = ("options", "num_examples", "features")

    def __init__(self, options: StatisticsOptions | None = None) -> None:
        self.options = options or StatisticsOptions()
        self.num_examples = 0
        self.features: dict[str, FeatureAccumulator] = {}

    def _feature(self, name: str) -> FeatureAccumulator:
        acc = self.features.get(name)
        if acc is None:
            acc = self.features[name] = FeatureAccumulator(self.options, missing=self.num_examples)
        return acc

    def add_batch(self, batch: Batch) -> None:
        """Add a micro-batch: example feature dicts, or a pyarrow Table (one row each)."""
        if isinstance(batch, pa.Table):
            columns, n = columns_from_table(batch), batch.num_rows
        else:
            columns, n = columns_from_rows(batch), len(batch)
        self.add_columns(columns, n)

    def add_columns(self, columns: Mapping[str, Column], n: int) -> None:
        """Add ``n`` examples given as typed columns (e.g. from an ``ExampleBatch``)."""
        if n == 0:
            return
        for name, col in columns.items():
            self._feature(name).add_column(col)
        for name, acc in self.features.items():
            if name not in columns:
                acc.add_missing(n)
        self.num_examples += n

    def merge(self, other: StatisticsAccumulator) -> None:
        """Fold ``other`` in (``other`` is unchanged)."""
        for name, acc in self.features.items():
            if name not in other.features:
                acc.add_missing(other.num_examples)
        for name, theirs in other.features.items():
            self._feature(name).merge(theirs)
        self.num_examples += other.num_examples

    def extract(self, with_sketches: bool = False) -> dict[str, FeatureStatistics]:
        """Statistics of every feature, by name (sorted)."""
        return {name: self.features[name].extract(self.options, with_sketches)
                for name in sorted(self.features)}

    def extract_dict(self, with_sketches: bool = False) -> dict[str, dict[str, Any]]:
        """:meth:`extract` as JSON dicts (``FeatureStatistics.to_json()`` of each)."""
        return {name: self.features[name].extract_dict(self.options, with_sketches)
                for name in sorted(self.features)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state (options included, so a restore needs nothing else)."""
        return {"options": self.options.to_dict(), "num_examples": self.num_examples,
                "features": {name: acc.to_dict() for name, acc in self.features.items()}}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> StatisticsAccumulator:
        """Inverse of :meth:`to_dict`."""
        acc = cls(StatisticsOptions.from_dict(state["options"]))
        acc.num_examples = int(state["num_examples"])
        acc.features = {name: FeatureAccumulator.from_dict(s, acc.options)
                        for name, s in state["features"].items()}
        return acc

    @classmethod
    def from_window(cls, window: StatisticsWindow,
                    options: StatisticsOptions | None = None) -> StatisticsAccumulator:
        """Rebuild from a window published with sketches, e.g. to merge windows read back.

        >>> from streamml.payloads.statistics import Window
        >>> a = StatisticsAccumulator(); a.add_batch([{"x": 1}, {"x": 3}])
        >>> w = StatisticsWindow(pipeline="p", split="all", num_examples=a.num_examples,
        ...                      window=Window(id="cumulative", kind="cumulative"),
        ...                      features=a.extract(with_sketches=True), created_at=0)
        >>> StatisticsAccumulator.from_window(w).extract() == a.extract()
        True
        """
        acc = cls(options)
        acc.num_examples = window.num_examples
        acc.features = {name: FeatureAccumulator.from_statistics(fs, acc.options)
                        for name, fs in window.features.items()}
        return acc
