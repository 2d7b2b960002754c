"""The embedded consumer: positions, polling, seeking and group offsets.

Group management is deliberately minimal: ``subscribe`` assigns *every*
partition of the subscribed topics to this one member; there is no rebalancing
between members. Scaling out a consumer group over processes is Kafka's job
(use ``kafka://``). Committed offsets are stored per group in
``groups/<group>.json`` (written to a temporary file and renamed, under a lock).

>>> import tempfile
>>> from streamml.log.embedded import EmbeddedLog
>>> from streamml.log.base import TopicSpec, TopicPartition
>>> log = EmbeddedLog(tempfile.mkdtemp())
>>> _ = log.create_topic(TopicSpec("demo"))
>>> with log.producer() as p:
...     p.send_many("demo", [b"a", b"b"])
>>> with log.consumer("g") as c:
...     c.subscribe(["demo"])
...     [r.value for r in c.poll(timeout_s=1)]
...     c.commit()
...     c.committed(TopicPartition("demo", 0))
[b'a', b'b']
2
>>> log.close()
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from streamml.errors import ConfigError, UnknownTopic
from streamml.log.base import Consumer, Record, TopicPartition
from streamml.log.embedded.partition import OffsetOutOfRange, PartitionReader

if TYPE_CHECKING:
    from streamml.log.embedded.log import EmbeddedLog

POLL_SLEEP_S = 0.005
POLL_SLEEP_MAX_S = 0.05


class EmbeddedConsumer(Consumer):
    """Consumer for :class:`~streamml.log.embedded.EmbeddedLog`."""

    def __init__(
        self,
        log: EmbeddedLog,
        group_id: str | None,
        auto_offset_reset: Literal["earliest", "latest"] = "earliest",
    ) -> None:
        if auto_offset_reset not in ("earliest", "latest"):
            raise ConfigError(
                f"auto_offset_reset must be 'earliest' or 'latest', not {auto_offset_reset!r}"
            )
        self._log = log
        self._group = group_id
        self._reset = auto_offset_reset
        self._readers: dict[TopicPartition, PartitionReader] = {}
        self._extra: dict[TopicPartition, PartitionReader] = {}  # offset lookups only
        self._positions: dict[TopicPartition, int | None] = {}
        self._subscribed: list[str] | None = None
        self._next = 0  # round-robin start for fairness between partitions
        self._closed = False

    # -- assignment ---------------------------------------------------------
    def subscribe(self, topics: Sequence[str]) -> None:
        self._subscribed = list(topics)
        self._set_assignment(self._subscription_partitions())

    def _subscription_partitions(self) -> list[TopicPartition]:
        tps = []
        for topic in self._subscribed or ():
            try:
                n = self._log.load_spec(topic).partitions
            except UnknownTopic:
                continue  # like Kafka: picked up once the topic exists
            tps += [TopicPartition(topic, p) for p in range(n)]
        return tps

    def _missing_topics(self) -> bool:
        have = {tp.topic for tp in self._readers}
        return any(t not in have for t in self._subscribed or ())

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        self._subscribed = None
        self._set_assignment([TopicPartition(*tp) for tp in partitions])

    def _set_assignment(self, tps: list[TopicPartition]) -> None:
        for tp in set(self._readers) - set(tps):
            self._readers.pop(tp).close()
            self._positions.pop(tp, None)
        for tp in tps:
            if tp not in self._readers:
                self._readers[tp] = self._log.partition_reader(tp.topic, tp.partition)
                self._positions[tp] = None

    def assignment(self) -> set[TopicPartition]:
        return set(self._readers)

    def _reader(self, tp: TopicPartition) -> PartitionReader:
        reader = self._readers.get(tp)
        if reader is None:
            raise ConfigError(f"{tp} is not assigned to this consumer")
        return reader

    # -- positions ----------------------------------------------------------
    def _reset_position(self, tp: TopicPartition) -> int:
        reader = self._reader(tp)
        pos = reader.start_offset() if self._reset == "earliest" else reader.end_offset()
        self._positions[tp] = pos
        return pos

    def position(self, tp: TopicPartition) -> int:
        tp = TopicPartition(*tp)
        self._reader(tp)  # must be assigned
        pos = self._positions.get(tp)
        if pos is None:
            committed = self.committed(tp)
            if committed is not None:
                self._positions[tp] = committed
                return committed
            return self._reset_position(tp)
        return pos

    def seek(self, tp: TopicPartition, offset: int) -> None:
        tp = TopicPartition(*tp)
        if offset < 0:
            raise ConfigError(f"cannot seek {tp.topic}[{tp.partition}] to negative offset {offset}")
        self._reader(tp).refresh_segments(check_replaced=True)
        self._positions[tp] = int(offset)

    def _targets(self, tps: Iterable[TopicPartition] | None) -> list[TopicPartition]:
        return sorted(self._readers) if tps is None else [TopicPartition(*tp) for tp in tps]

    def seek_to_beginning(self, tps: Iterable[TopicPartition] | None = None) -> None:
        for tp in self._targets(tps):
            self.seek(tp, self._reader(tp).start_offset())

    def seek_to_end(self, tps: Iterable[TopicPartition] | None = None) -> None:
        for tp in self._targets(tps):
            self.seek(tp, self._reader(tp).end_offset())

    def beginning_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self._any_reader(tp).start_offset() for tp in self._targets(tps)}

    def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self._any_reader(tp).end_offset() for tp in self._targets(tps)}

    def offsets_for_times(
        self, timestamps: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int | None]:
        if any(ts < 0 for ts in timestamps.values()):
            raise ConfigError("timestamps must be >= 0 (milliseconds since the epoch)")
        return {
            TopicPartition(*tp): self._any_reader(TopicPartition(*tp)).offset_for_time(ts)
            for tp, ts in timestamps.items()
        }

    def _any_reader(self, tp: TopicPartition) -> PartitionReader:
        """The assigned reader, or a fresh one for an unassigned partition (like Kafka)."""
        reader = self._readers.get(tp) or self._extra.get(tp)
        if reader is None:
            self._log.load_spec(tp.topic)  # UnknownTopic
            reader = self._extra[tp] = self._log.partition_reader(tp.topic, tp.partition)
        return reader

    # -- polling ------------------------------------------------------------
    def poll(self, timeout_s: float = 1.0, max_records: int = 10_000) -> list[Record]:
        if self._closed:
            raise ConfigError("consumer is closed")
        deadline = time.monotonic() + max(0.0, timeout_s)
        sleep = POLL_SLEEP_S
        while True:
            if self._subscribed is not None and self._missing_topics():
                self._set_assignment(self._subscription_partitions())
            out = self._poll_once(max_records)
            if out:
                return out
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return out
            time.sleep(min(sleep, remaining))
            sleep = min(sleep * 2, POLL_SLEEP_MAX_S)

    def _poll_once(self, max_records: int) -> list[Record]:
        tps = list(self._readers)
        if not tps:
            return []
        out: list[Record] = []
        start = self._next % len(tps)
        for tp in tps[start:] + tps[:start]:
            if len(out) >= max_records:
                break
            pos = self.position(tp)
            reader = self._readers[tp]
            try:
                got = reader.read(pos, max_records - len(out))
            except OffsetOutOfRange:
                got = reader.read(self._reset_position(tp), max_records - len(out))
            if got:
                self._positions[tp] = got[-1].offset + 1
                out += got
        if out:  # rotate only past polls that returned records: empty (idle) polls do not
            self._next += 1  # change the interleaving of partitions in later batches
        return out

    # -- groups -------------------------------------------------------------
    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        if self._group is None:
            raise ConfigError("commit needs a consumer created with a group_id")
        if offsets is None:
            offsets = {tp: self.position(tp) for tp in self._readers}
        self._log.commit_offsets(self._group, offsets)

    def committed(self, tp: TopicPartition) -> int | None:
        if self._group is None:
            return None
        return self._log.committed_offsets(self._group).get(TopicPartition(*tp))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()
        for reader in self._extra.values():
            reader.close()
        self._extra.clear()
