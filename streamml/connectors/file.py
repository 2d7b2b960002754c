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

For CSV, the first record of every file (and of every generation) is its
header. Blank lines are not records. A quoted field may hold newlines (RFC
4180): the record then spans lines and its id is its first line (framing:
:mod:`~streamml.connectors.filetext`).

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
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from streamml.connectors.base import Position, SourceConnector, SourceRecord
from streamml.connectors.filetext import CHUNK, FileState, TextReader, record_id
from streamml.errors import ConfigError

__all__ = ["CHUNK", "FileFormat", "FileSource", "FileState"]

FileFormat = Literal["csv", "jsonl", "parquet"]
_EXT = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
        ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSED = {".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4"}


class FileSource(SourceConnector):
    """Read CSV, JSON Lines or Parquet files, once or following them.

    Options: ``path`` (file, directory or glob), ``format`` (``csv``,
    ``jsonl``, ``parquet``; default from the extension), ``mode`` (``once`` or
    ``follow``), ``poll_interval_s`` (how often to look for changes when idle),
    ``max_record_bytes`` (longer lines are read in bounded memory and marked
    ``oversize``; a quoted CSV record spanning lines must end within it),
    ``rotated`` (follow mode: glob where rotated files go; default ``<path>.*``
    for a file or glob path, none for a directory; ``""`` disables).
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
        self._text = TextReader(name, max_record_bytes)
        self._tables: dict[str, Any] = {}
        self._order: list[str] = []
        self._last_scan = 0.0
        self._opened = False

    # -- discovery ------------------------------------------------------------
    def describe(self) -> str:
        return f"file {self.path} ({self.format or 'auto'}, {self.mode})"

    def matching_files(self) -> list[str]:
        """The files ``path`` names now (a file, a directory's files, a glob's matches)."""
        return self._candidates()

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
            self._text.headers.pop(ident, None)
        fmt = self._format_of(state.name)
        # Rotated away (no longer a live candidate) or read once: the end is final.
        final = self.mode == "once" or ident not in self._live
        if fmt == "parquet":
            self._read_parquet(ident, state, budget, out)
        else:
            self._text.read(ident, state, fd, budget, out, fmt, final)
        if final and ident in self._fds and state.offset >= os.fstat(fd).st_size:
            state.done = True
            self._close_fd(ident)
            self._tables.pop(ident, None)

    def _record_id(self, state: FileState, line: int) -> str:
        return record_id(self.name, state, line)

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

