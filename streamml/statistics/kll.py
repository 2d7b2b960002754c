"""KLL quantile sketch (Karnin, Lang & Liberty, FOCS 2016), numpy-vectorized.

A stack of *compactors*: level ``h`` holds items of weight ``2**h``. When the
sketch holds more items than its capacity, the lowest full level is sorted and
every other item (random offset) moves up one level with double weight. One
such compaction moves the rank of any query point by at most the level weight,
and the random offsets make those errors cancel like a random walk, which is
what gives KLL its ``O(1/eps * sqrt(log 1/delta))`` size.

Capacity of level ``h`` (of ``H`` levels) is ``max(8, ceil(k * (2/3)**(H-1-h)))``,
so the sketch retains at most about ``3k`` items whatever the stream length,
and merging two sketches (level-wise concatenation followed by compaction) gives
a sketch with the same guarantee over the union.

**Error bound.** Apache DataSketches' characterisation of this construction
(same capacities, ``m = 8``) gives a normalized rank error of
``2.296 / k**0.9723`` at 99% confidence; the default ``k = 400`` gives about
**0.68%**, so StatisticsGen documents ``RANK_ERROR = 0.01`` (1%) with margin.
``tests/unit/test_statistics_sketches.py`` checks the max rank error over 999
quantiles on 200k values from several distributions, and after merges.

Coin flips are deterministic (SplitMix64 of a per-sketch counter mixed with the
data being compacted), so a snapshot/restore round trip, a replay and a merge
in the same order all give bit-identical sketches.

>>> import numpy as np
>>> s = KLLSketch()
>>> s.update(np.arange(100_000, dtype=float))
>>> abs(s.quantile(0.5) - 50_000) <= 0.01 * 100_000
True
>>> s.n, s.min, s.max, s.num_retained <= 3 * s.k
(100000, 0.0, 99999.0, True)
>>> t = KLLSketch.from_dict(s.to_dict()); t.quantile(0.5) == s.quantile(0.5)
True
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from streamml.statistics._codec import decode_array, encode_array, splitmix64_int

#: Default ``k``: about 0.68% normalized rank error at 99% confidence.
DEFAULT_K = 400
#: The rank error StatisticsGen documents for the default sketch.
RANK_ERROR = 0.01
_MIN_CAPACITY = 8
_C = 2.0 / 3.0


def rank_error_bound(k: int) -> float:
    """DataSketches' empirical 99%-confidence normalized rank error for this ``k``.

    >>> round(rank_error_bound(400), 4)
    0.0068
    """
    return 2.296 / k**0.9723


@functools.lru_cache(maxsize=256)
def _capacities(k: int, num_levels: int) -> tuple[tuple[int, ...], int]:
    """Capacity of each level of a ``num_levels``-level sketch, and their sum."""
    caps = tuple(max(_MIN_CAPACITY, math.ceil(k * _C ** (num_levels - 1 - h)))
                 for h in range(num_levels))
    return caps, sum(caps)


class KLLSketch:
    """Mergeable quantile sketch of float values with bounded memory (see module docs).

    >>> a, b = KLLSketch(), KLLSketch()
    >>> a.update(np.array([1.0, 2.0, 3.0])); b.update(np.array([4.0, 5.0]))
    >>> a.merge(b); a.n, a.quantile(0.5), a.rank(3.0)
    (5, 3.0, 0.6)
    """

    __slots__ = ("k", "levels", "n", "min", "max", "_coins", "_sorted")

    def __init__(self, k: int = DEFAULT_K) -> None:
        if k < _MIN_CAPACITY:
            raise ValueError(f"k must be >= {_MIN_CAPACITY}")
        self.k = k
        self.levels: list[np.ndarray] = [np.empty(0, dtype=np.float64)]
        self.n = 0
        self.min = math.inf
        self.max = -math.inf
        self._coins = 0
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None

    # -- building -----------------------------------------------------------------
    def _capacity(self, h: int) -> int:
        return _capacities(self.k, len(self.levels))[0][h]

    @property
    def num_retained(self) -> int:
        """Items held in memory (bounded by about ``3k``)."""
        return sum(len(level) for level in self.levels)

    def _max_size(self) -> int:
        return _capacities(self.k, len(self.levels))[1]

    def update(self, values: np.ndarray | Sequence[float]) -> None:
        """Add values (all must be finite; callers filter NaN/Inf)."""
        arr = np.asarray(values, dtype=np.float64).ravel()
        if arr.size:
            self.update_sorted(np.sort(arr))

    def update_sorted(self, arr: np.ndarray) -> None:
        """:meth:`update` with values already sorted ascending (a float64 array)."""
        if arr.size == 0:
            return
        self._sorted = None
        self.n += int(arr.size)
        self.min = min(self.min, float(arr[0]))
        self.max = max(self.max, float(arr[-1]))
        if arr.size > self._capacity(0):
            self._add_block(arr)
        else:
            self.levels[0] = np.concatenate((self.levels[0], arr))
        self._compress()

    def _add_block(self, block: np.ndarray) -> None:
        """Compact a sorted block by itself until it fits its level (no re-sorting).

        Each step is one KLL compaction of level ``h`` (odd item kept, every other
        item of the rest promoted with a random offset), as adding the block to
        level 0 and compressing would do level by level; a sorted block stays
        sorted when halved, so it is sorted once instead of at every level.
        """
        h = 0
        while True:
            caps, total = _capacities(self.k, max(len(self.levels), h + 1))
            if len(block) < caps[h] or len(block) + self.num_retained <= total:
                break  # what _compress would leave (or do elsewhere) from here on
            if h + 1 == len(self.levels):
                self.levels.append(np.empty(0, dtype=np.float64))
            if len(block) % 2:
                self.levels[h] = np.concatenate((self.levels[h], block[:1]))
                block = block[1:]
            block = block[self._coin(h, float(block[len(block) // 2]))::2]
            h += 1
        self.levels[h] = np.concatenate((self.levels[h], block))

    def merge(self, other: KLLSketch) -> None:
        """Fold ``other`` into this sketch (``other`` is unchanged)."""
        if other.n == 0:
            return
        self._sorted = None
        while len(self.levels) < len(other.levels):
            self.levels.append(np.empty(0, dtype=np.float64))
        for h, level in enumerate(other.levels):
            if len(level):
                self.levels[h] = np.concatenate((self.levels[h], level))
        self.n += other.n
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self._coins ^= splitmix64_int(other._coins + 0x5851F42D)  # see mix_coins_as_merged
        self._compress()

    def mix_coins_as_merged(self) -> None:
        """Set the coin counter to what merging this sketch into an empty one leaves.

        For a window that takes a piece over instead of merging it into its empty
        self: the same later compactions, so the same sketch as before.
        """
        if self.n:  # merge() leaves an empty sketch's counter alone
            self._coins = splitmix64_int(self._coins + 0x5851F42D)

    def _coin(self, h: int, pivot: float) -> int:
        self._coins += 1
        bits = int(np.float64(pivot).view(np.uint64))
        return splitmix64_int(self._coins ^ (bits * 31 + h)) & 1

    def _compress(self) -> None:
        levels = self.levels
        while True:
            caps, total = _capacities(self.k, len(levels))
            if sum(map(len, levels)) <= total:
                return
            for h, cap in enumerate(caps):
                if len(levels[h]) >= cap:
                    self._compact(h)
                    break

    def _compact(self, h: int) -> None:
        if h + 1 == len(self.levels):
            self.levels.append(np.empty(0, dtype=np.float64))
        items = np.sort(self.levels[h], kind="stable")
        keep = items[:1] if len(items) % 2 else items[:0]
        body = items[len(keep):]
        offset = self._coin(h, float(body[len(body) // 2]))
        self.levels[h] = keep.copy()
        self.levels[h + 1] = np.concatenate((self.levels[h + 1], body[offset::2]))

    # -- queries ------------------------------------------------------------------
    def _weighted(self) -> tuple[np.ndarray, np.ndarray]:
        if self._sorted is None:
            items = np.concatenate(self.levels)
            weights = np.concatenate(
                [np.full(len(level), 1 << h, dtype=np.int64) for h, level in enumerate(self.levels)]
            )
            order = np.argsort(items, kind="stable")
            self._sorted = (items[order], np.cumsum(weights[order]))
        return self._sorted

    def quantile(self, q: float) -> float:
        """The value at normalized rank ``q`` (0 → min, 1 → max); NaN when empty."""
        return float(self.quantiles([q])[0])

    def quantiles(self, qs: Sequence[float] | np.ndarray) -> np.ndarray:
        """Vectorized :meth:`quantile`."""
        q = np.asarray(qs, dtype=np.float64)
        if self.n == 0:
            return np.full(q.shape, np.nan)
        items, cum = self._weighted()
        total = cum[-1]
        idx = np.searchsorted(cum, np.ceil(np.clip(q, 0.0, 1.0) * total), side="left")
        out = items[np.minimum(idx, len(items) - 1)]
        out = np.where(q <= 0.0, self.min, out)
        return np.where(q >= 1.0, self.max, out)

    def rank(self, value: float) -> float:
        """Estimated fraction of values ``<= value``."""
        if self.n == 0:
            return math.nan
        items, cum = self._weighted()
        i = int(np.searchsorted(items, value, side="right"))
        return 0.0 if i == 0 else float(cum[i - 1] / cum[-1])

    def sorted_cumulative(self) -> tuple[np.ndarray, np.ndarray]:
        """Retained items (sorted) with their cumulative weights (the last is ``n``)."""
        return self._weighted()

    def weighted_items(self) -> tuple[np.ndarray, np.ndarray]:
        """Retained items (sorted) with their weights; weights sum to ``n``."""
        items, cum = self._weighted()
        return items, np.diff(cum, prepend=0)

    # -- state --------------------------------------------------------------------
    def to_dict(self, arrays: bool = False) -> dict[str, Any]:
        """JSON-able state (levels as base64 little-endian float64; numpy with ``arrays``)."""
        return {
            "k": self.k, "n": self.n, "coins": self._coins,
            "min": self.min if self.n else None, "max": self.max if self.n else None,
            "levels": list(self.levels) if arrays else [encode_array(lv) for lv in self.levels],
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> KLLSketch:
        """Inverse of :meth:`to_dict`."""
        s = cls(int(state["k"]))
        s.n = int(state["n"])
        s._coins = int(state["coins"])
        if s.n:
            s.min, s.max = float(state["min"]), float(state["max"])
        s.levels = [decode_array(text, np.float64) for text in state["levels"]] or s.levels
        return s
