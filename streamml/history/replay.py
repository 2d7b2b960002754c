"""Replay: copy a time range of a pipeline's history into an isolated namespace.

``replay(log, pipeline, from_ms, to_ms, source=..., namespace=NAME)`` reads every
record of ``<pipeline>.<role>`` (default role: ``examples``) with
``from_ms <= timestamp < to_ms`` and appends it, with its key, value, headers,
timestamp and partition unchanged, to ``<namespace>.<role>``. Live topics,
consumer groups and state are untouched; components then run on the namespace
as a pipeline of its own.

Sources: ``"kafka"`` (the log, found with ``offsets_for_times``), ``"archive"``
(Parquet, :mod:`streamml.history.archive`), or ``"auto"``: the log when it
still holds ``from_ms`` on every partition, else the archive.

**Deterministic:** records are written partition by partition in offset order,
so the same range replayed twice gives identical records (same partitions,
offsets, keys, values, timestamps) in two fresh namespaces.

>>> import tempfile
>>> from streamml.log.embedded import EmbeddedLog
>>> from streamml.log.base import TopicSpec
>>> log = EmbeddedLog(tempfile.mkdtemp())
>>> _ = log.create_topic(TopicSpec("demo.examples", partitions=2))
>>> with log.producer() as p:
...     for i in range(10):
...         p.send("demo.examples", b"%d" % i, partition=i % 2, timestamp_ms=1000 * i)
>>> replay(log, "demo", 2000, 6000, source="kafka", namespace="bf1").records
4
>>> log.close()
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from streamml.errors import ConfigError
from streamml.history.archive import row_bytes
from streamml.history.layout import archive_files, hour_bucket
from streamml.log.base import Log, Record, TopicPartition, TopicSpec

Source = Literal["kafka", "archive", "auto"]


@dataclass
class ReplayStats:
    records: int = 0
    source: str = ""
    topics: tuple[str, ...] = ()


def log_range(log: Log, topic: str, from_ms: int, to_ms: int) -> Iterator[Record]:
    """Records of ``topic`` in ``[from_ms, to_ms)``, partition by partition, offset order."""
    info = log.describe_topic(topic)
    with log.consumer() as consumer:
        for p in info.partitions:
            tp = TopicPartition(topic, p.partition)
            consumer.assign([tp])
            start = consumer.offsets_for_times({tp: from_ms}).get(tp)
            end = consumer.end_offsets([tp])[tp]
            if start is None:
                continue
            consumer.seek(tp, start)
            while consumer.position(tp) < end:
                for r in consumer.poll(timeout_s=0.5):
                    if from_ms <= r.timestamp_ms < to_ms:
                        yield r


def archive_range(root: Path, topic: str, from_ms: int, to_ms: int) -> Iterator[Record]:
    """The same records read from the archive (files outside the hours are skipped)."""
    import pyarrow.parquet as pq

    lo, hi = hour_bucket(from_ms), hour_bucket(max(from_ms, to_ms - 1))
    for f in archive_files(root, topic):  # sorted by (partition, first offset)
        date, hour = f.path.parent.parent.name[5:], f.path.parent.name[5:]
        if not lo <= (date, hour) <= hi:
            continue
        for row in pq.read_table(f.path).to_pylist():
            if from_ms <= row["timestamp"] < to_ms:
                yield Record(topic, row["partition"], row["offset"], row["timestamp"],
                             row_bytes(row["key"], row["key_bin"]),
                             row_bytes(row["value"], row["value_bin"]),
                             tuple((h["key"], h["value"]) for h in row["headers"] or ()))


def _choose(log: Log, topic: str, from_ms: int, source: Source) -> str:
    if source != "auto":
        return source
    with log.consumer() as consumer:
        tps = [TopicPartition(topic, p.partition) for p in log.describe_topic(topic).partitions]
        starts = consumer.beginning_offsets(tps)
        consumer.assign(tps)
        for tp in tps:
            if starts[tp] == 0:
                continue
            first = consumer.offsets_for_times({tp: 0}).get(tp)
            consumer.seek(tp, starts[tp])
            batch = consumer.poll(timeout_s=0.5, max_records=1)
            if first is None or not batch or batch[0].timestamp_ms > from_ms:
                return "archive"
    return "kafka"


def replay(log: Log, pipeline: str, from_ms: int, to_ms: int, *, source: Source = "auto",
           namespace: str, roles: Sequence[str] = ("examples",), root: Path | None = None,
           progress: Callable[[int], None] | None = None) -> ReplayStats:
    """Copy ``[from_ms, to_ms)`` of ``<pipeline>.<role>`` into ``<namespace>.<role>``."""
    from streamml.catalog import load_catalog

    if namespace == pipeline:
        raise ConfigError("the replay namespace must differ from the live pipeline")
    if to_ms <= from_ms:
        raise ConfigError("--to-time must be after --from-time")
    catalog = load_catalog()
    stats = ReplayStats(topics=tuple(catalog.topic_name(namespace, r) for r in roles))
    for role in roles:
        src, dst = catalog.topic_name(pipeline, role), catalog.topic_name(namespace, role)
        info = log.describe_topic(src)
        if log.topic_exists(dst) and log.describe_topic(dst).records:
            raise ConfigError(f"namespace topic {dst} is not empty: pick a new --namespace")
        spec = catalog.spec(namespace, role)
        log.create_topic(TopicSpec(spec.name, partitions=len(info.partitions),
                                   cleanup_policy=spec.cleanup_policy,
                                   retention_ms=spec.retention_ms), exist_ok=True)
        chosen = _choose(log, src, from_ms, source)
        if chosen == "archive" and root is None:
            raise ConfigError("replay from the archive needs the history --dir")
        stats.source = chosen
        records = (log_range(log, src, from_ms, to_ms) if chosen == "kafka"
                   else archive_range(root, src, from_ms, to_ms))  # type: ignore[arg-type]
        parts = len(log.describe_topic(dst).partitions)
        with log.producer() as producer:
            for r in records:
                producer.send(dst, r.value, r.key, partition=r.partition % parts,
                              timestamp_ms=r.timestamp_ms, headers=r.headers)
                stats.records += 1
                if progress is not None and stats.records % 1000 == 0:
                    progress(stats.records)
            producer.flush()
    return stats
