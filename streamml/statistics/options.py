"""Configuration shared by every accumulator (frozen, JSON-able).

>>> StatisticsOptions(num_top_values=5).to_dict()["num_top_values"]
5
>>> StatisticsOptions.from_dict(StatisticsOptions().to_dict()) == StatisticsOptions()
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from streamml.statistics.hll import DEFAULT_P
from streamml.statistics.kll import DEFAULT_K, RANK_ERROR
from streamml.statistics.topk import DEFAULT_CAPACITY

DEFAULT_QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


@dataclass(frozen=True)
class StatisticsOptions:
    """Sketch sizes and what to extract; the defaults give the documented error bounds.

    * ``kll_k`` — quantile sketch size; 400 → rank error ≤ ``rank_error`` (1%);
    * ``hll_p`` — distinct-count registers ``2**p``; 12 → 1.6% relative standard error;
    * ``top_k_capacity`` — Misra–Gries counters; counts under-estimated by at most
      ``n / (capacity + 1)``, exact (and distinct count exact) until the first eviction;
    * ``num_top_values``, ``num_histogram_buckets``, ``num_quantile_buckets``, ``quantiles``
      — what :meth:`extract` reports.

    >>> StatisticsOptions().rank_error
    0.01
    """

    kll_k: int = DEFAULT_K
    hll_p: int = DEFAULT_P
    top_k_capacity: int = DEFAULT_CAPACITY
    num_top_values: int = 20
    num_histogram_buckets: int = 10
    num_quantile_buckets: int = 10
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    rank_error: float = RANK_ERROR

    def __post_init__(self) -> None:
        if self.num_histogram_buckets < 1 or self.num_quantile_buckets < 1:
            raise ValueError("histograms need at least one bucket")
        if any(not 0.0 <= q <= 1.0 for q in self.quantiles):
            raise ValueError("quantiles must be in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        d = asdict(self)
        d["quantiles"] = list(self.quantiles)
        return d

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> StatisticsOptions:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**state, "quantiles": tuple(state.get("quantiles", DEFAULT_QUANTILES))})
