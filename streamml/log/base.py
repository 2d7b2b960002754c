"""One interface for a partitioned, offset-addressed log.

Two implementations live beside this module: :mod:`streamml.log.embedded`
(durable segments on local disk, the default) and :mod:`streamml.log.kafka`
(Apache Kafka). ``tests/conformance`` runs one suite over both.

Conventions, shared with Kafka so that code moves between the two unchanged:

* offsets are per partition, start at 0 and grow by one per appended record
  (compaction may leave gaps; readers never assume contiguity);
* a committed offset is the offset of the *next* record to read;
* timestamps are milliseconds since the Unix epoch (``int``);
* keys and values are ``bytes`` (``None`` for a null key or a tombstone);
* a keyed record with no explicit partition goes to
  ``murmur2(key) % partitions`` (Kafka's default partitioner); an unkeyed one
  is spread round-robin.

>>> from streamml.log.base import TopicSpec, TopicPartition
>>> TopicSpec(name="demo.examples", partitions=3).cleanup_policy
'delete'
>>> TopicPartition("demo.examples", 0)
TopicPartition(topic='demo.examples', partition=0)
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any, Literal, NamedTuple

Headers = tuple[tuple[str, bytes], ...]
CleanupPolicy = Literal["delete", "compact"]


class TopicPartition(NamedTuple):
    """A (topic, partition) pair; hashable, usable as a dict key."""

    topic: str
    partition: int


class Record(NamedTuple):
    """One record read from a log (immutable).

    A named tuple rather than a dataclass: readers build millions of them, and
    ``tuple.__new__`` over zipped columns is about twice as fast.
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


_new_tuple: Any = tuple.__new__


def records_from_columns(
    topic: str,
    partition: int,
    n: int,
    offsets: Iterable[int],
    timestamps: Iterable[int],
    keys: Iterable[bytes | None],
    values: Iterable[bytes | None],
    headers: Iterable[Headers] | None = None,
) -> list[Record]:
    """Build ``n`` records of one partition from columns, fast (hot read paths).

    ``tuple.__new__`` over zipped columns, driven by ``map`` in C: no Python
    call per record.

    >>> recs = records_from_columns("t", 0, 2, [5, 6], [1, 2], [None, b"k"], [b"a", None])
    >>> [(r.offset, r.key, r.value, r.headers) for r in recs]
    [(5, None, b'a', ()), (6, b'k', None, ())]
    """
    rows = zip(repeat(topic, n), repeat(partition, n), offsets, timestamps, keys, values,
               repeat((), n) if headers is None else headers, strict=True)
    return list(map(_new_tuple, repeat(Record, n), rows))


_TOPIC_PARTITION = itemgetter(0, 1)
_OFFSET = itemgetter(2)


