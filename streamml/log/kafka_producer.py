"""The Kafka producer of :class:`~streamml.log.kafka.KafkaLog`: explicit aiokafka batches.

Records are encoded into aiokafka ``BatchBuilder`` s (C code) on the log's
event loop, one open batch per partition, and a full batch goes out with
``send_batch``, whose wait while the partition's previous batch drains is the
backpressure. Doing the encoding in the loop thread (the caller blocks
meanwhile) avoids two threads contending for the GIL. ``send_many`` hands its
whole chunk to the loop at once; ``send`` buffers records in a Python list and
hands them over every :data:`BUFFER_RECORDS` records (and on ``flush``). Only
one delivery future per batch is kept; ``flush`` waits for them.

Partitioning is Kafka's: an explicit partition wins, a keyed record goes to
``toPositive(murmur2(key)) % partitions``, unkeyed records stick to one
partition per batch and move to the next one when the batch is shipped.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from streamml.errors import BrokerUnavailable, ConfigError, UnknownTopic
from streamml.log.base import Headers, Producer
from streamml.log.kafka_admin import kafka_errors
from streamml.log.kafka_config import aiokafka_kwargs

if TYPE_CHECKING:
    from aiokafka.producer.message_accumulator import BatchBuilder

    from streamml.log.kafka import KafkaLog

#: Producer defaults (kafka-python names); ``log.producer(**options)`` overrides them.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "batch_size": 512 * 1024,
    # Fits the largest records the catalog allows (models, candidates, checkpoints:
    # max.message.bytes 16 MiB) plus batch overhead.
    "max_request_size": 16 * 1024 * 1024 + 64 * 1024,
    "compression_type": None,
}
#: Records ``send`` buffers before encoding them on the event loop.
BUFFER_RECORDS = 5_000
#: ...or buffered value bytes, whichever comes first.
BUFFER_BYTES = 4 * 1024 * 1024

TP = tuple[str, int]
_NO_HEADERS: list[Any] = []  # shared, never mutated (aiokafka only iterates headers)
#: A buffered ``send``: topic, partition (``None``: sticky), key, value, timestamp, headers.
Pending = tuple[str, int | None, bytes | None, bytes | None, int | None, list[Any]]


class KafkaLogProducer(Producer):
    """Sync producer over ``AIOKafkaProducer.send_batch`` with durable ``flush``."""

    def __init__(self, log: KafkaLog, options: Mapping[str, object]) -> None:
        self._log = log
        self._thread = log._loop_thread
        config = {**log.client_config, **PRODUCER_DEFAULTS, **options}
        kwargs = aiokafka_kwargs("producer", log.bootstrap, config)
        self._max_record = int(config.get("max_request_size") or 1 << 20)
        self._partitions: dict[str, int] = {}
        self._buffer: list[Pending] = []
        self._buffer_bytes = 0
        self._closed = False
        # Event-loop state: open batch per partition, sticky partitions, deliveries.
        self._open: dict[TP, BatchBuilder] = {}
        self._sticky: dict[str, int] = {}
        self._deliveries: list[asyncio.Future[Any]] = []
        self._errors: list[BaseException] = []
        with kafka_errors(log.bootstrap):
            self._producer: AIOKafkaProducer = self._thread.run(self._start(kwargs))

    # -- event-loop side ------------------------------------------------------
    @staticmethod
    async def _start(kwargs: dict[str, Any]) -> AIOKafkaProducer:
        try:
            producer = AIOKafkaProducer(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid Kafka producer option: {exc}") from exc
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer

    def _batch(self, tp: TP) -> BatchBuilder:
        batch = self._open.get(tp)
        if batch is None:
            batch = self._open[tp] = self._producer.create_batch()
        return batch

    def _sticky_partition(self, topic: str) -> int:
        part = self._sticky.get(topic)
        if part is None:
            count = self._partitions[topic]
            part = self._sticky[topic] = random.randrange(count)  # noqa: S311 - load spreading
        return part

    async def _ship(self, tp: TP) -> None:
        """Send the open batch of ``tp``; move the topic's sticky partition on."""
        batch = self._open.pop(tp, None)
        topic, partition = tp
        if self._sticky.get(topic) == partition:
            self._sticky[topic] = (partition + 1) % self._partitions[topic]
        if batch is None or not batch.record_count():
            return
        batch.close()
        if (size := batch.size()) > self._max_record:  # one record alone, too big to send
            self._errors.append(self._too_big(size))
            return
        try:
            delivery = await self._producer.send_batch(batch, topic, partition=partition)
            self._deliveries.append(delivery)
        except Exception as exc:  # reported by flush()
            self._errors.append(exc)

    async def _add(
        self, tp: TP, key: bytes | None, value: bytes | None, ts: int | None, headers: list[Any],
        sticky: bool,
    ) -> TP:  # fmt: skip
        """Append one record after its partition's batch was full; return where it went."""
        await self._ship(tp)
        if sticky:
            tp = (tp[0], self._sticky[tp[0]])
        if self._batch(tp).append(key=key, value=value, timestamp=ts, headers=headers) is None:
            await self._ship(tp)  # the new sticky partition's batch was full too
            self._batch(tp).append(key=key, value=value, timestamp=ts, headers=headers)
        return tp

    async def _write(self, records: list[Pending]) -> None:
        """Encode buffered ``send`` records, in order."""
        for topic, partition, key, value, ts, headers in records:
            sticky = partition is None
            tp = (topic, self._sticky_partition(topic) if partition is None else partition)
            batch = self._open.get(tp) or self._batch(tp)
            if batch.append(key=key, value=value, timestamp=ts, headers=headers) is None:
                await self._add(tp, key, value, ts, headers, sticky)

    async def _write_many(
        self, topic: str, values: Sequence[bytes | None], keys: Sequence[bytes | None] | None,
        partition: int | None, ts: int | None,
    ) -> None:  # fmt: skip
        """Encode a ``send_many`` chunk: the tight loop of ``BatchBuilder.append``."""
        count = self._partitions[topic]
        if keys is not None and partition is None:  # keyed: the murmur2 partition per record
            for value, key in zip(values, keys, strict=True):
                sticky = key is None
                part = self._sticky_partition(topic) if sticky else murmur2(key) & 0x7FFFFFFF
                tp = (topic, part % count)
                batch = self._open.get(tp) or self._batch(tp)
                if batch.append(key=key, value=value, timestamp=ts) is None:
                    await self._add(tp, key, value, ts, [], sticky)
            return
        pinned = partition is not None
        tp = (topic, partition if partition is not None else self._sticky_partition(topic))
        append = self._batch(tp).append
        for value, key in zip(values, keys or [None] * len(values), strict=True):
            if append(key=key, value=value, timestamp=ts) is None:
                tp = await self._add(tp, key, value, ts, [], not pinned)
                append = self._batch(tp).append

    async def _flush(self, timeout_s: float | None) -> list[BaseException]:
        """Ship every open batch and wait for all deliveries; return the errors."""
        for tp in list(self._open):
            await self._ship(tp)
        deliveries, self._deliveries = self._deliveries, []
        if deliveries:
            _, pending = await asyncio.wait(deliveries, timeout=timeout_s)
            if pending:  # keep them for the next flush
                self._deliveries = [d for d in deliveries if d in pending]
                raise TimeoutError(f"flush timed out after {timeout_s} s")
        errors, self._errors = self._errors, []
        return errors + [exc for d in deliveries if (exc := d.exception()) is not None]

    # -- caller side ----------------------------------------------------------
    def _too_big(self, size: int) -> ConfigError:
        return ConfigError(
            f"Kafka rejected the request: a record of {size} bytes exceeds "
            f"max_request_size={self._max_record} (pass a larger max_request_size)"
        )

    def _count(self, topic: str, partition: int | None) -> int:
        """Partitions of ``topic`` (cached); ``UnknownTopic`` for a missing topic/partition."""
        if self._closed:
            raise ConfigError("producer is closed")
        count = self._partitions.get(topic)
        if count is None:
            count = self._partitions[topic] = self._log.partitions_for(topic)
        if partition is not None and not 0 <= partition < count:
            raise UnknownTopic(f"topic {topic!r} has no partition {partition}")
        return count

    def _drain(self) -> None:
        """Encode the records ``send`` buffered (on the event loop)."""
        if self._buffer:
            records, self._buffer, self._buffer_bytes = self._buffer, [], 0
            with kafka_errors(self._log.bootstrap):
                self._thread.run(self._write(records))

    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        *,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Headers | None = None,
    ) -> None:
        if value is not None and not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"value must be bytes or None, not {type(value).__name__}")
        count = self._partitions.get(topic)
        if count is None or partition is not None or self._closed:
            count = self._count(topic, partition)
        if partition is None and key is not None:
            partition = (murmur2(key) & 0x7FFFFFFF) % count
        size = 0 if value is None else len(value)
        if size > 65536:
            self._check_size(key, value)
        hdrs = list(headers) if headers else _NO_HEADERS
        self._buffer.append((topic, partition, key, value, timestamp_ms, hdrs))
        self._buffer_bytes += size
        if len(self._buffer) >= BUFFER_RECORDS or self._buffer_bytes >= BUFFER_BYTES:
            self._drain()

    def _check_size(self, key: bytes | None, value: bytes | None) -> None:
        size = (0 if key is None else len(key)) + (0 if value is None else len(value))
        if size > self._max_record:
            raise self._too_big(size)

    def send_many(
        self,
        topic: str,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None] | None = None,
        *,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        """Fast path: one topic check, then one hand-over of the whole chunk to the loop."""
        if keys is not None and len(keys) != len(values):
            raise ValueError("send_many: values and keys differ in length")
        self._count(topic, partition)
        self._drain()  # records sent before keep their order
        with kafka_errors(self._log.bootstrap, topic):
            self._thread.run(self._write_many(topic, values, keys, partition, timestamp_ms))

    def flush(self, timeout_s: float | None = None) -> None:
        if self._closed:
            return
        self._drain()
        with kafka_errors(self._log.bootstrap):
            errors = self._thread.run(self._flush(timeout_s), None)
        if errors:
            exc = errors[0]
            with kafka_errors(self._log.bootstrap):
                raise exc
            raise BrokerUnavailable(f"Kafka broker at {self._log.bootstrap}: {exc!r}")

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._log._children.discard(self)
            if self._thread.running:
                self._thread.run(self._producer.stop(), 60.0)
