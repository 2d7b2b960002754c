"""Segment files: naming, listing, and an in-memory index of batch headers.

A partition directory holds segment files named after the first offset they
may contain (``00000000000000000042.log``), like Kafka. The index is rebuilt by
scanning batch headers (48 bytes per batch, not per record), incrementally as a
segment grows, so a reader in another process sees new batches by re-scanning
from where it stopped.

>>> import os, tempfile
>>> from streamml.log.embedded.format import encode_body, frame
>>> d = tempfile.mkdtemp()
>>> path = os.path.join(d, segment_name(0))
>>> with open(path, "wb") as f:
...     _ = f.write(frame(encode_body([b"x", b"y"], None, [1, 2], None), 0))
>>> seg = Segment(path, 0)
>>> seg.refresh(), seg.next_offset
(True, 2)
>>> seg.close()
"""

from __future__ import annotations

import os
from bisect import bisect_left

from streamml.errors import CorruptLog
from streamml.log.embedded.format import (
    HEADER_SIZE,
    BatchHeader,
    check_crc,
    header_sane,
    read_header,
)

SUFFIX = ".log"
SCAN_CHUNK = 1 << 20


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}{SUFFIX}"


def list_segments(directory: str) -> list[int]:
    """Base offsets of the segment files in ``directory``, ascending."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(
        int(n[: -len(SUFFIX)]) for n in names if n.endswith(SUFFIX) and n[:-len(SUFFIX)].isdigit()
    )


class Segment:
    """One segment file, opened read-only, with the index of its complete batches.

    ``lasts``/``positions``/``lengths``/``max_ts``/``bases`` are parallel lists,
    one entry per batch, in file order. ``scanned`` is the byte position up to
    which batches were indexed; anything after it is not (yet) visible.
    """

    def __init__(self, path: str, base: int) -> None:
        self.path = path
        self.base = base
        self.fd = os.open(path, os.O_RDONLY)
        self.inode = os.fstat(self.fd).st_ino
        self.bases: list[int] = []
        self.lasts: list[int] = []
        self.positions: list[int] = []
        self.lengths: list[int] = []
        self.max_ts: list[int] = []
        self.scanned = 0
        self.torn = False  # an invalid batch sits at `scanned`
        self.sealed = False  # a later segment was seen, so no writer appends here anymore

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    @property
    def next_offset(self) -> int:
        return self.lasts[-1] + 1 if self.lasts else self.base

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def replaced(self) -> bool:
        """True if the path now names another file (compaction) or nothing (retention)."""
        try:
            return os.stat(self.path).st_ino != self.inode
        except FileNotFoundError:
            return True

    def refresh(self, verify: bool = False) -> bool:
        """Index batches appended since the last scan; return True if any were added.

        Stops at an incomplete or implausible batch (``torn`` is then set); with
        ``verify`` the CRC of every new batch is checked too (writers do this
        when they take over a tail another process wrote).
        """
        size = self.size()
        added = False
        self.torn = False
        first_scanned = self.scanned
        while self.scanned < size:
            pos = self.scanned
            if pos + HEADER_SIZE > size:
                self.torn = True
                break
            chunk = os.pread(self.fd, min(SCAN_CHUNK, size - pos), pos)
            off = 0
            while off + HEADER_SIZE <= len(chunk):
                h = read_header(chunk, off)
                if not header_sane(h) or pos + off + h.length > size:
                    self.torn = True
                    break
                if verify:
                    inside = off + h.length <= len(chunk)
                    data = chunk if inside else self.read(pos + off, h.length)
                    if not check_crc(data, off if inside else 0, h):
                        self.torn = True
                        break
                self._add(h, pos + off)
                added = True
                off += h.length
            if self.torn:
                break
        if added and not verify and not self._last_batch_ok():
            self.drop_from(len(self.positions) - 1)
            self.torn = True
            added = bool(self.positions) and self.scanned > first_scanned
        return added

    def _last_batch_ok(self) -> bool:
        """CRC check of the last indexed batch: a torn write whose length field
        happens to fit (garbage after it) must not become visible."""
        data = self.read(self.positions[-1], self.lengths[-1])
        return check_crc(data, 0, read_header(data, 0))

    def _add(self, h: BatchHeader, pos: int) -> None:
        self.bases.append(h.base_offset)
        self.lasts.append(h.last_offset)
        self.positions.append(pos)
        self.lengths.append(h.length)
        self.max_ts.append(h.max_ts)
        self.scanned = pos + h.length

    def drop_from(self, index: int) -> None:
        """Forget batches ``index..`` (a torn tail found by a CRC check)."""
        if index < len(self.positions):
            self.scanned = self.positions[index]
            for col in (self.bases, self.lasts, self.positions, self.lengths, self.max_ts):
                del col[index:]

    def batch_index(self, offset: int) -> int:
        """Index of the first batch whose last offset is >= ``offset``."""
        return bisect_left(self.lasts, offset)

    def read(self, pos: int, length: int) -> bytes:
        data = os.pread(self.fd, length, pos)
        if len(data) != length:
            raise CorruptLog(f"{self.path}: short read at byte {pos}")
        return data

    def verify_all(self) -> None:
        """Check every indexed batch's CRC (used before rewriting a segment)."""
        for i, (pos, length) in enumerate(zip(self.positions, self.lengths, strict=True)):
            data = self.read(pos, length)
            if not check_crc(data, 0, read_header(data, 0)):
                raise CorruptLog(f"{self.path}: CRC mismatch in batch {i} at byte {pos}")
