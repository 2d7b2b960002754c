"""Per-feature accumulator: presence, types, list valency, numeric and categorical parts.

Every example either has the feature (``present``) or misses it (``missing``:
``None`` or absent), so ``present + missing`` is the number of examples the
accumulator has seen. Numbers (ints and floats, list items flattened) go to a
:class:`~streamml.statistics.numeric.NumericAccumulator`, strings and bools to
a :class:`~streamml.statistics.categorical.CategoricalAccumulator`; each is
created on the first value of its kind, so a column that mixes types reports
both parts and its ``type_counts``.

The reported ``type`` is the kind with the most values (numbers → ``float``
if any value was a float, else ``int``), so one stray token in a numeric
column does not turn it into a string feature.

>>> from streamml.statistics.columns import column_from_values
>>> acc = FeatureAccumulator()
>>> acc.add_column(column_from_values([[1, 2], None, [3]]))
>>> s = acc.extract(StatisticsOptions())
>>> s.type, s.count, s.num_missing, s.values_per_example.max, s.numeric.mean
('int', 2, 1, 2, 2.0)
"""

from __future__ import annotations

from typing import Any

from streamml.payloads.base import FeatureType
from streamml.payloads.statistics import FeatureStatistics
from streamml.statistics._codec import pack_state, unpack_state
from streamml.statistics.categorical import CategoricalAccumulator
from streamml.statistics.columns import Column
from streamml.statistics.numeric import NumericAccumulator
from streamml.statistics.options import StatisticsOptions

#: Key of the packed accumulator in ``FeatureStatistics.sketches``.
SKETCH_KEY = "accumulator"


