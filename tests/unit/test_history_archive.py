"""The archive sink: round trip, layout, snapshots, retention, idempotent restarts (issue 7)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from streamml.history.archive import (
    DAY_MS,
    HOUR_MS,
    ArchiveSink,
    apply_retention,
    row_bytes,
)
from streamml.history.layout import archive_files, snapshots, topic_dir
from streamml.log import open_log
from streamml.log.base import Log, TopicPartition, TopicSpec
from streamml.log.embedded import EmbeddedLog
from streamml.runtime.checkpoint import CheckpointStore
from tests.cli_helpers import ROOT, cli_env

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z

def history_cli(*args: str, broker: str) -> list[str]:
    """argv running ``streamml --broker BROKER ARGS``."""
    return [sys.executable, "-m", "streamml.cli.main", "--broker", broker, *args]


def run_history(*args: str, broker: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(history_cli(*args, broker=broker), capture_output=True, text=True,
                          cwd=ROOT, env=cli_env(), timeout=timeout, check=False)


def archived_rows(root: Path, topic: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for f in archive_files(root, topic):
        rows += pq.read_table(f.path).to_pylist()
    return rows


def log_records(log: Log, topic: str) -> dict[tuple[int, int], tuple[int, bytes | None,
                                                                   bytes | None]]:
    info = log.describe_topic(topic)
    tps = [TopicPartition(topic, p.partition) for p in info.partitions]
    out = {}
    with log.consumer() as c:
        c.assign(tps)
        c.seek_to_beginning(tps)
        ends = c.end_offsets(tps)
        while any(c.position(tp) < ends[tp] for tp in tps):
            for r in c.poll(timeout_s=0.5):
                out[(r.partition, r.offset)] = (r.timestamp_ms, r.key, r.value)
    return out


def assert_exact_copy(log: Log, root: Path, topic: str) -> None:
    """Every record of the topic is one row, with identical bytes; no extra row."""
    rows = archived_rows(root, topic)
    keys = [(r["partition"], r["offset"]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicate (partition, offset) rows"
    got = {(r["partition"], r["offset"]): (r["timestamp"], row_bytes(r["key"], r["key_bin"]),
                                            row_bytes(r["value"], r["value_bin"])) for r in rows}
    assert got == log_records(log, topic)


@pytest.fixture
def log(tmp_path: Path) -> Log:
    with EmbeddedLog(tmp_path / "log") as opened:
        yield opened


def fill(log: Log, topic: str, n: int, partitions: int = 3, start: int = 0,
         step_ms: int = 60_000) -> None:
    if not log.topic_exists(topic):
        log.create_topic(TopicSpec(topic, partitions=partitions))
    with log.producer() as p:
        for i in range(start, start + n):
            p.send(topic, b'{"i": %d, "label": %d}' % (i, i % 2), b"k%d" % (i % 7),
                   partition=i % partitions, timestamp_ms=T0 + i * step_ms,
                   headers=(("src", b"test"),))
        p.flush()


def test_round_trip_and_layout(log: Log, tmp_path: Path) -> None:
    fill(log, "demo.examples", 300, step_ms=60_000)  # 5 hours of records
    with log.producer() as p:  # odd records: tombstone, non-UTF-8 bytes, no key
        p.send("demo.examples", None, b"k1", partition=0, timestamp_ms=T0)
        p.send("demo.examples", b"\xff\xfe", b"\x80", partition=1, timestamp_ms=T0)
        p.send("demo.examples", b"plain text", None, partition=2, timestamp_ms=T0)
    root = tmp_path / "arch"
    stats = ArchiveSink(log, root, ["demo.examples"], pipeline="demo").run()
    assert stats.records == 303
    assert_exact_copy(log, root, "demo.examples")
    hours = sorted({f.path.parent.name for f in archive_files(root, "demo.examples")})
    assert hours == ["hour=00", "hour=01", "hour=02", "hour=03", "hour=04"]
    for f in archive_files(root, "demo.examples"):
        table = pq.read_table(f.path)
        offsets = table.column("offset").to_pylist()
        assert (offsets[0], offsets[-1]) == (f.first, f.last)
        assert set(table.column("partition").to_pylist()) == {f.partition}
        assert f.path.parent.parent.name == "date=2026-01-01"
    row = archived_rows(root, "demo.examples")[0]
    assert row["headers"] == [{"key": "src", "value": b"test"}]


def test_restart_continues_without_duplicates(log: Log, tmp_path: Path) -> None:
    root = tmp_path / "arch"
    fill(log, "demo.examples", 100)
    ArchiveSink(log, root, ["demo.examples"], pipeline="demo").run()
    fill(log, "demo.examples", 50, start=100)
    stats = ArchiveSink(log, root, ["demo.examples"], pipeline="demo").run()
    assert stats.records == 50
    assert_exact_copy(log, root, "demo.examples")


class _CrashAfterRename(CheckpointStore):
    """Dies before its first checkpoint: the files are renamed, the offsets are not stored."""

    def write(self, cp, producer=None):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt


def test_files_renamed_before_a_crash_are_not_rewritten(log: Log, tmp_path: Path) -> None:
    root = tmp_path / "arch"
    fill(log, "demo.examples", 120)
    crashing = _CrashAfterRename(log, "demo")
    with pytest.raises(KeyboardInterrupt):
        ArchiveSink(log, root, ["demo.examples"], pipeline="demo", store=crashing).run()
    before = {f.path: f.path.stat().st_mtime_ns for f in archive_files(root, "demo.examples")}
    assert before
    (next(iter(before)).with_name("0-999-1000.parquet.tmp")).write_bytes(b"torn")
    fill(log, "demo.examples", 30, start=120)
    stats = ArchiveSink(log, root, ["demo.examples"], pipeline="demo").run()
    assert stats.records == 30  # resumed after the renamed files, not at the checkpoint
    after = {f.path: f.path.stat().st_mtime_ns for f in archive_files(root, "demo.examples")}
    assert all(after[p] == m for p, m in before.items())
    assert not list(topic_dir(root, "demo.examples").glob("**/*.tmp"))
    assert_exact_copy(log, root, "demo.examples")


def test_compacted_topic_snapshot(log: Log, tmp_path: Path) -> None:
    log.create_topic(TopicSpec("demo.schema", partitions=1, cleanup_policy="compact"))
    with log.producer() as p:
        for i, key in enumerate([b"a", b"b", b"a", b"c", b"c"]):
            p.send("demo.schema", b'{"v": %d}' % i, key, timestamp_ms=T0 + i)
        p.send("demo.schema", None, b"b", timestamp_ms=T0 + 10)  # tombstone deletes b
    root = tmp_path / "arch"
    assert ArchiveSink(log, root, ["demo.schema"], pipeline="demo").run().snapshots == 1
    [(as_of, folder)] = snapshots(root, "demo.schema")
    assert as_of == T0 + 10
    rows = pq.read_table(folder / "snapshot.parquet").to_pylist()
    assert {r["key"]: r["value"] for r in rows} == {"a": '{"v": 2}', "c": '{"v": 4}'}
    # nothing new: the same snapshot is not written again
    assert ArchiveSink(log, root, ["demo.schema"], pipeline="demo").run().snapshots == 0


def test_retention_deletes_old_hours(log: Log, tmp_path: Path) -> None:
    fill(log, "demo.examples", 48, partitions=1, step_ms=HOUR_MS)  # two days, hourly
    root = tmp_path / "arch"
    ArchiveSink(log, root, ["demo.examples"], pipeline="demo").run()
    assert len(archive_files(root, "demo.examples")) == 48
    removed = apply_retention(root, 1, now_ms=T0 + 2 * DAY_MS)
    assert removed == 24
    left = archive_files(root, "demo.examples")
    assert [f.first for f in left] == list(range(24, 48))
    assert [p.name for p in topic_dir(root, "demo.examples").glob("date=*")] == [
        "date=2026-01-02"
    ]


def test_kill_9_while_following_never_duplicates(tmp_path: Path) -> None:
    """``archive --follow`` killed with SIGKILL repeatedly while a producer writes."""
    broker = f"embedded://{tmp_path / 'log'}"
    root = tmp_path / "arch"
    topic = "demo.examples"
    args = ("archive", "--topics", topic, "--follow", "--dir", str(root), "--quiet",
            "--flush-interval", "0.02", "--flush-rows", "40")
    with open_log(broker) as log:
        fill(log, topic, 200)
        written = 200
        for _round in range(3):
            proc = subprocess.Popen(history_cli(*args, broker=broker), cwd=ROOT, env=cli_env(),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                target = len(archive_files(root, topic)) + 2
                deadline = time.monotonic() + 30
                while len(archive_files(root, topic)) < target:
                    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                    assert time.monotonic() < deadline, "archive made no progress"
                    fill(log, topic, 20, start=written)
                    written += 20
                    time.sleep(0.01)
            finally:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                if proc.stderr:
                    proc.stderr.close()
            fill(log, topic, 30, start=written)
            written += 30
        done = run_history("archive", "--topics", topic, "--dir", str(root), "-q",
                           broker=broker)
        assert done.returncode == 0, done.stderr
        assert_exact_copy(log, root, topic)
        assert sum(1 for _ in log_records(log, topic)) == written


def test_archive_cli_errors_and_pipeline_default(tmp_path: Path) -> None:
    broker = f"embedded://{tmp_path / 'log'}"
    root = tmp_path / "arch"
    proc = run_history("archive", "--pipeline", "nope", "--dir", str(root), broker=broker)
    assert proc.returncode == 2 and proc.stderr.startswith("streamml: error: no topics")
    assert "Traceback" not in proc.stderr
    proc = run_history("archive", "--topics", "missing.topic", "--dir", str(root),
                       broker=broker)
    assert proc.returncode == 4 and "no such topic: missing.topic" in proc.stderr
    with open_log(broker) as log:
        fill(log, "shop.examples", 10)
        log.create_topic(TopicSpec("shop.checkpoints", cleanup_policy="compact"))
    proc = run_history("archive", "-p", "shop", "--dir", str(root), broker=broker)
    assert proc.returncode == 0, proc.stderr
    assert "archived 10 record(s) of 1 topic(s)" in proc.stderr  # checkpoints are internal


@pytest.mark.kafka
def test_kafka_round_trip(kafka_url: str, tmp_path: Path) -> None:
    topic = f"hist{os.getpid()}.examples"
    with open_log(kafka_url) as log:
        fill(log, topic, 120)
        root = tmp_path / "arch"
        stats = ArchiveSink(log, root, [topic], pipeline=f"hist{os.getpid()}").run()
        assert stats.records == 120
        assert_exact_copy(log, root, topic)
        assert ArchiveSink(log, root, [topic], pipeline=f"hist{os.getpid()}").run().records == 0
        log.delete_topic(topic)
