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

from streamml.payloads.statistics import Bucket, Histogram, NumericStatistics
from streamml.statistics.hll import HyperLogLog
from streamml.statistics.kll import KLLSketch
from streamml.statistics.options import StatisticsOptions


def _qkey(q: float) -> str:
    return f"{q:g}"


def _buckets(lows: list[float], highs: list[float], counts: list[float]) -> list[Bucket]:
    """Histogram buckets from Python floats (counts >= 0), without re-validating each."""
    return [Bucket.model_construct(low=lo, high=hi, count=c)
            for lo, hi, c in zip(lows, highs, counts, strict=True)]


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
        self.min = min(self.min, float(values.min()))
        self.max = max(self.max, float(values.max()))
        self.zeros += n_finite - int(np.count_nonzero(values))
        self.fractional += int(np.count_nonzero(values != np.floor(values)))
        self.quantiles.update(values)
        self.distinct.add_numbers(values)

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
        if self.n == 0:
            return NumericStatistics(num_nan=self.nan, num_inf=self.inf, num_zeros=0)
        qs = list(options.quantiles)
        values = self.quantiles.quantiles(qs + [0.5]) if qs else self.quantiles.quantiles([0.5])
        return NumericStatistics(
            mean=self.mean, std_dev=self.std, min=self.min, max=self.max,
            median=float(values[-1]), num_zeros=self.zeros, num_nan=self.nan, num_inf=self.inf,
            quantiles={_qkey(q): float(v) for q, v in zip(qs, values, strict=False)},
            quantile_rank_error=options.rank_error,
            distinct=min(self.n, round(self.distinct.estimate())),
            histograms=[self._equal_width(options.num_histogram_buckets),
                        self._quantile_histogram(options.num_quantile_buckets)],
        )

    def _equal_width(self, buckets: int) -> Histogram:
        if self.min == self.max:
            return Histogram(type="equal_width", num_nan=self.nan,
                             buckets=[Bucket(low=self.min, high=self.max, count=self.n)])
        if math.isfinite(self.max - self.min):
            edges = np.linspace(self.min, self.max, buckets + 1)
        else:  # a span beyond float64 (e.g. -1.7e308 to 1e300): no overflow this way
            t = np.linspace(0.0, 1.0, buckets + 1)
            edges = self.min * (1.0 - t) + self.max * t
        items, weights = self.quantiles.weighted_items()
        # np.histogram's buckets ([lo, hi), the last one closed) by one searchsorted
        idx = np.clip(np.searchsorted(edges, items, side="right") - 1, 0, buckets - 1)
        counts = np.bincount(idx, weights=weights, minlength=buckets)
        return Histogram(type="equal_width", num_nan=self.nan, buckets=_buckets(
            edges[:-1].tolist(), edges[1:].tolist(), counts.tolist()))

    def _quantile_histogram(self, buckets: int) -> Histogram:
        edges = self.quantiles.quantiles(np.linspace(0.0, 1.0, buckets + 1))
        per = float(self.n / buckets)
        return Histogram(type="quantiles", num_nan=self.nan, buckets=_buckets(
            edges[:-1].tolist(), edges[1:].tolist(), [per] * buckets))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state (non-finite extremes as ``None``)."""
        return {
            "n": self.n, "mean": self.mean, "m2": self.m2,
            "min": self.min if self.n else None, "max": self.max if self.n else None,
            "zeros": self.zeros, "nan": self.nan, "inf": self.inf, "fractional": self.fractional,
            "quantiles": self.quantiles.to_dict(), "distinct": self.distinct.to_dict(),
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
