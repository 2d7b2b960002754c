"""The kafka source: a topic of JSON records on any Kafka cluster (not streamml's own broker).

The source has its own client settings (``bootstrap_servers``, security
options), so it reads from any cluster. It assigns itself every partition of
``topic`` (no consumer group, nothing committed on the cluster): its position,
``{"topic": ..., "offsets": {"<partition>": <next offset>}}``, is checkpointed
by the ingest loop *with* the examples it produced, so a restart (even after
``kill -9``) resumes exactly where the last durable batch ended.

Each record value is one JSON object; the example id defaults to
``<connector>:<topic>:<partition>:<offset>`` and the event time to the Kafka
record timestamp (an ``event_time`` column overrides it). A tombstone (null
value) or a value that is not a JSON object becomes a dead letter.

Options: ``bootstrap_servers``, ``topic``, ``start`` (``earliest`` or
``latest``: where a first run begins), ``mode`` (``follow``, or ``once``: stop
at the end offsets seen when opened), ``poll_timeout_ms``, security options
(``security_protocol``, ``sasl_mechanism``, ``sasl_plain_username``,
``sasl_plain_password`` or ``sasl_plain_password_env``, ``ssl_cafile``,
``ssl_certfile``, ``ssl_keyfile``) and ``config`` (any other kafka-python
consumer setting).

>>> src = KafkaSource(name="k", bootstrap_servers="127.0.0.1:9092", topic="events")
>>> src.describe()
'kafka events @ 127.0.0.1:9092 (earliest, follow)'
"""

from __future__ import annotations

import os
import time
from typing import Any, Literal

from streamml.connectors.base import Position, SourceConnector, SourceRecord
from streamml.errors import ConfigError

_SECURITY = ("security_protocol", "sasl_mechanism", "sasl_plain_username",
             "sasl_plain_password", "ssl_cafile", "ssl_certfile", "ssl_keyfile")


class KafkaSource(SourceConnector):
    """Read JSON records from a Kafka topic, with offsets checkpointed by the ingest loop."""

    type_name = "kafka"

    def __init__(
        self,
        *,
        name: str,
        topic: str,
        bootstrap_servers: str | list[str] = "127.0.0.1:9092",
        start: Literal["earliest", "latest"] = "earliest",
        mode: Literal["once", "follow"] = "follow",
        poll_timeout_ms: int = 200,
        metadata_timeout_s: float = 30.0,
        security_protocol: str | None = None,
        sasl_mechanism: str | None = None,
        sasl_plain_username: str | None = None,
        sasl_plain_password: str | None = None,
        sasl_plain_password_env: str | None = None,
        ssl_cafile: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        config: dict[str, Any] | None = None,
        max_record_bytes: int = 1 << 20,
    ) -> None:
        if start not in ("earliest", "latest"):
            raise ConfigError(f"connector {name!r}: start must be earliest or latest")
        if mode not in ("once", "follow"):
            raise ConfigError(f"connector {name!r}: mode must be 'once' or 'follow'")
        if not topic:
            raise ConfigError(f"connector {name!r}: option topic is required")
        self.name = name
        self.topic = topic
        self.bootstrap_servers = bootstrap_servers
        self.start = start
        self.mode = mode
        self.poll_timeout_ms = poll_timeout_ms
        self.metadata_timeout_s = metadata_timeout_s
        self.max_record_bytes = max_record_bytes
        password = sasl_plain_password
        if sasl_plain_password_env:
            password = os.environ.get(sasl_plain_password_env, password)
        security = dict(zip(_SECURITY, (security_protocol, sasl_mechanism, sasl_plain_username,
                                        password, ssl_cafile, ssl_certfile, ssl_keyfile),
                            strict=True))
        self.client_config = {k: v for k, v in security.items() if v is not None}
        self.client_config.update(config or {})
        self._consumer: Any = None
        self._offsets: dict[int, int] = {}
        self._ends: dict[int, int] | None = None

    def describe(self) -> str:
        servers = self.bootstrap_servers
        if isinstance(servers, list):
            servers = ",".join(servers)
        return f"kafka {self.topic} @ {servers} ({self.start}, {self.mode})"

    def open(self, position: Position | None = None) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.close()
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap_servers, group_id=None, enable_auto_commit=False,
            auto_offset_reset=self.start, client_id=f"streamml-ingest-{self.name}",
            **self.client_config)
        self._consumer = consumer
        deadline = time.monotonic() + self.metadata_timeout_s
        parts = consumer.partitions_for_topic(self.topic)
        while not parts:
            if time.monotonic() > deadline:
                self.close()
                raise ConfigError(f"connector {self.name!r}: topic {self.topic!r} not found")
            time.sleep(0.1)
            parts = consumer.partitions_for_topic(self.topic)
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        saved = {}
        if position and position.get("topic") == self.topic:
            saved = {int(p): int(o) for p, o in dict(position.get("offsets", {})).items()}
        fresh = [tp for tp in tps if tp.partition not in saved]
        if fresh:
            if self.start == "earliest":
                consumer.seek_to_beginning(*fresh)
            else:
                consumer.seek_to_end(*fresh)
        for tp in tps:
            if tp.partition in saved:
                consumer.seek(tp, saved[tp.partition])
        self._offsets = {tp.partition: consumer.position(tp) for tp in tps}
        self._ends = None
        if self.mode == "once":
            ends = consumer.end_offsets(tps)
            self._ends = {tp.partition: ends[tp] for tp in tps}

    @property
    def position(self) -> Position:
        return {"topic": self.topic,
                "offsets": {str(p): o for p, o in sorted(self._offsets.items())}}

    @property
    def exhausted(self) -> bool:
        ends = self._ends
        return ends is not None and all(self._offsets.get(p, 0) >= e for p, e in ends.items())

    def read(self, max_records: int) -> list[SourceRecord]:
        if self._consumer is None:
            raise ConfigError(f"connector {self.name!r} is not open")
        if self.exhausted:
            return []
        polled = self._consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=max_records)
        out: list[SourceRecord] = []
        name, topic = self.name, self.topic
        for tp, messages in sorted(polled.items(), key=lambda kv: kv[0].partition):
            p = tp.partition
            for m in messages:
                value = m.value
                error = None
                if value is None:
                    value, error = b"", ("unparsable", "a tombstone (null value)")
                out.append(SourceRecord(
                    value, {"topic": topic, "partition": p, "offset": m.offset},
                    id=f"{name}:{topic}:{p}:{m.offset}", fmt="json",
                    event_time_ms=m.timestamp if m.timestamp and m.timestamp > 0 else None,
                    error=error))
                self._offsets[p] = m.offset + 1
        return out

    def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            consumer.close()
