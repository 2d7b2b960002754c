"""Two small processors the backbone demo chains: raw rows → examples → window summaries.

They are deliberately simple; the full ExampleGen and StatisticsGen replace
them in later work. They still follow the whole contract: deterministic output
keys, JSON-able state, snapshot/restore.

>>> to_ex = ToExample("p.raw", "p.examples", source="taxi.csv")
>>> [out] = to_ex.process([Message("p.raw", 0, 7, 1000, None, {"fare": "7.25", "tips": ""})])
>>> out.key, out.value["split"], out.value["features"]
('taxi.csv:0:7', 'train', {'fare': 7.25, 'tips': None})
>>> means = WindowMeans("p.examples", "p.statistics", window=2)
>>> list(means.process([Message("p.examples", 0, 0, 1, out.key, out.value)]))
[]
>>> [w] = means.process([Message("p.examples", 0, 1, 2, "k", {"features": {"fare": 2.75}})])
>>> w.key, w.value["features"]["fare"]
('window:0', {'count': 2, 'missing': 0, 'mean': 5.0, 'min': 2.75, 'max': 7.25})
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from typing import Any

from streamml.processors.base import Emit, Message, Processor, State


def split_of(example_id: str, eval_buckets: int = 1, total_buckets: int = 3) -> str:
    """Deterministic split by hash of the id: train:eval 2:1 by default, as in TFX.

    >>> split_of("taxi.csv:0:7")
    'train'
    """
    digest = hashlib.blake2b(example_id.encode(), digest_size=8).digest()
    bucket = int.from_bytes(digest, "big") % total_buckets
    return "eval" if bucket < eval_buckets else "train"


def _typed(value: Any) -> Any:
    """Empty strings are missing; numeric strings become int or float."""
    if not isinstance(value, str):
        return value
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        return value
    if math.isfinite(number) and number.is_integer() and "." not in value and "e" not in value:
        return int(number)
    return number


def _as_dict(state: State) -> dict[str, Any]:
    if not isinstance(state, dict):
        raise TypeError(f"expected a dict snapshot, got {type(state).__name__}")
    return state


class ToExample(Processor):
    """Turn raw JSON rows into examples with a stable id, event time and split."""

    name = "to_example"

    def __init__(self, source_topic: str, examples_topic: str, source: str = "raw",
                 label: str | None = None) -> None:
        self.source_topic = source_topic
        self.examples_topic = examples_topic
        self.source = source
        self.label = label
        self.inputs = (source_topic,)
        self.outputs = (examples_topic,)
        self.emitted = 0

    def process(self, batch: Sequence[Message]) -> Iterable[Emit]:
        out = []
        for msg in batch:
            row = msg.value if isinstance(msg.value, dict) else {"value": msg.value}
            example_id = f"{self.source}:{msg.partition}:{msg.offset}"
            features = {k: _typed(v) for k, v in row.items() if k != self.label}
            example = {
                "id": example_id,
                "event_time": msg.timestamp_ms,
                "split": split_of(example_id),
                "features": features,
                "label": _typed(row.get(self.label)) if self.label else None,
                "source": {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset},
            }
            out.append(Emit(self.examples_topic, example, key=example_id,
                            timestamp_ms=msg.timestamp_ms))
        self.emitted += len(out)
        return out

    def snapshot(self) -> State:
        return {"emitted": self.emitted}

    def restore(self, state: State) -> None:
        state = _as_dict(state)
        self.emitted = int(state["emitted"])


class WindowMeans(Processor):
    """Tumbling count windows of per-feature count, missing, mean, min and max."""

    name = "window_means"

    def __init__(self, examples_topic: str, statistics_topic: str, window: int = 1000) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.examples_topic = examples_topic
        self.statistics_topic = statistics_topic
        self.window = window
        self.inputs = (examples_topic,)
        self.outputs = (statistics_topic,)
        self._reset_state()
        self.windows_closed = 0

    def _reset_state(self) -> None:
        self.seen = 0
        # feature -> [count, missing, sum, min, max]; min/max None until a number is seen
        self.acc: dict[str, list[Any]] = {}
        self.first_ms: int | None = None
        self.last_ms: int | None = None

    def process(self, batch: Sequence[Message]) -> Iterable[Emit]:
        out: list[Emit] = []
        for msg in batch:
            features = msg.value.get("features", {}) if isinstance(msg.value, dict) else {}
            for name, value in features.items():
                acc = self.acc.setdefault(name, [0, 0, 0.0, None, None])
                if isinstance(value, bool) or not isinstance(value, int | float):
                    if value is None:
                        acc[1] += 1
                    continue
                acc[0] += 1
                acc[2] += value
                acc[3] = value if acc[3] is None else min(acc[3], value)
                acc[4] = value if acc[4] is None else max(acc[4], value)
            self.first_ms = msg.timestamp_ms if self.first_ms is None else self.first_ms
            self.last_ms = msg.timestamp_ms
            self.seen += 1
            if self.seen == self.window:
                out.append(self._close())
        return out

    def _close(self) -> Emit:
        index = self.windows_closed
        summary = {
            name: {
                "count": int(c), "missing": int(m),
                "mean": (s / c) if c else None,
                "min": lo, "max": hi,
            }
            for name, (c, m, s, lo, hi) in sorted(self.acc.items())
        }
        end_ms = self.last_ms
        value = {"window": index, "examples": self.seen, "start_ms": self.first_ms,
                 "end_ms": end_ms, "features": summary}
        self.windows_closed += 1
        self._reset_state()
        return Emit(self.statistics_topic, value, key=f"window:{index}", timestamp_ms=end_ms)

    def snapshot(self) -> State:
        return {"seen": self.seen, "acc": self.acc, "first_ms": self.first_ms,
                "last_ms": self.last_ms, "windows_closed": self.windows_closed}

    def restore(self, state: State) -> None:
        state = _as_dict(state)
        self.seen = int(state["seen"])
        self.acc = {k: list(v) for k, v in state["acc"].items()}
        self.first_ms, self.last_ms = state["first_ms"], state["last_ms"]
        self.windows_closed = int(state["windows_closed"])


def to_example_worker() -> ToExample:
    """Factory for ``streamml worker``: ``<p>.raw`` → ``<p>.examples`` of the configured pipeline.

    ``STREAMML_PIPELINE=taxi streamml worker streamml.processors.basic:to_example_worker``
    (the pipeline comes from the settings: ``STREAMML_PIPELINE`` or the config file).
    """
    from streamml.settings import load_settings

    p = load_settings().pipeline
    return ToExample(f"{p}.raw", f"{p}.examples", source=f"{p}.raw")


def window_means_worker() -> WindowMeans:
    """Factory for ``streamml worker``: ``<p>.examples`` → ``<p>.statistics``."""
    from streamml.settings import load_settings

    p = load_settings().pipeline
    return WindowMeans(f"{p}.examples", f"{p}.statistics")
