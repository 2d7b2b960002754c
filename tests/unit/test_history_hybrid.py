"""Archive then live: gapless, duplicate-free switching with a producer writing throughout."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from streamml.history.archive import ArchiveSink
from streamml.history.hybrid import HybridConsumer
from streamml.history.layout import HistoryGap, archive_files
from streamml.log.base import Log, Record, TopicSpec
from streamml.log.embedded import EmbeddedLog
from tests.unit.test_history_archive import T0

TOPIC = "demo.examples"
TOTAL = 3000


def produce(log: Log, started: threading.Event, done: threading.Event) -> None:
    with log.producer() as p:
        for i in range(TOTAL):
            p.send(TOPIC, b'{"i": %d}' % i, b"k%d" % i, partition=i % 3,
                   timestamp_ms=T0 + i * 1000)
            if i % 50 == 49:
                p.flush()
                started.set()
                time.sleep(0.002)
        p.flush()
    done.set()


def read_all(log: Log, root: Path, done: threading.Event) -> tuple[list[Record], HybridConsumer]:
    got: list[Record] = []
    with HybridConsumer(log, root, TOPIC) as hc:
        deadline = time.monotonic() + 60
        while len(got) < TOTAL and time.monotonic() < deadline:
            got += hc.poll(timeout_s=0.2)
        time.sleep(0.05)
        got += hc.poll(timeout_s=0.1)  # nothing extra arrives
    return got, hc


def assert_contiguous(records: list[Record]) -> None:
    by_partition: dict[int, list[int]] = {}
    for r in records:
        by_partition.setdefault(r.partition, []).append(r.offset)
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets))), "gap, duplicate or out of order"
    assert sum(len(o) for o in by_partition.values()) == TOTAL


def test_archive_then_live_with_a_concurrent_producer(tmp_path: Path) -> None:
    with EmbeddedLog(tmp_path / "log") as log:
        log.create_topic(TopicSpec(TOPIC, partitions=3))
        root = tmp_path / "hist"
        started, done = threading.Event(), threading.Event()
        writer = threading.Thread(target=produce, args=(log, started, done))
        writer.start()
        try:
            assert started.wait(30)
            ArchiveSink(log, root, [TOPIC], pipeline="demo").run()  # partway
            archived = sum(f.last - f.first + 1 for f in archive_files(root, TOPIC))
            assert 0 < archived
            got, hc = read_all(log, root, done)
        finally:
            writer.join(60)
        assert_contiguous(got)
        assert {r.value for r in got} == {b'{"i": %d}' % i for i in range(TOTAL)}
        assert hc.from_archive == archived and hc.from_log == TOTAL - archived
        assert hc.switch_offsets() == {
            p: max(f.last for f in archive_files(root, TOPIC) if f.partition == p) + 1
            for p in range(3)}


def test_files_archived_while_reading_are_read_from_the_archive(tmp_path: Path) -> None:
    with EmbeddedLog(tmp_path / "log") as log:
        log.create_topic(TopicSpec(TOPIC, partitions=3))
        root = tmp_path / "hist"
        produce(log, threading.Event(), threading.Event())
        ArchiveSink(log, root, [TOPIC], pipeline="demo", max_file_rows=100).run()
        with HybridConsumer(log, root, TOPIC, batch_rows=100) as hc:
            got = hc.poll()
            with log.producer() as p:  # more records, archived before the switch
                for i in range(TOTAL, TOTAL + 30):
                    p.send(TOPIC, b"x", partition=i % 3, timestamp_ms=T0 + i * 1000)
            ArchiveSink(log, root, [TOPIC], pipeline="demo").run()
            got += hc.read_available()
        assert hc.from_archive == TOTAL + 30 and hc.from_log == 0
        by_partition = sorted((r.partition, r.offset) for r in got)
        assert by_partition == sorted({(r.partition, r.offset) for r in got})
        assert len(got) == TOTAL + 30


def test_a_retention_gap_is_named(tmp_path: Path) -> None:
    with EmbeddedLog(tmp_path / "log") as log:
        log.create_topic(TopicSpec(TOPIC, partitions=1, retention_ms=400 * 86_400_000,
                                   segment_bytes=1))
        for chunk in range(5):
            with log.producer() as p:
                for i in range(chunk * 10, chunk * 10 + 10):
                    p.send(TOPIC, b"%d" % i, timestamp_ms=T0 + i)
        root = tmp_path / "hist"
        with pytest.raises(HistoryGap, match=r"offsets 0\.\.(\d+)"):  # nothing archived
            from streamml.log.embedded.maintenance import enforce_partition_retention

            spec = log.load_spec(TOPIC)
            enforce_partition_retention(log.partition_dir(TOPIC, 0), spec,
                                        now_ms=T0 + 401 * 86_400_000)
            with HybridConsumer(log, root, TOPIC) as hc:
                hc.read_available()
        start = log.describe_topic(TOPIC).partitions[0].start_offset
        with HybridConsumer(log, root, TOPIC, allow_gap=True) as hc:
            got = hc.read_available()
        assert [r.offset for r in got] == list(range(start, 50))
        assert (hc.gaps[0].first, hc.gaps[0].last) == (0, start - 1)
