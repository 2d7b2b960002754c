"""The embedded runner: every processor of a pipeline in one process.

It plays the part Beam's DirectRunner plays for TFX. Each processor gets its
own consumer (group ``<pipeline>.<processor name>``) over all partitions of
its input topics and keeps ONE state for all of them. The loop is

    poll -> decode JSON -> process -> send emits -> (at checkpoint time)
    flush outputs -> write checkpoint (state + next offsets) -> commit offsets

so a crash anywhere leaves the last checkpoint consistent: a restart restores
that state, seeks to its offsets and re-emits at most the records processed
since (outputs at least once, state exactly once). Records that are not JSON
go to ``<pipeline>.deadletter`` with the reason and the original bytes. A
processor with ``raw_values`` gets the records' bytes undecoded and decodes
(and dead-letters) a whole batch itself: columnar, see
:mod:`streamml.statistics.rawbatch`.

>>> import tempfile
>>> from streamml.log.embedded import EmbeddedLog
>>> from streamml.log.base import TopicSpec
>>> from streamml.processors.basic import ToExample
>>> log = EmbeddedLog(tempfile.mkdtemp())
>>> _ = log.create_topic(TopicSpec("p.raw"))
>>> with log.producer() as prod:
...     prod.send("p.raw", b'{"fare": "7.25"}'); prod.send("p.raw", b"not json")
>>> runner = Runner(log, [ToExample("p.raw", "p.examples")], "p")
>>> runner.run_until_idle(idle_s=0.1)
>>> s = runner.stats()[0]
>>> (s.records_in, s.emitted, s.dead_letters, s.lag)
(2, 1, 1, 0)
>>> runner.close(); log.close()
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from operator import itemgetter
from types import FrameType

from streamml.errors import ConfigError, InvalidRecord
from streamml.log.base import (
    Consumer,
    Log,
    Producer,
    Record,
    TopicPartition,
    TopicSpec,
    advance_positions,
)
from streamml.processors.base import Emit, Message, Processor
from streamml.processors.deadletter import dead_letter
from streamml.runtime.checkpoint import Checkpoint, CheckpointStore, checkpoint_key
from streamml.serde import decode, decode_key, encode_key


@dataclass
class ProcessorStats:
    """Counters of one processor, for status displays."""

    name: str
    records_in: int = 0
    emitted: int = 0
    dead_letters: int = 0
    checkpoints: int = 0
    lag: int = 0


@dataclass
class _Task:
    processor: Processor
    consumer: Consumer
    positions: dict[TopicPartition, int]
    stats: ProcessorStats
    pending: int = 0
    dirty: bool = False
    last_checkpoint: float = field(default_factory=time.monotonic)
    last_input: float = field(default_factory=time.monotonic)
    last_idle_call: float = 0.0
    ends: dict[TopicPartition, int] = field(default_factory=dict)
    """End offsets of the inputs at the last lag lookup (:meth:`Runner.lags`)."""

    @property
    def behind(self) -> bool:
        """Input records known to exist (at the last lookup) that were not consumed yet."""
        return any(self.ends.get(tp, 0) > pos for tp, pos in self.positions.items())


_RECORD_ID = itemgetter(0, 1, 2)  # (topic, partition, offset) of a Record


def topic_spec(pipeline: str, topic: str) -> TopicSpec:
    """Spec for a topic the runner must create: from the catalog if it knows it."""
    prefix = f"{pipeline}."
    if topic.startswith(prefix):
        from streamml.catalog import load_catalog

        catalog = load_catalog()
        found = catalog.role_of(topic)
        if found is not None:
            return catalog.spec(*found)
    return TopicSpec(name=topic)


class Runner:
    """Run ``processors`` of ``pipeline`` over ``log`` in this process.

    Checkpoints are written when ``checkpoint_every_records`` inputs are
    pending or ``checkpoint_every_s`` has passed, and once more on stop.
    ``on_idle`` is called every ``idle_after_s`` while a processor has no input.

    "Drained" is decided from offsets, never from empty polls: on Kafka a poll
    returns nothing while a fetch is in flight although records are waiting.
    :meth:`lags` compares every processor's next offsets with the end offsets
    of its inputs, looked up in ONE request through a consumer of its own that
    never fetches (a fetching consumer's offset requests queue behind its
    pending long-poll fetch on the broker connection: up to ``fetch.max.wait``).
    """

    def __init__(
        self,
        log: Log,
        processors: Sequence[Processor],
        pipeline: str,
        *,
        checkpoint_every_records: int = 1000,
        checkpoint_every_s: float = 5.0,
        dead_letter: bool = True,
        idle_after_s: float = 1.0,
        batch_size: int = 500,
        poll_timeout_s: float = 0.05,
        hmac_key: bytes | None = None,
        create_topics: bool = True,
    ) -> None:
        names = [p.processor_name for p in processors]
        if len(set(names)) != len(names):
            raise ConfigError(f"processor names must be unique in a pipeline: {names}")
        if checkpoint_every_records < 1 or checkpoint_every_s <= 0:
            raise ConfigError("checkpoint intervals must be positive")
        self.log = log
        self.pipeline = pipeline
        self.processors = list(processors)
        self.checkpoint_every_records = checkpoint_every_records
        self.checkpoint_every_s = checkpoint_every_s
        self.dead_letter = dead_letter
        self.idle_after_s = idle_after_s
        self.batch_size = batch_size
        self.poll_timeout_s = poll_timeout_s
        self.create_topics = create_topics
        self.store = CheckpointStore(log, pipeline, hmac_key=hmac_key)
        self.deadletter_topic = topic_spec(pipeline, f"{pipeline}.deadletter").name
        self._tasks: list[_Task] = []
        self._producer: Producer | None = None
        self._offsets: Consumer | None = None
        self._started = False
        self._failed = False
        self._last_raw: tuple[list[tuple[str, int, int]], list[Message]] | None = None

    # -- lifecycle ------------------------------------------------------------
    def _ensure(self, topic: str) -> None:
        if self.create_topics and not self.log.topic_exists(topic):
            self.log.create_topic(topic_spec(self.pipeline, topic), exist_ok=True)

    def start(self) -> None:
        """Create missing topics, restore checkpoints and position every consumer."""
        if self._started:
            return
        self.store.ensure_topic()
        if self.dead_letter:
            self._ensure(self.deadletter_topic)
        checkpoints = self.store.load_all()
        self._producer = self.log.producer()
        self._offsets = self.log.consumer(group_id=None)  # end-offset lookups only
        for processor in self.processors:
            name = processor.processor_name
            for topic in (*processor.inputs, *processor.outputs):
                self._ensure(topic)
            consumer = self.log.consumer(group_id=f"{self.pipeline}.{name}")
            tps = [
                TopicPartition(topic, p.partition)
                for topic in processor.inputs
                for p in self.log.describe_topic(topic).partitions
            ]
            consumer.assign(tps)
            cp = checkpoints.get(checkpoint_key(name))
            if cp is not None:
                processor.restore(cp.state)
            starts = consumer.beginning_offsets(tps)
            positions: dict[TopicPartition, int] = {}
            for tp in tps:
                offset = cp.next_offset(tp) if cp is not None else None
                positions[tp] = max(offset if offset is not None else 0, starts[tp])
                consumer.seek(tp, positions[tp])
            self._tasks.append(_Task(processor, consumer, positions, ProcessorStats(name)))
        self._started = True

    def close(self, *, checkpoint: bool = True) -> None:
        """Write a final checkpoint (unless a processor failed) and release resources."""
        if not self._started:
            return
        try:
            if checkpoint and not self._failed:
                for task in self._tasks:
                    self._checkpoint(task)
        finally:
            for task in self._tasks:
                task.consumer.close()
            if self._offsets is not None:
                self._offsets.close()
            if self._producer is not None:
                self._producer.close()
            self._tasks, self._producer, self._offsets = [], None, None
            self._started = False

    def __enter__(self) -> Runner:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop -------------------------------------------------------------
    def step(self, wait_s: float = 0.0) -> int:
        """Poll every processor once; process, emit and checkpoint when due.

        A processor known to be behind (at the last :meth:`lags`) polls for up
        to ``max(poll_timeout_s, wait_s)``, the others for ``poll_timeout_s``:
        a drain loop waits for records in flight without stalling on idle ones.
        Returns the number of input records handled (0 when all are idle).
        """
        self.start()
        handled = 0
        sent = False
        try:
            for task in self._tasks:
                timeout = self.poll_timeout_s
                if wait_s > timeout and task.behind:
                    timeout = wait_s
                records = task.consumer.poll(timeout, self.batch_size)
                now = time.monotonic()
                if records:
                    sent |= self._handle(task, records)
                    handled += len(records)
                    task.last_input = now
                elif (now - task.last_input >= self.idle_after_s
                      and now - task.last_idle_call >= self.idle_after_s):
                    task.last_idle_call = now
                    emitted = self._send(task, task.processor.on_idle(int(time.time() * 1000)))
                    task.dirty |= emitted > 0
                    sent |= emitted > 0
                if self._checkpoint_due(task, now):
                    self._checkpoint(task)
            if sent and self._producer is not None:
                self._producer.flush()  # make outputs visible to downstream processors
        except BaseException:
            self._failed = True
            raise
        return handled

    def _handle(self, task: _Task, records: list[Record]) -> bool:
        name = task.stats.name
        messages: list[Message] = []
        raw = task.processor.raw_values  # it decodes the batch itself, and dead-letters
        if raw:
            messages = self._raw_messages(records)
        for record in () if raw else records:
            try:
                value = decode(record.value)
                key = decode_key(record.key)
            except (InvalidRecord, UnicodeDecodeError) as exc:
                if not self.dead_letter:
                    raise InvalidRecord(
                        f"{record.topic}[{record.partition}]@{record.offset}: {exc}"
                    ) from exc
                dl_key, dl_value = dead_letter(str(exc), record, name, self.pipeline)
                assert self._producer is not None
                self._producer.send(self.deadletter_topic, dl_value, dl_key)
                task.stats.dead_letters += 1
                continue
            messages.append(Message(record.topic, record.partition, record.offset,
                                    record.timestamp_ms, key, value))
        emits = task.processor.process(messages) if messages else ()
        sent = self._send(task, emits)
        advance_positions(task.positions, records)  # only once processing succeeded
        task.stats.records_in += len(records)
        task.pending += len(records)
        return sent > 0 or len(messages) < len(records)

    def _raw_messages(self, records: list[Record]) -> list[Message]:
        """Undecoded messages of ``records``; the same objects as the previous task's when it
        polled the same records (processors of one step mostly do), so the batch decoded
        once by :func:`~streamml.statistics.rawbatch.decode_examples` is found by identity."""
        ident = list(map(_RECORD_ID, records))
        last = self._last_raw
        if last is not None and last[0] == ident:
            return list(last[1])
        messages = [Message(r.topic, r.partition, r.offset, r.timestamp_ms,
                            decode_key(r.key), r.value) for r in records]
        self._last_raw = (ident, messages)
        return list(messages)

    def _send(self, task: _Task, emits: Iterable[Emit]) -> int:
        assert self._producer is not None
        n = 0
        raw = task.processor.raw_values
        for emit in emits:
            if (raw and emit.topic == self.deadletter_topic and isinstance(emit.value, dict)
                    and emit.value.get("reason") == "invalid_json"):
                # a raw_values processor refused a record the host did not decode
                if not self.dead_letter:
                    raise InvalidRecord(f"{emit.value.get('id')}: {emit.value.get('detail')}")
                task.stats.dead_letters += 1
            self._producer.send(
                emit.topic, emit.encoded_value(), encode_key(emit.key),
                timestamp_ms=emit.timestamp_ms, headers=emit.headers or None,
            )
            n += 1
        task.stats.emitted += n
        return n

    def _checkpoint_due(self, task: _Task, now: float) -> bool:
        if task.pending >= self.checkpoint_every_records:
            return True
        return (task.pending > 0 or task.dirty) and (
            now - task.last_checkpoint >= self.checkpoint_every_s
        )

    def _checkpoint(self, task: _Task) -> None:
        """Flush outputs -> write state + offsets in one record -> commit group offsets."""
        assert self._producer is not None
        self._producer.flush()
        offsets: dict[str, dict[int, int]] = {}
        for tp, offset in task.positions.items():
            offsets.setdefault(tp.topic, {})[tp.partition] = offset
        cp = Checkpoint(task.stats.name, offsets, task.processor.snapshot())
        self.store.write(cp, self._producer)
        task.consumer.commit(dict(task.positions))
        task.pending, task.dirty = 0, False
        task.last_checkpoint = time.monotonic()
        task.stats.checkpoints += 1

    def checkpoint(self) -> None:
        """Checkpoint every processor now."""
        self.start()
        for task in self._tasks:
            self._checkpoint(task)

    def lags(self) -> list[int]:
        """Each processor's lag (input records not processed yet), in one offset lookup."""
        if self._offsets is None:  # not started
            return [task.stats.lag for task in self._tasks]
        tps = list(dict.fromkeys(tp for task in self._tasks for tp in task.positions))
        ends = self._offsets.end_offsets(tps) if tps else {}
        out = []
        for task in self._tasks:
            task.ends = {tp: ends[tp] for tp in task.positions}
            task.stats.lag = sum(max(0, task.ends[tp] - pos)
                                 for tp, pos in task.positions.items())
            out.append(task.stats.lag)
        return out

    def lag(self) -> int:
        """Input records not processed yet, over every processor (0: drained)."""
        return sum(self.lags())

    def stats(self) -> list[ProcessorStats]:
        """A snapshot of every processor's counters, lag included."""
        self.lags()
        return [replace(task.stats) for task in self._tasks]

    def run_until_idle(self, idle_s: float = 0.5, timeout_s: float | None = None) -> None:
        """Process until every input is drained for ``idle_s``; then checkpoint.

        Raises ``TimeoutError`` if that takes longer than ``timeout_s``.
        """
        self.start()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        quiet_since: float | None = None
        while True:
            handled = self.step(wait_s=max(self.poll_timeout_s, 0.02))
            now = time.monotonic()
            if handled or self.lag():
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= idle_s:
                break
            if deadline is not None and now > deadline:
                raise TimeoutError(f"pipeline {self.pipeline!r} not idle after {timeout_s}s")
        self.checkpoint()

    def run(self, stop_event: threading.Event | None = None) -> None:
        """Process until ``stop_event`` is set or SIGTERM/SIGINT arrives; then checkpoint."""
        stop = stop_event or threading.Event()
        with _stop_on_signals(stop):
            try:
                self.start()
                while not stop.is_set():
                    self.step()
            finally:
                self.close()


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM/SIGINT (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
