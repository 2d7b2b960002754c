"""The file source: CSV, JSON Lines and Parquet; read ``once`` or ``follow`` like ``tail -F``.

``path`` is a file, a directory (every file in it) or a glob. Files are
tracked by identity, ``(st_dev, st_ino)``, with a byte offset and a line
number, so that following survives

* **appends** (read as they arrive; an unterminated last line waits for its newline),
* **rotation** (the file is renamed and a new one created at the path: the
  renamed file is drained through its still-open descriptor, then the new
  file is read from its start),
* **truncation** (size below the offset: the file restarts from 0 as a new
  *generation*),
* **new files** matching the glob or appearing in the directory,
* **rotation while ingestion is down**, even before the connector ever saw the
  file: in ``follow`` mode the ``rotated`` glob (default ``<path>.*``, compressed
  ``.gz``/``.bz2``/``.xz``/``.zst``/``.zip`` excluded) is watched too. A file there
  that the position does not know is read (oldest first) *before* the new files
  at the path, under the live file's name, so generations (and ids) come out in
  the order the files were written, whatever the ingester saw or checkpointed.
  A drained rotated file that grows again (a writer still holding it) is re-read.

The position (checkpointed by the ingest loop) is
``{"files": {"<dev>:<ino>": {"name", "gen", "offset", "line", "done"}}, "names": {...}}``.
Each record's id is ``<connector>:<name>[~<gen>]:<line>`` (``line`` is the
physical line, 1-based, the CSV header being line 1; Parquet: the row index),
so a file keeps its ids across restarts even after it was renamed.

For CSV, the first line of every file (and of every generation) is its
header. Blank lines are not records. Quoted fields may not span lines.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "a.csv").write_bytes(b"x,y\\n1,2\\n\\n3,4\\n")
>>> src = FileSource(name="demo", path=str(d / "a.csv"))
>>> src.open()
>>> [(r.id, r.raw) for r in src.read(10)]
[('demo:a.csv:2', b'1,2'), ('demo:a.csv:4', b'3,4')]
>>> src.read(10), src.exhausted
([], True)
>>> src.close()
"""

from __future__ import annotations

import fnmatch
import glob as globmod
import os
import time
from dataclasses import asdict, dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any, Literal

from streamml.connectors.base import Position, RecordFormat, SourceConnector, SourceRecord
from streamml.errors import ConfigError

FileFormat = Literal["csv", "jsonl", "parquet"]
CHUNK = 1 << 20
_EXT = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
        ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSED = {".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4"}


@dataclass
class FileState:
    """Progress through one file identity (JSON-able, part of the position)."""

    name: str
    gen: int = 0
    offset: int = 0
    line: int = 0
    done: bool = False
    path: str = ""


