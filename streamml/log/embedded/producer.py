"""The embedded producer: buffers records per partition, appends them on flush.

Partitioning follows Kafka: an explicit ``partition`` wins; a keyed record goes
to ``murmur2(key) & 0x7fffffff % partitions`` (kafka-python's and the Java
client's default partitioner, so keys land on the same partition number as on
Kafka); unkeyed records are spread round-robin (``send``) or in contiguous
chunks, one partition after the other (``send_many``, like Kafka's sticky
partitioner). Each flush writes one run of batches per partition with a single
``write()`` under the partition lock.

>>> import tempfile
>>> from streamml.log.embedded import EmbeddedLog
>>> from streamml.log.base import TopicSpec
>>> log = EmbeddedLog(tempfile.mkdtemp())
>>> log.create_topic(TopicSpec("demo", partitions=2))
True
>>> with log.producer() as p:
...     p.send("demo", b"v", key=b"user-1")
...     p.send_many("demo", [b"a", b"b", b"c"])
>>> log.describe_topic("demo").records
4
>>> log.close()
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from streamml.errors import ConfigError, UnknownTopic
from streamml.log.base import Headers, Producer, TopicSpec
from streamml.log.embedded.format import Body, encode_body
from streamml.log.embedded.partition import PartitionWriter
from streamml.log.partitioner import kafka_partition

if TYPE_CHECKING:
    from streamml.log.embedded.log import EmbeddedLog

BATCH_RECORDS = 4096
AUTO_FLUSH_RECORDS = 65_536
_KEY_CACHE_MAX = 100_000


class _Buffer:
    """Records waiting for a flush, column by column (keys/headers only when used)."""

    __slots__ = ("values", "keys", "timestamps", "headers")

    def __init__(self) -> None:
        self.values: list[bytes | None] = []
        self.keys: list[bytes | None] | None = None
        self.timestamps: list[int] = []
        self.headers: list[Headers] | None = None

    def bodies(self) -> list[Body]:
        out = []
        n = len(self.values)
        for i in range(0, n, BATCH_RECORDS):
            j = i + BATCH_RECORDS
            whole = i == 0 and j >= n
            out.append(
                encode_body(
                    self.values if whole else self.values[i:j],
                    None if self.keys is None else self.keys[i:j],
                    self.timestamps if whole else self.timestamps[i:j],
                    None if self.headers is None else self.headers[i:j],
                )
            )
        return out


class _Topic:
    __slots__ = ("spec", "buffers", "writers", "rr", "key_cache")

    def __init__(self, spec: TopicSpec) -> None:
        self.spec = spec
        self.buffers = [_Buffer() for _ in range(spec.partitions)]
        self.writers: list[PartitionWriter | None] = [None] * spec.partitions
        self.rr = 0
        self.key_cache: dict[bytes, int] = {}

    def partition_for(self, key: bytes) -> int:
        p = self.key_cache.get(key)
        if p is None:
            if len(self.key_cache) >= _KEY_CACHE_MAX:
                self.key_cache.clear()
            p = self.key_cache[key] = kafka_partition(key, self.spec.partitions)
        return p


class EmbeddedProducer(Producer):
    """Producer for :class:`~streamml.log.embedded.EmbeddedLog`."""

    def __init__(self, log: EmbeddedLog, **options: object) -> None:
        self._log = log
        self._topics: dict[str, _Topic] = {}
        self._pending = 0
        self._auto_flush = int(options.get("auto_flush_records", AUTO_FLUSH_RECORDS))  # type: ignore[call-overload]
        self._closed = False

    def _topic(self, name: str) -> _Topic:
        t = self._topics.get(name)
        if t is None:
            if self._closed:
                raise ConfigError("producer is closed")
            t = self._topics[name] = _Topic(self._log.load_spec(name))
        return t

    def _check_partition(self, t: _Topic, partition: int) -> None:
        if not 0 <= partition < t.spec.partitions:
            raise UnknownTopic(f"topic {t.spec.name!r} has no partition {partition}")

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
        t = self._topics.get(topic) or self._topic(topic)
        if partition is None:
            if key is not None:
                partition = t.partition_for(key)
            else:
                partition = t.rr % t.spec.partitions
                t.rr += 1
        else:
            self._check_partition(t, partition)
        if value is not None and not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"value must be bytes or None, not {type(value).__name__}")
        buf = t.buffers[partition]
        n = len(buf.values)
        buf.values.append(value)
        if key is not None:
            if buf.keys is None:
                buf.keys = [None] * n
            buf.keys.append(key)
        elif buf.keys is not None:
            buf.keys.append(None)
        buf.timestamps.append(time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms)
        if headers:
            if buf.headers is None:
                buf.headers = [()] * n
            buf.headers.append(tuple(headers))
        elif buf.headers is not None:
            buf.headers.append(())
        self._pending += 1
        if self._pending >= self._auto_flush:
            self.flush()

    def send_many(
        self,
        topic: str,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None] | None = None,
        *,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        t = self._topics.get(topic) or self._topic(topic)
        n = len(values)
        if keys is not None and len(keys) != n:
            raise ValueError("send_many: values and keys differ in length")
        ts = time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
        if keys is not None and (partition is not None or t.spec.partitions == 1):
            pass  # every record goes to one partition: no hashing needed
        elif keys is not None:
            if all(k is not None for k in keys):
                part_of = t.partition_for
                parts = list(map(part_of, keys))  # type: ignore[arg-type]
            else:
                parts = []
                for k in keys:
                    if k is None:
                        parts.append(t.rr % t.spec.partitions)
                        t.rr += 1
                    else:
                        parts.append(t.partition_for(k))
            for p in range(t.spec.partitions):
                idx = [i for i, q in enumerate(parts) if q == p]
                if idx:
                    self._extend(t, p, [values[i] for i in idx], [keys[i] for i in idx], ts)
            self._count(n)
            return
        if partition is not None:
            self._check_partition(t, partition)
            self._extend(t, partition, values, keys, ts)
        elif t.spec.partitions == 1:
            self._extend(t, 0, values, keys, ts)
        else:
            for i in range(0, n, BATCH_RECORDS):
                self._extend(t, t.rr % t.spec.partitions, values[i : i + BATCH_RECORDS], None, ts)
                t.rr += 1
        self._count(n)

    def _extend(
        self,
        t: _Topic,
        partition: int,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None] | None,
        ts: int,
    ) -> None:
        buf = t.buffers[partition]
        n, m = len(buf.values), len(values)
        buf.values.extend(values)
        if keys is not None:
            if buf.keys is None:
                buf.keys = [None] * n
            buf.keys.extend(keys)
        elif buf.keys is not None:
            buf.keys.extend([None] * m)
        buf.timestamps.extend([ts] * m)
        if buf.headers is not None:
            buf.headers.extend([()] * m)

    def _count(self, n: int) -> None:
        self._pending += n
        if self._pending >= self._auto_flush:
            self.flush()

    def flush(self, timeout_s: float | None = None) -> None:
        for name, t in self._topics.items():
            for p, buf in enumerate(t.buffers):
                if not buf.values:
                    continue
                writer = t.writers[p]
                if writer is None:
                    writer = t.writers[p] = self._log.partition_writer(name, p)
                writer.append(buf.bodies())
                t.buffers[p] = _Buffer()
        self._pending = 0

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            for t in self._topics.values():
                for w in t.writers:
                    if w is not None:
                        w.close()
            self._topics.clear()
