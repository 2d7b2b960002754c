"""poll: timeouts, max_records, and following a growing log."""

from __future__ import annotations

import time

from streamml.log.base import TopicPartition
from tests.conformance.helpers import LogHelper, poll_until, tps


def test_poll_on_an_empty_topic_returns_an_empty_list_after_the_timeout(lh: LogHelper) -> None:
    name = lh.topic(partitions=2)
    consumer = lh.consumer()
    consumer.assign(tps(name, 2))
    started = time.monotonic()
    got = consumer.poll(timeout_s=0.5)
    elapsed = time.monotonic() - started
    assert got == [] and isinstance(got, list)
    assert elapsed < 0.5 + 5.0  # returns once the timeout passed, not much later


def test_poll_returns_empty_once_caught_up(lh: LogHelper) -> None:
    name = lh.topic(partitions=1)
    lh.send(name, [{"value": b"a"}, {"value": b"b"}])
    consumer = lh.consumer()
    consumer.assign([TopicPartition(name, 0)])
    assert [r.value for r in poll_until(consumer, 2)] == [b"a", b"b"]
    assert consumer.poll(timeout_s=0.3) == []


def test_poll_respects_max_records(lh: LogHelper) -> None:
    name = lh.topic(partitions=2)
    lh.send(name, [{"value": str(i).encode(), "partition": i % 2} for i in range(25)])
    consumer = lh.consumer()
    consumer.assign(tps(name, 2))
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 25 and time.monotonic() < deadline:
        batch = consumer.poll(timeout_s=0.2, max_records=7)
        assert len(batch) <= 7
        got.extend(batch)
    assert sorted(int(r.value or b"") for r in got) == list(range(25))
    for p in (0, 1):
        assert [r.offset for r in got if r.partition == p] == list(range(13 if p == 0 else 12))
    assert consumer.poll(timeout_s=0.2, max_records=1) == []


def test_poll_max_records_one_returns_exactly_one(lh: LogHelper) -> None:
    name = lh.topic(partitions=1)
    lh.send(name, [{"value": str(i).encode()} for i in range(5)])
    consumer = lh.consumer()
    consumer.assign([TopicPartition(name, 0)])
    got = poll_until(consumer, 1, max_records=1)
    assert [r.offset for r in got] == [0]
    assert consumer.position(TopicPartition(name, 0)) == 1


def test_records_produced_after_the_consumer_started_are_seen(lh: LogHelper) -> None:
    name = lh.topic(partitions=2)
    consumer = lh.consumer()
    consumer.assign(tps(name, 2))
    assert consumer.poll(timeout_s=0.3) == []
    producer = lh.producer()
    for round_ in range(3):
        producer.send(name, f"p0-{round_}".encode(), partition=0)
        producer.send(name, f"p1-{round_}".encode(), partition=1)
        producer.flush(30)
        got = poll_until(consumer, 2)
        assert sorted((r.partition, r.offset, r.value) for r in got) == [
            (0, round_, f"p0-{round_}".encode()),
            (1, round_, f"p1-{round_}".encode()),
        ]


def test_a_subscribed_group_consumer_follows_new_records(lh: LogHelper) -> None:
    name = lh.topic(partitions=1)
    consumer = lh.consumer(lh.group(), auto_offset_reset="earliest")
    consumer.subscribe([name])
    assert poll_until(consumer, 1, timeout_s=1.0) == []
    lh.send(name, [{"value": b"late"}])
    assert [(r.offset, r.value) for r in poll_until(consumer, 1)] == [(0, b"late")]


def test_a_reader_on_another_handle_follows_new_records(lh: LogHelper) -> None:
    name = lh.topic(partitions=1)
    tp = TopicPartition(name, 0)
    reader = lh.consumer(log=lh.other_handle())
    reader.assign([tp])
    assert reader.poll(timeout_s=0.3) == []
    for i in range(3):
        lh.send(name, [{"value": f"r{i}".encode()}])
        assert [(r.offset, r.value) for r in poll_until(reader, 1)] == [(i, f"r{i}".encode())]


def test_multi_topic_subscription_reads_every_topic(lh: LogHelper) -> None:
    first = lh.topic(partitions=2)
    second = lh.topic(partitions=1)
    lh.send(first, [{"value": b"a", "partition": 0}, {"value": b"b", "partition": 1}])
    lh.send(second, [{"value": b"c"}])
    consumer = lh.consumer(lh.group())
    consumer.subscribe([first, second])
    got = sorted((r.topic, r.partition, r.value) for r in poll_until(consumer, 3))
    assert got == sorted([(first, 0, b"a"), (first, 1, b"b"), (second, 0, b"c")])
