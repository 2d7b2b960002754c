"""Topic administration: create, list, describe, delete, and the spec round trip."""

from __future__ import annotations

import uuid

import pytest

from streamml.errors import TopicExists, UnknownTopic
from streamml.log.base import Log, PartitionInfo, TopicPartition, TopicSpec
from tests.conformance.helpers import LogHelper, wait_until


def test_create_topic_returns_true_for_a_new_topic(lh: LogHelper) -> None:
    name = lh.name()
    assert lh.create(TopicSpec(name=name, partitions=2)) is True
    assert lh.log.topic_exists(name)


def test_create_existing_topic_with_exist_ok_returns_false_and_keeps_spec(lh: LogHelper) -> None:
    name = lh.topic(partitions=3)
    assert lh.log.create_topic(TopicSpec(name=name, partitions=5), exist_ok=True) is False
    info = lh.log.describe_topic(name)
    assert info.spec.partitions == 3
    assert len(info.partitions) == 3


def test_create_existing_topic_without_exist_ok_raises_topic_exists(lh: LogHelper) -> None:
    name = lh.topic(partitions=1)
    with pytest.raises(TopicExists):
        lh.log.create_topic(TopicSpec(name=name, partitions=1), exist_ok=False)


def test_list_topics_is_sorted_and_hides_internal_topics(lh: LogHelper) -> None:
    uid = uuid.uuid4().hex
    names = [f"conf.{stem}.{uid}" for stem in ("zeta", "alpha", "mid")]
    for name in names:
        lh.create(TopicSpec(name=name))
    # A committed group offset makes Kafka create its internal __consumer_offsets.
    tp = TopicPartition(names[0], 0)
    consumer = lh.consumer(lh.group())
    consumer.assign([tp])
    consumer.commit({tp: 0})
    listed = lh.log.list_topics()
    assert listed == sorted(listed)
    assert [n for n in listed if n in names] == sorted(names)
    assert not [n for n in listed if n.startswith("__")]


def test_topic_exists_is_false_for_a_missing_topic(lh: LogHelper) -> None:
    assert lh.log.topic_exists(lh.name("missing")) is False


SPECS = {
    "three-partitions-retention": dict(
        partitions=3, cleanup_policy="delete", retention_ms=3_600_000, retention_bytes=10_485_760
    ),
    "compacted": dict(partitions=2, cleanup_policy="compact"),
    "defaults-keep-forever": dict(),
    "retention-ms-only": dict(partitions=4, retention_ms=86_400_000),
    "segment-bytes": dict(partitions=1, segment_bytes=1_048_576, retention_bytes=2_097_152),
}


@pytest.mark.parametrize("fields", list(SPECS.values()), ids=list(SPECS))
def test_describe_round_trips_the_spec(lh: LogHelper, fields: dict[str, object]) -> None:
    spec = TopicSpec(name=lh.name(), **fields)  # type: ignore[arg-type]
    lh.create(spec)
    info = lh.log.describe_topic(spec.name)
    assert info.name == spec.name
    assert info.spec.name == spec.name
    assert info.spec.partitions == spec.partitions
    assert info.spec.cleanup_policy == spec.cleanup_policy
    assert info.spec.retention_ms == spec.retention_ms
    assert info.spec.retention_bytes == spec.retention_bytes
    assert info.spec.replication_factor == spec.replication_factor
    if spec.segment_bytes is not None:  # unset may legitimately report the log's default
        assert info.spec.segment_bytes == spec.segment_bytes


def test_compacted_topic_reports_compact(lh: LogHelper) -> None:
    name = lh.topic(partitions=1, cleanup_policy="compact")
    assert lh.log.describe_topic(name).spec.cleanup_policy == "compact"
    # ...and the default stays "delete", so the check above can tell them apart.
    plain = lh.topic(partitions=1)
    assert lh.log.describe_topic(plain).spec.cleanup_policy == "delete"


def test_describe_new_topic_has_empty_partitions(lh: LogHelper) -> None:
    name = lh.topic(partitions=3)
    info = lh.log.describe_topic(name)
    assert info.partitions == tuple(PartitionInfo(p, 0, 0) for p in range(3))
    assert info.records == 0


def test_describe_reports_offsets_after_producing(lh: LogHelper) -> None:
    name = lh.topic(partitions=3)
    lh.send(name, [{"value": b"a", "partition": 0}] * 4 + [{"value": b"b", "partition": 2}] * 2)
    info = lh.log.describe_topic(name)
    assert info.partitions == (
        PartitionInfo(0, 0, 4),
        PartitionInfo(1, 0, 0),
        PartitionInfo(2, 0, 2),
    )
    assert info.records == 6


def test_describe_missing_topic_raises_unknown_topic(log: Log, lh: LogHelper) -> None:
    with pytest.raises(UnknownTopic):
        log.describe_topic(lh.name("missing"))


def test_send_to_missing_topic_raises_unknown_topic_and_creates_nothing(lh: LogHelper) -> None:
    name = lh.name("missing")
    producer = lh.producer()
    # ``send`` may buffer; the error must surface by the time ``flush`` returns.
    with pytest.raises(UnknownTopic):
        producer.send(name, b"v")
        producer.flush(30)
    assert name not in lh.log.list_topics()


def test_delete_topic_removes_it(lh: LogHelper) -> None:
    name = lh.topic(partitions=2)
    keep = lh.topic(partitions=1)
    lh.send(name, [{"value": b"x", "partition": 1}])
    lh.log.delete_topic(name)
    lh.wait_gone(name)
    assert lh.log.topic_exists(name) is False
    with pytest.raises(UnknownTopic):
        lh.log.describe_topic(name)
    assert wait_until(lambda: keep in lh.log.list_topics(), what="other topic to survive")


@pytest.mark.parametrize("method", ["end_offsets", "beginning_offsets", "offsets_for_times"])
def test_offset_lookups_on_a_missing_topic_raise_unknown_topic(lh: LogHelper, method: str) -> None:
    """Like ``describe_topic``/``send``: a reachable log with no such topic is UnknownTopic,
    not BrokerUnavailable (errors.py: that one means the log cannot be reached)."""
    tp = TopicPartition(lh.name("missing"), 0)
    consumer = lh.consumer()
    with pytest.raises(UnknownTopic):
        if method == "offsets_for_times":
            consumer.offsets_for_times({tp: 0})
        else:
            getattr(consumer, method)([tp])
