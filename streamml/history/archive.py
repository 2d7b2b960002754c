"""The archive sink: topics → Parquet files, idempotently, with retention and snapshots.

Layout: :mod:`streamml.history.layout`. Every file holds one contiguous run of
records of one partition that share a (UTC) date and hour of their timestamp,
and is named ``<partition>-<first offset>-<last offset>.parquet``.

Columns (one row per record):

==============  ========================  ===============================================
``partition``   int32
``offset``      int64
``timestamp``   int64                     log timestamp, ms since the epoch (UTC)
``key``         string                    the key as UTF-8 text (``null``: no key)
``value``       string                    the value as UTF-8 text: the payload's JSON
``headers``     list<struct<key, value>>  header values are binary
``key_bin``     binary                    the key bytes, only when not valid UTF-8
``value_bin``   binary                    the value bytes, only when not valid UTF-8
==============  ========================  ===============================================

A tombstone has ``value`` and ``value_bin`` both ``null``. ``key``/``value``
(or their ``*_bin`` twins) give back the exact bytes, so replay from the archive
is byte-identical to replay from the log.

**Payload fields are not flattened.** ``value`` stays the JSON text and
``streamml query`` exposes it as DuckDB's ``JSON`` type (``value->>'$.label'``).
Why: payload models evolve, and a flattened column set would differ between
files of one topic (Parquet schemas must then be unified on read); JSON text is
one fixed schema for every topic and every version, and DuckDB reads it fast.

**Idempotence.** A file is written to ``<name>.tmp`` and atomically renamed.
The offsets are checkpointed (``CheckpointStore``, processor
``archive/<topic>``, key ``archive/<topic>/-``, state and offsets in one record)
*after* the rename. On start, the sink resumes each partition at
``max(checkpointed offset, last archived offset + 1)``: files renamed after the
last checkpoint (a ``kill -9`` between rename and checkpoint) are not read
again, leftover ``*.tmp`` files are deleted, and an existing file for the same
range is never rewritten. A restart therefore writes no duplicate and leaves
no gap.

>>> import tempfile
>>> from pathlib import Path
>>> from streamml.log.embedded import EmbeddedLog
>>> from streamml.log.base import TopicSpec
>>> log = EmbeddedLog(tempfile.mkdtemp())
>>> _ = log.create_topic(TopicSpec("demo.examples", partitions=2))
>>> with log.producer() as p:
...     for i in range(10):
...         p.send("demo.examples", b'{"i": %d}' % i, partition=i % 2, timestamp_ms=1_000)
>>> root = Path(tempfile.mkdtemp())
>>> sink = ArchiveSink(log, root, ["demo.examples"], pipeline="demo")
>>> sink.run(follow=False).records
10
>>> sorted(f.path.name for f in archive_files(root, "demo.examples"))
['0-0-4.parquet', '1-0-4.parquet']
>>> ArchiveSink(log, root, ["demo.examples"], pipeline="demo").run(follow=False).records
0
>>> log.close()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from streamml.errors import ConfigError
from streamml.history.layout import (
    ArchiveFile,
    archive_file_name,
    archive_files,
    hour_dir,
    topic_dir,
)
from streamml.history.parquet import (
    ARCHIVE_SCHEMA,
    read_records,
    records_table,
    row_bytes,
    runs,
    write_atomic,
)
from streamml.history.retention import DAY_MS, HOUR_MS, apply_retention, snapshot_topic
from streamml.log.base import Log, Record, TopicPartition
from streamml.runtime.checkpoint import Checkpoint, CheckpointStore


@dataclass
class ArchiveStats:
    """What one :meth:`ArchiveSink.run` did."""

    records: int = 0
    files: int = 0
    skipped_files: int = 0
    snapshots: int = 0
    deleted_partitions: int = 0
    per_topic: dict[str, int] = field(default_factory=dict)


def resume_offsets(root: Path, topic: str) -> dict[int, int]:
    """Next offset to archive per partition according to the files on disk."""
    out: dict[int, int] = {}
    for f in archive_files(root, topic):
        out[f.partition] = max(out.get(f.partition, 0), f.last + 1)
    return out


def remove_temp_files(root: Path, topic: str) -> int:
    """Delete ``*.tmp`` files a killed writer left; return how many."""
    removed = 0
    for tmp in topic_dir(root, topic).glob("**/*.tmp"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


Progress = Callable[[str, int, int], None]
"""``progress(topic, records_archived, records_behind)`` after each flush."""


class ArchiveSink:
    """Archive ``topics`` of ``log`` under ``root``; resumable and idempotent.

    ``pipeline`` names the ``<pipeline>.checkpoints`` topic that keeps the
    offsets (``store`` overrides it). ``flush_rows``/``flush_interval_s`` bound
    how much is buffered before files are written in ``--follow`` mode.
    """

    def __init__(
        self,
        log: Log,
        root: Path,
        topics: Sequence[str],
        *,
        pipeline: str,
        store: CheckpointStore | None = None,
        flush_rows: int = 100_000,
        flush_interval_s: float = 5.0,
        max_file_rows: int = 1_000_000,
        snapshot_compacted: bool = True,
        progress: Progress | None = None,
        retention_days: int | None = None,
        retention_every_s: float = 60.0,
    ) -> None:
        if not topics:
            raise ConfigError("nothing to archive: no topics")
        self.log = log
        self.root = Path(root)
        self.topics = list(dict.fromkeys(topics))
        self.store = store or CheckpointStore(log, pipeline)
        self.flush_rows = flush_rows
        self.flush_interval_s = flush_interval_s
        self.max_file_rows = max_file_rows
        self.snapshot_compacted = snapshot_compacted
        self.progress = progress
        self.retention_days = retention_days
        self.retention_every_s = retention_every_s
        self._last_retention: float | None = None
        self.next_offsets: dict[TopicPartition, int] = {}
        self._buffer: dict[TopicPartition, list[Record]] = {}
        self._buffered = 0
        self.stats = ArchiveStats()

    @staticmethod
    def processor(topic: str) -> str:
        """Checkpoint processor name of one topic's offsets: ``archive/<topic>``."""
        return f"archive/{topic}"

    def _resume(self) -> dict[TopicPartition, int]:
        checkpoints = self.store.load_all()
        resume: dict[TopicPartition, int] = {}
        for topic in self.topics:
            info = self.log.describe_topic(topic)  # UnknownTopic when missing
            remove_temp_files(self.root, topic)
            on_disk = resume_offsets(self.root, topic)
            cp = checkpoints.get(f"{self.processor(topic)}/-")
            for p in info.partitions:
                tp = TopicPartition(topic, p.partition)
                done = max(
                    (cp.next_offset(tp) or 0) if cp else 0, on_disk.get(p.partition, 0)
                )
                resume[tp] = max(done, p.start_offset)
        return resume

    def flush(self) -> None:
        """Write buffered records to files, then checkpoint their offsets."""
        if not self._buffered:
            return
        touched: set[str] = set()
        for tp, records in sorted(self._buffer.items()):
            for run in runs(records, self.max_file_rows):
                target = hour_dir(self.root, tp.topic, run[0].timestamp_ms) / archive_file_name(
                    tp.partition, run[0].offset, run[-1].offset
                )
                if write_atomic(records_table(run), target):
                    self.stats.files += 1
                else:
                    self.stats.skipped_files += 1
                self.next_offsets[tp] = run[-1].offset + 1
            n = len(records)
            self.stats.records += n
            self.stats.per_topic[tp.topic] = self.stats.per_topic.get(tp.topic, 0) + n
            touched.add(tp.topic)
        for topic in sorted(touched):
            offsets = {
                tp.partition: o for tp, o in self.next_offsets.items() if tp.topic == topic
            }
            self.store.write(
                Checkpoint(
                    self.processor(topic),
                    {topic: offsets},
                    {"records": self.stats.per_topic.get(topic, 0)},
                )
            )
        self._buffer.clear()
        self._buffered = 0
        self._retention()

    def _retention(self, force: bool = False) -> None:
        if self.retention_days is None:
            return
        now = time.monotonic()
        if force or self._last_retention is None or (
            now - self._last_retention >= self.retention_every_s
        ):
            self._last_retention = now
            self.stats.deleted_partitions += apply_retention(
                self.root, self.retention_days, int(time.time() * 1000), self.topics
            )

    def run(
        self,
        *,
        follow: bool = False,
        stop: threading.Event | None = None,
        poll_timeout_s: float = 0.2,
    ) -> ArchiveStats:
        """Archive up to the current end (``follow=False``) or until ``stop`` is set."""
        stop = stop or threading.Event()
        self.store.ensure_topic()
        self.next_offsets = self._resume()
        tps = sorted(self.next_offsets)
        with self.log.consumer() as consumer:
            consumer.assign(tps)
            for tp, offset in self.next_offsets.items():
                consumer.seek(tp, offset)
            ends = consumer.end_offsets(tps)
            last_flush = time.monotonic()
            while not stop.is_set():
                batch = consumer.poll(timeout_s=poll_timeout_s, max_records=10_000)
                for record in batch:
                    self._buffer.setdefault(record.tp, []).append(record)
                self._buffered += len(batch)
                now = time.monotonic()
                caught_up = all(consumer.position(tp) >= ends[tp] for tp in tps)
                if (
                    self._buffered >= self.flush_rows
                    or (self._buffered and now - last_flush >= self.flush_interval_s)
                    or (not follow and caught_up)
                ):
                    self.flush()
                    last_flush = now
                    self._report(consumer, ends)
                if not follow and caught_up and not batch:
                    break
                if follow and not batch:
                    ends = consumer.end_offsets(tps)
            self.flush()
        self._retention(force=True)
        if self.snapshot_compacted:
            for topic in self.topics:
                if self.log.describe_topic(topic).spec.cleanup_policy == "compact":
                    self.stats.snapshots += int(snapshot_topic(self.root, topic))
        return self.stats

    def _report(self, consumer: object, ends: dict[TopicPartition, int]) -> None:
        if self.progress is None:
            return
        for topic in self.topics:
            behind = sum(
                max(0, end - self.next_offsets.get(tp, 0))
                for tp, end in ends.items()
                if tp.topic == topic
            )
            self.progress(topic, self.stats.per_topic.get(topic, 0), behind)


__all__ = [
    "ARCHIVE_SCHEMA",
    "DAY_MS",
    "HOUR_MS",
    "ArchiveFile",
    "ArchiveSink",
    "ArchiveStats",
    "apply_retention",
    "read_records",
    "records_table",
    "row_bytes",
    "runs",
    "snapshot_topic",
    "write_atomic",
]
