"""Delayed labels: join unlabelled examples with labels that arrive later, by id, with a TTL.

Time is **event time**: the watermark is the largest event time seen on either
input (examples' ``event_time``, labels' ``event_time`` when they carry one), so
a replay expires exactly what the live run expired. An example waits at most
``ttl_ms`` past its event time (stragglers out of
event-time order may wait a little longer); then it is dropped and counted as ``expired``.
The buffer is bounded: past ``max_pending`` examples the oldest is evicted and
counted as ``evicted``. A label for an unknown or already-expired example waits
too (labels may overtake their example), under the same TTL and bound.

>>> j = LabelJoin(ttl_ms=1000, max_pending=10)
>>> j.add_example("a", {"id": "a", "event_time": 0}, 0)
[]
>>> [(ex["id"], y) for ex, y, _ in j.add_label("a", True, 500)]
[('a', True)]
>>> j.add_example("b", {"id": "b", "event_time": 600}, 600)
[]
>>> j.advance(1700); j.expired, j.pending
(1, 0)
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class LabelJoin:
    """Bounded, event-time TTL buffer joining examples and labels by example id."""

    def __init__(self, ttl_ms: int = 3_600_000, max_pending: int = 100_000) -> None:
        if ttl_ms < 0 or max_pending < 1:
            raise ValueError("ttl_ms must be >= 0 and max_pending >= 1")
        self.ttl_ms = ttl_ms
        self.max_pending = max_pending
        # id -> (event_time, example, meta); insertion order ~ event time order
        self.examples: OrderedDict[str, tuple[int, dict[str, Any], Any]] = OrderedDict()
        # id -> (event_time, label) for labels that came first
        self.labels: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self.watermark = 0
        self.joined = 0
        self.expired = 0
        self.evicted = 0
        self.orphan_labels = 0

    @property
    def pending(self) -> int:
        """Examples waiting for their label."""
        return len(self.examples)

    def add_example(
        self, example_id: str, example: dict[str, Any], event_time: int, meta: Any = None
    ) -> list[tuple[dict[str, Any], Any, Any]]:
        """Buffer an unlabelled example; ``[(example, label, meta)]`` if its label waited."""
        self.advance(event_time)
        early = self.labels.pop(example_id, None)
        if early is not None:
            self.joined += 1
            return [(example, early[1], meta)]
        if event_time + self.ttl_ms < self.watermark:
            self.expired += 1  # arrived already too old to ever be joined
            return []
        self.examples[example_id] = (event_time, example, meta)
        self.examples.move_to_end(example_id)
        while len(self.examples) > self.max_pending:
            self.examples.popitem(last=False)
            self.evicted += 1
        return []

    def add_label(
        self, example_id: str, label: Any, event_time: int | None = None
    ) -> list[tuple[dict[str, Any], Any, Any]]:
        """Join a label; returns ``[(example, label, meta)]`` when its example is waiting."""
        if event_time is not None:
            self.advance(event_time)
        found = self.examples.pop(example_id, None)
        if found is not None:
            self.joined += 1
            return [(found[1], label, found[2])]
        t = self.watermark if event_time is None else event_time
        self.labels[example_id] = (t, label)
        self.labels.move_to_end(example_id)
        while len(self.labels) > self.max_pending:
            self.labels.popitem(last=False)
            self.orphan_labels += 1
        return []

    def advance(self, event_time: int) -> None:
        """Move the watermark forward and expire what is older than ``watermark - ttl_ms``."""
        if event_time <= self.watermark:
            return
        self.watermark = event_time
        horizon = self.watermark - self.ttl_ms
        # Buffers are in arrival order, close to event-time order: expire from the front
        # (O(expired)); an out-of-order straggler goes when the entries before it have.
        while self.examples:
            key, (t, _, _) = next(iter(self.examples.items()))
            if t >= horizon:
                break
            del self.examples[key]
            self.expired += 1
        while self.labels:
            key, (t, _) = next(iter(self.labels.items()))
            if t >= horizon:
                break
            del self.labels[key]
            self.orphan_labels += 1

    def counters(self) -> dict[str, int]:
        """Join counters, for candidates' metrics and status displays."""
        return {"joined": self.joined, "expired": self.expired, "evicted": self.evicted,
                "orphan_labels": self.orphan_labels, "pending": self.pending}
