"""Property: any sequence of sends, read back in full, equals a per-partition list model."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conformance.helpers import LogHelper, base_timestamp, by_partition, kafka_partition

MAX_PARTITIONS = 4
KEYS = st.one_of(st.none(), st.sampled_from([b"", b"a", b"b", b"user-1", b"\x00\xff"]), st.binary())
VALUES = st.one_of(st.none(), st.binary(max_size=64))
HEADER_KEYS = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=5)


@dataclass(frozen=True)
class Send:
    key: bytes | None
    value: bytes | None
    partition: int | None
    ts_offset: int | None
    headers: tuple[tuple[str, bytes], ...]


def sends(partitions: int) -> st.SearchStrategy[list[Send]]:
    one = st.builds(
        Send,
        key=KEYS,
        value=VALUES,
        partition=st.one_of(st.none(), st.integers(0, partitions - 1)),
        ts_offset=st.one_of(st.none(), st.integers(0, 100_000)),
        headers=st.lists(st.tuples(HEADER_KEYS, st.binary(max_size=8)), max_size=2).map(tuple),
    )
    return st.lists(one, max_size=60)


def check_sequence(lh: LogHelper, partitions: int, ops: list[Send], flush_every: int) -> None:
    name = lh.topic(partitions=partitions, stem="prop")
    base = base_timestamp()
    producer = lh.producer()
    for i, op in enumerate(ops):
        producer.send(
            name,
            op.value,
            op.key,
            partition=op.partition,
            timestamp_ms=None if op.ts_offset is None else base + op.ts_offset,
            # A sequence number in the headers ties each read record to its send.
            headers=(("seq", str(i).encode()), *op.headers),
        )
        if (i + 1) % flush_every == 0:
            producer.flush(30)
    producer.flush(30)
    lh.close(producer)

    got = by_partition(lh.read_all(name))
    # Where each send must land (None: unkeyed and unpinned, any partition will do).
    pinned = [
        op.partition
        if op.partition is not None
        else (kafka_partition(op.key, partitions) if op.key is not None else None)
        for op in ops
    ]
    seen: list[int] = []
    for partition, records in got.items():
        seqs = [int(r.headers[0][1]) for r in records]
        # The model: each partition holds its sends in send order at offsets 0, 1, 2, ...
        assert seqs == sorted(seqs), f"partition {partition} out of order: {seqs}"
        assert [r.offset for r in records] == list(range(len(records)))
        for record, seq in zip(records, seqs, strict=True):
            op = ops[seq]
            assert pinned[seq] in (None, partition), (seq, op, partition)
            assert (record.key, record.value) == (op.key, op.value), seq
            assert record.headers == (("seq", str(seq).encode()), *op.headers), seq
            if op.ts_offset is not None:
                assert record.timestamp_ms == base + op.ts_offset, seq
        seen.extend(seqs)
    assert sorted(seen) == list(range(len(ops)))
    ends = lh.log.describe_topic(name).partitions
    assert {p.partition: p.end_offset for p in ends} == {
        p: len(got.get(p, [])) for p in range(partitions)
    }


def test_any_sequence_of_sends_reads_back_as_a_per_partition_list_model(lh: LogHelper) -> None:
    examples = 40 if lh.kind == "embedded" else 8

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        data=st.data(), partitions=st.integers(1, MAX_PARTITIONS), flush_every=st.integers(1, 20)
    )
    def run(data: st.DataObject, partitions: int, flush_every: int) -> None:
        ops = data.draw(sends(partitions), label="sends")
        check_sequence(lh, partitions, ops, flush_every)

    run()
