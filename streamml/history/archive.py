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

import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from streamml.errors import ConfigError
from streamml.history.layout import (
    ArchiveFile,
    archive_file_name,
    archive_files,
    hour_bucket,
    hour_dir,
    snapshot_dir,
    snapshots,
    topic_dir,
)
from streamml.log.base import Log, Record, TopicPartition, records_from_columns
from streamml.runtime.checkpoint import Checkpoint, CheckpointStore

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

ARCHIVE_SCHEMA = pa.schema(
    [
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("timestamp", pa.int64(), nullable=False),
        pa.field("key", pa.string()),
        pa.field("value", pa.string()),
        pa.field(
            "headers",
            pa.list_(pa.struct([pa.field("key", pa.string()), pa.field("value", pa.binary())])),
        ),
        pa.field("key_bin", pa.binary()),
        pa.field("value_bin", pa.binary()),
    ]
)


def _text(data: bytes | None) -> tuple[str | None, bytes | None]:
    if data is None:
        return None, None
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, data


def records_table(records: Sequence[Record]) -> pa.Table:
    """The archive rows of ``records`` (see the module docstring for the columns).

    >>> from streamml.log.base import Record
    >>> t = records_table([Record("t", 0, 7, 1000, b"k", b'{"a": 1}', (("h", b"v"),))])
    >>> t.to_pylist()[0]["value"], t.to_pylist()[0]["headers"]
    ('{"a": 1}', [{'key': 'h', 'value': b'v'}])
    """
    keys = [_text(r.key) for r in records]
    values = [_text(r.value) for r in records]
    return pa.table(
        {
            "partition": pa.array([r.partition for r in records], pa.int32()),
            "offset": pa.array([r.offset for r in records], pa.int64()),
            "timestamp": pa.array([r.timestamp_ms for r in records], pa.int64()),
            "key": pa.array([k[0] for k in keys], pa.string()),
            "value": pa.array([v[0] for v in values], pa.string()),
            "headers": pa.array(
                [[{"key": k, "value": v} for k, v in r.headers] for r in records],
                ARCHIVE_SCHEMA.field("headers").type,
            ),
            "key_bin": pa.array([k[1] for k in keys], pa.binary()),
            "value_bin": pa.array([v[1] for v in values], pa.binary()),
        },
        schema=ARCHIVE_SCHEMA,
    )


def row_bytes(text: str | None, raw: bytes | None) -> bytes | None:
    """Inverse of the text/binary split: the original key or value bytes."""
    if raw is not None:
        return raw
    return None if text is None else text.encode("utf-8")


def read_records(path: Path, topic: str, *, from_ms: int | None = None,
                 to_ms: int | None = None, min_offset: int | None = None,
                 max_offset: int | None = None) -> list[Record]:
    """The records of one archive file, optionally filtered (offsets inclusive), in offset order.

    Columnar (filtered in Arrow, rows rebuilt column by column): far faster than
    ``to_pylist()`` of whole rows.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> rs = [Record("t", 0, i, 10 * i, None, b"v%d" % i, (("h", b"x"),)) for i in range(5)]
    >>> _ = write_atomic(records_table(rs), d / "0-0-4.parquet")
    >>> read_records(d / "0-0-4.parquet", "t", from_ms=10, max_offset=2) == rs[1:3]
    True
    """
    import pyarrow.compute as pc

    table = pq.read_table(path)
    mask = None
    for column, op, bound in (("timestamp", pc.greater_equal, from_ms),
                              ("timestamp", pc.less, to_ms),
                              ("offset", pc.greater_equal, min_offset),
                              ("offset", pc.less_equal, max_offset)):
        if bound is not None:
            cond = op(table.column(column), bound)
            mask = cond if mask is None else pc.and_(mask, cond)
    if mask is not None:
        table = table.filter(mask)
    n = table.num_rows
    if not n:
        return []
    cols = {name: table.column(name).to_pylist() for name in table.column_names}
    keys = [row_bytes(t, b) for t, b in zip(cols["key"], cols["key_bin"], strict=True)]
    values = [row_bytes(t, b) for t, b in zip(cols["value"], cols["value_bin"], strict=True)]
    headers = [tuple((h["key"], h["value"]) for h in hs) if hs else () for hs in cols["headers"]]
    partitions = set(cols["partition"])
    if len(partitions) == 1:
        return records_from_columns(topic, partitions.pop(), n, cols["offset"],
                                    cols["timestamp"], keys, values, headers)
    return [Record(topic, p, o, t, k, v, h) for p, o, t, k, v, h in zip(
        cols["partition"], cols["offset"], cols["timestamp"], keys, values, headers, strict=True)]


