"""Apache Kafka behind the :mod:`streamml.log.base` interface, through kafka-python.

``KafkaLog("host:port", client_config)`` uses one ``KafkaAdminClient`` for
topics; :meth:`KafkaLog.producer` and :meth:`KafkaLog.consumer` wrap
``KafkaProducer`` (``acks="all"``) and ``KafkaConsumer`` (manual commits).
``client_config`` is :meth:`streamml.settings.Settings.kafka_client_config`:
security settings in it reach every client.

An unreachable broker raises :class:`~streamml.errors.BrokerUnavailable` after
``bootstrap_timeout_ms`` (5 s unless configured)::

    >>> from streamml.errors import BrokerUnavailable
    >>> try:
    ...     KafkaLog("127.0.0.1:1", {"bootstrap_timeout_ms": 200}).list_topics()
    ... except BrokerUnavailable as exc:
    ...     print(exc)
    cannot reach Kafka broker at 127.0.0.1:1: no connection (is it running?)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTP
from kafka.admin import ConfigResource, ConfigResourceType, OffsetSpec
from kafka.errors import TopicAlreadyExistsError
from kafka.serializer import Serializer
from kafka.structs import OffsetAndMetadata

from streamml.errors import BrokerUnavailable, ConfigError, TopicExists, UnknownTopic
from streamml.log.base import (
    Consumer,
    Headers,
    Log,
    PartitionInfo,
    Producer,
    Record,
    TopicInfo,
    TopicPartition,
    TopicSpec,
)
from streamml.log.kafka_admin import (
    check_options,
    client_kwargs,
    configs_to_spec,
    kafka_errors,
    spec_to_configs,
)


class _NullRecordValue(Serializer):
    """Lets a record with a null key *and* a null value through kafka-python.

    Kafka accepts such records (and kcat writes them); kafka-python's ``send``
    rejects them before serialization. We pass :data:`NULL_VALUE` instead of
    ``None`` and this serializer turns it back into ``None``.
    """

    def serialize(self, topic: str, headers: object, data: object) -> object:
        return None if data is NULL_VALUE else data


NULL_VALUE = object()


#: Producer defaults tuned for throughput; ``log.producer(**options)`` overrides them.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "linger_ms": 5,
    "batch_size": 512 * 1024,
    "max_request_size": 8 * 1024 * 1024,
    "compression_type": None,
    "max_block_ms": 15_000,
    "allow_auto_create_topics": False,
    "value_serializer": _NullRecordValue(),
}
CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable_auto_commit": False,
    "allow_auto_create_topics": False,
    "max_partition_fetch_bytes": 8 * 1024 * 1024,
}
DELETE_WAIT_S = 10.0


class KafkaLog(Log):
    """A Kafka cluster as a :class:`~streamml.log.base.Log`."""

    def __init__(self, bootstrap: str, client_config: Mapping[str, Any] | None = None) -> None:
        self.bootstrap = bootstrap
        self.url = f"kafka://{bootstrap}"
        self.client_config = dict(client_config or {})
        self._admin_client: KafkaAdminClient | None = None
        self._lock = threading.Lock()
        self._children: set[KafkaLogProducer | KafkaLogConsumer] = set()

    def _kwargs(self, cls: type) -> dict[str, Any]:
        return client_kwargs(cls, self.bootstrap, self.client_config)

    @property
    def admin(self) -> KafkaAdminClient:
        """The shared admin client, connected on first use."""
        with self._lock:
            if self._admin_client is None:
                with kafka_errors(self.bootstrap):
                    self._admin_client = KafkaAdminClient(**self._kwargs(KafkaAdminClient))
            return self._admin_client

    # -- topics -------------------------------------------------------------
    def create_topic(self, spec: TopicSpec, *, exist_ok: bool = True) -> bool:
        if spec.partitions < 1:
            raise ConfigError(f"topic {spec.name!r}: partitions must be >= 1")
        request = {
            spec.name: {
                "num_partitions": spec.partitions,
                "replication_factor": spec.replication_factor,
                "configs": spec_to_configs(spec),
            }
        }
        try:
            with kafka_errors(self.bootstrap, spec.name):
                self.admin.create_topics(request, wait_for_metadata=True)
        except TopicAlreadyExistsError:
            if exist_ok:
                return False
            raise TopicExists(f"topic already exists: {spec.name}") from None
        return True

    def delete_topic(self, name: str) -> None:
        with kafka_errors(self.bootstrap, name):
            self.admin.delete_topics([name])
            deadline = time.monotonic() + DELETE_WAIT_S
            while name in self._all_topics() and time.monotonic() < deadline:
                time.sleep(0.05)  # the broker's metadata cache lags the controller

    def _all_topics(self) -> list[str]:
        return [t["name"] for t in self.admin.describe_topics() if not t.get("is_internal")]

    def list_topics(self) -> list[str]:
        with kafka_errors(self.bootstrap):
            return sorted(t for t in self._all_topics() if not t.startswith("__"))

    def partitions_for(self, name: str) -> int:
        """Number of partitions of ``name``; ``UnknownTopic`` if it does not exist."""
        with kafka_errors(self.bootstrap, name):
            (meta,) = self.admin.describe_topics([name])
        if meta["error_code"] == 3 or not meta["partitions"]:
            raise UnknownTopic(f"no such topic: {name}")
        return len(meta["partitions"])

    def describe_topic(self, name: str) -> TopicInfo:
        with kafka_errors(self.bootstrap, name):
            (meta,) = self.admin.describe_topics([name])
            if meta["error_code"] == 3 or not meta["partitions"]:
                raise UnknownTopic(f"no such topic: {name}")
            parts = sorted(p["partition_index"] for p in meta["partitions"])
            replicas = len(meta["partitions"][0]["replica_nodes"])
            resource = ConfigResource(ConfigResourceType.TOPIC, name, None)
            described = self.admin.describe_configs([resource], config_filter="all")
            raw = described.get("topic", {}).get(name, {})
            tps = [KTP(name, p) for p in parts]
            starts = self.admin.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in tps})
            ends = self.admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
        configs = {
            key: (c["value"], c["config_source"] != "DYNAMIC_TOPIC_CONFIG")
            for key, c in raw.items()
            if c.get("value") is not None
        }
        spec = configs_to_spec(name, len(parts), replicas, configs)
        infos = tuple(PartitionInfo(tp.partition, starts[tp].offset, ends[tp].offset) for tp in tps)
        return TopicInfo(spec=spec, partitions=infos)

    # -- clients ------------------------------------------------------------
    def producer(self, **options: object) -> KafkaLogProducer:
        producer = KafkaLogProducer(self, check_options(KafkaProducer, options))
        self._children.add(producer)
        return producer

    def consumer(
        self,
        group_id: str | None = None,
        *,
        auto_offset_reset: Literal["earliest", "latest"] = "earliest",
        **options: object,
    ) -> KafkaLogConsumer:
        if auto_offset_reset not in ("earliest", "latest"):
            raise ConfigError(
                f"auto_offset_reset must be 'earliest' or 'latest', not {auto_offset_reset!r}"
            )
        opts = check_options(KafkaConsumer, options)
        opts.update(group_id=group_id, auto_offset_reset=auto_offset_reset)
        consumer = KafkaLogConsumer(self, opts)
        self._children.add(consumer)
        return consumer

    def close(self) -> None:
        for child in list(self._children):
            child.close()
        self._children.clear()
        with self._lock:
            if self._admin_client is not None:
                self._admin_client.close()
                self._admin_client = None


class KafkaLogProducer(Producer):
    """``KafkaProducer`` with topic checks, durable ``flush`` and streamml errors."""

    def __init__(self, log: KafkaLog, options: Mapping[str, object]) -> None:
        self._log = log
        kwargs = {**log._kwargs(KafkaProducer), **PRODUCER_DEFAULTS, **options}
        with kafka_errors(log.bootstrap):
            self._producer = KafkaProducer(**kwargs)
        self._partitions: dict[str, int] = {}
        self._pending: list[Any] = []
        self._closed = False

    def _check(self, topic: str, partition: int | None) -> None:
        if self._closed:
            raise ConfigError("producer is closed")
        count = self._partitions.get(topic)
        if count is None:
            count = self._partitions[topic] = self._log.partitions_for(topic)
        if partition is not None and not 0 <= partition < count:
            raise UnknownTopic(f"topic {topic!r} has no partition {partition}")

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
        self._check(topic, partition)
        with kafka_errors(self._log.bootstrap, topic):
            future = self._producer.send(
                topic,
                value=NULL_VALUE if value is None and key is None else value,
                key=key,
                partition=partition,
                timestamp_ms=timestamp_ms,
                headers=list(headers) if headers else None,
            )
        self._pending.append(future)

    def send_many(
        self,
        topic: str,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None] | None = None,
        *,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        """Fast path: one topic check, then a tight loop over ``KafkaProducer.send``."""
        if keys is not None and len(keys) != len(values):
            raise ValueError("send_many: values and keys differ in length")
        self._check(topic, partition)
        send, append = self._producer.send, self._pending.append
        with kafka_errors(self._log.bootstrap, topic):
            if keys is None:
                for value in values:
                    v = NULL_VALUE if value is None else value
                    append(send(topic, value=v, partition=partition, timestamp_ms=timestamp_ms))
            else:
                for value, key in zip(values, keys, strict=True):
                    v = NULL_VALUE if value is None and key is None else value
                    append(send(topic, v, key, partition=partition, timestamp_ms=timestamp_ms))

    def flush(self, timeout_s: float | None = None) -> None:
        pending, self._pending = self._pending, []
        with kafka_errors(self._log.bootstrap):
            self._producer.flush(timeout=timeout_s)
        for future in pending:
            if future.failed():
                exc = future.exception
                with kafka_errors(self._log.bootstrap):
                    raise exc
                raise BrokerUnavailable(f"Kafka broker at {self._log.bootstrap}: {exc}")

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._producer.close()
            self._log._children.discard(self)


class KafkaLogConsumer(Consumer):
    """``KafkaConsumer`` with manual commits and streamml records and errors."""

    def __init__(self, log: KafkaLog, options: Mapping[str, object]) -> None:
        self._log = log
        self._group = options.get("group_id")
        kwargs = {**log._kwargs(KafkaConsumer), **CONSUMER_DEFAULTS, **options}
        with kafka_errors(log.bootstrap):
            self._consumer = KafkaConsumer(**kwargs)
        self._subscribed = False
        self._closed = False
        self._known_partitions: dict[str, int] = {}

    def _check_exists(self, tps: Iterable[TopicPartition]) -> None:
        """``UnknownTopic`` for a missing topic or partition, before kafka-python waits on it."""
        for topic, partition in tps:
            count = self._known_partitions.get(topic)
            if count is None or partition >= count:
                count = self._known_partitions[topic] = self._log.partitions_for(topic)
            if not 0 <= partition < count:
                raise UnknownTopic(f"no such partition: {topic}[{partition}]")

    def subscribe(self, topics: Sequence[str]) -> None:
        # Join only once the client knows the topics' partitions: a group that forms
        # while metadata of a just-created topic is missing assigns nothing and does
        # not rebalance again until the next metadata refresh (minutes).
        deadline = time.monotonic() + 5.0
        for topic in topics:
            with kafka_errors(self._log.bootstrap, topic):
                while not self._consumer.partitions_for_topic(topic):
                    if time.monotonic() > deadline or not self._log.topic_exists(topic):
                        break
                    time.sleep(0.05)
        self._subscribed = True
        self._consumer.subscribe(list(topics))

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        self._subscribed = False
        self._consumer.assign([KTP(*tp) for tp in partitions])

    def assignment(self, timeout_s: float = 10.0) -> set[TopicPartition]:
        """Assigned partitions; after ``subscribe``, waits (up to ``timeout_s``) to join."""
        consumer = self._consumer
        deadline = time.monotonic() + timeout_s
        while self._subscribed and not consumer.assignment() and time.monotonic() < deadline:
            with kafka_errors(self._log.bootstrap):
                consumer.poll(timeout_ms=100, max_records=1, update_offsets=False)
        return {TopicPartition(tp.topic, tp.partition) for tp in consumer.assignment()}

    def poll(self, timeout_s: float = 1.0, max_records: int = 10_000) -> list[Record]:
        if self._closed:
            raise ConfigError("consumer is closed")
        with kafka_errors(self._log.bootstrap):
            batches = self._consumer.poll(
                timeout_ms=int(max(0.0, timeout_s) * 1000), max_records=max_records
            )
        return [
            Record(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value,
                   tuple((k, v) for k, v in r.headers) if r.headers else ())
            for records in batches.values()
            for r in records
        ]  # fmt: skip

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if offset < 0:
            raise ConfigError(f"cannot seek {tp[0]}[{tp[1]}] to negative offset {offset}")
        with kafka_errors(self._log.bootstrap, tp[0]):
            self._consumer.seek(KTP(*tp), int(offset))

    def _targets(self, tps: Iterable[TopicPartition] | None) -> list[KTP]:
        return [KTP(*tp) for tp in (self.assignment() if tps is None else tps)]

    def seek_to_beginning(self, tps: Iterable[TopicPartition] | None = None) -> None:
        with kafka_errors(self._log.bootstrap):
            self._consumer.seek_to_beginning(*self._targets(tps))

    def seek_to_end(self, tps: Iterable[TopicPartition] | None = None) -> None:
        with kafka_errors(self._log.bootstrap):
            self._consumer.seek_to_end(*self._targets(tps))

    def position(self, tp: TopicPartition) -> int:
        with kafka_errors(self._log.bootstrap, tp[0]):
            return int(self._consumer.position(KTP(*tp)))

    def offsets_for_times(
        self, timestamps: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int | None]:
        if any(ts < 0 for ts in timestamps.values()):
            raise ConfigError("timestamps must be >= 0 (milliseconds since the epoch)")
        self._check_exists(timestamps)
        query = {KTP(*tp): int(ts) for tp, ts in timestamps.items()}
        with kafka_errors(self._log.bootstrap):
            found = self._consumer.offsets_for_times(query)
        return {
            TopicPartition(*tp): (None if (hit := found.get(tp)) is None else hit.offset)
            for tp in query
        }

    def beginning_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        targets = self._targets(tps)
        self._check_exists(targets)
        with kafka_errors(self._log.bootstrap):
            found = self._consumer.beginning_offsets(targets)
        return {TopicPartition(*tp): int(off) for tp, off in found.items()}

    def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        targets = self._targets(tps)
        self._check_exists(targets)
        with kafka_errors(self._log.bootstrap):
            found = self._consumer.end_offsets(targets)
        return {TopicPartition(*tp): int(off) for tp, off in found.items()}

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        if self._group is None:
            raise ConfigError("commit needs a consumer created with a group_id")
        payload = None
        if offsets is not None:
            payload = {KTP(*tp): OffsetAndMetadata(int(off), "", -1) for tp, off in offsets.items()}
        with kafka_errors(self._log.bootstrap):
            self._consumer.commit(payload)

    def committed(self, tp: TopicPartition) -> int | None:
        if self._group is None:
            return None
        with kafka_errors(self._log.bootstrap, tp[0]):
            found = self._consumer.committed(KTP(*tp))
        return None if found is None else int(found)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._consumer.close(autocommit=False)
        self._log._children.discard(self)
