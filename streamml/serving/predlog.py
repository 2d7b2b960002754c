"""Prediction logging: ``:predict`` instances and predictions to ``<pipeline>.predictions``.

The request path only *offers* a request to :class:`PredictionLog`: one lock
acquisition and one append to a bounded in-memory queue (no encoding, no I/O).
A background thread drains the queue every ``flush_interval_s`` (or as soon as
``batch_size`` instances are pending), builds one
:class:`~streamml.payloads.predictions.Prediction` record per instance, sends
them and flushes once per batch. Logging never slows or fails a request:

* when the queue holds ``max_pending`` instances, a request's instances are
  *dropped* and counted (a warning is logged once);
* a send that fails (broker down...) is logged and its instances are counted as
  ``failed``; serving goes on.

So every offered instance ends up in exactly one of ``logged``, ``dropped``,
``failed`` or ``pending`` (:meth:`PredictionLog.counts`).

>>> import tempfile
>>> from streamml.log import open_log
>>> log = open_log("embedded://" + tempfile.mkdtemp())
>>> plog = PredictionLog(log, "demo", source="host:8501").start()
>>> plog.offer("tipper", 3, "req-1", [{"fare": 9.5}, {"fare": 1.0, "x": {"a": 1}}],
...            [0.9, 0.1], received_ms=1_700_000_000_000)
True
>>> plog.stop()
>>> plog.counts()["logged"], log.describe_topic("demo.predictions").records
(2, 2)
>>> log.close()
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import orjson

from streamml import serde
from streamml.log import Log
from streamml.log.base import Producer

logger = logging.getLogger("streamml.serving")

_SCALARS = (str, int, float, bool, type(None))
#: Records built between two voluntary GIL releases of the writer, so the event loop
#: waits at most a few hundred microseconds for it (not the 5 ms switch interval).
YIELD_EVERY = 32
#: (model, version, request id, instances, predictions, received_ms)
_Item = tuple[str, int, str, Sequence[Any], Sequence[Any], int]


def _feature(value: Any) -> Any:
    """A feature value as it can travel in ``features``: nested objects become JSON text.

    >>> _feature(1.5), _feature([1, "a"]), _feature({"a": [1]}), _feature([[1]])
    (1.5, [1, 'a'], '{"a":[1]}', '[[1]]')
    """
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, list) and all(isinstance(v, _SCALARS) for v in value):
        return value
    return orjson.dumps(value).decode()


def records(item: _Item, pipeline: str, source: str) -> list[tuple[bytes, bytes, int]]:
    """``(key, value, timestamp_ms)`` of the ``Prediction`` records of one request.

    >>> [(k, v) for k, v, _ in records(("m", 1, "r", [{"x": 1}], [0.5], 7), "p", "h:1")]
    [(b'r:0', b'{"id":"r:0","request_id":"r","index":0,"source":"h:1","event_time":7,\
"split":"serving","model":"m","version":1,"features":{"x":1},"prediction":0.5}')]
    """
    model, version, request_id, instances, predictions, received_ms = item
    out = []
    for i, (inst, pred) in enumerate(zip(instances, predictions, strict=True)):
        rid = f"{request_id}:{i}"
        features = {str(k): _feature(v) for k, v in inst.items()} if isinstance(inst, dict) else {}
        value = {"id": rid, "request_id": request_id, "index": i, "source": source,
                 "event_time": received_ms, "split": "serving", "model": model,
                 "version": version, "features": features, "prediction": pred}
        out.append((rid.encode(), serde.encode(value), received_ms))
    return out


class PredictionLog:
    """Buffer ``:predict`` results and write them to ``<pipeline>.predictions`` in batches.

    ``max_pending`` bounds the instances held in memory; ``batch_size`` instances
    pending wake the writer early, else it writes every ``flush_interval_s``.
    """

    def __init__(self, log: Log, pipeline: str, *, source: str, max_pending: int = 10_000,
                 batch_size: int = 500, flush_interval_s: float = 0.05) -> None:
        if max_pending < 1 or batch_size < 1:
            raise ValueError("max_pending and batch_size must be >= 1")
        self.log = log
        self.pipeline = pipeline
        self.topic = f"{pipeline}.predictions"
        self.source = source
        self.max_pending = max_pending
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._items: deque[_Item] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._producer: Producer | None = None
        self._warned = False
        self.pending = 0
        self.offered = 0
        self.logged = 0
        self.dropped = 0
        self.failed = 0
        self.batches = 0

    # -- request path (event loop thread) -------------------------------------------
    def offer(self, model: str, version: int, request_id: str, instances: Sequence[Any],
              predictions: Sequence[Any], received_ms: int) -> bool:
        """Queue one request's results; ``False`` if they were dropped (queue full)."""
        n = len(predictions)
        with self._lock:
            self.offered += n
            if self.pending + n > self.max_pending:
                self.dropped += n
                warn = not self._warned
                self._warned = True
            else:
                self._items.append((model, version, request_id, instances, predictions,
                                    received_ms))
                self.pending += n
                if self.pending >= self.batch_size:
                    self._wake.set()
                return True
        if warn:
            logger.warning("prediction log queue full (%d instances pending): dropping "
                           "predictions instead of slowing requests; see "
                           "streamml_predictions_dropped_total", self.max_pending)
        return False

    def counts(self) -> dict[str, int]:
        """``offered`` = ``logged`` + ``dropped`` + ``failed`` + ``pending``, and ``batches``."""
        with self._lock:
            return {"offered": self.offered, "logged": self.logged, "dropped": self.dropped,
                    "failed": self.failed, "pending": self.pending, "batches": self.batches,
                    "max_pending": self.max_pending}

    # -- writer thread -------------------------------------------------------------
    def start(self) -> PredictionLog:
        """Create the topic if needed, open a producer, start the writer thread."""
        if not self.log.topic_exists(self.topic):
            from streamml.runtime.runner import topic_spec

            self.log.create_topic(topic_spec(self.pipeline, self.topic), exist_ok=True)
        self._producer = self.log.producer()
        self._thread = threading.Thread(target=self._run, name="streamml-predlog", daemon=True)
        self._thread.start()
        return self

    def _take(self) -> list[_Item]:
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items

    def _write(self, items: list[_Item]) -> None:
        if not items or self._producer is None:
            return
        n = sum(len(it[4]) for it in items)
        try:
            done = 0
            for item in items:
                for key, value, ts in records(item, self.pipeline, self.source):
                    self._producer.send(self.topic, value, key, timestamp_ms=ts)
                done += len(item[4])
                if done >= YIELD_EVERY:
                    done = 0
                    time.sleep(0)  # let the request loop have the GIL
            self._producer.flush()
        except Exception as exc:  # logging must never stop serving
            logger.warning("could not log %d predictions to %s: %s", n, self.topic, exc)
            with self._lock:
                self.failed += n
                self.pending -= n
            return
        with self._lock:
            self.logged += n
            self.pending -= n
            self.batches += 1

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            self._write(self._take())
        self._write(self._take())  # what was queued before stop

    def stop(self) -> None:
        """Write what is queued, stop the thread, close the producer (idempotent)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self._producer is not None:
            try:
                self._producer.close()
            except Exception as exc:
                logger.warning("closing the prediction log producer: %s", exc)
            self._producer = None