class FileSource(SourceConnector):
    """Read CSV, JSON Lines or Parquet files, once or following them.

    Options: ``path`` (file, directory or glob), ``format`` (``csv``,
    ``jsonl``, ``parquet``; default from the extension), ``mode`` (``once`` or
    ``follow``), ``poll_interval_s`` (how often to look for changes when idle),
    ``max_record_bytes`` (longer lines are read in bounded memory and marked
    ``oversize``), ``rotated`` (follow mode: glob where rotated files go; default
    ``<path>.*`` for a file or glob path, none for a directory; ``""`` disables).
    """

    type_name = "file"

    def __init__(
        self,
        *,
        name: str,
        path: str,
        format: FileFormat | None = None,  # noqa: A002 - the option's name
        mode: Literal["once", "follow"] = "once",
        poll_interval_s: float = 0.2,
        max_record_bytes: int = 1 << 20,
        base_dir: str | None = None,
        rotated: str | None = None,
    ) -> None:
        if mode not in ("once", "follow"):
            raise ConfigError(f"connector {name!r}: mode must be 'once' or 'follow', not {mode!r}")
        if format is not None and format not in ("csv", "jsonl", "parquet"):
            raise ConfigError(f"connector {name!r}: unknown file format {format!r}")
        if max_record_bytes < 1:
            raise ConfigError(f"connector {name!r}: max_record_bytes must be positive")
        self.name = name
        self.path = path if base_dir is None else str(Path(base_dir) / path)
        self.format = format
        self.mode = mode
        self.poll_interval_s = poll_interval_s
        self.max_record_bytes = max_record_bytes
        if rotated is None and not os.path.isdir(self.path):
            rotated = self.path + ".*"
        self.rotated = rotated or None
        self._live: set[str] = set()
        self._files: dict[str, FileState] = {}
        self._names: dict[str, int] = {}
        self._fds: dict[str, int] = {}
        self._headers: dict[str, bytes] = {}
        self._tables: dict[str, Any] = {}
        self._order: list[str] = []
        self._last_scan = 0.0
        self._opened = False

    # -- discovery ------------------------------------------------------------
    def describe(self) -> str:
        return f"file {self.path} ({self.format or 'auto'}, {self.mode})"

    def _candidates(self) -> list[str]:
        p = Path(self.path)
        if p.is_dir():
            paths = [str(c) for c in p.iterdir() if c.is_file() and not c.name.startswith(".")]
        elif globmod.has_magic(self.path):
            paths = [c for c in globmod.glob(self.path) if os.path.isfile(c)]
        else:
            paths = [self.path] if p.is_file() else []
        return sorted(paths, key=_mtime_then_name)

    def _rotated_candidates(self) -> list[str]:
        if self.mode != "follow" or self.rotated is None:
            return []
        paths = [c for c in globmod.glob(self.rotated)
                 if os.path.isfile(c) and Path(c).suffix.lower() not in _COMPRESSED]
        return sorted(paths, key=_mtime_then_name)

    def _live_name(self, rotated_path: str) -> str:
        """The name a rotated file had at the path (``app.log.1`` → ``app.log``)."""
        base = os.path.basename(rotated_path)
        if os.path.isfile(self.path) or not globmod.has_magic(self.path):
            return os.path.basename(self.path)
        pattern = os.path.basename(self.path)
        name = base
        while "." in name:
            name = name.rsplit(".", 1)[0]
            if fnmatch.fnmatchcase(name, pattern):
                return name
        return base

    def _format_of(self, path: str) -> FileFormat:
        if self.format is not None:
            return self.format
        fmt = _EXT.get(Path(path).suffix.lower())
        if fmt is None:
            raise ConfigError(f"connector {self.name!r}: cannot tell the format of {path}; "
                              "set options.format")
        return fmt  # type: ignore[return-value]

    def _new_generation(self, name: str) -> int:
        gen = self._names.get(name, 0)
        self._names[name] = gen + 1
        return gen

    def _scan(self) -> None:
        """Find files (new identities); open descriptors of files still to read.

        The live candidates are listed before the rotated ones, so a file renamed
        in between is seen (at least) once; unknown rotated files get their
        generation before unknown live ones (they were written first).
        """
        self._last_scan = time.monotonic()
        seen: dict[str, tuple[str, bool, int]] = {}
        for live, paths in ((True, self._candidates()), (False, self._rotated_candidates())):
            for path in paths:
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                ident = f"{st.st_dev}:{st.st_ino}"
                if ident not in seen:
                    seen[ident] = (path, live, st.st_size)
        self._live = {i for i, (_, live, _) in seen.items() if live}
        new = [i for i in seen if i not in self._files]
        new.sort(key=lambda i: seen[i][1])  # stable: rotated (False) first, each by mtime
        for ident in new:
            path, live, _ = seen[ident]
            name = os.path.basename(path) if live else self._live_name(path)
            self._files[ident] = FileState(name, self._new_generation(name))
            self._order.append(ident)
        for ident, (path, _, size) in seen.items():
            state = self._files[ident]
            state.path = path
            if state.done and self.mode == "follow" and size != state.offset \
                    and self._format_of(state.name) != "parquet":
                state.done = False  # a drained file grew (late writes) or was truncated
            if not state.done and ident not in self._fds:
                self._open_fd(ident, path)
        # Identities we knew (from a checkpoint) that are no longer at a candidate path:
        # rotated away while we were down. Look for them beside the path to drain them.
        for ident, state in list(self._files.items()):
            if ident in seen or ident in self._fds:
                continue
            found = None if state.done else self._find_identity(ident, state.path)
            if found is None:
                del self._files[ident]
                self._order.remove(ident)
            else:
                state.path = found
                self._open_fd(ident, found)

    def _find_identity(self, ident: str, last_path: str) -> str | None:
        folder = Path(last_path or self.path).parent
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return None
        for entry in entries:
            try:
                st = entry.stat()
            except OSError:
                continue
            if f"{st.st_dev}:{st.st_ino}" == ident and entry.is_file():
                return entry.path
        return None

    def _open_fd(self, ident: str, path: str) -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return
        st = os.fstat(fd)
        if f"{st.st_dev}:{st.st_ino}" != ident:  # replaced between stat and open
            os.close(fd)
            return
        self._fds[ident] = fd

    def _close_fd(self, ident: str) -> None:
        fd = self._fds.pop(ident, None)
        if fd is not None:
            os.close(fd)

    # -- lifecycle ------------------------------------------------------------
    def open(self, position: Position | None = None) -> None:
        self.close()
        self._files, self._names, self._order = {}, {}, []
        if position:
            for ident, raw in dict(position.get("files", {})).items():
                self._files[ident] = FileState(**raw)
                self._order.append(ident)
            self._names = {str(k): int(v) for k, v in dict(position.get("names", {})).items()}
        self._opened = True
        self._scan()

    def close(self) -> None:
        for ident in list(self._fds):
            self._close_fd(ident)
        self._opened = False

    @property
    def position(self) -> Position:
        return {"files": {i: asdict(self._files[i]) for i in self._order},
                "names": dict(self._names)}

    @property
    def exhausted(self) -> bool:
        return self.mode == "once" and self._opened and all(s.done for s in self._files.values())

    # -- reading --------------------------------------------------------------
    def read(self, max_records: int) -> list[SourceRecord]:
        if not self._opened:
            raise ConfigError(f"connector {self.name!r} is not open")
        out: list[SourceRecord] = []
        for _ in range(2):
            for ident in list(self._order):
                if len(out) >= max_records:
                    return out
                if ident in self._fds:
                    self._read_file(ident, max_records - len(out), out)
            if out or self.mode == "once":
                return out
            if time.monotonic() - self._last_scan < self.poll_interval_s:
                return out
            self._scan()
        return out

    def _read_file(self, ident: str, budget: int, out: list[SourceRecord]) -> None:
        state, fd = self._files[ident], self._fds[ident]
        size = os.fstat(fd).st_size
        if size < state.offset:  # truncated: a new generation of the same file
            state.gen, state.offset, state.line = self._new_generation(state.name), 0, 0
            self._headers.pop(ident, None)
        fmt = self._format_of(state.name)
        # Rotated away (no longer a live candidate) or read once: the end is final.
        final = self.mode == "once" or ident not in self._live
        if fmt == "parquet":
            self._read_parquet(ident, state, budget, out)
        else:
            self._read_lines(ident, state, fd, budget, out, fmt, final)
        if final and ident in self._fds and state.offset >= os.fstat(fd).st_size:
            state.done = True
            self._close_fd(ident)
            self._tables.pop(ident, None)

    def _record_id(self, state: FileState, line: int) -> str:
        name = state.name if state.gen == 0 else f"{state.name}~{state.gen}"
        return f"{self.name}:{name}:{line}"

    def _read_lines(self, ident: str, state: FileState, fd: int, budget: int,
                    out: list[SourceRecord], fmt: FileFormat, final: bool) -> None:
        rfmt: RecordFormat = "csv" if fmt == "csv" else "json"
        limit = self.max_record_bytes
        if rfmt == "csv" and ident not in self._headers and state.offset > 0:
            self._load_header(ident, fd)
        taken = 0
        while taken < budget:
            data = os.pread(fd, CHUNK, state.offset)
            if not data:
                return
            last = data.rfind(b"\n")
            if last < 0:
                if not self._long_line(ident, state, fd, data, out, rfmt, final, limit):
                    return
                taken += 1
                continue
            lines = data[:last].split(b"\n")
            offset, line_no = state.offset, state.line
            header = self._headers.get(ident)
            if header is not None or rfmt != "csv":
                n = min(len(lines), budget - taken)
                if self._clean_lines(state, lines, n, out, rfmt, header):
                    taken += n
                    if n < len(lines):
                        return
                    if len(data) < CHUNK and last == len(data) - 1:
                        return
                    continue
            for raw in lines:
                start = offset
                offset += len(raw) + 1
                line_no += 1
                if raw.endswith(b"\r"):
                    raw = raw[:-1]
                if not raw.strip():
                    continue
                if rfmt == "csv" and header is None:
                    header = self._headers[ident] = raw
                    continue
                error = None
                if len(raw) > limit:
                    error = ("oversize", f"record of {len(raw)} bytes exceeds {limit}")
                out.append(SourceRecord(
                    raw, {"file": state.name, "gen": state.gen, "line": line_no,
                          "offset": start},
                    id=self._record_id(state, line_no), fmt=rfmt, header=header, error=error))
                taken += 1
                if taken >= budget:
                    break
            state.offset, state.line = offset, line_no
            if len(data) < CHUNK and last == len(data) - 1:
                return

    def _clean_lines(self, state: FileState, lines: list[bytes], n: int,
                     out: list[SourceRecord], rfmt: RecordFormat, header: bytes | None) -> bool:
        """Fast path: the first ``n`` lines are all records (no CR, blank or oversize line).

        Builds the records with comprehensions instead of a branchy loop; returns
        ``False`` (nothing done) when a line needs the careful path.
        """
        take = lines[:n] if n < len(lines) else lines
        if not take or max(map(len, take)) > self.max_record_bytes:
            return False
        if not all(map(bytes.strip, take)) or any(r.endswith(b"\r") for r in take):
            return False
        name, gen, first = state.name, state.gen, state.line + 1
        prefix = self._record_id(state, 0)[:-1]
        starts = list(accumulate((len(r) + 1 for r in take), initial=state.offset))
        end = starts.pop()
        out.extend([
            SourceRecord(raw, {"file": name, "gen": gen, "line": ln, "offset": st},
                         id=f"{prefix}{ln}", fmt=rfmt, header=header)
            for raw, ln, st in zip(take, range(first, first + len(take)), starts, strict=True)
        ])
        state.offset, state.line = end, first + len(take) - 1
        return True

    def _load_header(self, ident: str, fd: int) -> None:
        """Re-read the CSV header (the first non-blank line) of a file resumed mid-way."""
        data, offset = b"", 0
        while True:
            chunk = os.pread(fd, CHUNK, offset)
            if not chunk:
                break
            data += chunk
            offset += len(chunk)
            lines = [x.rstrip(b"\r") for x in data.split(b"\n")]
            complete = lines[:-1]
            found = next((x for x in complete if x.strip()), None)
            if found is not None:
                self._headers[ident] = found[: self.max_record_bytes]
                return
            if len(data) > self.max_record_bytes:
                break

    def _long_line(self, ident: str, state: FileState, fd: int, head: bytes,
                   out: list[SourceRecord], rfmt: RecordFormat, final: bool, limit: int) -> bool:
        """A line with no newline in the first chunk: find its end in bounded memory."""
        kept, size, offset = bytearray(head[: limit + 1]), len(head), state.offset + len(head)
        while True:
            data = os.pread(fd, CHUNK, offset)
            if not data:
                if not final:
                    return False  # wait for the rest of the line
                end = None
                break
            nl = data.find(b"\n")
            part = data if nl < 0 else data[:nl]
            if len(kept) <= limit:
                kept += part[: limit + 1 - len(kept)]
            size += len(part)
            offset += len(part)
            if nl >= 0:
                end = offset + 1
                break
        raw = bytes(kept).rstrip(b"\r")
        state.line += 1
        start = state.offset
        state.offset = end if end is not None else offset
        if rfmt == "csv" and ident not in self._headers:
            self._headers[ident] = raw
            return True
        error = None
        if size > limit:
            raw = raw[:limit]
            error = ("oversize", f"record of {size} bytes exceeds {limit}")
        out.append(SourceRecord(
            raw, {"file": state.name, "gen": state.gen, "line": state.line, "offset": start},
            id=self._record_id(state, state.line), fmt=rfmt, header=self._headers.get(ident),
            error=error, size=size))
        return True

    def _read_parquet(self, ident: str, state: FileState, budget: int,
                      out: list[SourceRecord]) -> None:
        """Parquet is read whole-file; ``offset`` is the next row index to return."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = state.path
        try:
            table = self._tables.get(ident)
            if table is None:
                table = self._tables[ident] = pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            with open(path, "rb") as fh:
                head = fh.read(self.max_record_bytes)
            out.append(SourceRecord(
                head, {"file": state.name, "gen": state.gen, "row": -1},
                id=self._record_id(state, 0), fmt="row",
                error=("unparsable", f"not a Parquet file: {exc}"),
                size=os.path.getsize(path)))
            state.offset = os.path.getsize(path)
            state.done = True
            self._close_fd(ident)
            return
        rows = table.slice(state.line, budget).to_pylist()
        for i, row in enumerate(rows, start=state.line):
            out.append(SourceRecord(None, {"file": state.name, "gen": state.gen, "row": i},
                                    id=self._record_id(state, i), fmt="row", row=row))
        state.line += len(rows)
        if state.line >= table.num_rows:
            state.offset = os.path.getsize(path)
            state.done = True
            self._close_fd(ident)
            self._tables.pop(ident, None)


def _mtime_then_name(path: str) -> tuple[float, str]:
    try:
        return (os.stat(path).st_mtime, path)
    except OSError:
        return (0.0, path)

