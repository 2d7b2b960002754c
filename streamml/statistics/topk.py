"""Misra–Gries frequent items ("heavy hitters"), in its mergeable form.

Keeps at most ``capacity`` counters. Adding a batch adds its value counts to
the counters; whenever more than ``capacity`` counters exist, the
``(capacity+1)``-th largest count is subtracted from every counter and the
non-positive ones are dropped (Agarwal et al., "Mergeable summaries", 2012 —
merging two summaries is the same operation, so a merged summary carries the
same guarantee as one built over the union).

**Error bound.** For every value, ``true - (n - retained) / (capacity + 1) <=
estimate <= true``, where ``n`` is the total count and ``retained`` the sum of
the counters; in particular the under-count is at most ``n / (capacity + 1)``.
:attr:`max_error` reports that bound. Until the first eviction every count is
exact and so is the number of distinct values (:attr:`exact`).

>>> mg = MisraGries(capacity=2)
>>> mg.add_counts({"a": 5, "b": 3}); mg.add_counts({"c": 1})
>>> mg.top(2), mg.exact, mg.max_error
([('a', 4), ('b', 2)], False, 1.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_CAPACITY = 1000


class MisraGries:
    """Mergeable top-k counter with a deterministic error bound (see module docs).

    >>> a, b = MisraGries(), MisraGries()
    >>> a.add_counts({"Cash": 3}); b.add_counts({"Cash": 1, "Card": 2})
    >>> a.merge(b); a.top(5), a.n
    ([('Cash', 4), ('Card', 2)], 6)
    """

    __slots__ = ("capacity", "counts", "n", "exact")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.counts: dict[str, int] = {}
        self.n = 0
        self.exact = True

    def add_counts(self, counts: Mapping[str, int]) -> None:
        """Add ``value -> count`` pairs (e.g. one batch's ``value_counts``)."""
        table = self.counts
        for value, c in counts.items():
            table[value] = table.get(value, 0) + int(c)
            self.n += int(c)
        self._prune()

    def merge(self, other: MisraGries) -> None:
        """Fold ``other`` in (``other`` is unchanged)."""
        table = self.counts
        for value, c in other.counts.items():
            table[value] = table.get(value, 0) + c
        self.n += other.n
        self.exact = self.exact and other.exact
        self._prune()

    def _prune(self) -> None:
        if len(self.counts) <= self.capacity:
            return
        ranked = sorted(self.counts.values(), reverse=True)
        cut = ranked[self.capacity]
        self.counts = {v: c - cut for v, c in self.counts.items() if c > cut}
        self.exact = False

    @property
    def max_error(self) -> float:
        """Upper bound of any count's under-estimate (0 while exact)."""
        return (self.n - sum(self.counts.values())) / (self.capacity + 1)

    def top(self, k: int) -> list[tuple[str, int]]:
        """The ``k`` largest counters, by count then value (deterministic)."""
        return sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))[:k]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {"capacity": self.capacity, "n": self.n, "exact": self.exact,
                "counts": dict(self.counts)}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> MisraGries:
        """Inverse of :meth:`to_dict`."""
        mg = cls(int(state["capacity"]))
        mg.n, mg.exact = int(state["n"]), bool(state["exact"])
        mg.counts = {str(k): int(v) for k, v in state["counts"].items()}
        return mg