def advance_positions(positions: dict[TopicPartition, int], records: Sequence[Record]) -> None:
    """Move each partition's position past the highest offset of ``records`` (a poll).

    >>> pos = {}
    >>> advance_positions(pos, [Record("t", 0, 5, 0, None, None),
    ...                         Record("t", 1, 2, 0, None, None), Record("t", 0, 6, 0, None, None)])
    >>> pos
    {TopicPartition(topic='t', partition=0): 7, TopicPartition(topic='t', partition=1): 3}
    """
    if not records:
        return
    first = records[0]
    if first[:2] == records[-1][:2] and len(set(map(_TOPIC_PARTITION, records))) == 1:
        highest = {first[:2]: max(map(_OFFSET, records))}  # one partition: the usual poll
    else:
        highest = {}
        for r in records:
            key = r[:2]
            if r.offset > highest.get(key, -1):
                highest[key] = r.offset
    for (topic, partition), offset in highest.items():
        tp = TopicPartition(topic, partition)
        positions[tp] = max(positions.get(tp, 0), offset + 1)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """What a topic should look like when it is created.

    ``retention_ms``/``retention_bytes`` of ``None`` mean "keep forever"
    (``-1`` in Kafka terms). ``retention_bytes`` applies per partition, as in
    Kafka. ``config`` carries extra broker-specific settings verbatim.
    """

    name: str
    partitions: int = 1
    replication_factor: int = 1
    cleanup_policy: CleanupPolicy = "delete"
    retention_ms: int | None = None
    retention_bytes: int | None = None
    segment_bytes: int | None = None
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """Offsets of one partition: records live in ``[start_offset, end_offset)``."""

    partition: int
    start_offset: int
    end_offset: int


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """A topic as it exists on the log."""

    spec: TopicSpec
    partitions: tuple[PartitionInfo, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def records(self) -> int:
        """Upper bound of records held (exact unless compaction left gaps)."""
        return sum(p.end_offset - p.start_offset for p in self.partitions)


class Producer(abc.ABC):
    """Appends records. ``send`` buffers; ``flush`` makes them durable and visible.

    After ``flush`` returns, every record sent before it is readable by any
    consumer and survives a crash of this process (embedded: written to the OS;
    Kafka: acknowledged by all in-sync replicas).
    """

    @abc.abstractmethod
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
        """Buffer one record. The topic must exist (``UnknownTopic`` otherwise)."""

    def send_many(
        self,
        topic: str,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None] | None = None,
        *,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        """Buffer many records at once; implementations may override for speed."""
        if keys is None:
            for value in values:
                self.send(topic, value, None, partition=partition, timestamp_ms=timestamp_ms)
        else:
            for value, key in zip(values, keys, strict=True):
                self.send(topic, value, key, partition=partition, timestamp_ms=timestamp_ms)

    @abc.abstractmethod
    def flush(self, timeout_s: float | None = None) -> None:
        """Block until every buffered record is durable and visible."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flush and release resources."""

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Consumer(abc.ABC):
    """Reads records from assigned partitions, in offset order per partition.

    ``subscribe`` uses group management where the log has it (Kafka); the
    embedded log assigns every partition of the subscribed topics to the one
    member. ``assign`` is manual assignment. A partition with no committed
    offset starts at ``auto_offset_reset`` (``"earliest"`` or ``"latest"``).
    """

    @abc.abstractmethod
    def subscribe(self, topics: Sequence[str]) -> None: ...

    @abc.abstractmethod
    def assign(self, partitions: Iterable[TopicPartition]) -> None: ...

    @abc.abstractmethod
    def assignment(self) -> set[TopicPartition]: ...

    @abc.abstractmethod
    def poll(self, timeout_s: float = 1.0, max_records: int = 10_000) -> list[Record]:
        """Return up to ``max_records`` records, waiting up to ``timeout_s`` for the first."""

    @abc.abstractmethod
    def seek(self, tp: TopicPartition, offset: int) -> None: ...

    @abc.abstractmethod
    def seek_to_beginning(self, tps: Iterable[TopicPartition] | None = None) -> None: ...

    @abc.abstractmethod
    def seek_to_end(self, tps: Iterable[TopicPartition] | None = None) -> None: ...

    @abc.abstractmethod
    def position(self, tp: TopicPartition) -> int:
        """Offset of the next record ``poll`` will return for ``tp``."""

    @abc.abstractmethod
    def offsets_for_times(
        self, timestamps: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int | None]:
        """Earliest offset whose timestamp is >= the given one; ``None`` if there is none."""

    @abc.abstractmethod
    def beginning_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]: ...

    @abc.abstractmethod
    def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]: ...

    @abc.abstractmethod
    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit next-to-read offsets for the group (current positions if ``None``)."""

    @abc.abstractmethod
    def committed(self, tp: TopicPartition) -> int | None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def seek_to_time(self, timestamp_ms: int, tps: Iterable[TopicPartition] | None = None) -> None:
        """Position every partition at the first record at or after ``timestamp_ms``.

        Partitions with no such record are positioned at their end.
        """
        targets = list(tps) if tps is not None else sorted(self.assignment())
        found = self.offsets_for_times({tp: timestamp_ms for tp in targets})
        ends = self.end_offsets(targets)
        for tp in targets:
            offset = found.get(tp)
            self.seek(tp, ends[tp] if offset is None else offset)

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Log(abc.ABC):
    """A partitioned, offset-addressed log: topics, producers and consumers."""

    url: str

    @abc.abstractmethod
    def create_topic(self, spec: TopicSpec, *, exist_ok: bool = True) -> bool:
        """Create a topic; return ``True`` if it was created, ``False`` if it existed."""

    @abc.abstractmethod
    def delete_topic(self, name: str) -> None: ...

    @abc.abstractmethod
    def list_topics(self) -> list[str]:
        """User topics, sorted (Kafka's internal ``__*`` topics are left out)."""

    @abc.abstractmethod
    def describe_topic(self, name: str) -> TopicInfo:
        """Spec and partition offsets; ``UnknownTopic`` if the topic does not exist."""

    def topic_exists(self, name: str) -> bool:
        return name in self.list_topics()

    @abc.abstractmethod
    def producer(self, **options: object) -> Producer: ...

    @abc.abstractmethod
    def consumer(
        self,
        group_id: str | None = None,
        *,
        auto_offset_reset: Literal["earliest", "latest"] = "earliest",
        **options: object,
    ) -> Consumer: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources held by the log handle itself."""

    def __enter__(self) -> Log:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
