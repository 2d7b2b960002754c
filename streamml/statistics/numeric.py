"""Numeric accumulator: exact moments and counts, plus quantile and distinct sketches.

Exact part (merges exactly, up to float rounding of the mean): count of finite
values, mean and ``M2`` of each batch by the corrected two-pass algorithm and
combined with Chan, Golub & LeVeque's pairwise update (numerically stable, no
catastrophic cancellation; identical values give a standard deviation of 0),
min, max, zeros, NaN and Inf counts, and how many values have a fractional part
(schema inference reads integral floats such as ``180.0`` as ints). NaN and
±Inf are counted but kept out of the moments, extremes and sketches, so one bad
value does not turn every statistic into NaN.

Sketch part: a :class:`~streamml.statistics.kll.KLLSketch` (quantiles, median
and both histograms) and a :class:`~streamml.statistics.hll.HyperLogLog`
(distinct values).

Histograms. The *quantile* histogram has ``B`` buckets between sketch
quantiles ``i/B``, each holding ``n/B`` values (TFDV's ``QUANTILES``). The
*equal-width* histogram splits ``[min, max]`` (exact extremes) into ``B`` equal
buckets and counts the sketch's weighted items in each: equal-width bounds
depend on the range, which a stream only knows at the end, so it is built at
extract time. Each bucket count is exact while the sketch has not compacted
(``n`` up to about ``k``) and otherwise within ``2 * rank_error * n``.

>>> import numpy as np
>>> acc = NumericAccumulator()
>>> acc.add(np.array([1.0, 2.0, 0.0, np.nan, np.inf]))
>>> s = acc.extract(StatisticsOptions(num_histogram_buckets=2))
>>> s.mean, s.min, s.max, s.num_zeros, s.num_nan, s.num_inf, s.median
(1.0, 0.0, 2.0, 1, 1, 1, 1.0)
>>> [b.count for b in s.histograms[0].buckets]
[1.0, 2.0]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from streamml.payloads.base import finite_json
from streamml.payloads.statistics import NumericStatistics
from streamml.statistics.hll import HyperLogLog
from streamml.statistics.kll import KLLSketch
from streamml.statistics.options import StatisticsOptions


def _qkey(q: float) -> str:
    return f"{q:g}"


class NumericAccumulator:
    """create/add/merge/extract accumulator of one numeric feature (see module docs).

    >>> import numpy as np
    >>> a, b = NumericAccumulator(), NumericAccumulator()
    >>> a.add(np.array([1.0, 2.0])); b.add(np.array([3.0, 4.0]))
    >>> a.merge(b); a.n, a.mean, round(a.std, 6)
    (4, 2.5, 1.118034)
    """

    __slots__ = ("n", "mean", "m2", "min", "max", "zeros", "nan", "inf", "fractional",
                 "quantiles", "distinct")

    def __init__(self, options: StatisticsOptions | None = None) -> None:
        opts = options or StatisticsOptions()
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.zeros = 0
        self.nan = 0
        self.inf = 0
        #: finite values with a fractional part (0: every value is integral, e.g. ``180.0``)
        self.fractional = 0
        self.quantiles = KLLSketch(opts.kll_k)
        self.distinct = HyperLogLog(opts.hll_p)

    @property
    def std(self) -> float:
        """Population standard deviation (ddof=0), as TFDV reports it."""
        return math.sqrt(max(self.m2, 0.0) / self.n) if self.n else math.nan

    def _combine(self, n: int, mean: float, m2: float) -> None:
        if self.n == 0:  # exactly the other side (delta * n / n would round the mean)
            self.n, self.mean, self.m2 = n, mean, m2
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total

    def add(self, values: np.ndarray) -> None:
        """Add a float64 array (NaN and ±Inf are counted, not folded in)."""
        if values.size == 0:
            return
        finite_mask = np.isfinite(values)
        n_finite = int(np.count_nonzero(finite_mask))
        if n_finite < values.size:
            n_nan = int(np.count_nonzero(np.isnan(values)))
            self.nan += n_nan
            self.inf += values.size - n_finite - n_nan
            values = values[finite_mask]
        if n_finite == 0:
            return
        with np.errstate(over="ignore", invalid="ignore"):
            # corrected two-pass algorithm: the residual sum fixes the mean's rounding
            mean = float(values.mean())
            dev = values - mean
            resid = float(dev.sum())
            m2 = max(float(np.dot(dev, dev)) - resid * resid / n_finite, 0.0)
            self._combine(n_finite, mean + resid / n_finite, m2)
        ordered = np.sort(values)  # once, for the extremes, the zeros and both sketches
        ordered += 0.0  # -0.0 is 0.0 (a sort leaves equal zeros in no particular order)
        self.min = min(self.min, float(ordered[0]))
        self.max = max(self.max, float(ordered[-1]))
        self.zeros += int(np.searchsorted(ordered, 0.0, "right")
                          - np.searchsorted(ordered, 0.0, "left"))
        self.fractional += int(np.count_nonzero(values != np.floor(values)))
        self.quantiles.update_sorted(ordered)
        # distinct values only: HyperLogLog's registers are the same, at a fraction of the hashing
        first = np.empty(ordered.size, dtype=bool)
        first[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
        self.distinct.add_numbers(ordered[first])

    def merge(self, other: NumericAccumulator) -> None:
        """Fold ``other`` in (``other`` is unchanged)."""
        if other.n:
            with np.errstate(over="ignore", invalid="ignore"):
                self._combine(other.n, other.mean, other.m2)
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.zeros += other.zeros
        self.nan += other.nan
        self.inf += other.inf
        self.fractional += other.fractional
        self.quantiles.merge(other.quantiles)
        self.distinct.merge(other.distinct)

    def extract(self, options: StatisticsOptions) -> NumericStatistics:
        """The payload statistics (sketch figures within the documented bounds)."""
        return NumericStatistics.model_validate(self.extract_dict(options))

    def extract_dict(self, options: StatisticsOptions) -> dict[str, Any]:
        """:meth:`extract` as its JSON dict (``to_json()``), built without the models.

        StatisticsGen publishes windows this way. Only the moments can be non-finite
        (an overflowing sum); they become tokens like ``"Infinity"`` here.
        """
        if self.n == 0:
            return {"mean": None, "std_dev": None, "min": None, "max": None, "median": None,
                    "num_zeros": 0, "num_nan": self.nan, "num_inf": self.inf, "quantiles": {},
                    "quantile_rank_error": None, "histograms": [], "distinct": None}
        qs = list(options.quantiles)
        nq = options.num_quantile_buckets
        # one sketch query: the quantiles, the median and the quantile histogram's edges
        ranks = np.concatenate((qs, [0.5], np.linspace(0.0, 1.0, nq + 1)))
        values = self.quantiles.quantiles(ranks).tolist()
        edges = values[len(qs) + 1:]
        return {
            "mean": finite_json(self.mean), "std_dev": finite_json(self.std),
            "min": self.min, "max": self.max, "median": values[len(qs)],
            "num_zeros": self.zeros, "num_nan": self.nan, "num_inf": self.inf,
            "quantiles": {_qkey(q): v for q, v in zip(qs, values, strict=False)},
            "quantile_rank_error": float(options.rank_error),
            "histograms": [self._equal_width(options.num_histogram_buckets),
                           self._histogram("quantiles", edges, [float(self.n / nq)] * nq)],
            "distinct": min(self.n, round(self.distinct.estimate())),
        }

    def _histogram(self, kind: str, edges: list[float], counts: list[float]) -> dict[str, Any]:
        return {"type": kind, "buckets": [{"low": lo, "high": hi, "count": c} for lo, hi, c
                                          in zip(edges[:-1], edges[1:], counts, strict=True)],
                "num_nan": self.nan, "num_undefined": 0}

    def _equal_width(self, buckets: int) -> dict[str, Any]:
        if self.min == self.max:
            return self._histogram("equal_width", [self.min, self.max], [float(self.n)])
        steps = np.arange(buckets + 1, dtype=np.float64)
        if math.isfinite(self.max - self.min):  # np.linspace's edges, without its overhead
            edges = steps * ((self.max - self.min) / buckets) + self.min
            edges[-1] = self.max
        else:  # a span beyond float64 (e.g. -1.7e308 to 1e300): no overflow this way
            t = steps / buckets
            edges = self.min * (1.0 - t) + self.max * t
        # np.histogram's buckets ([lo, hi), the last one closed): the weight of the sketch's
        # sorted items below each inner edge, from their cumulative weights
        items, cum = self.quantiles.sorted_cumulative()
        below = np.concatenate(([0], cum))[np.searchsorted(items, edges[1:-1], side="left")]
        counts = np.diff(np.concatenate(([0], below, [cum[-1]])))
        return self._histogram("equal_width", edges.tolist(), counts.astype(np.float64).tolist())

    def to_dict(self, arrays: bool = False) -> dict[str, Any]:
        """JSON-able state (non-finite extremes as ``None``, moments as ``"Infinity"``-like
        tokens if they overflowed; ``arrays``: sketch arrays as
        numpy, for :func:`~streamml.statistics._codec.pack_state`)."""
        return {
            # an overflowing sum makes the moments infinite: tokens, which JSON can carry
            "n": self.n, "mean": finite_json(self.mean), "m2": finite_json(self.m2),
            "min": self.min if self.n else None, "max": self.max if self.n else None,
            "zeros": self.zeros, "nan": self.nan, "inf": self.inf, "fractional": self.fractional,
            "quantiles": self.quantiles.to_dict(arrays),
            "distinct": self.distinct.to_dict(arrays),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> NumericAccumulator:
        """Inverse of :meth:`to_dict`."""
        acc = cls.__new__(cls)
        acc.n, acc.mean, acc.m2 = int(state["n"]), float(state["mean"]), float(state["m2"])
        acc.min = math.inf if state["min"] is None else float(state["min"])
        acc.max = -math.inf if state["max"] is None else float(state["max"])
        acc.zeros, acc.nan, acc.inf = int(state["zeros"]), int(state["nan"]), int(state["inf"])
        acc.fractional = int(state.get("fractional", acc.n))  # unknown: as if not integral
        acc.quantiles = KLLSketch.from_dict(state["quantiles"])
        acc.distinct = HyperLogLog.from_dict(state["distinct"])
        return acc
