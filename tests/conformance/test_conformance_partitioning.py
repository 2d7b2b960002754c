"""Keyed partitioning is Kafka's murmur2, so both logs put a key on the same partition."""

from __future__ import annotations

import pytest

from tests.conformance.helpers import LogHelper, by_partition, kafka_partition

# Fixed keys: ASCII, empty, binary, multi-byte UTF-8, every length mod 4 (murmur2's tail).
KEYS: list[bytes] = [
    b"",
    b"a",
    b"ab",
    b"abc",
    b"abcd",
    b"abcde",
    b"123456789",
    b"\x00",
    b"\x00 ",
    b"\xff\xff\xff\xff",
    b"\x80\x81\x82",
    "clé-ünïcødé".encode(),
    "日本語のキー".encode(),
    b"user-1",
    b"user-2",
    b"user-3",
    b"user-10",
    b"user-42",
    b"order:2024-01-01:0001",
    b"taxi-trip-000017",
    b"k" * 100,
    bytes(range(64)),
] + [f"key-{i}".encode() for i in range(40)]


@pytest.mark.parametrize(
    ("key", "expected"),
    # Partition numbers of Kafka's Java client for 1000 partitions (the vectors
    # kafka-python checks its murmur2 against): the oracle below is Kafka's.
    [(b"", 681), (b"a", 524), (b"ab", 434), (b"abc", 107), (b"123456789", 566), (b"\x00 ", 742)],
)
def test_partition_oracle_matches_the_java_client(key: bytes, expected: int) -> None:
    assert kafka_partition(key, 1000) == expected


@pytest.mark.parametrize("partitions", [3, 7])
def test_keyed_records_go_to_the_murmur2_partition(lh: LogHelper, partitions: int) -> None:
    name = lh.topic(partitions=partitions)
    producer = lh.producer()
    for round_ in range(2):  # the same key twice, in separate batches
        for key in KEYS:
            producer.send(name, f"{round_}".encode(), key)
        producer.flush(30)
    got = lh.read_all(name)
    assert len(got) == 2 * len(KEYS)
    placed: dict[bytes, set[int]] = {}
    for record in got:
        assert record.key is not None
        placed.setdefault(record.key, set()).add(record.partition)
    expected = {key: {kafka_partition(key, partitions)} for key in KEYS}
    wrong = {k: (placed.get(k), e) for k, e in expected.items() if placed.get(k) != e}
    assert not wrong, f"key -> (got partitions, expected): {wrong}"


def test_tombstones_follow_their_key(lh: LogHelper) -> None:
    name = lh.topic(partitions=5)
    lh.send(name, [{"value": None, "key": key} for key in KEYS[:12]])
    got = {r.key: r.partition for r in lh.read_all(name)}
    assert got == {key: kafka_partition(key, 5) for key in KEYS[:12]}


def test_unkeyed_records_are_spread_over_every_partition(lh: LogHelper) -> None:
    name = lh.topic(partitions=3)
    producer = lh.producer()
    for i in range(90):
        producer.send(name, str(i).encode())
        if i % 10 == 9:
            producer.flush(30)  # tolerate a per-batch "sticky" choice, as Kafka's Java client
    parts = by_partition(lh.read_all(name))
    assert sorted(parts) == [0, 1, 2]
    assert sum(len(v) for v in parts.values()) == 90
