"""Framing records out of a text file: JSON Lines by line, CSV by RFC 4180 record.

A JSON Lines record is one line. A CSV record is one line too, unless a quoted
field holds a newline (RFC 4180): the record then goes on until its quotes
close. Framing is deterministic, so a file gives the same records (and ids)
whatever the chunking, the timing or the restarts:

* a quoted CSV record must end (its newline outside quotes) within
  ``max_record_bytes`` of its start; if it does not (or the file ends first in
  ``once`` mode / after rotation), its first line alone is the record, refused
  as ``unparsable`` (a stray quote costs one line, not the rest of the file);
* in ``follow`` mode a record still open at the end of the file waits for
  more bytes, like an unterminated line; the position only ever moves to a
  record boundary.

A record's id uses its first physical line; the next record starts on the
line after its last one. Blank lines between records are skipped.

>>> data = b'a,"x\\ny",1\\nb,"p""q",2\\n'
>>> quoted_record_end(data, 0, 100), quoted_record_end(data, 10, 100)
(9, 20)
>>> quoted_record_end(b'a,"open\\nmore', 0, 100) is None, quoted_record_end(data, 0, 5)
(True, -1)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import accumulate
from operator import methodcaller

from streamml.connectors.base import LineRecord, RecordFormat, SourceRecord

CHUNK = 1 << 20
#: :func:`quoted_record_end`: the quotes do not close within the size limit.
NO_CLOSE = -1
_ENDS_CR = methodcaller("endswith", b"\r")


@dataclass
class FileState:
    """Progress through one file identity (JSON-able, part of the position)."""

    name: str
    gen: int = 0
    offset: int = 0
    line: int = 0
    done: bool = False
    path: str = ""


def record_id(connector: str, state: FileState, line: int) -> str:
    """``<connector>:<name>[~<gen>]:<line>``."""
    name = state.name if state.gen == 0 else f"{state.name}~{state.gen}"
    return f"{connector}:{name}:{line}"


def quoted_record_end(data: bytes, start: int, limit: int) -> int | None:
    """Index of the newline ending the CSV record that starts at ``data[start]``.

    :data:`NO_CLOSE` when no newline outside quotes comes within ``limit``
    bytes of ``start``; ``None`` when ``data`` ends before that is decided.
    """
    parity, p = 0, start
    while True:
        nl = data.find(b"\n", p)
        if nl < 0:
            return NO_CLOSE if len(data) - start > limit else None
        if nl - start > limit:
            return NO_CLOSE
        parity ^= data.count(b'"', p, nl) & 1
        if not parity:
            return nl
        p = nl + 1


class TextReader:
    """Reads the records of text files for connector ``connector``; keeps their CSV headers."""

    def __init__(self, connector: str, max_record_bytes: int) -> None:
        self.connector = connector
        self.limit = max_record_bytes
        self.headers: dict[str, bytes] = {}

    def read(self, ident: str, state: FileState, fd: int, budget: int,
             out: list[SourceRecord], fmt: str, final: bool) -> None:
        """Append up to ``budget`` records of the file at ``state.offset`` to ``out``."""
        rfmt: RecordFormat = "csv" if fmt == "csv" else "json"
        csv = rfmt == "csv"
        if csv and ident not in self.headers and state.offset > 0:
            self._load_header(ident, fd)
        taken = 0
        while taken < budget:
            data = os.pread(fd, CHUNK, state.offset)
            if not data:
                return
            last = data.rfind(b"\n")
            if last < 0:  # no complete line in a whole chunk (or at the end of the file)
                got = self._scan_one(ident, state, fd, out, rfmt, final)
                if got is None:
                    return
                taken += got
                continue
            body = data[:last]
            lines = body.split(b"\n")
            odd: list[int] | None = None
            if csv and b'"' in body:
                flags = [ln.count(b'"') & 1 for ln in lines]
                if any(flags):
                    odd = flags
            header = self.headers.get(ident)
            if odd is None and (header is not None or not csv):
                n = min(len(lines), budget - taken)
                if self._clean_lines(state, lines, n, out, rfmt, header):
                    taken += n
                    if n < len(lines) or (len(data) < CHUNK and last == len(data) - 1):
                        return
                    continue
            got, finished = self._lines(ident, state, fd, data, lines, odd, budget - taken,
                                        out, rfmt, final)
            taken += got
            if finished:
                return

    # -- the careful path: any line may be blank, CR-ended, oversize, quoted ---------
    def _lines(self, ident: str, state: FileState, fd: int, data: bytes, lines: list[bytes],
               odd: list[int] | None, budget: int, out: list[SourceRecord],
               rfmt: RecordFormat, final: bool) -> tuple[int, bool]:
        """Frame the complete lines of ``data`` (read at ``state.offset``).

        Returns the records taken and whether reading must stop for now (budget
        spent, or a quoted record waits for more bytes, or the chunk was the end).
        """
        base, rel, taken, i = state.offset, 0, 0, 0
        while i < len(lines):
            if taken >= budget:
                return taken, True
            raw, nlines = lines[i], 1
            if odd is not None and odd[i]:
                end = quoted_record_end(data, rel, self.limit)
                if end is None:  # the chunk ends inside the record: look at it alone
                    got = self._scan_one(ident, state, fd, out, rfmt, final)
                    if got is None:
                        return taken, True
                    return taken + got, False
                if end != NO_CLOSE:
                    raw = data[rel:end]
                    nlines = raw.count(b"\n") + 1
            start = base + rel
            rel += len(raw) + 1
            i += nlines
            error = None
            if odd is not None and odd[i - nlines] and nlines == 1:
                error = ("unparsable",
                         f"unbalanced quotes: no closing quote within {self.limit} bytes")
            taken += self._take(ident, state, raw, start, nlines, base + rel, error, len(raw),
                                out, rfmt)
        # every complete line of the chunk is consumed: stop if that was the end
        return taken, len(data) < CHUNK and data.endswith(b"\n")

    def _take(self, ident: str, state: FileState, raw: bytes, start: int, nlines: int,
              end: int, error: tuple[str, str] | None, size: int,
              out: list[SourceRecord], rfmt: RecordFormat) -> int:
        """Account one framed record (advancing the state); 1 when it was emitted."""
        first = state.line + 1
        state.line += nlines
        state.offset = end
        if raw.endswith(b"\r"):
            raw = raw[:-1]
            if size == len(raw) + 1:
                size -= 1
        if not raw.strip():
            return 0
        if rfmt == "csv" and ident not in self.headers:
            self.headers[ident] = raw[: self.limit]
            return 0
        if size > self.limit:
            raw = raw[: self.limit]
            error = ("oversize", f"record of {size} bytes exceeds {self.limit}")
        out.append(SourceRecord(
            raw, {"file": state.name, "gen": state.gen, "line": first, "offset": start},
            id=record_id(self.connector, state, first), fmt=rfmt,
            header=self.headers.get(ident), error=error,
            size=size if size > len(raw) else None))
        return 1

    def _clean_lines(self, state: FileState, lines: list[bytes], n: int,
                     out: list[SourceRecord], rfmt: RecordFormat, header: bytes | None) -> bool:
        """Fast path: the first ``n`` lines are all records (no CR, blank or oversize line).

        Builds the records with comprehensions instead of a branchy loop; returns
        ``False`` (nothing done) when a line needs the careful path.
        """
        take = lines[:n] if n < len(lines) else lines
        if not take or max(map(len, take)) > self.limit:
            return False
        if not all(map(bytes.strip, take)) or any(map(_ENDS_CR, take)):
            return False
        name, gen, first = state.name, state.gen, state.line + 1
        prefix = record_id(self.connector, state, 0)[:-1]
        starts = list(accumulate(map((1).__add__, map(len, take)), initial=state.offset))
        end = starts.pop()
        out.extend([
            LineRecord(raw, {"file": name, "gen": gen, "line": ln, "offset": st},
                       f"{prefix}{ln}", rfmt, header)
            for raw, ln, st in zip(take, range(first, first + len(take)), starts, strict=True)
        ])
        state.offset, state.line = end, first + len(take) - 1
        return True

    # -- one record read on its own, in bounded memory -------------------------------
    def _scan_one(self, ident: str, state: FileState, fd: int, out: list[SourceRecord],
                  rfmt: RecordFormat, final: bool) -> int | None:
        """Frame the record at ``state.offset`` alone: ``None`` when it must wait for
        more bytes, else the records emitted (0 or 1)."""
        start = state.offset
        if rfmt == "csv":
            window = os.pread(fd, self.limit + 1, start)
            end = quoted_record_end(window, 0, self.limit)
            if end is None and window.count(b'"') % 2 == 0 and final:
                end = len(window)  # closed quotes, no newline: the file's last record
            if end is None and not final:
                return None
            if end is not None and end != NO_CLOSE:
                raw = window[:end]
                return self._take(ident, state, raw, start, raw.count(b"\n") + 1,
                                  start + min(end + 1, len(window)), None, len(raw), out, rfmt)
        found = self._first_line(fd, start, final)
        if found is None:
            return None
        kept, size, end_offset = found
        error = None
        if rfmt == "csv" and kept[: self.limit].count(b'"') % 2 and size <= self.limit:
            error = ("unparsable", "unbalanced quotes: the quoted field is not closed")
        return self._take(ident, state, kept, start, 1, end_offset, error, size, out, rfmt)

    def _first_line(self, fd: int, start: int, final: bool) -> tuple[bytes, int, int] | None:
        """(first ``limit + 1`` bytes, size, end offset) of the line at ``start``;
        ``None`` when it has no newline yet and the file may still grow."""
        kept, size, offset = bytearray(), 0, start
        while True:
            data = os.pread(fd, CHUNK, offset)
            if not data:
                if not final:
                    return None
                return bytes(kept), size, offset
            nl = data.find(b"\n")
            part = data if nl < 0 else data[:nl]
            if len(kept) <= self.limit:
                kept += part[: self.limit + 1 - len(kept)]
            size += len(part)
            offset += len(part)
            if nl >= 0:
                return bytes(kept), size, offset + 1

    def _load_header(self, ident: str, fd: int) -> None:
        """Re-read the CSV header (the first non-blank record) of a file resumed mid-way."""
        probe = FileState(name="", offset=0)
        out: list[SourceRecord] = []
        while ident not in self.headers:
            before = probe.offset
            if self._scan_one(ident, probe, fd, out, "csv", True) is None \
                    or probe.offset == before:
                return
