"""Produce then consume: what goes in comes out, at the offsets the contract promises."""

from __future__ import annotations

from streamml.log.base import Record, TopicPartition
from tests.conformance.helpers import (
    LogHelper,
    base_timestamp,
    by_partition,
    kafka_partition,
    now_ms,
    tps,
)


def test_values_keys_tombstones_headers_and_timestamps_round_trip(lh: LogHelper) -> None:
    name = lh.topic(partitions=1)
    ts = base_timestamp()
    sent = [
        dict(value=b"v0", key=b"k0", timestamp_ms=ts, headers=(("h", b"1"),)),
        dict(value=None, key=b"k0", timestamp_ms=ts + 1),  # tombstone
        dict(value=b"", key=None, timestamp_ms=ts + 2),  # empty value is not a tombstone
        dict(value=b"v3", key=b"", timestamp_ms=ts + 3),  # empty key is not a null key
        dict(
            value=bytes(range(256)),
            key=b"\x00\xff",
            timestamp_ms=ts + 4,
            headers=(("dup", b"a"), ("dup", b"b"), ("empty", b""), ("unicode-é", b"\x00")),
        ),
        dict(value=b"v5", key=b"k5", timestamp_ms=ts + 5, headers=()),
    ]
    lh.send(name, sent)
    got = lh.read_all(name)
    assert got == [
        Record(
            topic=name,
            partition=0,
            offset=i,
            timestamp_ms=row["timestamp_ms"],  # type: ignore[arg-type]
            key=row["key"],  # type: ignore[arg-type]
            value=row["value"],  # type: ignore[arg-type]
            headers=row.get("headers", ()),  # type: ignore[arg-type]
        )
        for i, row in enumerate(sent)
    ]
    assert isinstance(got[4].headers, tuple)
    assert got[2].value == b"" and got[1].value is None
    assert got[3].key == b"" and got[2].key is None


def test_offsets_start_at_zero_and_grow_by_one_per_partition(lh: LogHelper) -> None:
    name = lh.topic(partitions=3)
    rows = [{"value": f"{p}-{i}".encode(), "partition": p} for i in range(5) for p in range(3)]
    lh.send(name, rows)
    parts = by_partition(lh.read_all(name))
    assert sorted(parts) == [0, 1, 2]
    for p, records in parts.items():
        assert [r.offset for r in records] == [0, 1, 2, 3, 4]
        assert [r.value for r in records] == [f"{p}-{i}".encode() for i in range(5)]
        assert all(r.topic == name and r.tp == TopicPartition(name, p) for r in records)


def test_order_within_a_partition_is_send_order(lh: LogHelper) -> None:
    name = lh.topic(partitions=1)
    producer = lh.producer()
    for i in range(2000):
        producer.send(name, i.to_bytes(4, "big"), b"same-key")
        if i % 700 == 0:
            producer.flush(30)  # several flushes: order must hold across batches too
    producer.flush(30)
    got = lh.read_all(name)
    assert [int.from_bytes(r.value or b"", "big") for r in got] == list(range(2000))
    assert [r.offset for r in got] == list(range(2000))


def test_default_timestamp_is_the_send_time(lh: LogHelper) -> None:
    name = lh.topic(partitions=1)
    before = now_ms()
    lh.send(name, [{"value": b"now"}])
    after = now_ms()
    (record,) = lh.read_all(name)
    assert before - 2_000 <= record.timestamp_ms <= after + 2_000


def test_explicit_timestamps_are_kept_even_out_of_order(lh: LogHelper) -> None:
    name = lh.topic(partitions=1)
    ts = base_timestamp()
    stamps = [ts + 5_000, ts, ts + 60_000, ts + 1, ts + 1]
    lh.send(name, [{"value": b"x", "timestamp_ms": t} for t in stamps])
    assert [r.timestamp_ms for r in lh.read_all(name)] == stamps


def test_explicit_partition_wins_over_the_key(lh: LogHelper) -> None:
    name = lh.topic(partitions=4)
    key = b"route-me"
    hashed = kafka_partition(key, 4)
    others = [p for p in range(4) if p != hashed]
    lh.send(name, [{"value": f"to-{p}".encode(), "key": key, "partition": p} for p in others])
    got = {r.partition: r.value for r in lh.read_all(name)}
    assert got == {p: f"to-{p}".encode() for p in others}


def test_end_and_beginning_offsets(lh: LogHelper) -> None:
    name = lh.topic(partitions=3)
    targets = tps(name, 3)
    consumer = lh.consumer()
    assert consumer.beginning_offsets(targets) == {tp: 0 for tp in targets}
    assert consumer.end_offsets(targets) == {tp: 0 for tp in targets}
    lh.send(name, [{"value": b"a", "partition": 0}] * 4 + [{"value": b"b", "partition": 1}] * 2)
    assert consumer.end_offsets(targets) == dict(zip(targets, [4, 2, 0], strict=True))
    assert consumer.beginning_offsets(targets) == {tp: 0 for tp in targets}
    # A subset asks only for that subset.
    assert consumer.end_offsets([targets[1]]) == {targets[1]: 2}


def test_send_many_round_trips(lh: LogHelper) -> None:
    name = lh.topic(partitions=2)
    ts = base_timestamp()
    producer = lh.producer()
    producer.send_many(name, [b"a", None, b"c"], [b"k1", b"k2", None], partition=1, timestamp_ms=ts)
    producer.send_many(name, [b"d", None, b"e"], partition=0)
    producer.flush(30)
    parts = by_partition(lh.read_all(name))
    assert [(r.offset, r.key, r.value, r.timestamp_ms) for r in parts[1]] == [
        (0, b"k1", b"a", ts),
        (1, b"k2", None, ts),
        (2, None, b"c", ts),
    ]
    assert [(r.key, r.value) for r in parts[0]] == [(None, b"d"), (None, None), (None, b"e")]


def test_closing_a_producer_flushes_it(lh: LogHelper) -> None:
    name = lh.topic(partitions=1)
    with lh.log.producer() as producer:
        for i in range(10):
            producer.send(name, str(i).encode())
    assert [r.value for r in lh.read_all(name)] == [str(i).encode() for i in range(10)]


def test_flushed_records_are_visible_through_another_handle(lh: LogHelper) -> None:
    name = lh.topic(partitions=2)
    lh.send(name, [{"value": b"x", "key": b"k", "partition": 1}, {"value": b"y", "partition": 0}])
    other = lh.other_handle()
    assert name in other.list_topics()
    got = sorted((r.partition, r.offset, r.key, r.value) for r in lh.read_all(name, log=other))
    assert got == [(0, 0, None, b"y"), (1, 0, b"k", b"x")]


def test_large_values_round_trip(lh: LogHelper) -> None:
    name = lh.topic(partitions=1)
    big = bytes(range(256)) * 1024  # 256 KiB, under Kafka's default 1 MiB message limit
    lh.send(name, [{"value": big, "key": b"big"}, {"value": b"small"}])
    assert [(r.key, r.value) for r in lh.read_all(name)] == [(b"big", big), (None, b"small")]


def test_a_record_with_neither_key_nor_value_round_trips(lh: LogHelper) -> None:
    """``key`` and ``value`` are each ``bytes | None``; Kafka's protocol stores both null."""
    name = lh.topic(partitions=1)
    lh.send(name, [{"value": None}, {"value": b"after"}])
    assert [(r.offset, r.key, r.value) for r in lh.read_all(name)] == [
        (0, None, None),
        (1, None, b"after"),
    ]
