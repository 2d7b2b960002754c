"""EmbeddedLog: topics, group offsets and maintenance over a local directory.

Layout under the root directory::

    topics/<topic>/topic.json                    the TopicSpec
    topics/<topic>/<partition>/<base>.log        segments (see format.py)
    topics/<topic>/<partition>/.lock             writer lock (flock)
    groups/<group>.json                          committed offsets
    groups/<group>.lock

Every metadata file is replaced atomically (temporary file + rename). A topic
is created by building its directory under a temporary name and renaming it
into place, so other processes never see a half-created topic.

>>> import tempfile
>>> from streamml.log.base import TopicSpec
>>> log = EmbeddedLog(tempfile.mkdtemp())
>>> log.create_topic(TopicSpec("demo.examples", partitions=3))
True
>>> log.create_topic(TopicSpec("demo.examples", partitions=3))
False
>>> log.list_topics()
['demo.examples']
>>> [p.end_offset for p in log.describe_topic("demo.examples").partitions]
[0, 0, 0]
>>> log.close()
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
import weakref
from collections.abc import Mapping
from typing import Any, Literal

from streamml.errors import BrokerUnavailable, ConfigError, TopicExists, UnknownTopic
from streamml.log.base import Log, PartitionInfo, TopicInfo, TopicPartition, TopicSpec
from streamml.log.embedded.consumer import EmbeddedConsumer
from streamml.log.embedded.maintenance import compact_partition, enforce_partition_retention
from streamml.log.embedded.partition import (
    PartitionReader,
    PartitionWriter,
    file_lock,
    fsync_dir,
    partition_lock,
)
from streamml.log.embedded.producer import EmbeddedProducer

DEFAULT_SEGMENT_BYTES = 64 << 20
SPEC_FILE = "topic.json"
_LEGAL = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def _spec_to_json(spec: TopicSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "partitions": spec.partitions,
        "replication_factor": spec.replication_factor,
        "cleanup_policy": spec.cleanup_policy,
        "retention_ms": spec.retention_ms,
        "retention_bytes": spec.retention_bytes,
        "segment_bytes": spec.segment_bytes,
        "config": dict(spec.config),
    }


class EmbeddedLog(Log):
    """A durable, partitioned log in a local directory (created if needed).

    ``fsync=False``: a flushed record has been handed to the OS, which survives
    ``kill -9`` of the process. ``fsync=True`` also fsyncs segments, offsets and
    metadata on flush, which survives power loss, at a large cost in speed.
    """

    def __init__(self, path: str | os.PathLike[str], fsync: bool = False) -> None:
        self.root = os.path.abspath(os.fspath(path))
        self.fsync = fsync
        self.url = f"embedded://{os.fspath(path)}"
        try:
            os.makedirs(os.path.join(self.root, "topics"), exist_ok=True)
            os.makedirs(os.path.join(self.root, "groups"), exist_ok=True)
        except OSError as exc:
            raise BrokerUnavailable(f"cannot use {self.root} as a log: {exc.strerror}") from exc
        self._children: weakref.WeakSet[EmbeddedProducer | EmbeddedConsumer] = weakref.WeakSet()

    # -- paths and metadata -------------------------------------------------
    def _topic_dir(self, name: str) -> str:
        if not _LEGAL.match(name) or name in (".", ".."):
            raise ConfigError(f"illegal topic name {name!r}: use 1-249 of [A-Za-z0-9._-]")
        return os.path.join(self.root, "topics", name)

    def partition_dir(self, topic: str, partition: int) -> str:
        return os.path.join(self._topic_dir(topic), str(partition))

    def _write_json(self, path: str, data: object) -> None:
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, sort_keys=True)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if self.fsync:
            fsync_dir(os.path.dirname(path))

    def load_spec(self, name: str) -> TopicSpec:
        """The spec of an existing topic; ``UnknownTopic`` otherwise."""
        try:
            with open(os.path.join(self._topic_dir(name), SPEC_FILE), encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise UnknownTopic(f"no such topic: {name}") from None
        return TopicSpec(**data)

    # -- topics -------------------------------------------------------------
    def create_topic(self, spec: TopicSpec, *, exist_ok: bool = True) -> bool:
        final = self._topic_dir(spec.name)
        if spec.partitions < 1:
            raise ConfigError(f"topic {spec.name!r}: partitions must be >= 1")
        if spec.cleanup_policy not in ("delete", "compact"):
            raise ConfigError(
                f"topic {spec.name!r}: unknown cleanup_policy {spec.cleanup_policy!r}"
            )
        if os.path.exists(os.path.join(final, SPEC_FILE)):
            if exist_ok:
                return False
            raise TopicExists(f"topic already exists: {spec.name}")
        tmp = os.path.join(self.root, "topics", f".tmp-{uuid.uuid4().hex}")
        os.makedirs(tmp)
        for p in range(spec.partitions):
            os.makedirs(os.path.join(tmp, str(p)))
            with open(os.path.join(tmp, str(p), f"{0:020d}.log"), "wb"):
                pass
        self._write_json(os.path.join(tmp, SPEC_FILE), _spec_to_json(spec))
        try:
            os.rename(tmp, final)
        except OSError:  # another process created it first
            shutil.rmtree(tmp, ignore_errors=True)
            if exist_ok:
                return False
            raise TopicExists(f"topic already exists: {spec.name}") from None
        if self.fsync:
            fsync_dir(os.path.dirname(final))
        return True

    def delete_topic(self, name: str) -> None:
        path = self._topic_dir(name)
        if not os.path.isdir(path):
            raise UnknownTopic(f"no such topic: {name}")
        trash = os.path.join(self.root, "topics", f".deleted-{uuid.uuid4().hex}")
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def list_topics(self) -> list[str]:
        topics_dir = os.path.join(self.root, "topics")
        return sorted(
            n
            for n in os.listdir(topics_dir)
            if not n.startswith((".", "__"))
            and os.path.exists(os.path.join(topics_dir, n, SPEC_FILE))
        )

    def topic_exists(self, name: str) -> bool:
        try:
            return os.path.exists(os.path.join(self._topic_dir(name), SPEC_FILE))
        except ConfigError:
            return False

    def describe_topic(self, name: str) -> TopicInfo:
        spec = self.load_spec(name)
        parts = []
        for p in range(spec.partitions):
            reader = self.partition_reader(name, p)
            try:
                parts.append(PartitionInfo(p, reader.start_offset(), reader.end_offset()))
            finally:
                reader.close()
        return TopicInfo(spec, tuple(parts))

    # -- clients ------------------------------------------------------------
    def partition_reader(self, topic: str, partition: int) -> PartitionReader:
        return PartitionReader(self.partition_dir(topic, partition), topic, partition)

    def partition_writer(self, topic: str, partition: int) -> PartitionWriter:
        spec = self.load_spec(topic)
        directory = self.partition_dir(topic, partition)

        def on_roll() -> None:  # runs under the writer's lock
            self._maintain(directory, spec)

        return PartitionWriter(
            directory, spec.segment_bytes or DEFAULT_SEGMENT_BYTES, self.fsync, on_roll
        )

    def producer(self, **options: object) -> EmbeddedProducer:
        producer = EmbeddedProducer(self, **options)
        self._children.add(producer)
        return producer

    def consumer(
        self,
        group_id: str | None = None,
        *,
        auto_offset_reset: Literal["earliest", "latest"] = "earliest",
        **options: object,
    ) -> EmbeddedConsumer:
        consumer = EmbeddedConsumer(self, group_id, auto_offset_reset)
        self._children.add(consumer)
        return consumer

    def close(self) -> None:
        for child in list(self._children):
            child.close()

    # -- maintenance --------------------------------------------------------
    def _maintain(self, directory: str, spec: TopicSpec) -> int:
        if spec.cleanup_policy == "compact":
            return compact_partition(directory, spec, self.fsync)
        return enforce_partition_retention(directory, spec)

    def enforce_retention(self, topic: str | None = None) -> int:
        """Delete expired closed segments of ``topic`` (all topics if None); return count."""
        deleted = 0
        for name in [topic] if topic else self.list_topics():
            spec = self.load_spec(name)
            for p in range(spec.partitions):
                directory = self.partition_dir(name, p)
                with partition_lock(directory):
                    deleted += enforce_partition_retention(directory, spec)
        return deleted

    def compact(self, topic: str) -> int:
        """Compact the closed segments of a ``compact`` topic; return records removed."""
        spec = self.load_spec(topic)
        removed = 0
        for p in range(spec.partitions):
            directory = self.partition_dir(topic, p)
            with partition_lock(directory):
                removed += compact_partition(directory, spec, self.fsync)
        return removed

    # -- group offsets ------------------------------------------------------
    def _group_path(self, group: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9._-]", lambda m: f"%{ord(m.group()):02x}", group)
        return os.path.join(self.root, "groups", safe)

    def committed_offsets(self, group: str) -> dict[TopicPartition, int]:
        try:
            with open(self._group_path(group) + ".json", encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}
        return {
            TopicPartition(t, int(p)): int(o) for t, parts in data.items() for p, o in parts.items()
        }

    def commit_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        base = self._group_path(group)
        with file_lock(base + ".lock"):
            merged = self.committed_offsets(group)
            merged.update({TopicPartition(*tp): int(o) for tp, o in offsets.items()})
            data: dict[str, dict[str, int]] = {}
            for tp, o in sorted(merged.items()):
                data.setdefault(tp.topic, {})[str(tp.partition)] = o
            self._write_json(base + ".json", data)

