"""Unit tests of the embedded log: records, offsets, groups, seeking, retention, compaction."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamml.errors import ConfigError, TopicExists, UnknownTopic
from streamml.log.base import TopicPartition, TopicSpec
from streamml.log.embedded import EmbeddedLog
from streamml.log.partitioner import murmur2


@pytest.fixture
def log(tmp_path):
    with EmbeddedLog(tmp_path / "log") as lg:
        yield lg


def read_all(log, topic, group=None, timeout=0.2):
    out = []
    with log.consumer(group) as c:
        c.subscribe([topic])
        while batch := c.poll(timeout_s=timeout):
            out += batch
    return out


def test_creates_directory_and_url(tmp_path):
    with EmbeddedLog(tmp_path / "a" / "b") as lg:
        assert (tmp_path / "a" / "b").is_dir()
        assert lg.url.startswith("embedded://")


def test_round_trip_keys_headers_timestamps_nulls(log):
    log.create_topic(TopicSpec("t"))
    with log.producer() as p:
        p.send("t", b"v0", key=b"k0", timestamp_ms=1000, headers=(("a", b"1"), ("b", b"")))
        p.send("t", None, key=b"k1", timestamp_ms=1001)
        p.send("t", b"", key=None, timestamp_ms=1002)
        p.send("t", b"v3", timestamp_ms=1003, headers=(("ü", b"\x00\xff"),))
    recs = read_all(log, "t")
    got = [(r.offset, r.timestamp_ms, r.key, r.value, r.headers) for r in recs]
    assert got == [
        (0, 1000, b"k0", b"v0", (("a", b"1"), ("b", b""))),
        (1, 1001, b"k1", None, ()),
        (2, 1002, None, b"", ()),
        (3, 1003, None, b"v3", (("ü", b"\x00\xff"),)),
    ]
    assert all(r.topic == "t" and r.partition == 0 for r in recs)


def test_topic_admin(log):
    assert log.create_topic(TopicSpec("x.y", partitions=2, retention_ms=5, config={"a": "b"}))
    assert not log.create_topic(TopicSpec("x.y", partitions=2))
    with pytest.raises(TopicExists):
        log.create_topic(TopicSpec("x.y"), exist_ok=False)
    info = log.describe_topic("x.y")
    assert info.spec == TopicSpec("x.y", partitions=2, retention_ms=5, config={"a": "b"})
    assert log.list_topics() == ["x.y"] and log.topic_exists("x.y")
    with pytest.raises(UnknownTopic):
        log.describe_topic("nope")
    with pytest.raises(ConfigError):
        log.create_topic(TopicSpec("bad/name"))
    log.delete_topic("x.y")
    assert log.list_topics() == [] and not log.topic_exists("x.y")
    with pytest.raises(UnknownTopic):
        log.delete_topic("x.y")


def test_send_unknown_topic_raises(log):
    with log.producer() as p, pytest.raises(UnknownTopic):
        p.send("missing", b"x")


def test_keyed_partitioning_matches_kafka(log):
    log.create_topic(TopicSpec("t", partitions=5))
    keys = [f"user-{i}".encode() for i in range(50)]
    with log.producer() as p:
        for k in keys:
            p.send("t", k, key=k)
        p.send_many("t", keys, keys)
    recs = read_all(log, "t")
    assert len(recs) == 100
    for r in recs:
        assert r.partition == (murmur2(r.key) & 0x7FFFFFFF) % 5
    by_part = {}
    for r in recs:
        by_part.setdefault(r.partition, []).append(r.offset)
    for offsets in by_part.values():
        assert offsets == list(range(len(offsets)))


def test_unkeyed_spread_and_explicit_partition(log):
    log.create_topic(TopicSpec("t", partitions=3))
    with log.producer() as p:
        for i in range(6):
            p.send("t", b"%d" % i)
        p.send("t", b"p2", partition=2)
        with pytest.raises(UnknownTopic):
            p.send("t", b"x", partition=3)
    ends = [pi.end_offset for pi in log.describe_topic("t").partitions]
    assert ends == [2, 2, 3]


def test_send_many_round_trip(log):
    log.create_topic(TopicSpec("t", partitions=2))
    values = [b"v%d" % i for i in range(10_000)] + [None]
    with log.producer() as p:
        p.send_many("t", values, timestamp_ms=42)
    recs = read_all(log, "t")
    assert sorted((r.value or b"~") for r in recs) == sorted((v or b"~") for v in values)
    assert {r.timestamp_ms for r in recs} == {42}


def test_group_commit_persisted_across_reopen(tmp_path):
    tp = TopicPartition("t", 0)
    with EmbeddedLog(tmp_path) as lg:
        lg.create_topic(TopicSpec("t"))
        with lg.producer() as p:
            p.send_many("t", [b"%d" % i for i in range(10)])
        with lg.consumer("g") as c:
            c.subscribe(["t"])
            assert c.committed(tp) is None
            assert len(c.poll(1.0, max_records=4)) == 4
            c.commit()
            c.commit({TopicPartition("t", 0): 4})
    with EmbeddedLog(tmp_path) as lg, lg.consumer("g") as c:
        c.subscribe(["t"])
        assert c.committed(tp) == 4
        assert c.position(tp) == 4
        assert [r.offset for r in c.poll(1.0)] == list(range(4, 10))
    with EmbeddedLog(tmp_path) as lg, lg.consumer("other", auto_offset_reset="latest") as c:
        c.assign([tp])
        assert c.position(tp) == 10
        assert c.poll(0.05) == []


def test_commit_without_group_is_an_error(log):
    log.create_topic(TopicSpec("t"))
    with log.consumer() as c:
        c.assign([TopicPartition("t", 0)])
        assert c.committed(TopicPartition("t", 0)) is None
        with pytest.raises(ConfigError):
            c.commit()


def test_seek_by_offset_and_time(log):
    log.create_topic(TopicSpec("t", segment_bytes=300))
    tp = TopicPartition("t", 0)
    with log.producer() as p:
        for i in range(50):
            p.send("t", b"x%d" % i, timestamp_ms=1000 + 10 * i)
            if i % 7 == 0:
                p.flush()
    assert len(os.listdir(log.partition_dir("t", 0))) > 3  # several segments
    with log.consumer() as c:
        c.assign([tp])
        c.seek(tp, 17)
        assert c.poll(1.0, max_records=1)[0].offset == 17
        assert c.position(tp) == 18
        assert c.offsets_for_times({tp: 1095}) == {tp: 10}
        assert c.offsets_for_times({tp: 1100}) == {tp: 10}
        assert c.offsets_for_times({tp: 0}) == {tp: 0}
        assert c.offsets_for_times({tp: 99999}) == {tp: None}
        c.seek_to_time(1301)
        assert c.position(tp) == 31
        c.seek_to_end()
        assert c.position(tp) == 50 and c.poll(0.05) == []
        c.seek_to_beginning()
        assert [r.offset for r in c.poll(1.0)] == list(range(50))
        assert c.beginning_offsets([tp]) == {tp: 0} and c.end_offsets([tp]) == {tp: 50}


def test_retention_deletes_old_closed_segments(log):
    log.create_topic(TopicSpec("t", segment_bytes=200, retention_ms=60_000))
    now = 10**12
    import time

    with log.producer() as p:
        for i in range(20):
            p.send("t", b"old%d" % i, timestamp_ms=now - 10**9)
            p.flush()
        current = time.time_ns() // 1_000_000
        for i in range(5):
            p.send("t", b"new%d" % i, timestamp_ms=current)
            p.flush()
    log.enforce_retention("t")
    info = log.describe_topic("t").partitions[0]
    assert info.end_offset == 25
    assert 16 <= info.start_offset <= 20  # old closed segments gone, newer ones kept
    recs = read_all(log, "t")
    assert [r.offset for r in recs] == list(range(info.start_offset, 25))
    assert [r.value for r in recs][-5:] == [b"new%d" % i for i in range(5)]


def test_retention_bytes(log):
    log.create_topic(TopicSpec("t", segment_bytes=200, retention_bytes=400))
    with log.producer() as p:
        for i in range(30):
            p.send("t", b"v%d" % i)
            p.flush()  # segment rolls run retention automatically
    d = log.partition_dir("t", 0)
    sizes = [os.path.getsize(os.path.join(d, n)) for n in os.listdir(d) if n.endswith(".log")]
    assert sum(sizes) < 400 + 2 * 200
    assert log.describe_topic("t").partitions[0].start_offset > 0


def test_consumer_behind_retention_resets(log):
    log.create_topic(TopicSpec("t", segment_bytes=150, retention_bytes=300))
    tp = TopicPartition("t", 0)
    with log.consumer() as c:
        c.assign([tp])
        c.seek(tp, 0)
        with log.producer() as p:
            for i in range(30):
                p.send("t", b"v%d" % i)
                p.flush()
        recs = c.poll(1.0)
        assert recs and recs[0].offset == log.describe_topic("t").partitions[0].start_offset


def test_compaction_keeps_latest_per_key(log):
    log.create_topic(
        TopicSpec("c", cleanup_policy="compact", segment_bytes=250,
                  config={"delete.retention.ms": "0"})
    )
    with log.producer() as p:
        for i in range(40):
            p.send("c", b"v%d" % i, key=b"k%d" % (i % 4))
            p.flush()
        p.send("c", None, key=b"k0")  # tombstone
        p.flush()
        for i in range(6):
            p.send("c", b"tail%d" % i, key=b"t%d" % i)
            p.flush()
    log.compact("c")
    recs = read_all(log, "c")
    offsets = [r.offset for r in recs]
    assert offsets == sorted(offsets) and offsets[-1] == 46
    latest = {}
    for r in recs:
        assert r.key not in latest, "only the latest record per key survives"
        latest[r.key] = r.value
    assert latest[b"k1"] == b"v37" and latest[b"k3"] == b"v39"
    assert b"k0" not in latest  # tombstone removed, with its older values
    assert log.describe_topic("c").partitions[0].end_offset == 47


def test_poll_waits_and_times_out(log):
    log.create_topic(TopicSpec("t"))
    with log.consumer() as c:
        c.subscribe(["t"])
        assert c.poll(timeout_s=0.05) == []
        with log.producer() as p:
            p.send("t", b"late")
        assert [r.value for r in c.poll(timeout_s=1.0)] == [b"late"]


def test_subscribe_before_topic_exists(log):
    with log.consumer() as c:
        c.subscribe(["later"])
        assert c.assignment() == set()
        log.create_topic(TopicSpec("later", partitions=2))
        with log.producer() as p:
            p.send("later", b"x", partition=1)
        assert [r.value for r in c.poll(1.0)] == [b"x"]
        assert c.assignment() == {TopicPartition("later", 0), TopicPartition("later", 1)}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("send"), st.one_of(st.none(), st.binary(max_size=20)),
                      st.one_of(st.none(), st.binary(max_size=5))),
            st.tuples(st.just("many"), st.lists(st.binary(max_size=10), max_size=20), st.none()),
            st.tuples(st.just("flush"), st.none(), st.none()),
            st.tuples(st.just("read"), st.integers(1, 7), st.none()),
        ),
        max_size=40,
    )
)
def test_model_append_flush_read(tmp_path_factory, ops):
    """Random appends/flushes/reads agree with a list model of the partition."""
    path = tmp_path_factory.mktemp("model")
    with EmbeddedLog(path) as lg:
        lg.create_topic(TopicSpec("m", segment_bytes=256))
        model, pending, seen = [], [], []
        with lg.producer(auto_flush_records=10**9) as p, lg.consumer() as c:
            c.subscribe(["m"])
            for op, a, b in ops:
                if op == "send":
                    p.send("m", a, key=b)
                    pending.append((b, a))
                elif op == "many":
                    p.send_many("m", a)
                    pending += [(None, v) for v in a]
                elif op == "flush":
                    p.flush()
                    model += pending
                    pending = []
                else:
                    got = c.poll(timeout_s=0, max_records=a)
                    assert len(got) <= a
                    seen += [(r.key, r.value) for r in got]
                    assert seen == model[: len(seen)]
            p.flush()
            model += pending
            while got := c.poll(timeout_s=0.01):
                seen += [(r.key, r.value) for r in got]
        assert seen == model
        assert [r.offset for r in read_all(lg, "m", timeout=0.01)] == list(range(len(model)))


def test_fsync_mode_round_trip(tmp_path):
    with EmbeddedLog(tmp_path, fsync=True) as lg:
        lg.create_topic(TopicSpec("t", segment_bytes=100))
        with lg.producer() as p:
            for i in range(5):
                p.send("t", b"v%d" % i)
                p.flush()
        with lg.consumer("g") as c:
            c.subscribe(["t"])
            assert [r.value for r in c.poll(1.0)] == [b"v%d" % i for i in range(5)]
            c.commit()
    with EmbeddedLog(tmp_path) as lg, lg.consumer("g") as c:
        assert c.committed(TopicPartition("t", 0)) == 5


# Kafka's own vectors (clients' UtilsTest.testMurmur2), as signed Java ints
KAFKA_MURMUR2 = {b"21": -973932308, b"foobar": -790332482,
                 b"a-little-bit-long-string": -985981536,
                 b"a-little-bit-longer-string": -1486304829,
                 b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
                 b"abc": 479470107}


@settings(max_examples=300, deadline=None)
@given(key=st.binary(max_size=64))
def test_our_murmur2_is_kafkas(key: bytes) -> None:
    from kafka.partitioner.default import murmur2 as kafka_python_murmur2

    assert murmur2(key) == kafka_python_murmur2(key) & 0xFFFFFFFF


def test_our_murmur2_matches_kafkas_own_vectors() -> None:
    for vector, java in KAFKA_MURMUR2.items():
        assert murmur2(vector) == java & 0xFFFFFFFF
