"""Apache Kafka behind the :mod:`streamml.log.base` interface.

``KafkaLog("host:port", client_config)`` administers topics with one
kafka-python ``KafkaAdminClient``; the data path is aiokafka:
:meth:`KafkaLog.producer` fills ``AIOKafkaProducer`` batches (``acks="all"``,
idempotent) and :meth:`KafkaLog.consumer` wraps ``AIOKafkaConsumer`` (manual
commits), both on one event loop in a daemon thread owned by the log
(:mod:`streamml.log.kafka_loop`), started on first use and stopped by
:meth:`KafkaLog.close`. ``client_config`` is
:meth:`streamml.settings.Settings.kafka_client_config` (kafka-python names):
security settings in it reach every client (:mod:`streamml.log.kafka_config`).

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
from collections.abc import Mapping
from typing import Any, Literal

from kafka import KafkaAdminClient
from kafka import TopicPartition as KTP
from kafka.admin import ConfigResource, ConfigResourceType, OffsetSpec
from kafka.errors import TopicAlreadyExistsError

from streamml.errors import ConfigError, TopicExists, UnknownTopic
from streamml.log.base import Log, PartitionInfo, TopicInfo, TopicSpec
from streamml.log.kafka_admin import client_kwargs, configs_to_spec, kafka_errors, spec_to_configs
from streamml.log.kafka_config import check_options
from streamml.log.kafka_consumer import CONSUMER_DEFAULTS, KafkaLogConsumer
from streamml.log.kafka_loop import LoopThread
from streamml.log.kafka_producer import PRODUCER_DEFAULTS, KafkaLogProducer

__all__ = [
    "CONSUMER_DEFAULTS",
    "PRODUCER_DEFAULTS",
    "KafkaLog",
    "KafkaLogConsumer",
    "KafkaLogProducer",
]

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
        self._loop_thread = LoopThread(f"streamml-kafka-{bootstrap}")

    def _kwargs(self, cls: type) -> dict[str, Any]:
        """kafka-python keyword arguments (admin client) from ``client_config``."""
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
        producer = KafkaLogProducer(self, check_options("producer", options))
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
        opts = check_options("consumer", options)
        opts.update(group_id=group_id, auto_offset_reset=auto_offset_reset)
        consumer = KafkaLogConsumer(self, opts)
        self._children.add(consumer)
        return consumer

    def close(self) -> None:
        """Close every producer and consumer of this log, its event loop and admin client."""
        try:
            for child in list(self._children):
                child.close()
        finally:
            self._children.clear()
            self._loop_thread.stop()
        with self._lock:
            if self._admin_client is not None:
                self._admin_client.close()
                self._admin_client = None
