"""What a pipeline is doing, read from its topics: components, windows, alerts, models.

:class:`TopicWatcher` follows ``<p>.statistics``, ``<p>.anomalies``,
``<p>.evaluations`` and ``<p>.models`` incrementally (no consumer group: it
never disturbs the pipeline) and folds them into a :class:`PipelineView`:
the last final statistics window, the alerts still open (one per cause, the
last record of an alert id wins), every evaluation and every model version.
:func:`pipeline_status` adds each component's state from its checkpoint in
``<p>.checkpoints`` (age, lag = end offsets − checkpointed next offsets; a
faust worker's per-partition checkpoints are merged, each covering its partition).
Live displays (``streamml demo``) and ``streamml status`` share it.

>>> import tempfile
>>> from streamml.log.embedded import EmbeddedLog
>>> log = EmbeddedLog(tempfile.mkdtemp())
>>> status = pipeline_status(log, "nothing")
>>> status.components, status.view.open_alerts, status.view.models
([], [], [])
>>> log.close()
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from streamml import serde
from streamml.errors import CheckpointError, InvalidRecord
from streamml.log.base import Log, TopicPartition
from streamml.log.read import read_to_end
from streamml.runtime.checkpoint import CheckpointStore, decode_checkpoint

WATCHED = ("statistics", "anomalies", "evaluations", "models")
#: A component whose last checkpoint is older than this is reported ``idle``.
RUNNING_WITHIN_S = 15.0


@dataclass
class PipelineView:
    """Folded contents of the watched topics."""

    windows: int = 0
    last_window: dict[str, Any] | None = None
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    alert_records: int = 0
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)

    @property
    def open_alerts(self) -> list[dict[str, Any]]:
        """Alerts whose last record is not ``resolved``, oldest first."""
        return sorted((a for a in self.alerts.values() if a.get("status") != "resolved"),
                      key=lambda a: (a.get("first_seen", 0), a.get("id", "")))

    @property
    def blessed(self) -> list[dict[str, Any]]:
        return [e for e in self.evaluations if e.get("blessed")]

    def fold(self, role: str, value: Any) -> None:
        if not isinstance(value, dict):
            return
        if role == "statistics":
            if value.get("final", True) and value.get("window", {}).get("kind") != "cumulative":
                self.windows += 1
                self.last_window = value
        elif role == "anomalies":
            self.alert_records += 1
            if "id" in value:
                self.alerts[value["id"]] = value
        elif role == "evaluations":
            self.evaluations.append(value)
        elif role == "models" and value.get("kind") == "release":
            self.models.append(value)


class TopicWatcher:
    """Follow the watched topics of ``pipeline`` from the beginning; :meth:`poll` catches up."""

    def __init__(self, log: Log, pipeline: str) -> None:
        self.log = log
        self.pipeline = pipeline
        self.view = PipelineView()
        self._consumer = log.consumer(group_id=None)
        self._assigned: set[str] = set()

    def _assign(self) -> None:
        missing = [f"{self.pipeline}.{r}" for r in WATCHED
                   if f"{self.pipeline}.{r}" not in self._assigned]
        new = [t for t in missing if self.log.topic_exists(t)]
        if not new:
            return
        tps = [TopicPartition(t, p.partition) for t in new
               for p in self.log.describe_topic(t).partitions]
        current = list(self._consumer.assignment()) if self._assigned else []
        self._consumer.assign(current + tps)
        for tp in tps:
            self._consumer.seek(tp, 0)
        self._assigned.update(new)

    def poll(self, max_batches: int = 50, timeout_s: float = 0.0) -> PipelineView:
        """Read what is new (up to ``max_batches`` polls) and fold it into :attr:`view`."""
        self._assign()
        if not self._assigned:
            return self.view
        for _ in range(max_batches):
            records = self._consumer.poll(timeout_s, 5000)
            if not records:
                break
            for r in records:
                try:
                    value = serde.decode(r.value)
                except (InvalidRecord, UnicodeDecodeError):
                    continue
                self.view.fold(r.topic.rsplit(".", 1)[1], value)
        return self.view

    def catch_up(self, timeout_s: float = 10.0) -> PipelineView:
        """Poll until every watched partition is read to its current end."""
        deadline = time.monotonic() + timeout_s
        self._assign()
        while time.monotonic() < deadline:
            self.poll(timeout_s=0.2)
            ends = self._consumer.end_offsets(list(self._consumer.assignment()))
            if all(self._consumer.position(tp) >= end for tp, end in ends.items()):
                break
        return self.view

    def close(self) -> None:
        self._consumer.close()


@dataclass
class ComponentState:
    """One component's state, from its last checkpoint."""

    name: str
    state: str
    """``running`` (checkpointed in the last 15 s), ``idle`` or ``not started``."""
    lag: int | None
    last_checkpoint_ms: int | None


