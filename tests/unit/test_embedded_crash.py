"""Crash safety and multi-process behaviour of the embedded log."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from streamml.errors import CorruptLog
from streamml.log.base import TopicPartition, TopicSpec
from streamml.log.embedded import EmbeddedLog

PRODUCER = textwrap.dedent(
    """
    import sys
    from streamml.log.embedded import EmbeddedLog
    path, prefix = sys.argv[1], sys.argv[2].encode()
    total, chunk = int(sys.argv[3]), int(sys.argv[4])
    log = EmbeddedLog(path)
    p = log.producer()
    i = 0
    while total < 0 or i < total:
        p.send_many("t", [prefix + b"%09d" % j + b"." * 300 for j in range(i, i + chunk)])
        p.flush()
        i += chunk
        print(i, flush=True)
    p.close()
    log.close()
    """
)

READER = textwrap.dedent(
    """
    import sys
    from streamml.log.embedded import EmbeddedLog
    path, want = sys.argv[1], int(sys.argv[2])
    with EmbeddedLog(path) as log, log.consumer() as c:
        c.subscribe(["t"])
        assert c.poll(timeout_s=0.05) == []
        print("ready", flush=True)
        got = []
        while len(got) < want:
            got += c.poll(timeout_s=5.0)
        print(len(got), got[-1].offset, got[-1].value.decode(), flush=True)
    """
)


def spawn(code: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_all(path, topic="t"):
    out = []
    with EmbeddedLog(path) as log, log.consumer() as c:
        c.subscribe([topic])
        while batch := c.poll(timeout_s=0.1):
            out += batch
    return out


def segments(path, topic="t", partition=0):
    d = os.path.join(path, "topics", topic, str(partition))
    return sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".log"))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill9_during_heavy_appends(tmp_path, seed):
    rng = random.Random(seed)
    path = str(tmp_path)
    with EmbeddedLog(path) as log:
        log.create_topic(TopicSpec("t", segment_bytes=1 << 20))
    child = spawn(PRODUCER, path, "r", -1, rng.choice([50, 3000, 20000]))
    assert child.stdout is not None and child.stderr is not None
    flushed = 0
    stop_after = rng.uniform(0.3, 1.5)
    start = time.monotonic()
    while time.monotonic() - start < stop_after:
        line = child.stdout.readline()
        assert line, child.stderr.read()
        flushed = int(line)
    child.send_signal(signal.SIGKILL)
    rest = child.stdout.read().split()  # printed after a completed flush, before the kill
    child.wait()
    child.stdout.close()
    child.stderr.close()
    if rest:
        flushed = int(rest[-1])
    assert flushed > 0
    records = read_all(path)
    assert len(records) >= flushed
    for i, r in enumerate(records):
        assert r.offset == i
        assert r.value == b"r%09d" % i + b"." * 300
    with EmbeddedLog(path) as log, log.producer() as p:
        p.send("t", b"after-crash")
    again = read_all(path)
    assert again[-1].value == b"after-crash" and again[-1].offset == len(records)
    assert [r.value for r in again[:-1]] == [r.value for r in records]


def _write_some(path, n=10, per_flush=3):
    with EmbeddedLog(path) as log:
        log.create_topic(TopicSpec("t"))
        with log.producer() as p:
            for i in range(n):
                p.send("t", b"v%d" % i, key=b"k")
                if i % per_flush == per_flush - 1:
                    p.flush()


@pytest.mark.parametrize("garbage", [b"", b"\x00" * 100, os.urandom(333)])
def test_torn_tail_is_invisible_then_truncated(tmp_path, garbage):
    path = str(tmp_path)
    _write_some(path)
    (seg,) = segments(path)
    size = os.path.getsize(seg)
    with open(seg, "r+b") as f:
        f.truncate(size - 7)  # cut the last batch (record 9) short
        f.seek(0, os.SEEK_END)
        f.write(garbage)
    assert [r.value for r in read_all(path)] == [b"v%d" % i for i in range(9)]
    with EmbeddedLog(path) as log:
        assert log.describe_topic("t").partitions[0].end_offset == 9
        with log.producer() as p:
            p.send("t", b"new")
    recs = read_all(path)
    assert [(r.offset, r.value) for r in recs][-2:] == [(8, b"v8"), (9, b"new")]
    assert len(recs) == 10


def test_corruption_before_the_tail_raises(tmp_path):
    path = str(tmp_path)
    _write_some(path)
    (seg,) = segments(path)
    with open(seg, "r+b") as f:
        f.seek(60)  # inside the first batch's body
        byte = f.read(1)
        f.seek(60)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(CorruptLog):
        read_all(path)


def test_reader_in_another_process_sees_new_records(tmp_path):
    path = str(tmp_path)
    with EmbeddedLog(path) as log:
        log.create_topic(TopicSpec("t", segment_bytes=4096))
    reader = spawn(READER, path, 500)
    try:
        assert reader.stdout is not None and reader.stderr is not None
        assert reader.stdout.readline().strip() == "ready", reader.stderr.read()
        with EmbeddedLog(path) as log, log.producer() as p:
            for i in range(500):
                p.send("t", b"x%d" % i)
                if i % 50 == 49:
                    p.flush()  # several segment rolls while the reader follows
        out, err = reader.communicate(timeout=60)
        assert reader.returncode == 0, err
        assert out.split() == ["500", "499", "x499"]
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.communicate()


def test_two_producer_processes_append_concurrently(tmp_path):
    path = str(tmp_path)
    with EmbeddedLog(path) as log:
        log.create_topic(TopicSpec("t", segment_bytes=64 * 1024))
    children = [spawn(PRODUCER, path, prefix, 6000, 37) for prefix in ("a", "b")]
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    records = read_all(path)
    assert [r.offset for r in records] == list(range(len(records)))
    for prefix in (b"a", b"b"):
        mine = [r.value[1:10] for r in records if r.value[:1] == prefix]
        assert mine == [b"%09d" % i for i in range(-(-6000 // 37) * 37)]
    assert len(segments(path)) > 10


def test_reopen_preserves_everything(tmp_path):
    path = str(tmp_path)
    _write_some(path, n=100, per_flush=7)
    with EmbeddedLog(path) as log, log.consumer() as c:
        tp = TopicPartition("t", 0)
        c.assign([tp])
        assert c.end_offsets([tp]) == {tp: 100}
        assert [r.value for r in c.poll(1.0)] == [b"v%d" % i for i in range(100)]
