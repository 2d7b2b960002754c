"""Replay: copy a time range of a pipeline's history into an isolated namespace.

``replay(log, pipeline, from_ms, to_ms, source=..., namespace=NAME)`` reads every
record of ``<pipeline>.<role>`` (default role: ``examples``) with
``from_ms <= timestamp < to_ms`` and appends it, with its key, value, headers,
timestamp and partition unchanged, to ``<namespace>.<role>``.

**Isolation.** Nothing live is written or committed: the live topics are read
with manually assigned consumers (no consumer group, no committed offset), and
everything a replay produces lives under ``<namespace>.*`` — its own topics,
and, when processors run over it (:func:`~streamml.history.backfill.run_processors`,
re-exported here), its own consumer groups and ``<namespace>.checkpoints``.
A namespace must be new (its topics empty): a replay never mixes with an earlier one.

**Sources** (``source``):

* ``"kafka"``: the log only (found with ``offsets_for_times``);
* ``"archive"``: the Parquet archive only (:mod:`streamml.history.archive`);
* ``"auto"``: per partition, the archive for the offsets the log no longer has
  (below its start offset), then the log from its start offset on. If retention
  removed records that were never archived and the range may include them,
  :class:`~streamml.history.layout.HistoryGap` names the missing offsets.

**Deterministic:** records are written partition by partition in offset order
to the same partition number, so the same range replayed twice gives identical
records (same partitions, offsets, keys, values, headers, timestamps) in two
fresh namespaces, whatever the source.

>>> import tempfile
>>> from streamml.log.embedded import EmbeddedLog
>>> from streamml.log.base import TopicSpec
>>> log = EmbeddedLog(tempfile.mkdtemp())
>>> _ = log.create_topic(TopicSpec("demo.examples", partitions=2))
>>> with log.producer() as p:
...     for i in range(10):
...         p.send("demo.examples", b"%d" % i, partition=i % 2, timestamp_ms=1000 * i)
>>> stats = replay(log, "demo", 2000, 6000, source="kafka", namespace="bf1")
>>> stats.records, stats.by_source
(4, {'kafka': 4})
>>> log.close()
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from streamml.errors import ConfigError
from streamml.history.archive import read_records
from streamml.history.backfill import run_processors
from streamml.history.layout import (
    ArchiveFile,
    HistoryGap,
    archived_until,
    hour_bucket,
    partition_files,
)
from streamml.log.base import Log, Record, TopicPartition, TopicSpec

Source = Literal["kafka", "archive", "auto"]
Progress = Callable[[int, int], None]
"""``progress(records_written, records_expected)``; called every ``progress_every`` records."""


@dataclass
class ReplayStats:
    """What one :func:`replay` did."""

    records: int = 0
    source: str = ""
    """``kafka``, ``archive`` or ``archive+kafka`` (what was actually read)."""
    topics: tuple[str, ...] = ()
    by_source: dict[str, int] = field(default_factory=dict)
    expected: int = 0


@dataclass(frozen=True)
class Segment:
    """One contiguous piece of one partition's replay: archive files or a log offset range."""

    kind: Literal["archive", "kafka"]
    topic: str
    partition: int
    files: tuple[ArchiveFile, ...] = ()
    start: int = 0
    """Log: first offset to read. Archive: lowest offset to keep."""
    end: int = 0
    """Exclusive upper offset bound (log end offset, or the log start offset for the archive)."""
    expected: int = 0


def _in_hours(f: ArchiveFile, from_ms: int, to_ms: int) -> bool:
    lo, hi = hour_bucket(from_ms), hour_bucket(max(from_ms, to_ms - 1))
    date, hour = f.path.parent.parent.name[5:], f.path.parent.name[5:]
    return lo <= (date, hour) <= hi


def _archive_count(files: Sequence[ArchiveFile], from_ms: int, to_ms: int, lo: int,
                   hi: int) -> int:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    n = 0
    for f in files:
        t = pq.read_table(f.path, columns=["offset", "timestamp"])
        ts, off = t.column("timestamp"), t.column("offset")
        mask = pc.and_(pc.and_(pc.greater_equal(ts, from_ms), pc.less(ts, to_ms)),
                       pc.and_(pc.greater_equal(off, lo), pc.less(off, hi)))
        n += pc.sum(mask.cast("int64")).as_py() or 0
    return n


