"""On-disk layout of the history directory: the Parquet archive and the lineage store.

One folder (``--dir``, default ``.streamml-history``; env ``STREAMML_HISTORY_DIR``)
holds everything ``streamml archive``, ``query``, ``replay`` and ``lineage`` use::

    <dir>/topic=<topic>/date=YYYY-MM-DD/hour=HH/<partition>-<first>-<last>.parquet
    <dir>/topic=<topic>/snapshot=<ms>/<partition>.parquet     (compacted topics)
    <dir>/lineage.duckdb                                      (lineage store)

Date and hour come from the record timestamp (UTC). ``first`` and ``last`` are
the first and last offsets in the file, both inclusive: a file is an immutable,
contiguous run of one partition, so its name alone says which records it holds.
That is what makes the archive idempotent (see :mod:`streamml.history.archive`).

>>> archive_file_name(2, 100, 199)
'2-100-199.parquet'
>>> parse_archive_file_name("2-100-199.parquet")
(2, 100, 199)
>>> parse_archive_file_name("2-100-199.parquet.tmp") is None
True
>>> hour_bucket(1767225600000 + 3_600_000 * 13 + 5)
('2026-01-01', '13')
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from streamml.errors import StreamMLError

DEFAULT_HISTORY_DIR = ".streamml-history"
HISTORY_DIR_ENV = "STREAMML_HISTORY_DIR"
LINEAGE_DB = "lineage.duckdb"

_FILE_RE = re.compile(r"^(\d+)-(\d+)-(\d+)\.parquet$")


class HistoryGap(StreamMLError):
    """Records that neither the archive nor the log holds any more (retention removed them).

    >>> str(HistoryGap("t", 0, 10, 19))
    't[0]: offsets 10..19 are neither archived nor on the log (retention removed them)'
    """

    exit_code = 5

    def __init__(self, topic: str, partition: int, first: int, last: int) -> None:
        self.topic, self.partition, self.first, self.last = topic, partition, first, last
        super().__init__(f"{topic}[{partition}]: offsets {first}..{last} are neither archived "
                         "nor on the log (retention removed them)")


def archive_file_name(partition: int, first: int, last: int) -> str:
    """``<partition>-<first offset>-<last offset>.parquet`` (offsets inclusive)."""
    return f"{partition}-{first}-{last}.parquet"


def parse_archive_file_name(name: str) -> tuple[int, int, int] | None:
    """``(partition, first, last)`` of an archive file name, ``None`` for anything else."""
    match = _FILE_RE.fullmatch(name)
    if match is None:
        return None
    partition, first, last = (int(g) for g in match.groups())
    return partition, first, last


def hour_bucket(timestamp_ms: int) -> tuple[str, str]:
    """``(YYYY-MM-DD, HH)`` of a timestamp, in UTC."""
    moment = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d"), moment.strftime("%H")


def topic_dir(root: Path, topic: str) -> Path:
    return root / f"topic={topic}"


def hour_dir(root: Path, topic: str, timestamp_ms: int) -> Path:
    date, hour = hour_bucket(timestamp_ms)
    return topic_dir(root, topic) / f"date={date}" / f"hour={hour}"


def snapshot_dir(root: Path, topic: str, as_of_ms: int) -> Path:
    return topic_dir(root, topic) / f"snapshot={as_of_ms}"


def archived_topics(root: Path) -> list[str]:
    """Topics with a folder in the archive, sorted."""
    if not root.is_dir():
        return []
    return sorted(p.name[len("topic="):] for p in root.glob("topic=*") if p.is_dir())


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    """One archived file: where it is and which offsets of which partition it holds."""

    path: Path
    topic: str
    partition: int
    first: int
    last: int


def archive_files(root: Path, topic: str) -> list[ArchiveFile]:
    """Every complete archive file of ``topic``, by (partition, first offset).

    Temporary files (``*.tmp``, a writer killed before its rename) are not listed.
    """
    out = []
    for path in topic_dir(root, topic).glob("date=*/hour=*/*.parquet"):
        parsed = parse_archive_file_name(path.name)
        if parsed is not None:
            out.append(ArchiveFile(path, topic, *parsed))
    out.sort(key=lambda f: (f.partition, f.first))
    return out


def partition_files(root: Path, topic: str) -> dict[int, list[ArchiveFile]]:
    """:func:`archive_files` grouped by partition (each list by first offset)."""
    out: dict[int, list[ArchiveFile]] = {}
    for f in archive_files(root, topic):
        out.setdefault(f.partition, []).append(f)
    return out


def archived_until(files: list[ArchiveFile], start: int = 0) -> int:
    """Next offset after the contiguous archived run of one partition that covers ``start``.

    Files must be one partition's, sorted by first offset. A hole in the archive
    ends the run (what follows it is not "archived up to" anything).

    >>> fs = [ArchiveFile(Path(), "t", 0, a, b) for a, b in [(0, 9), (10, 19), (30, 39)]]
    >>> archived_until(fs), archived_until(fs, 30), archived_until(fs, 50)
    (20, 40, 50)
    """
    nxt = start
    for f in files:
        if f.first <= nxt <= f.last:
            nxt = f.last + 1
    return nxt


def snapshots(root: Path, topic: str) -> list[tuple[int, Path]]:
    """``(as_of_ms, folder)`` of every snapshot of ``topic``, oldest first."""
    out = []
    for path in topic_dir(root, topic).glob("snapshot=*"):
        value = path.name.partition("=")[2]
        if path.is_dir() and value.isdigit():
            out.append((int(value), path))
    return sorted(out)


def resolve_dir(path: str | os.PathLike[str] | None) -> Path:
    """The history folder: ``path``, else ``$STREAMML_HISTORY_DIR``, else the default."""
    return Path(path or os.environ.get(HISTORY_DIR_ENV) or DEFAULT_HISTORY_DIR)