class FeatureAccumulator:
    """create/add/merge/extract accumulator of one feature (see module docs).

    >>> from streamml.statistics.columns import column_from_values
    >>> a, b = FeatureAccumulator(), FeatureAccumulator()
    >>> a.add_column(column_from_values(["x", None])); b.add_column(column_from_values([1.5]))
    >>> a.merge(b); s = a.extract(StatisticsOptions())
    >>> s.count, s.num_missing, s.type_counts, s.type
    (2, 1, {'float': 1, 'string': 1}, 'string')
    """

    __slots__ = ("options", "present", "missing", "type_counts", "lists", "list_min",
                 "list_max", "list_sum", "numeric", "categorical")

    def __init__(self, options: StatisticsOptions | None = None, missing: int = 0) -> None:
        self.options = options or StatisticsOptions()
        self.present = 0
        self.missing = missing
        self.type_counts: dict[str, int] = {}
        self.lists = 0
        self.list_min: int | None = None
        self.list_max: int | None = None
        self.list_sum = 0
        self.numeric: NumericAccumulator | None = None
        self.categorical: CategoricalAccumulator | None = None

    def add_column(self, col: Column) -> None:
        """Add one batch's column of this feature."""
        self.present += col.present
        self.missing += col.missing
        for kind, n in col.type_counts.items():
            self.type_counts[kind] = self.type_counts.get(kind, 0) + n
        if col.list_lengths.size:
            self._lists(col.list_lengths.size, int(col.list_lengths.min()),
                        int(col.list_lengths.max()), int(col.list_lengths.sum()))
        if col.numbers.size:
            if self.numeric is None:
                self.numeric = NumericAccumulator(self.options)
            self.numeric.add(col.numbers)
        if len(col.strings) or len(col.bools):
            if self.categorical is None:
                self.categorical = CategoricalAccumulator(self.options)
            self.categorical.add(col.strings, col.bools)

    def _lists(self, n: int, lo: int | None, hi: int | None, total: int) -> None:
        if n == 0 or lo is None or hi is None:
            return
        self.lists += n
        self.list_min = lo if self.list_min is None else min(self.list_min, lo)
        self.list_max = hi if self.list_max is None else max(self.list_max, hi)
        self.list_sum += total

    def add_missing(self, n: int) -> None:
        """Count ``n`` examples that do not have the feature."""
        self.missing += n

    def merge(self, other: FeatureAccumulator) -> None:
        """Fold ``other`` in (``other`` is unchanged)."""
        self.present += other.present
        self.missing += other.missing
        for kind, n in other.type_counts.items():
            self.type_counts[kind] = self.type_counts.get(kind, 0) + n
        self._lists(other.lists, other.list_min, other.list_max, other.list_sum)
        if other.numeric is not None:
            if self.numeric is None:
                self.numeric = NumericAccumulator(self.options)
            self.numeric.merge(other.numeric)
        if other.categorical is not None:
            if self.categorical is None:
                self.categorical = CategoricalAccumulator(self.options)
            self.categorical.merge(other.categorical)

    @property
    def type(self) -> FeatureType | None:
        """The dominant value type (see module docs); ``None`` if no value was seen."""
        return dominant_type(self.type_counts)

    def extract(self, options: StatisticsOptions | None = None,
                with_sketches: bool = False) -> FeatureStatistics:
        """The payload statistics; ``with_sketches`` adds the packed state for merging."""
        return FeatureStatistics.model_validate(self.extract_dict(options, with_sketches))

    def extract_dict(self, options: StatisticsOptions | None = None,
                     with_sketches: bool = False) -> dict[str, Any]:
        """:meth:`extract` as its JSON dict (``to_json()``), built without the models."""
        opts = options or self.options
        vpe = None
        if self.lists:
            vpe = {"min": self.list_min, "max": self.list_max, "mean": self.list_sum / self.lists}
        return {
            "type": self.type, "count": self.present, "num_missing": self.missing,
            "type_counts": dict(sorted(self.type_counts.items())), "values_per_example": vpe,
            "numeric": self.numeric.extract_dict(opts) if self.numeric is not None else None,
            "categorical": (self.categorical.extract_dict(opts)
                            if self.categorical is not None else None),
            "sketches": {SKETCH_KEY: pack_state(self.to_dict(arrays=True))}
            if with_sketches else {},
        }

    def to_dict(self, arrays: bool = False) -> dict[str, Any]:
        """JSON-able state (without the options, which are configuration); ``arrays``: the
        sketches' arrays as numpy, for :func:`~streamml.statistics._codec.pack_state`."""
        num, cat = self.numeric, self.categorical
        return {
            "present": self.present, "missing": self.missing,
            "type_counts": dict(self.type_counts),
            "lists": [self.lists, self.list_min, self.list_max, self.list_sum],
            "numeric": num.to_dict(arrays) if num is not None else None,
            "categorical": cat.to_dict(arrays) if cat is not None else None,
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any],
                  options: StatisticsOptions | None = None) -> FeatureAccumulator:
        """Inverse of :meth:`to_dict`."""
        acc = cls(options)
        acc.present, acc.missing = int(state["present"]), int(state["missing"])
        acc.type_counts = {str(k): int(v) for k, v in state["type_counts"].items()}
        acc.lists, acc.list_min, acc.list_max, acc.list_sum = state["lists"]
        if state["numeric"] is not None:
            acc.numeric = NumericAccumulator.from_dict(state["numeric"])
        if state["categorical"] is not None:
            acc.categorical = CategoricalAccumulator.from_dict(state["categorical"])
        return acc

    @classmethod
    def from_statistics(cls, stats: FeatureStatistics,
                        options: StatisticsOptions | None = None) -> FeatureAccumulator:
        """Rebuild the accumulator from a payload written with ``with_sketches=True``."""
        if SKETCH_KEY not in stats.sketches:
            raise MissingSketch("these feature statistics carry no accumulator sketch")
        try:
            return cls.from_dict(unpack_state(stats.sketches[SKETCH_KEY]), options)
        except (KeyError, TypeError, IndexError, AttributeError) as exc:  # not a state
            raise ValueError(f"damaged accumulator sketch: {exc!r}") from exc


class MissingSketch(ValueError):
    """Statistics published without sketches (``with_sketches=False``): nothing to merge."""


def dominant_type(type_counts: dict[str, int]) -> FeatureType | None:
    """The type most values have (numbers: ``float`` if any is); ``None`` for no value.

    >>> dominant_type({"int": 3, "float": 1, "string": 3}), dominant_type({})
    ('float', None)
    """
    numbers = type_counts.get("int", 0) + type_counts.get("float", 0)
    kinds = [(numbers, 1, "float" if type_counts.get("float") else "int"),
             (type_counts.get("string", 0), 2, "string"),
             (type_counts.get("bool", 0), 0, "bool")]
    count, _, kind = max(kinds)
    return kind if count else None  # type: ignore[return-value]
