"""Positioning: seek, seek_to_beginning/end, position, offsets_for_times, seek_to_time."""

from __future__ import annotations

import time

from streamml.log.base import Record, TopicPartition
from tests.conformance.helpers import LogHelper, base_timestamp, poll_until, tps


def _ten(lh: LogHelper, partitions: int = 1) -> str:
    name = lh.topic(partitions=partitions)
    lh.send(name, [{"value": str(i).encode(), "partition": 0} for i in range(10)])
    return name


def test_seek_then_poll_starts_at_that_offset(lh: LogHelper) -> None:
    name = _ten(lh)
    tp = TopicPartition(name, 0)
    consumer = lh.consumer()
    consumer.assign([tp])
    consumer.seek(tp, 6)
    assert consumer.position(tp) == 6
    got = poll_until(consumer, 4)
    assert [(r.offset, r.value) for r in got] == [(i, str(i).encode()) for i in range(6, 10)]


def test_seek_backwards_rereads(lh: LogHelper) -> None:
    name = _ten(lh)
    tp = TopicPartition(name, 0)
    consumer = lh.consumer()
    consumer.assign([tp])
    consumer.seek_to_beginning()
    assert len(poll_until(consumer, 10)) == 10
    consumer.seek(tp, 2)
    assert [r.offset for r in poll_until(consumer, 8)] == list(range(2, 10))


def test_position_is_the_next_offset_after_poll(lh: LogHelper) -> None:
    name = _ten(lh)
    tp = TopicPartition(name, 0)
    consumer = lh.consumer()
    consumer.assign([tp])
    consumer.seek(tp, 0)
    got: list[Record] = []
    deadline = time.monotonic() + 30
    while len(got) < 3 and time.monotonic() < deadline:
        got.extend(consumer.poll(timeout_s=0.2, max_records=3 - len(got)))
    assert [r.offset for r in got] == [0, 1, 2]
    assert consumer.position(tp) == 3
    rest = poll_until(consumer, 7)
    assert consumer.position(tp) == rest[-1].offset + 1 == 10


def test_seek_to_beginning_and_end_of_given_partitions(lh: LogHelper) -> None:
    name = _ten(lh, partitions=2)
    tp0, tp1 = tps(name, 2)
    consumer = lh.consumer()
    consumer.assign([tp0, tp1])
    consumer.seek(tp0, 5)
    consumer.seek_to_end([tp0])
    assert consumer.position(tp0) == 10
    assert consumer.position(tp1) == 0  # untouched, empty partition
    assert consumer.poll(timeout_s=0.3) == []
    consumer.seek_to_beginning([tp0])
    assert consumer.position(tp0) == 0
    assert [r.offset for r in poll_until(consumer, 10)] == list(range(10))


def test_seek_to_beginning_and_end_default_to_every_assigned_partition(lh: LogHelper) -> None:
    name = lh.topic(partitions=3)
    lh.send(name, [{"value": b"x", "partition": p} for p in (0, 0, 1, 2, 2, 2)])
    targets = tps(name, 3)
    consumer = lh.consumer()
    consumer.assign(targets)
    consumer.seek_to_end()
    assert [consumer.position(tp) for tp in targets] == [2, 1, 3]
    consumer.seek_to_beginning()
    assert [consumer.position(tp) for tp in targets] == [0, 0, 0]


def test_offsets_for_times(lh: LogHelper) -> None:
    name = lh.topic(partitions=2)
    ts = base_timestamp()
    lh.send(name, [{"value": b"x", "partition": 0, "timestamp_ms": ts + 10 * i} for i in range(5)])
    tp0, tp1 = tps(name, 2)
    consumer = lh.consumer()
    cases = {
        ts - 100_000: 0,  # before everything: the first record
        ts: 0,  # equal counts ("at or after")
        ts + 1: 1,
        ts + 10: 1,
        ts + 15: 2,
        ts + 40: 4,  # the last record
        ts + 41: None,  # past the end
    }
    for query, expected in cases.items():
        assert consumer.offsets_for_times({tp0: query}) == {tp0: expected}, query - ts
    # Several partitions at once; an empty partition has no such record.
    assert consumer.offsets_for_times({tp0: ts + 20, tp1: ts}) == {tp0: 2, tp1: None}


def test_offsets_for_times_with_out_of_order_timestamps(lh: LogHelper) -> None:
    name = lh.topic(partitions=1)
    ts = base_timestamp()
    stamps = [100, 300, 200, 400, 250]
    lh.send(name, [{"value": b"x", "timestamp_ms": ts + s} for s in stamps])
    tp = TopicPartition(name, 0)
    consumer = lh.consumer()
    # The earliest offset whose timestamp is >= the query, not the first in time order.
    expected = {50: 0, 150: 1, 200: 1, 250: 1, 301: 3, 400: 3, 401: None}
    got = {q: consumer.offsets_for_times({tp: ts + q})[tp] for q in expected}
    assert got == expected


def test_seek_to_time(lh: LogHelper) -> None:
    name = lh.topic(partitions=3)
    ts = base_timestamp()
    rows = [
        {"value": f"a{i}".encode(), "partition": 0, "timestamp_ms": ts + 10 * i} for i in range(6)
    ]
    rows += [{"value": b"old", "partition": 1, "timestamp_ms": ts - 1_000} for _ in range(3)]
    rows += [{"value": b"new", "partition": 2, "timestamp_ms": ts + 1_000}]
    lh.send(name, rows)
    tp0, tp1, tp2 = tps(name, 3)
    consumer = lh.consumer()
    consumer.assign([tp0, tp1, tp2])
    consumer.seek_to_time(ts + 25)  # every assigned partition
    assert consumer.position(tp0) == 3
    assert consumer.position(tp1) == 3  # no record that late: positioned at the end
    assert consumer.position(tp2) == 0
    got = sorted((r.partition, r.offset) for r in poll_until(consumer, 4))
    assert got == [(0, 3), (0, 4), (0, 5), (2, 0)]


def test_seek_to_time_only_moves_the_given_partitions(lh: LogHelper) -> None:
    name = lh.topic(partitions=2)
    ts = base_timestamp()
    lh.send(
        name,
        [{"value": b"x", "partition": p, "timestamp_ms": ts + i} for p in (0, 1) for i in range(4)],
    )
    tp0, tp1 = tps(name, 2)
    consumer = lh.consumer()
    consumer.assign([tp0, tp1])
    consumer.seek(tp1, 1)
    consumer.seek_to_time(ts + 2, [tp0])
    assert consumer.position(tp0) == 2
    assert consumer.position(tp1) == 1


def test_negative_seek_and_negative_timestamp_are_config_errors(lh: LogHelper) -> None:
    import pytest

    from streamml.errors import ConfigError

    name = _ten(lh)
    tp = TopicPartition(name, 0)
    consumer = lh.consumer()
    consumer.assign([tp])
    with pytest.raises(ConfigError):
        consumer.seek(tp, -1)
    with pytest.raises(ConfigError):
        consumer.offsets_for_times({tp: -1})
    assert consumer.offsets_for_times({tp: 0}) == {tp: 0}