@dataclass
class PipelineStatus:
    pipeline: str
    components: list[ComponentState]
    view: PipelineView


def _components(log: Log, pipeline: str, names: list[str] | None,
                hmac_key: bytes | None) -> list[ComponentState]:
    store = CheckpointStore(log, pipeline, hmac_key=hmac_key)
    if not log.topic_exists(store.topic):
        return [ComponentState(n, "not started", None, None) for n in names or []]
    checkpoints: dict[str, Any] = {}
    try:
        for r in read_to_end(log, store.topic, timeout_s=30.0, max_records=5000):
            if r.key is None:
                continue
            if r.value is None:  # tombstone
                checkpoints.pop(r.key.decode(), None)
                continue
            try:
                checkpoints[r.key.decode()] = decode_checkpoint(r.value, hmac_key=hmac_key)
            except CheckpointError:
                continue
    except TimeoutError:
        pass  # show what was read: a status line, not an error
    now = int(time.time() * 1000)
    by_name = _merge(checkpoints.values())
    out = []
    for name in names if names is not None else sorted(by_name):
        found = by_name.get(name)
        if found is None:
            out.append(ComponentState(name, "not started", None, None))
            continue
        offsets, created_ms = found
        lag = 0
        for topic, parts in offsets.items():
            if not log.topic_exists(topic):
                continue
            for p in log.describe_topic(topic).partitions:
                lag += max(0, p.end_offset - parts.get(p.partition, 0))
        recent = now - created_ms <= RUNNING_WITHIN_S * 1000
        out.append(ComponentState(name, "running" if recent else "idle",
                                  lag if offsets else None, created_ms))
    return out


def _merge(checkpoints: Any) -> dict[str, tuple[dict[str, dict[int, int]], int]]:
    """Per processor: the next offsets of all its checkpoints and the newest one's time.

    One checkpoint per processor from the embedded runner (all partitions); one
    per input partition from a faust worker: each holds its partition's offsets.
    """
    out: dict[str, tuple[dict[str, dict[int, int]], int]] = {}
    for cp in sorted(checkpoints, key=lambda c: c.created_ms):
        offsets, newest = out.get(cp.processor, ({}, 0))
        for topic, parts in cp.offsets.items():
            if cp.partition is None:
                offsets[topic] = dict(parts)
            elif cp.partition in parts:
                offsets.setdefault(topic, {})[cp.partition] = parts[cp.partition]
        out[cp.processor] = (offsets, max(newest, cp.created_ms))
    return out


def pipeline_status(log: Log, pipeline: str, components: list[str] | None = None, *,
                    hmac_key: bytes | None = None) -> PipelineStatus:
    """Everything ``streamml status`` shows about ``pipeline`` (read-only)."""
    watcher = TopicWatcher(log, pipeline)
    try:
        view = watcher.catch_up()
    finally:
        watcher.close()
    return PipelineStatus(pipeline, _components(log, pipeline, components, hmac_key), view)
