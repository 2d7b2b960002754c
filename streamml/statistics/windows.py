"""Windows of StatisticsGen: keys, ids, bounds and the state of one open window.

A window record's key is ``<split>/<window id>``: the split as :func:`split_key`
makes it an identifier, and one of three kinds of window, all with deterministic ids:

* ``count:<size>:<index>`` — tumbling, exactly ``size`` examples of one split;
* ``time:<size_ms>:<start_ms>`` — tumbling by event time, ``[start, start + size)``,
  aligned to the epoch; closed when the watermark (the highest event time seen
  minus the allowed lateness) passes its end, or on idle;
* ``cumulative`` or ``cumulative:v<schema version>`` — everything since the
  start, or since a schema version came into force.

>>> count_window_id(10_000, 3), time_window_id(60_000, 1_700_000_040_000)
('count:10000:3', 'time:60000:1700000040000')
>>> time_window_start(1_700_000_059_999, 60_000)
1700000040000
>>> w = OpenWindow(kind="count", window_id="count:2:0", size=2, index=0)
>>> w.observe("p.examples", 0, 5, 1000, 900); w.observe("p.examples", 0, 6, 2000, 950)
>>> p = w.payload("demo", "train", schema_version=None, with_sketches=False)
>>> p.window.event_time.start_ms, p.window.event_time.end_ms, p.inputs[0].end, p.created_at
(900, 951, 7, 2000)
"""

from __future__ import annotations

import functools
import hashlib
import re
import string
from typing import Any, Literal

import numpy as np

from streamml.payloads.statistics import StatisticsWindow
from streamml.statistics.dataset import StatisticsAccumulator
from streamml.statistics.options import StatisticsOptions

WindowKind = Literal["count", "time", "cumulative"]


def count_window_id(size: int, index: int) -> str:
    """Id of the ``index``-th tumbling window of ``size`` examples."""
    return f"count:{size}:{index}"


def time_window_id(size_ms: int, start_ms: int) -> str:
    """Id of the event-time window ``[start_ms, start_ms + size_ms)``."""
    return f"time:{size_ms}:{start_ms}"


def cumulative_window_id(since_schema_version: int | None) -> str:
    """Id of the cumulative window (restarted at a schema version, if any).

    >>> cumulative_window_id(None), cumulative_window_id(2)
    ('cumulative', 'cumulative:v2')
    """
    return "cumulative" if since_schema_version is None else f"cumulative:v{since_schema_version}"


_SPLIT_NAME = re.compile(r"[a-z][a-z0-9_]*")


@functools.lru_cache(maxsize=1024)
def split_key(value: str) -> str:
    """The statistics split of an example's ``split``: a lowercase identifier, as record
    keys and the ``StatisticsWindow`` schema want (other characters become ``_``;
    a name with no ASCII letter or digit gets a hash; empty: ``all``).

    >>> split_key("train"), split_key("Eval-2"), split_key("2024"), split_key("")
    ('train', 'eval_2', 's_2024', 'all')
    >>> split_key("训练") == split_key("训练") != split_key("评估")
    True
    """
    if _SPLIT_NAME.fullmatch(value):
        return value
    if not value:
        return "all"
    key = re.sub(r"[^a-z0-9_]", "_", value.lower())
    if not key.strip("_"):  # nothing ASCII left (say "训练"): a name of its own, not "all"
        return "s_" + hashlib.blake2b(value.encode("utf-8", "surrogatepass"),
                                      digest_size=4).hexdigest()
    return key if key[0] in string.ascii_lowercase else f"s_{key}"


def time_window_start(event_ms: int, size_ms: int) -> int:
    """Start of the epoch-aligned window of ``size_ms`` that holds ``event_ms``."""
    return event_ms - event_ms % size_ms


