"""The Kafka consumer of :class:`~streamml.log.kafka.KafkaLog`: a sync ``AIOKafkaConsumer``.

Every call runs on the log's event loop (aiokafka clients are not thread-safe);
``poll`` is ``getmany`` plus a fast conversion into :class:`~streamml.log.base.Record`
objects (slot descriptors driven by ``map``, as in the embedded log's decoder).
Commits are manual (``enable_auto_commit=False``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Coroutine, Iterable, Iterator, Mapping, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar

from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as ATP

from streamml.errors import ConfigError, UnknownTopic
from streamml.log.base import Consumer, Record, TopicPartition, records_from_columns
from streamml.log.kafka_admin import kafka_errors
from streamml.log.kafka_config import aiokafka_kwargs

if TYPE_CHECKING:
    from streamml.log.kafka import KafkaLog

T = TypeVar("T")

CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable_auto_commit": False,
    "max_partition_fetch_bytes": 8 * 1024 * 1024,
    "fetch_max_bytes": 50 * 1024 * 1024,
}

_OFFSET, _TS, _KEY, _VALUE, _HEADERS = map(
    attrgetter, ("offset", "timestamp", "key", "value", "headers")
)


def to_records(batches: Mapping[ATP, Sequence[Any]]) -> list[Record]:
    """``getmany`` output (aiokafka ``ConsumerRecord`` s) as streamml records, in order."""
    out: list[Record] = []
    for tp, msgs in batches.items():
        out += records_from_columns(
            tp.topic, tp.partition, len(msgs), map(_OFFSET, msgs), map(_TS, msgs),
            map(_KEY, msgs), map(_VALUE, msgs), map(_HEADERS, msgs),  # () when no headers
        )
    return out


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (if it runs) for a short allocation burst."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class KafkaLogConsumer(Consumer):
    """Sync consumer over ``AIOKafkaConsumer`` with manual commits and streamml errors."""

    def __init__(self, log: KafkaLog, options: Mapping[str, object]) -> None:
        self._log = log
        self._thread = log._loop_thread
        self._group = options.get("group_id")
        config = {**log.client_config, **CONSUMER_DEFAULTS, **options}
        kwargs = aiokafka_kwargs("consumer", log.bootstrap, config)
        kwargs["group_id"] = self._group
        self._subscribed = False
        self._closed = False
        self._known_partitions: dict[str, int] = {}
        self._consumer: AIOKafkaConsumer = self._run(self._start(kwargs))

    @staticmethod
    async def _start(kwargs: dict[str, Any]) -> AIOKafkaConsumer:
        try:
            consumer = AIOKafkaConsumer(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid Kafka consumer option: {exc}") from exc
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()
            raise
        return consumer

    def _run(self, coro: Coroutine[Any, Any, T], topic: str | None = None) -> T:
        with kafka_errors(self._log.bootstrap, topic):
            return self._thread.run(coro)

    def _call(self, fn: Any, *args: Any, topic: str | None = None) -> Any:
        with kafka_errors(self._log.bootstrap, topic):
            return self._thread.call(fn, *args)

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigError("consumer is closed")

    def _check_exists(self, tps: Iterable[TopicPartition]) -> None:
        """``UnknownTopic`` for a missing topic or partition, before aiokafka waits on it."""
        for topic, partition in tps:
            count = self._known_partitions.get(topic)
            if count is None or partition >= count:
                count = self._known_partitions[topic] = self._log.partitions_for(topic)
            if not 0 <= partition < count:
                raise UnknownTopic(f"no such partition: {topic}[{partition}]")

    # -- assignment -----------------------------------------------------------
    def subscribe(self, topics: Sequence[str]) -> None:
        """Join the group for ``topics`` (aiokafka rejoins when their metadata changes)."""
        self._check_open()
        self._call(self._consumer.subscribe, list(topics))
        self._subscribed = True

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        self._check_open()
        targets = [ATP(*tp) for tp in partitions]
        self._subscribed = False
        self._call(self._consumer.assign, targets)

    def assignment(self, timeout_s: float = 10.0) -> set[TopicPartition]:
        """Assigned partitions; after ``subscribe``, waits (up to ``timeout_s``) to join."""
        consumer, subscribed = self._consumer, self._subscribed

        async def assigned() -> set[ATP]:
            deadline = time.monotonic() + timeout_s
            while subscribed and not consumer.assignment() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            return set(consumer.assignment())

        return {TopicPartition(tp.topic, tp.partition) for tp in self._run(assigned())}

    def _targets(self, tps: Iterable[TopicPartition] | None) -> list[ATP]:
        return [ATP(*tp) for tp in (self.assignment() if tps is None else tps)]

    # -- reading --------------------------------------------------------------
    def poll(self, timeout_s: float = 1.0, max_records: int = 10_000) -> list[Record]:
        self._check_open()
        return self._run(self._poll(int(max(0.0, timeout_s) * 1000), max_records))

    async def _poll(self, timeout_ms: int, max_records: int) -> list[Record]:
        # Runs on the loop thread (the caller sleeps meanwhile, so the threads do not
        # trade the GIL). Records already fetched are taken, and converted, with the
        # cyclic GC paused: allocating 10k+ objects (none in a cycle) would otherwise
        # trigger it every 700 and rescan older generations, costing more than the
        # conversion. Only the wait for new data runs with the GC on.
        getmany = self._consumer.getmany
        with _gc_paused():
            batches = await getmany(timeout_ms=0, max_records=max_records)
            if batches:
                return to_records(batches)
        if timeout_ms <= 0:
            return []
        batches = await getmany(timeout_ms=timeout_ms, max_records=max_records)
        with _gc_paused():
            return to_records(batches) if batches else []

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if offset < 0:
            raise ConfigError(f"cannot seek {tp[0]}[{tp[1]}] to negative offset {offset}")
        self._call(self._consumer.seek, ATP(*tp), int(offset), topic=tp[0])

    def seek_to_beginning(self, tps: Iterable[TopicPartition] | None = None) -> None:
        targets = self._targets(tps)
        if targets:
            self._run(self._consumer.seek_to_beginning(*targets))

    def seek_to_end(self, tps: Iterable[TopicPartition] | None = None) -> None:
        targets = self._targets(tps)
        if targets:
            self._run(self._consumer.seek_to_end(*targets))

    def position(self, tp: TopicPartition) -> int:
        return int(self._run(self._consumer.position(ATP(*tp)), tp[0]))

    # -- offset lookups ------------------------------------------------------
    def offsets_for_times(
        self, timestamps: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int | None]:
        if any(ts < 0 for ts in timestamps.values()):
            raise ConfigError("timestamps must be >= 0 (milliseconds since the epoch)")
        self._check_exists(timestamps)
        query = {ATP(*tp): int(ts) for tp, ts in timestamps.items()}
        found = self._run(self._consumer.offsets_for_times(query)) if query else {}
        return {
            TopicPartition(*tp): (None if (hit := found.get(tp)) is None else hit.offset)
            for tp in query
        }

    def beginning_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        targets = self._targets(tps)
        self._check_exists(targets)
        found = self._run(self._consumer.beginning_offsets(targets)) if targets else {}
        return {TopicPartition(*tp): int(off) for tp, off in found.items()}

    def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        targets = self._targets(tps)
        self._check_exists(targets)
        found = self._run(self._consumer.end_offsets(targets)) if targets else {}
        return {TopicPartition(*tp): int(off) for tp, off in found.items()}

    # -- groups ----------------------------------------------------------------
    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        if self._group is None:
            raise ConfigError("commit needs a consumer created with a group_id")
        payload = None
        if offsets is not None:
            for off in offsets.values():
                if off < 0:
                    raise ConfigError(f"cannot commit negative offset {off}")
            payload = {ATP(*tp): int(off) for tp, off in offsets.items()}
        self._run(self._consumer.commit(payload))

    def committed(self, tp: TopicPartition) -> int | None:
        if self._group is None:
            return None
        found = self._run(self._consumer.committed(ATP(*tp)), tp[0])
        return None if found is None else int(found)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._log._children.discard(self)
        if self._thread.running:
            self._run(self._consumer.stop())
