"""One partition directory: a reader (any process) and a writer (under ``flock``).

Readers never lock: they index complete batches and stop at anything that is
not (yet) a complete batch. Writers take an exclusive ``flock`` on the
partition's ``.lock`` file, re-sync the tail (another process may have appended
or rolled), truncate a torn tail a crashed writer left, and append all batches
of one flush with a single ``write()``.

>>> import tempfile
>>> from streamml.log.embedded.format import encode_body
>>> d = tempfile.mkdtemp()
>>> w = PartitionWriter(d, segment_bytes=1 << 20, fsync=False)
>>> w.append([encode_body([b"a", b"b"], None, [1, 2], None)])
(0, 2)
>>> r = PartitionReader(d, "t", 0)
>>> [x.value for x in r.read(0, 10)], r.end_offset()
([b'a', b'b'], 2)
>>> w.close(); r.close()
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence

from streamml.errors import CorruptLog
from streamml.log.base import Record
from streamml.log.embedded.format import (
    Body,
    Columns,
    check_crc,
    decode_columns,
    frame,
    make_records,
    read_header,
)
from streamml.log.embedded.segment import Segment, list_segments, segment_name

READ_CHUNK = 4 << 20
LOCK_NAME = ".lock"


class OffsetOutOfRange(Exception):
    """A read position before the log start (retention removed it) or past the end."""


@contextlib.contextmanager
def file_lock(path: str) -> Iterator[int]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed) for the block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


def partition_lock(directory: str) -> contextlib.AbstractContextManager[int]:
    """Hold the partition's exclusive writer lock for the block."""
    return file_lock(os.path.join(directory, LOCK_NAME))


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PartitionReader:
    """Reads records of one partition; sees what other processes append."""

    def __init__(self, directory: str, topic: str, partition: int) -> None:
        self.directory = directory
        self.topic = topic
        self.partition = partition
        self.segments: list[Segment] = []
        self._bases: list[int] = []
        self._cache: tuple[int, int, Columns] | None = None  # (inode, pos, columns)

    def close(self) -> None:
        for seg in self.segments:
            seg.close()
        self.segments = []
        self._bases = []
        self._cache = None

    def refresh_segments(self, check_replaced: bool = False) -> bool:
        """Pick up new segment files, drop deleted ones; True if the list changed."""
        bases = list_segments(self.directory)
        if bases == self._bases and not check_replaced:
            return False
        old = {s.base: s for s in self.segments}
        segments = []
        changed = bases != self._bases
        for base in bases:
            seg = old.pop(base, None)
            if seg is not None and check_replaced and seg.replaced():
                seg.close()
                seg, changed = None, True
            if seg is None:
                try:
                    seg = Segment(os.path.join(self.directory, segment_name(base)), base)
                except FileNotFoundError:
                    changed = True
                    continue
            segments.append(seg)
        for seg in old.values():
            seg.close()
        self.segments = segments
        self._bases = [s.base for s in segments]
        return changed

    def _refresh_all(self) -> None:
        self.refresh_segments(check_replaced=True)
        for seg in self.segments:
            if not seg.lasts or seg is self.segments[-1]:
                seg.refresh()

    def start_offset(self) -> int:
        self.refresh_segments()
        return self._bases[0] if self._bases else 0

    def end_offset(self) -> int:
        self.refresh_segments()
        if not self.segments:
            return 0
        last = self.segments[-1]
        last.refresh()
        return last.next_offset

    def read(self, offset: int, limit: int) -> list[Record]:
        """Up to ``limit`` records with offsets >= ``offset``, in order."""
        self.refresh_segments()  # one listdir: new segments, and ones retention deleted
        if not self.segments:
            return []
        i = bisect_right(self._bases, offset) - 1
        if i < 0:
            raise OffsetOutOfRange(offset)
        out: list[Record] = []
        while len(out) < limit:
            seg = self.segments[i]
            last_seg = i == len(self.segments) - 1
            if not seg.lasts and seg.scanned == 0:
                seg.refresh()
            if seg.batch_index(offset) >= len(seg.lasts):  # nothing at/after offset here
                if last_seg:
                    if seg.refresh():
                        continue
                    if self.refresh_segments():
                        i = max(0, bisect_right(self._bases, offset) - 1)
                        continue
                    if offset > seg.next_offset:
                        raise OffsetOutOfRange(offset)
                    break
                if not seg.sealed:  # a later segment exists: this one is complete now
                    seg.sealed = True
                    if seg.refresh():
                        continue
                if seg.torn:
                    raise CorruptLog(f"{seg.path}: invalid batch at byte {seg.scanned}")
                i += 1
                continue
            got, offset = self._read_batches(seg, last_seg, offset, limit - len(out))
            out += got
            if seg.torn:
                break  # torn tail just found: invisible until a writer cuts it
        return out

    def _read_batches(
        self, seg: Segment, last_seg: bool, offset: int, limit: int
    ) -> tuple[list[Record], int]:
        b = seg.batch_index(offset)
        cache = self._cache
        if cache is not None and cache[0] == seg.inode and cache[1] == seg.positions[b]:
            return self._take(seg, cache[2], offset, limit)
        # Read a run of consecutive batches covering about `limit` records.
        j, wanted, total = b, 0, 0
        n_batches = len(seg.positions)
        while j < n_batches and (j == b or (wanted < limit and total < READ_CHUNK)):
            total += seg.lengths[j]
            wanted += seg.lasts[j] - seg.bases[j] + 1
            j += 1
        start = seg.positions[b]
        data = seg.read(start, total)
        out: list[Record] = []
        for k in range(b, j):
            rel = seg.positions[k] - start
            h = read_header(data, rel)
            if h.base_offset != seg.bases[k] or h.length != seg.lengths[k] or not check_crc(
                data, rel, h
            ):
                if last_seg and k == n_batches - 1:
                    seg.drop_from(k)
                    seg.torn = True
                    return out, offset
                raise CorruptLog(
                    f"{seg.path}: batch at byte {seg.positions[k]} fails its CRC check"
                )
            cols = decode_columns(data, rel, h)
            self._cache = (seg.inode, seg.positions[k], cols)
            got, offset = self._take(seg, cols, offset, limit - len(out))
            out += got
            if len(out) >= limit:
                break
        return out, offset

    def _take(
        self, seg: Segment, cols: Columns, offset: int, limit: int
    ) -> tuple[list[Record], int]:
        offsets = cols.offsets
        if isinstance(offsets, range):
            idx = max(0, offset - offsets.start)
        else:
            idx = bisect_left(offsets, offset)
        stop = min(len(offsets), idx + limit)
        records = make_records(self.topic, self.partition, cols, idx, stop)
        next_offset = offsets[stop - 1] + 1 if stop > idx else offset
        if stop >= len(offsets):
            self._cache = None
        return records, next_offset

    def offset_for_time(self, timestamp_ms: int) -> int | None:
        """Earliest offset whose timestamp is >= ``timestamp_ms``; None if none."""
        self._refresh_all()
        for seg in self.segments:
            for k, max_ts in enumerate(seg.max_ts):
                if max_ts < timestamp_ms:
                    continue
                data = seg.read(seg.positions[k], seg.lengths[k])
                cols = decode_columns(data, 0, read_header(data, 0))
                for off, ts in zip(cols.offsets, cols.timestamps, strict=True):
                    if ts >= timestamp_ms:
                        return off
        return None


