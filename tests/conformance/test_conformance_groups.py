"""Consumer groups: committed offsets, resuming, and auto_offset_reset."""

from __future__ import annotations

from streamml.log.base import TopicPartition
from tests.conformance.helpers import LogHelper, poll_until, tps, wait_until


def _fill(lh: LogHelper, name: str, counts: dict[int, int]) -> None:
    lh.send(
        name,
        [
            {"value": f"{p}-{i}".encode(), "partition": p}
            for p, n in counts.items()
            for i in range(n)
        ],
    )


def test_committed_is_none_for_a_group_without_commits(lh: LogHelper) -> None:
    name = lh.topic(partitions=2)
    _fill(lh, name, {0: 3})
    consumer = lh.consumer(lh.group())
    consumer.assign(tps(name, 2))
    assert consumer.committed(TopicPartition(name, 0)) is None
    assert consumer.committed(TopicPartition(name, 1)) is None


def test_commit_then_committed_in_this_and_a_new_consumer(lh: LogHelper) -> None:
    name = lh.topic(partitions=2)
    _fill(lh, name, {0: 5, 1: 3})
    group = lh.group()
    tp0, tp1 = tps(name, 2)
    first = lh.consumer(group)
    first.assign([tp0, tp1])
    first.commit({tp0: 3, tp1: 1})
    assert first.committed(tp0) == 3
    assert first.committed(tp1) == 1
    first.commit({tp0: 4})  # a later commit of one partition leaves the other alone
    assert first.committed(tp0) == 4
    assert first.committed(tp1) == 1
    lh.close(first)
    second = lh.consumer(group)
    second.assign([tp0, tp1])
    assert second.committed(tp0) == 4
    assert second.committed(tp1) == 1


def test_a_new_consumer_in_the_group_resumes_at_the_committed_offset(lh: LogHelper) -> None:
    name = lh.topic(partitions=1)
    _fill(lh, name, {0: 10})
    group = lh.group()
    tp = TopicPartition(name, 0)
    first = lh.consumer(group)
    first.subscribe([name])
    assert [r.offset for r in poll_until(first, 10)] == list(range(10))
    first.commit({tp: 4})
    lh.close(first)

    second = lh.consumer(group)
    second.subscribe([name])
    got = poll_until(second, 6)
    assert [r.offset for r in got] == [4, 5, 6, 7, 8, 9]
    assert [r.value for r in got] == [f"0-{i}".encode() for i in range(4, 10)]


def test_auto_offset_reset_earliest_reads_from_the_beginning(lh: LogHelper) -> None:
    name = lh.topic(partitions=2)
    _fill(lh, name, {0: 3, 1: 2})
    consumer = lh.consumer(lh.group(), auto_offset_reset="earliest")
    consumer.subscribe([name])
    got = poll_until(consumer, 5)
    assert sorted((r.partition, r.offset) for r in got) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]


def test_auto_offset_reset_latest_skips_existing_records(lh: LogHelper) -> None:
    name = lh.topic(partitions=1)
    tp = TopicPartition(name, 0)
    _fill(lh, name, {0: 5})
    consumer = lh.consumer(lh.group(), auto_offset_reset="latest")
    consumer.assign([tp])
    assert consumer.position(tp) == 5
    assert consumer.poll(timeout_s=0.3) == []
    lh.send(name, [{"value": b"new-0"}, {"value": b"new-1"}])
    got = poll_until(consumer, 2)
    assert [(r.offset, r.value) for r in got] == [(5, b"new-0"), (6, b"new-1")]


def test_auto_offset_reset_latest_with_subscribe(lh: LogHelper) -> None:
    name = lh.topic(partitions=1)
    tp = TopicPartition(name, 0)
    _fill(lh, name, {0: 5})
    consumer = lh.consumer(lh.group(), auto_offset_reset="latest")
    consumer.subscribe([name])
    seen = []

    def assigned() -> bool:
        seen.extend(consumer.poll(timeout_s=0.1))
        return tp in consumer.assignment()

    wait_until(assigned, what="assignment")
    assert consumer.position(tp) == 5
    assert seen == []
    lh.send(name, [{"value": b"new"}])
    assert [(r.offset, r.value) for r in poll_until(consumer, 1)] == [(5, b"new")]


def test_a_commit_wins_over_auto_offset_reset(lh: LogHelper) -> None:
    name = lh.topic(partitions=1)
    tp = TopicPartition(name, 0)
    _fill(lh, name, {0: 6})
    group = lh.group()
    setter = lh.consumer(group)
    setter.assign([tp])
    setter.commit({tp: 2})
    lh.close(setter)
    for reset in ("earliest", "latest"):
        consumer = lh.consumer(group, auto_offset_reset=reset)  # type: ignore[arg-type]
        consumer.assign([tp])
        assert consumer.position(tp) == 2, reset
        assert [r.offset for r in poll_until(consumer, 4)] == [2, 3, 4, 5], reset
        lh.close(consumer)


def test_commit_none_commits_current_positions(lh: LogHelper) -> None:
    name = lh.topic(partitions=2)
    _fill(lh, name, {0: 4, 1: 2})
    group = lh.group()
    tp0, tp1 = tps(name, 2)
    consumer = lh.consumer(group)
    consumer.assign([tp0, tp1])
    assert len(poll_until(consumer, 6)) == 6
    consumer.commit()
    assert (consumer.committed(tp0), consumer.committed(tp1)) == (4, 2)
    # The position, not the furthest record ever read, is what gets committed.
    consumer.seek(tp0, 1)
    consumer.commit(None)
    assert (consumer.committed(tp0), consumer.committed(tp1)) == (1, 2)


def test_groups_are_independent(lh: LogHelper) -> None:
    name = lh.topic(partitions=1)
    tp = TopicPartition(name, 0)
    _fill(lh, name, {0: 5})
    one = lh.consumer(lh.group())
    one.assign([tp])
    one.commit({tp: 5})
    other = lh.consumer(lh.group())
    other.assign([tp])
    assert other.committed(tp) is None
    assert [r.offset for r in poll_until(other, 5)] == [0, 1, 2, 3, 4]


def test_subscribe_eventually_assigns_every_partition(lh: LogHelper) -> None:
    first = lh.topic(partitions=3)
    second = lh.topic(partitions=2)
    consumer = lh.consumer(lh.group())
    consumer.subscribe([first, second])

    def assigned() -> bool:
        consumer.poll(timeout_s=0.1)
        return consumer.assignment() == set(tps(first, 3) + tps(second, 2))

    wait_until(assigned, what="all five partitions to be assigned")


def test_assign_sets_the_assignment(lh: LogHelper) -> None:
    name = lh.topic(partitions=3)
    consumer = lh.consumer()
    consumer.assign([TopicPartition(name, 0), TopicPartition(name, 2)])
    assert consumer.assignment() == {TopicPartition(name, 0), TopicPartition(name, 2)}
    consumer.assign([TopicPartition(name, 1)])
    assert consumer.assignment() == {TopicPartition(name, 1)}


def test_reading_commits_nothing_until_commit_is_called(lh: LogHelper) -> None:
    """No auto-commit: the runtime's order (flush outputs, snapshot, commit) relies on it."""
    name = lh.topic(partitions=1)
    tp = TopicPartition(name, 0)
    _fill(lh, name, {0: 3})
    group = lh.group()
    reader = lh.consumer(group)
    reader.subscribe([name])
    assert len(poll_until(reader, 3)) == 3
    lh.close(reader)
    probe = lh.consumer(group)
    probe.assign([tp])
    assert probe.committed(tp) is None