def _first_timestamp(log: Log, tp: TopicPartition, offset: int) -> int | None:
    with log.consumer() as consumer:
        consumer.assign([tp])
        consumer.seek(tp, offset)
        for _ in range(20):
            batch = consumer.poll(timeout_s=0.5, max_records=1)
            if batch:
                return batch[0].timestamp_ms
    return None


def plan(log: Log, topic: str, from_ms: int, to_ms: int, *, source: Source = "auto",
         root: Path | None = None) -> list[Segment]:
    """The segments to read for ``[from_ms, to_ms)`` of ``topic``, partition by partition.

    Raises :class:`HistoryGap` (``auto``) when retention removed unarchived
    records that may fall in the range.
    """
    files = partition_files(root, topic) if root is not None else {}
    live = log.topic_exists(topic)
    if live:
        parts = {p.partition: (p.start_offset, p.end_offset)
                 for p in log.describe_topic(topic).partitions}
    elif source == "kafka":
        raise ConfigError(f"no such topic on the log: {topic}")
    else:  # the live topic is gone: the archive alone
        parts = {p: (0, 0) for p in files}
    segments: list[Segment] = []
    with log.consumer() as consumer:
        for partition in sorted(parts):
            start, end = parts[partition]
            tp = TopicPartition(topic, partition)
            pfiles = [f for f in files.get(partition, []) if _in_hours(f, from_ms, to_ms)]
            if source == "archive" or not live:
                segments.append(Segment("archive", topic, partition, tuple(pfiles), 0,
                                        2**63 - 1, _archive_count(pfiles, from_ms, to_ms, 0,
                                                                  2**63 - 1)))
                continue
            if source == "auto" and start > 0:
                archived = archived_until(files.get(partition, []),
                                          files[partition][0].first if files.get(partition)
                                          else 0)
                if archived < start:  # a hole between the archive and the log
                    last_ts = max((f for f in files.get(partition, []) if f.last < archived),
                                  key=lambda f: f.last, default=None)
                    before = (read_records(last_ts.path, topic)[-1].timestamp_ms
                              if last_ts is not None else None)
                    after = _first_timestamp(log, tp, start) if end > start else None
                    if (before is None or to_ms > before) and (after is None or from_ms <= after):
                        raise HistoryGap(topic, partition, archived, start - 1)
                old = [f for f in pfiles if f.first < start]
                if old:
                    segments.append(Segment("archive", topic, partition, tuple(old), 0, start,
                                            _archive_count(old, from_ms, to_ms, 0, start)))
            if end <= start:
                continue
            consumer.assign([tp])
            found = consumer.offsets_for_times({tp: from_ms}).get(tp)
            if found is None:
                continue
            upto = consumer.offsets_for_times({tp: to_ms}).get(tp)
            first = max(found, start)
            stop = end if upto is None else upto
            if first < end:
                segments.append(Segment("kafka", topic, partition, (), first, end,
                                        max(0, stop - first)))
    return segments


def read_segment(log: Log, seg: Segment, from_ms: int, to_ms: int) -> Iterator[list[Record]]:
    """The records of one segment in ``[from_ms, to_ms)``, in offset order, in batches."""
    if seg.kind == "archive":
        for f in seg.files:
            batch = read_records(f.path, seg.topic, from_ms=from_ms, to_ms=to_ms,
                                 min_offset=seg.start, max_offset=seg.end - 1)
            if batch:
                yield batch
        return
    tp = TopicPartition(seg.topic, seg.partition)
    with log.consumer() as consumer:
        consumer.assign([tp])
        consumer.seek(tp, seg.start)
        while consumer.position(tp) < seg.end:
            batch = [r for r in consumer.poll(timeout_s=0.5)
                     if r.offset < seg.end and from_ms <= r.timestamp_ms < to_ms]
            if batch:
                yield batch