class OpenWindow:
    """One window being filled: its accumulator, event-time extent and input offsets.

    >>> w = OpenWindow(kind="cumulative", window_id="cumulative")
    >>> w.accumulator.add_batch([{"x": 1}])
    >>> OpenWindow.from_dict(w.to_dict()).to_dict() == w.to_dict()
    True
    """

    def __init__(self, kind: WindowKind, window_id: str, size: int | None = None,
                 index: int | None = None, start_ms: int | None = None,
                 since_schema_version: int | None = None,
                 options: StatisticsOptions | None = None) -> None:
        self.kind: WindowKind = kind
        self.window_id = window_id
        self.size = size
        self.index = index
        self.start_ms = start_ms
        self.since_schema_version = since_schema_version
        self.accumulator = StatisticsAccumulator(options)
        self.min_event_ms: int | None = None
        self.max_event_ms: int | None = None
        self.max_log_ms = 0
        #: "topic/partition" -> [first offset, last offset + 1]
        self.offsets: dict[str, list[int]] = {}

    def observe(self, topic: str, partition: int, offset: int, log_ms: int,
                event_ms: int) -> None:
        """Record where one example of the window came from (not its features)."""
        key = f"{topic}/{partition}"
        span = self.offsets.get(key)
        if span is None:
            self.offsets[key] = [offset, offset + 1]
        else:
            span[0] = min(span[0], offset)
            span[1] = max(span[1], offset + 1)
        self.min_event_ms = event_ms if self.min_event_ms is None else min(self.min_event_ms,
                                                                           event_ms)
        self.max_event_ms = event_ms if self.max_event_ms is None else max(self.max_event_ms,
                                                                           event_ms)
        self.max_log_ms = max(self.max_log_ms, log_ms)

    def observe_many(self, topic: str, partition: np.ndarray, offset: np.ndarray,
                     log_ms: np.ndarray, event_ms: np.ndarray) -> None:
        """:meth:`observe` for arrays of examples (one numpy pass per partition).

        >>> w = OpenWindow(kind="count", window_id="piece")
        >>> w.observe_many("t", np.array([0, 1, 0]), np.array([5, 9, 3]), np.array([1, 2, 3]),
        ...                np.array([7, 8, 6]))
        >>> w.offsets, w.min_event_ms, w.max_event_ms, w.max_log_ms
        ({'t/0': [3, 6], 't/1': [9, 10]}, 6, 8, 3)
        """
        if offset.size == 0:
            return
        parts = np.unique(partition)
        for part in parts.tolist():
            offs = offset if parts.size == 1 else offset[partition == part]
            lo, hi = int(offs.min()), int(offs.max()) + 1
            key = f"{topic}/{part}"
            span = self.offsets.get(key)
            if span is None:
                self.offsets[key] = [lo, hi]
            else:
                span[0], span[1] = min(span[0], lo), max(span[1], hi)
        lo_e, hi_e = int(event_ms.min()), int(event_ms.max())
        self.min_event_ms = lo_e if self.min_event_ms is None else min(self.min_event_ms, lo_e)
        self.max_event_ms = hi_e if self.max_event_ms is None else max(self.max_event_ms, hi_e)
        self.max_log_ms = max(self.max_log_ms, int(log_ms.max()))

    def take_over(self, other: OpenWindow) -> None:
        """Become ``other``'s examples without copying (this window must be new and empty).

        The same state as ``merge(other)`` into this empty window gives (the KLL
        sketches' coin counters are mixed as a merge mixes them), so ``other`` must
        not be read or changed afterwards: merge it into other windows first.
        """
        if self.accumulator.num_examples or self.offsets:
            raise ValueError("take_over needs an empty window")
        for feature in other.accumulator.features.values():
            if feature.numeric is not None:
                feature.numeric.quantiles.mix_coins_as_merged()
        self.accumulator, self.offsets = other.accumulator, other.offsets
        self.min_event_ms, self.max_event_ms = other.min_event_ms, other.max_event_ms
        self.max_log_ms = other.max_log_ms

    def merge(self, other: OpenWindow) -> None:
        """Fold another window's examples in (accumulator, offsets and extents)."""
        self.accumulator.merge(other.accumulator)
        for key, (start, end) in other.offsets.items():
            span = self.offsets.setdefault(key, [start, end])
            span[0], span[1] = min(span[0], start), max(span[1], end)
        for bound in (other.min_event_ms, other.max_event_ms):
            if bound is not None:
                self.min_event_ms = bound if self.min_event_ms is None else min(
                    self.min_event_ms, bound)
                self.max_event_ms = bound if self.max_event_ms is None else max(
                    self.max_event_ms, bound)
        self.max_log_ms = max(self.max_log_ms, other.max_log_ms)

    @property
    def end_ms(self) -> int | None:
        """End of an event-time window (exclusive)."""
        if self.kind != "time" or self.start_ms is None or self.size is None:
            return None
        return self.start_ms + self.size

    def _event_time(self) -> dict[str, int] | None:
        if self.kind == "time" and self.start_ms is not None and self.size is not None:
            return {"start_ms": self.start_ms, "end_ms": self.start_ms + self.size}
        if self.min_event_ms is None or self.max_event_ms is None:
            return None
        return {"start_ms": max(self.min_event_ms, 0), "end_ms": max(self.max_event_ms + 1, 0)}

    def payload(self, pipeline: str, split: str, schema_version: int | None,
                with_sketches: bool, final: bool = True) -> StatisticsWindow:
        """The ``<pipeline>.statistics`` record of this window."""
        return StatisticsWindow.model_validate(
            self.payload_dict(pipeline, split, schema_version, with_sketches, final))

    def payload_dict(self, pipeline: str, split: str, schema_version: int | None,
                     with_sketches: bool, final: bool = True) -> dict[str, Any]:
        """:meth:`payload` as its JSON dict: the record StatisticsGen publishes.

        Built without the pydantic models (a window has hundreds of nested values);
        the same as ``payload(...).to_json()``, byte for byte once encoded
        (``tests/unit/test_statistics_payload_dict.py``).
        """
        inputs = []
        for key, (start, end) in sorted(self.offsets.items()):
            topic, _, partition = key.rpartition("/")
            inputs.append({"topic": topic, "partition": int(partition), "start": start,
                           "end": end})
        return {
            "pipeline": pipeline, "split": split,
            "window": {"id": self.window_id, "kind": self.kind, "size": self.size,
                       "index": self.index, "event_time": self._event_time(),
                       "since_schema_version": self.since_schema_version},
            "num_examples": self.accumulator.num_examples,
            "features": self.accumulator.extract_dict(with_sketches=with_sketches),
            "schema_version": schema_version, "inputs": inputs, "final": final,
            "created_at": self.max_log_ms, "component": "StatisticsGen",
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "kind": self.kind, "id": self.window_id, "size": self.size, "index": self.index,
            "start_ms": self.start_ms, "since_schema_version": self.since_schema_version,
            "accumulator": self.accumulator.to_dict(), "min_event_ms": self.min_event_ms,
            "max_event_ms": self.max_event_ms, "max_log_ms": self.max_log_ms,
            "offsets": {k: list(v) for k, v in self.offsets.items()},
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> OpenWindow:
        """Inverse of :meth:`to_dict`."""
        w = cls(state["kind"], state["id"], state["size"], state["index"], state["start_ms"],
                state["since_schema_version"])
        w.accumulator = StatisticsAccumulator.from_dict(state["accumulator"])
        w.min_event_ms, w.max_event_ms = state["min_event_ms"], state["max_event_ms"]
        w.max_log_ms = int(state["max_log_ms"])
        w.offsets = {k: [int(a), int(b)] for k, (a, b) in state["offsets"].items()}
        return w


class SplitState:
    """Open windows of one split in StatisticsGen: count, time and cumulative.

    >>> s = SplitState(); SplitState.from_dict(s.to_dict()).to_dict() == s.to_dict()
    True
    """

    def __init__(self) -> None:
        self.count_index = 0
        self.count_seen = 0
        self.counts: dict[int, OpenWindow] = {}
        self.times: dict[int, OpenWindow] = {}
        self.cumulative: OpenWindow | None = None
        self.cumulative_emitted = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "count_index": self.count_index, "count_seen": self.count_seen,
            "counts": {str(i): w.to_dict() for i, w in self.counts.items()},
            "times": {str(t): w.to_dict() for t, w in self.times.items()},
            "cumulative": self.cumulative.to_dict() if self.cumulative else None,
            "cumulative_emitted": self.cumulative_emitted,
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> SplitState:
        s = cls()
        s.count_index, s.count_seen = int(state["count_index"]), int(state["count_seen"])
        s.counts = {int(i): OpenWindow.from_dict(w) for i, w in state["counts"].items()}
        s.times = {int(t): OpenWindow.from_dict(w) for t, w in state["times"].items()}
        cum = state["cumulative"]
        s.cumulative = OpenWindow.from_dict(cum) if cum is not None else None
        s.cumulative_emitted = int(state["cumulative_emitted"])
        return s