class PartitionWriter:
    """Appends batches to one partition; safe against other writer processes."""

    def __init__(
        self,
        directory: str,
        segment_bytes: int,
        fsync: bool,
        on_roll: Callable[[], None] | None = None,
    ) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.on_roll = on_roll
        os.makedirs(directory, exist_ok=True)
        self._lock_fd = os.open(os.path.join(directory, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
        self._active: Segment | None = None
        self._wfd = -1

    def close(self) -> None:
        self._close_active()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _close_active(self) -> None:
        if self._active is not None:
            self._active.close()
            self._active = None
        if self._wfd >= 0:
            os.close(self._wfd)
            self._wfd = -1

    def _open_active(self, base: int, create: bool) -> Segment:
        self._close_active()
        path = os.path.join(self.directory, segment_name(base))
        flags = os.O_WRONLY | os.O_APPEND | (os.O_CREAT if create else 0)
        self._wfd = os.open(path, flags, 0o644)
        self._active = Segment(path, base)
        if create and self.fsync:
            fsync_dir(self.directory)
        return self._active

    def sync_tail(self) -> Segment:
        """Under the lock: find the last segment, index new batches, cut a torn tail."""
        bases = list_segments(self.directory)
        active = self._active
        if not bases:
            active = self._open_active(0, create=True)
        elif active is None or active.base != bases[-1] or active.replaced():
            active = self._open_active(bases[-1], create=False)
        if active.scanned != active.size():
            active.refresh(verify=True)
            if active.torn:
                os.ftruncate(self._wfd, active.scanned)
                if self.fsync:
                    os.fsync(self._wfd)
                active.torn = False
        return active

    def append(self, bodies: Sequence[Body]) -> tuple[int, int]:
        """Append the batches; return ``(first offset, next offset)``."""
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            active = self.sync_tail()
            first = next_offset = active.next_offset
            size = active.scanned
            pending: list[bytes] = []
            pending_bytes = 0
            rolled = False
            for body in bodies:
                batch = frame(body, next_offset)
                used = size + pending_bytes
                if used > 0 and used + len(batch) > self.segment_bytes:
                    self._write(pending, size)
                    active = self._open_active(next_offset, create=True)
                    size, pending, pending_bytes, rolled = 0, [], 0, True
                pending.append(batch)
                pending_bytes += len(batch)
                next_offset += body.last_delta + 1
            self._write(pending, size)
            if rolled and self.on_roll is not None:
                self.on_roll()
            return first, next_offset
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _write(self, batches: list[bytes], size: int) -> None:
        if not batches:
            return
        data = b"".join(batches) if len(batches) > 1 else batches[0]
        view = memoryview(data)
        written = 0
        while written < len(data):
            written += os.write(self._wfd, view[written:])
        view.release()
        if self.fsync:
            os.fsync(self._wfd)
        assert self._active is not None
        pos = size
        for batch in batches:
            self._active._add(read_header(batch, 0), pos)
            pos += len(batch)
