"""Shared helpers of the log conformance suite: deadlines, unique names, read-all.

Everything that differs between the embedded log and Kafka (metadata propagation
after ``create_topic``, group join latency) is hidden behind deadline-based
waits here, so the tests themselves state only the semantics.
"""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from streamml.errors import UnknownTopic
from streamml.log.base import Consumer, Log, Producer, Record, TopicPartition, TopicSpec

with warnings.catch_warnings():
    # kafka-python 3.0 reads its protocol schemas with the deprecated
    # importlib.resources.read_text/open_text at import time (Python 3.11), and
    # the warning is attributed to importlib, outside pyproject's kafka.* allow-list.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.partitioner import murmur2

T = TypeVar("T")

#: Upper bound of any single wait (group join, metadata propagation). Waits end
#: as soon as their condition holds, so this only matters when a test fails.
DEADLINE_S = 45.0


def kafka_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner: ``toPositive(murmur2(key)) % partitions``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def now_ms() -> int:
    return int(time.time() * 1000)


def base_timestamp() -> int:
    """A recent, round timestamp: Kafka rejects timestamps far in the future and
    applies retention to old ones, so explicit timestamps stay near "now"."""
    return (now_ms() - 600_000) // 1000 * 1000


def wait_until(
    predicate: Callable[[], T], *, timeout_s: float = DEADLINE_S, what: str = "condition"
) -> T:
    """Call ``predicate`` until it returns something truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    last_exc: BaseException | None = None
    while True:
        try:
            result = predicate()
        except Exception as exc:  # retried until the deadline
            last_exc = exc
            result = None
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}") from last_exc
        time.sleep(0.05)


def poll_until(
    consumer: Consumer,
    count: int,
    *,
    timeout_s: float = DEADLINE_S,
    max_records: int = 10_000,
) -> list[Record]:
    """Poll until at least ``count`` records arrived (or the deadline passed)."""
    deadline = time.monotonic() + timeout_s
    out: list[Record] = []
    while len(out) < count and time.monotonic() < deadline:
        out.extend(consumer.poll(timeout_s=0.2, max_records=max_records))
    return out


def by_partition(records: Iterable[Record]) -> dict[int, list[Record]]:
    out: dict[int, list[Record]] = {}
    for record in records:
        out.setdefault(record.partition, []).append(record)
    return out


def tps(topic: str, partitions: int) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in range(partitions)]


@dataclass
class LogHelper:
    """A log under test plus the bookkeeping each test needs."""

    kind: Literal["embedded", "kafka"]
    log: Log
    reopen: Callable[[], Log]
    _closers: list[Callable[[], Any]] = field(default_factory=list)
    _topics: list[str] = field(default_factory=list)
    _uid: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    # ------------------------------------------------------------------ names
    def name(self, stem: str = "t") -> str:
        """A topic name no other test (or earlier run on the same broker) uses."""
        return f"conf.{stem}.{self._uid}.{uuid.uuid4().hex[:6]}"

    def group(self) -> str:
        return f"conf-group-{uuid.uuid4().hex}"

    # ----------------------------------------------------------------- topics
    def create(self, spec: TopicSpec, *, exist_ok: bool = True) -> bool:
        """``create_topic`` + wait until the topic is usable (Kafka metadata)."""
        self._topics.append(spec.name)
        created = self.log.create_topic(spec, exist_ok=exist_ok)
        self.wait_ready(spec.name, spec.partitions)
        return created

    def topic(self, partitions: int = 1, stem: str = "t", **spec: Any) -> str:
        name = self.name(stem)
        self.create(TopicSpec(name=name, partitions=partitions, **spec))
        return name

    def wait_ready(self, name: str, partitions: int) -> None:
        def ready() -> bool:
            if name not in self.log.list_topics():
                return False
            info = self.log.describe_topic(name)
            return len(info.partitions) >= partitions

        wait_until(ready, what=f"topic {name} to be ready")

    def wait_gone(self, name: str) -> None:
        def gone() -> bool:
            if name in self.log.list_topics():
                return False
            try:
                self.log.describe_topic(name)
            except UnknownTopic:
                return True
            return False

        wait_until(gone, what=f"topic {name} to be deleted")

    # ------------------------------------------------------- clients (closed)
    def producer(self, log: Log | None = None) -> Producer:
        producer = (log or self.log).producer()
        self._closers.append(producer.close)
        return producer

    def consumer(
        self,
        group_id: str | None = None,
        *,
        auto_offset_reset: Literal["earliest", "latest"] = "earliest",
        log: Log | None = None,
    ) -> Consumer:
        consumer = (log or self.log).consumer(group_id, auto_offset_reset=auto_offset_reset)
        self._closers.append(consumer.close)
        return consumer

    def other_handle(self) -> Log:
        """A second, independent handle on the same log (same dir / same cluster)."""
        other = self.reopen()
        self._closers.append(other.close)
        return other

    # -------------------------------------------------------------- shortcuts
    def send(self, topic: str, rows: Iterable[dict[str, Any]]) -> None:
        """Send ``rows`` (keyword arguments of ``Producer.send``) and flush."""
        producer = self.producer()
        for row in rows:
            row = dict(row)
            value = row.pop("value")
            producer.send(topic, value, **row)
        producer.flush(30)

    def read_all(self, topic: str, *, log: Log | None = None) -> list[Record]:
        """Every record of ``topic``, read by a group-less consumer from the beginning.

        Stops when the consumer's position reached the end offset of every
        partition, so it never relies on a poll timeout to decide "done".
        """
        partitions = len((log or self.log).describe_topic(topic).partitions)
        targets = tps(topic, partitions)
        consumer = self.consumer(log=log)
        consumer.assign(targets)
        consumer.seek_to_beginning(targets)
        ends = consumer.end_offsets(targets)
        out: list[Record] = []
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            if all(consumer.position(tp) >= ends[tp] for tp in targets):
                break
            out.extend(consumer.poll(timeout_s=0.2))
        else:
            raise AssertionError(f"could not read {topic} to its end offsets {ends}")
        self.close(consumer)
        return out

    def close(self, client: Producer | Consumer | Log) -> None:
        """Close a client now (and not again at teardown)."""
        self._closers.remove(client.close)
        client.close()

    # ---------------------------------------------------------------- cleanup
    def cleanup(self) -> None:
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:  # noqa: S110 - best effort after the test
                pass
        if self.kind == "kafka":
            for name in self._topics:
                try:
                    self.log.delete_topic(name)
                except Exception:  # noqa: S110 - best effort after the test
                    pass
        self.log.close()