def write_atomic(table: pa.Table, target: Path) -> bool:
    """Write ``table`` to ``target`` via ``<target>.tmp`` + rename; ``False`` if it existed."""
    if target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, target)
    return True


def runs(records: Sequence[Record], max_rows: int) -> list[list[Record]]:
    """Split one partition's records (offset order) into contiguous runs of one hour.

    Consecutive records only: with out-of-order timestamps a run ends at every
    change of hour, so files never interleave offsets and are written in offset
    order (a crash between two files leaves a prefix, never a hole).

    >>> from streamml.log.base import Record
    >>> rs = [Record("t", 0, i, ts, None, b"") for i, ts in enumerate([0, 1, HOUR_MS, 2])]
    >>> [[r.offset for r in run] for run in runs(rs, 10)]
    [[0, 1], [2], [3]]
    """
    out: list[list[Record]] = []
    current: list[Record] = []
    bucket = None
    for record in records:
        this = record.timestamp_ms // HOUR_MS
        if current and (this != bucket or len(current) >= max_rows):
            out.append(current)
            current = []
        current.append(record)
        bucket = this
    if current:
        out.append(current)
    return out


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


def snapshot_topic(root: Path, topic: str) -> bool:
    """Write the latest value per key of an archived (compacted) topic; ``False`` if current.

    The snapshot is built from the archive files, so it covers exactly what is
    archived; it is named by the newest timestamp it includes, hence written
    once per state. Tombstoned keys are left out.
    """
    import duckdb

    files = archive_files(root, topic)
    if not files:
        return False
    glob = str(topic_dir(root, topic) / "date=*" / "hour=*" / "*.parquet")
    con = duckdb.connect()
    try:
        as_of = con.sql(
            "SELECT max(timestamp) FROM read_parquet($glob, hive_partitioning=false)",
            params={"glob": glob},
        ).fetchall()[0]
        as_of_ms = int(as_of[0]) if as_of and as_of[0] is not None else 0
        target = snapshot_dir(root, topic, as_of_ms)
        if target.exists():
            return False
        table = con.sql(
            """
            SELECT * EXCLUDE (rn) FROM (
              SELECT *, row_number() OVER (
                PARTITION BY coalesce(key, ''), key_bin ORDER BY timestamp DESC, "offset" DESC
              ) AS rn
              FROM read_parquet($glob, hive_partitioning=false)
            ) WHERE rn = 1 AND (value IS NOT NULL OR value_bin IS NOT NULL)
            ORDER BY "partition", "offset"
            """,
            params={"glob": glob},
        ).to_arrow_table()
    finally:
        con.close()
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_atomic(table.cast(ARCHIVE_SCHEMA), tmp / "snapshot.parquet")
    os.replace(tmp, target)
    return True


def apply_retention(root: Path, days: int, now_ms: int, topics: Sequence[str] | None = None
                    ) -> int:
    """Delete hour partitions that ended more than ``days`` days before ``now_ms``.

    Empty date folders go too. Snapshots older than the cut-off are deleted
    except the newest one of each topic. Returns the number of hour folders removed.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> old = hour_dir(root, "t", 0); old.mkdir(parents=True)
    >>> new = hour_dir(root, "t", 10 * DAY_MS); new.mkdir(parents=True)
    >>> apply_retention(root, 7, now_ms=10 * DAY_MS), old.exists(), new.exists()
    (1, False, True)
    """
    if days < 0:
        raise ConfigError("--retention-days must be >= 0")
    cutoff = now_ms - days * DAY_MS
    cut_date, cut_hour = hour_bucket(cutoff)
    removed = 0
    from streamml.history.layout import archived_topics

    for topic in topics if topics is not None else archived_topics(root):
        base = topic_dir(root, topic)
        for date_dir in sorted(base.glob("date=*")):
            date = date_dir.name.partition("=")[2]
            for hour in sorted(date_dir.glob("hour=*")):
                h = hour.name.partition("=")[2]
                if (date, h) < (cut_date, cut_hour):
                    shutil.rmtree(hour)
                    removed += 1
            if date_dir.is_dir() and not any(date_dir.iterdir()):
                date_dir.rmdir()
        snaps = snapshots(root, topic)
        for as_of, path in snaps[:-1]:
            if as_of < cutoff:
                shutil.rmtree(path)
    return removed


__all__ = [
    "ARCHIVE_SCHEMA",
    "ArchiveFile",
    "ArchiveSink",
    "ArchiveStats",
    "apply_retention",
    "read_records",
    "records_table",
    "row_bytes",
    "snapshot_topic",
]
