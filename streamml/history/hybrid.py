"""Archive then live: one consumer that reads the Parquet archive, then the log, seamlessly.

Like Flink's ``HybridSource``: :class:`HybridConsumer` first returns the
archived records of every partition, then switches each partition to the live
log at exactly the next offset, so the stream it yields has **no gap and no
duplicate** (per partition, offsets in order, each once).

Per partition:

1. read the archive files in offset order, from ``start`` (default: the first
   archived offset) through the last offset of the contiguous archived run.
   The file list is re-scanned before switching, so files an archiver running
   concurrently writes meanwhile are read from Parquet too;
2. seek the live consumer to ``last archived + 1``. If the log's start offset
   is above it (retention removed records that were never archived), that is
   a gap: :class:`~streamml.history.layout.HistoryGap` names the missing offset
   range (``allow_gap=True`` instead continues at the log start offset and
   records the gap in :attr:`HybridConsumer.gaps`).

A partition with no archive file starts on the log at ``start`` (default
``0``): a log start offset above it is a gap too.

Nothing is committed: the consumer has no group. Resume from saved
:attr:`HybridConsumer.positions` with ``start=``.

>>> import tempfile
>>> from pathlib import Path
>>> from streamml.history.archive import ArchiveSink
>>> from streamml.log.embedded import EmbeddedLog
>>> from streamml.log.base import TopicSpec
>>> log = EmbeddedLog(tempfile.mkdtemp())
>>> _ = log.create_topic(TopicSpec("demo.examples", partitions=2))
>>> def produce(lo, hi):
...     with log.producer() as p:
...         for i in range(lo, hi):
...             p.send("demo.examples", b"%d" % i, partition=i % 2, timestamp_ms=1000 * i)
>>> produce(0, 6)
>>> root = Path(tempfile.mkdtemp())
>>> ArchiveSink(log, root, ["demo.examples"], pipeline="demo").run().records
6
>>> produce(6, 10)
>>> with HybridConsumer(log, root, "demo.examples") as hc:
...     got = hc.read_available()
>>> sorted((r.partition, r.offset) for r in got) == [(p, o) for p in (0, 1) for o in range(5)]
True
>>> hc.from_archive, hc.from_log
(6, 4)
>>> log.close()
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from streamml.history.archive import read_records
from streamml.history.layout import ArchiveFile, HistoryGap, partition_files
from streamml.log.base import Consumer, Log, Record, TopicPartition

Phase = Literal["archive", "live"]


@dataclass
class _Partition:
    tp: TopicPartition
    next: int
    """Next offset to return."""
    phase: Phase = "archive"
    pending: list[Record] = field(default_factory=list)


class HybridConsumer:
    """Archive first, then the live log, per partition (see the module docstring).

    ``start`` maps partition → first offset wanted (default: the first archived
    offset, or ``0``). ``batch_rows`` bounds how many archived records one
    :meth:`poll` returns.
    """

    def __init__(self, log: Log, root: Path, topic: str, *,
                 start: Mapping[int, int] | None = None, allow_gap: bool = False,
                 batch_rows: int = 10_000) -> None:
        self.log = log
        self.root = Path(root)
        self.topic = topic
        self.allow_gap = allow_gap
        self.batch_rows = batch_rows
        self.gaps: list[HistoryGap] = []
        self.from_archive = 0
        self.from_log = 0
        files = partition_files(self.root, topic)
        partitions = [p.partition for p in log.describe_topic(topic).partitions]
        self._parts: dict[int, _Partition] = {}
        for p in partitions:
            first = files[p][0].first if files.get(p) else 0
            begin = (start or {}).get(p, first)
            self._parts[p] = _Partition(TopicPartition(topic, p), begin)
        self._consumer: Consumer | None = None
        self._switched: dict[int, int] = {}

    # -- state ----------------------------------------------------------------
    @property
    def positions(self) -> dict[int, int]:
        """Next offset per partition (what to pass as ``start`` to resume)."""
        return {p: s.next for p, s in self._parts.items()}

    @property
    def phase(self) -> Phase:
        """``live`` once every partition has switched to the log."""
        return "live" if all(s.phase == "live" for s in self._parts.values()) else "archive"

    def switch_offsets(self) -> dict[int, int]:
        """Offset each partition resumed at on the log (only partitions already switched)."""
        return dict(self._switched)

    # -- archive --------------------------------------------------------------
    def _next_file(self, part: _Partition) -> ArchiveFile | None:
        for f in partition_files(self.root, self.topic).get(part.tp.partition, []):
            if f.first <= part.next <= f.last:
                return f
        return None

    def _archive_batch(self) -> list[Record]:
        for part in self._parts.values():
            if part.phase != "archive":
                continue
            if not part.pending:
                f = self._next_file(part)
                if f is None:
                    self._go_live(part)
                    continue
                try:
                    part.pending = read_records(f.path, self.topic, min_offset=part.next)
                except FileNotFoundError:  # removed by retention meanwhile: re-scan
                    continue
                if not part.pending:  # pragma: no cover - a file always holds its range
                    self._go_live(part)
                    continue
            batch, part.pending = part.pending[: self.batch_rows], part.pending[self.batch_rows:]
            part.next = batch[-1].offset + 1
            self.from_archive += len(batch)
            return batch
        return []

    # -- live -----------------------------------------------------------------
    def _live(self) -> Consumer:
        if self._consumer is None:
            self._consumer = self.log.consumer()
        return self._consumer

    def _go_live(self, part: _Partition) -> None:
        consumer = self._live()
        begin = consumer.beginning_offsets([part.tp])[part.tp]
        if begin > part.next:
            gap = HistoryGap(self.topic, part.tp.partition, part.next, begin - 1)
            if not self.allow_gap:
                raise gap
            self.gaps.append(gap)
            part.next = begin
        part.phase = "live"
        consumer.assign(sorted({*consumer.assignment(), part.tp}))
        for s in self._parts.values():
            if s.phase == "live":
                consumer.seek(s.tp, s.next)
        self._switched[part.tp.partition] = part.next

    # -- reading --------------------------------------------------------------
    def poll(self, timeout_s: float = 1.0, max_records: int = 10_000) -> list[Record]:
        """The next records: archived ones while any partition is in the archive, then live."""
        batch = self._archive_batch()
        if batch:
            return batch
        if self._consumer is None:
            return []
        out = []
        for r in self._consumer.poll(timeout_s=timeout_s, max_records=max_records):
            part = self._parts[r.partition]
            if r.offset < part.next:  # pragma: no cover - defensive: never re-deliver
                continue
            part.next = r.offset + 1
            out.append(r)
        self.from_log += len(out)
        return out

    def read_available(self, timeout_s: float = 0.2) -> list[Record]:
        """Everything up to the log's current end (archive first), then return."""
        out: list[Record] = []
        while self.phase == "archive":
            out += self.poll(timeout_s)
        consumer = self._live()
        tps = [s.tp for s in self._parts.values()]
        ends = consumer.end_offsets(tps)
        while any(self._parts[tp.partition].next < ends[tp] for tp in tps):
            out += self.poll(timeout_s)
        return out

    def __iter__(self) -> Iterator[Record]:
        """Records forever (archive, then live); stop by breaking out of the loop."""
        while True:
            yield from self.poll()

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def __enter__(self) -> HybridConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["HistoryGap", "HybridConsumer"]
