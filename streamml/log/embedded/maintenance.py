"""Retention and compaction of one partition (the caller holds the writer lock).

Both only touch *closed* segments, never the active (last) one, as in Kafka:

* retention (``cleanup_policy="delete"``) deletes the oldest closed segments
  whose newest record is older than ``retention_ms``, and the oldest closed
  segments while the partition stays at or above ``retention_bytes`` without
  them;
* compaction (``cleanup_policy="compact"``) rewrites each closed segment keeping,
  per key, only the latest record of the whole partition; offsets are kept, so
  gaps appear. Tombstones (value ``None``) older than ``delete.retention.ms``
  (topic config, default one day) are dropped. A rewritten segment is written
  to a temporary file and renamed over the old one.

>>> import tempfile
>>> from streamml.log.base import TopicSpec
>>> from streamml.log.embedded.format import encode_body
>>> from streamml.log.embedded.partition import PartitionWriter, PartitionReader
>>> d = tempfile.mkdtemp()
>>> w = PartitionWriter(d, segment_bytes=1, fsync=False)  # one batch per segment
>>> for k, v in ((b"k", b"1"), (b"j", b"2"), (b"k", b"3")):
...     _ = w.append([encode_body([v], [k], [0], None)])
>>> compact_partition(d, TopicSpec("t", cleanup_policy="compact"), fsync=False)
1
>>> r = PartitionReader(d, "t", 0)
>>> [(x.offset, x.value) for x in r.read(0, 10)]
[(1, b'2'), (2, b'3')]
>>> w.close(); r.close()
"""

from __future__ import annotations

import os
import time

from streamml.errors import CorruptLog
from streamml.log.base import TopicSpec
from streamml.log.embedded.format import (
    check_crc,
    decode_columns,
    encode_body,
    frame,
    read_header,
)
from streamml.log.embedded.partition import fsync_dir
from streamml.log.embedded.segment import Segment, list_segments, segment_name

DEFAULT_DELETE_RETENTION_MS = 86_400_000
REWRITE_BATCH = 4096
TMP_SUFFIX = ".cleaned"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _open_all(directory: str) -> list[Segment]:
    segments = []
    for base in list_segments(directory):
        seg = Segment(os.path.join(directory, segment_name(base)), base)
        seg.refresh()
        segments.append(seg)
    return segments


def enforce_partition_retention(directory: str, spec: TopicSpec, now_ms: int | None = None) -> int:
    """Delete expired closed segments; return how many were deleted."""
    if spec.cleanup_policy != "delete":
        return 0
    if spec.retention_ms is None and spec.retention_bytes is None:
        return 0
    now_ms = _now_ms() if now_ms is None else now_ms
    segments = _open_all(directory)
    try:
        sizes = [s.size() for s in segments]
        total = sum(sizes)
        deleted = 0
        for seg, size in zip(segments[:-1], sizes[:-1], strict=True):
            expired = spec.retention_ms is not None and (
                not seg.max_ts or max(seg.max_ts) < now_ms - spec.retention_ms
            )
            too_big = spec.retention_bytes is not None and total - size >= spec.retention_bytes
            if not (expired or too_big):
                break
            os.unlink(seg.path)
            total -= size
            deleted += 1
        return deleted
    finally:
        for seg in segments:
            seg.close()


def compact_partition(
    directory: str, spec: TopicSpec, fsync: bool, now_ms: int | None = None
) -> int:
    """Compact the closed segments; return how many records were removed."""
    if spec.cleanup_policy != "compact":
        return 0
    for name in os.listdir(directory):
        if name.endswith(TMP_SUFFIX):
            os.unlink(os.path.join(directory, name))
    now_ms = _now_ms() if now_ms is None else now_ms
    horizon = now_ms - int(spec.config.get("delete.retention.ms", DEFAULT_DELETE_RETENTION_MS))
    segments = _open_all(directory)
    try:
        if len(segments) < 2:
            return 0
        latest: dict[bytes, int] = {}
        for seg in segments:
            for _, cols in _batches(seg):
                for key, offset in zip(cols.keys, cols.offsets, strict=True):
                    if key is not None:
                        latest[key] = offset
        removed = 0
        for seg in segments[:-1]:
            removed += _rewrite(seg, latest, horizon, fsync)
        if removed and fsync:
            fsync_dir(directory)
        return removed
    finally:
        for seg in segments:
            seg.close()


def _batches(seg: Segment):
    for pos, length in zip(seg.positions, seg.lengths, strict=True):
        data = seg.read(pos, length)
        h = read_header(data, 0)
        if not check_crc(data, 0, h):
            raise CorruptLog(f"{seg.path}: batch at byte {pos} fails its CRC check")
        yield h, decode_columns(data, 0, h)


def _rewrite(seg: Segment, latest: dict[bytes, int], horizon: int, fsync: bool) -> int:
    kept: list[tuple[int, int, bytes | None, bytes | None, tuple]] = []
    removed = 0
    for _, cols in _batches(seg):
        headers = cols.headers or [()] * len(cols.values)
        rows = zip(cols.offsets, cols.timestamps, cols.keys, cols.values, headers, strict=True)
        for offset, ts, key, value, hdrs in rows:
            if key is not None and (
                latest.get(key) != offset or (value is None and ts < horizon)
            ):
                removed += 1
            else:
                kept.append((offset, ts, key, value, hdrs))
    if not removed:
        return 0
    parts = []
    for i in range(0, len(kept), REWRITE_BATCH):
        chunk = kept[i : i + REWRITE_BATCH]
        base = chunk[0][0]
        keys = [r[2] for r in chunk]
        headers = [r[4] for r in chunk]
        body = encode_body(
            [r[3] for r in chunk],
            keys if any(k is not None for k in keys) else None,
            [r[1] for r in chunk],
            headers if any(headers) else None,
            deltas=[r[0] - base for r in chunk],
        )
        parts.append(frame(body, base))
    tmp = seg.path + TMP_SUFFIX
    with open(tmp, "wb") as f:
        f.write(b"".join(parts))
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, seg.path)
    return removed