def log_range(log: Log, topic: str, from_ms: int, to_ms: int) -> Iterator[Record]:
    """Records of ``topic`` in ``[from_ms, to_ms)`` on the log, partition by partition."""
    for seg in plan(log, topic, from_ms, to_ms, source="kafka"):
        for batch in read_segment(log, seg, from_ms, to_ms):
            yield from batch


def archive_range(root: Path, topic: str, from_ms: int, to_ms: int) -> Iterator[Record]:
    """The same records read from the archive (files outside the hours are skipped)."""
    for partition, files in sorted(partition_files(root, topic).items()):
        del partition
        for f in files:
            if _in_hours(f, from_ms, to_ms):
                yield from read_records(f.path, topic, from_ms=from_ms, to_ms=to_ms)


def default_namespace(pipeline: str, from_ms: int, to_ms: int) -> str:
    """``<pipeline>-replay-<from>-<to>`` (epoch ms): one namespace per range.

    >>> default_namespace("taxi", 1000, 2000)
    'taxi-replay-1000-2000'
    """
    return f"{pipeline}-replay-{from_ms}-{to_ms}"


def replay(log: Log, pipeline: str, from_ms: int, to_ms: int, *, source: Source = "auto",
           namespace: str, roles: Sequence[str] = ("examples",), root: Path | None = None,
           progress: Progress | None = None, progress_every: int = 1000) -> ReplayStats:
    """Copy ``[from_ms, to_ms)`` of ``<pipeline>.<role>`` into ``<namespace>.<role>``."""
    from streamml.catalog import load_catalog, validate_pipeline

    validate_pipeline(namespace)
    if namespace == pipeline:
        raise ConfigError("the replay namespace must differ from the live pipeline")
    if to_ms <= from_ms:
        raise ConfigError("--to-time must be after --from-time")
    if source not in ("kafka", "archive", "auto"):
        raise ConfigError(f"unknown --source {source!r}: kafka, archive or auto")
    if source == "archive" and root is None:
        raise ConfigError("replay from the archive needs the history --dir")
    catalog = load_catalog()
    stats = ReplayStats(topics=tuple(catalog.topic_name(namespace, r) for r in roles))
    plans: list[tuple[str, list[Segment]]] = []
    for role in roles:
        src, dst = catalog.topic_name(pipeline, role), catalog.topic_name(namespace, role)
        if log.topic_exists(dst) and log.describe_topic(dst).records:
            raise ConfigError(f"namespace topic {dst} is not empty: pick a new --namespace")
        segments = plan(log, src, from_ms, to_ms, source=source, root=root)
        if log.topic_exists(src):
            partitions = len(log.describe_topic(src).partitions)
        else:
            partitions = max((s.partition for s in segments), default=-1) + 1
        partitions = max(partitions, 1)
        spec = catalog.spec(namespace, role)
        log.create_topic(TopicSpec(spec.name, partitions=partitions,
                                   cleanup_policy=spec.cleanup_policy,
                                   retention_ms=spec.retention_ms, config=spec.config),
                         exist_ok=True)
        plans.append((dst, segments))
        stats.expected += sum(s.expected for s in segments)
    next_report = progress_every
    for dst, segments in plans:
        parts = len(log.describe_topic(dst).partitions)
        with log.producer() as producer:
            for seg in segments:
                for batch in read_segment(log, seg, from_ms, to_ms):
                    for r in batch:
                        producer.send(dst, r.value, r.key, partition=r.partition % parts,
                                      timestamp_ms=r.timestamp_ms, headers=r.headers)
                    stats.records += len(batch)
                    stats.by_source[seg.kind] = stats.by_source.get(seg.kind, 0) + len(batch)
                    if progress is not None and stats.records >= next_report:
                        next_report = stats.records + progress_every
                        progress(stats.records, max(stats.expected, stats.records))
            producer.flush()
    stats.source = "+".join(k for k in ("archive", "kafka") if stats.by_source.get(k)) or source
    if progress is not None:
        progress(stats.records, stats.records)
    return stats


__all__ = ["ReplayStats", "Segment", "default_namespace", "plan", "read_segment", "replay",
           "run_processors"]
