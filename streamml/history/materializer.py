"""LineageMaterializer: the processor that keeps ``<p>.metadata`` in the DuckDB store."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import ValidationError

from streamml.errors import ConfigError
from streamml.history.lineage_store import LineageStore, decode_event
from streamml.log.base import TopicPartition
from streamml.payloads.metadata import MetadataEvent
from streamml.processors.base import Emit, Message, Processor, State
from streamml.processors.deadletter import dead_letter_emit

logger = logging.getLogger("streamml.history")


class LineageMaterializer(Processor):
    """Processor: keeps ``<pipeline>.metadata`` in a :class:`LineageStore`.

    Hosted by a runner, it relies on the host's checkpoint for its offsets; the
    store is upserted by event id, so the at-least-once redelivery after a crash
    changes nothing. It also records the next offsets in the store, so that
    ``streamml lineage`` (which syncs from them) does not read the events again.
    Started without state (a new run, or a reset pipeline) over a store whose
    offsets are ahead of the topic, it rebuilds the pipeline's lineage: the
    topic was recreated. The store is closed whenever the input idles, so that
    other processes (``streamml lineage``, ``query``) can open the DuckDB file;
    while another process holds it, events are left on the topic (a warning says
    so) and ``streamml lineage`` catches up from the stored offsets.
    Invalid events go to ``<p>.deadletter`` (reason ``invalid_payload``).
    Events are written in one DuckDB transaction per ``flush_events`` events
    and at every checkpoint (``snapshot()``, before the host records the
    offsets), on idle and on close: one commit per micro-batch cost ~17 ms.
    ``snapshot()`` itself is only a counter.

    >>> import tempfile
    >>> from pathlib import Path
    >>> m = LineageMaterializer("p", str(Path(tempfile.mkdtemp()) / "l.duckdb"))
    >>> ev = {"id": "x", "pipeline": "p", "kind": "action", "component": "c", "time": 1}
    >>> list(m.process([Message("p.metadata", 0, 0, 1, "x", ev)])), m.snapshot()
    ([], {'events': 1, 'refused': 0})
    >>> [e.topic for e in m.process([Message("p.metadata", 0, 1, 1, "y", {"id": "y"})])]
    ['p.deadletter']
    >>> m.flush()
    >>> m.store.offsets("p.metadata")
    {0: 2}
    >>> m.close()
    """

    name = "lineage"

    def __init__(self, pipeline: str, db_path: str, *, flush_events: int = 5000) -> None:
        self.pipeline = pipeline
        self.flush_events = flush_events
        self._pending: list[MetadataEvent] = []
        self._pending_next: dict[TopicPartition, int] = {}
        self._pending_first: dict[int, int] = {}
        self.db_path = db_path
        self.topic = f"{pipeline}.metadata"
        self.deadletter_topic = f"{pipeline}.deadletter"
        self.inputs = (self.topic,)
        self.outputs = (self.deadletter_topic,)
        self.events = 0
        self.refused = 0
        self.busy = 0
        """Batches left on the topic because the store was locked by another process."""
        self._fresh = True
        self._store: LineageStore | None = None

    @property
    def store(self) -> LineageStore:
        if self._store is None:
            self._store = LineageStore(Path(self.db_path))
        return self._store

    def process(self, batch: Sequence[Message]) -> Iterable[Emit]:
        out: list[Emit] = []
        nxt, first = self._pending_next, self._pending_first
        for m in batch:
            tp = TopicPartition(m.topic, m.partition)
            nxt[tp] = max(nxt.get(tp, 0), m.offset + 1)
            first[m.partition] = min(first.get(m.partition, m.offset), m.offset)
            try:
                ev = decode_event(m.value)
            except ValidationError as exc:
                out.append(self._dead_letter(m, str(exc).splitlines()[0]))
                continue
            if ev is not None:
                self._pending.append(ev)
        if len(self._pending) >= self.flush_events:
            self.flush()
        return out

    def flush(self) -> None:
        """Write the buffered events and their next offsets in one transaction."""
        if not self._pending_next:
            return
        events, nxt, first = self._pending, self._pending_next, self._pending_first
        self._pending, self._pending_next, self._pending_first = [], {}, {}
        try:
            store = self.store
        except ConfigError as exc:  # another process holds the DuckDB file
            if not self.busy:
                logger.warning("%s; lineage stays on %s until `streamml lineage` syncs it",
                               exc, self.topic)
            self.busy += 1
            return
        if self._fresh:
            self._fresh = False
            stored = store.offsets(self.topic)
            if any(stored.get(p, 0) > o for p, o in first.items()):
                store.forget(self.pipeline, self.topic)
        self.events += store.apply(events, nxt)

    def _dead_letter(self, msg: Message, detail: str) -> Emit:
        self.refused += 1
        return dead_letter_emit(msg, reason="invalid_payload", detail=detail,
                                component="LineageMaterializer", pipeline=self.pipeline,
                                topic=self.deadletter_topic,
                                key=f"{msg.topic}/{msg.partition}/{msg.offset}")

    def on_idle(self, now_ms: int) -> Iterable[Emit]:
        self.close()  # let other processes open the store while nothing arrives
        return ()

    def snapshot(self) -> State:
        self.flush()  # the host records the offsets next: the store must hold the events
        return {"events": self.events, "refused": self.refused}

    def restore(self, state: State) -> None:
        if isinstance(state, dict):
            self._fresh = False
            self.events = int(state.get("events", 0))
            self.refused = int(state.get("refused", 0))

    def close(self) -> None:
        self.flush()
        if self._store is not None:
            self._store.close()
            self._store = None
