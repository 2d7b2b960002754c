"""The kafka source on the real broker: JSON + malformed records, kill -9 and restart."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from streamml.connectors.examplegen import ExampleGen
from streamml.connectors.kafka import KafkaSource
from tests.connector_helpers import read_topic, write_definition
from tests.unit.test_connectors_ingest import finish, kill_restart

pytestmark = pytest.mark.kafka


def make_topic(bootstrap: str, partitions: int = 3) -> str:
    name = f"src-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()
    return name


def produce(bootstrap: str, topic: str, values: list[bytes | None]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for i, v in enumerate(values):
            producer.send(topic, value=v, key=str(i).encode(), partition=i % 3)
        producer.flush()
    finally:
        producer.close()


def source_ids(bootstrap: str, topic: str, connector: str) -> dict[str, bytes | None]:
    """The source's truth: ``<connector>:<topic>:<partition>:<offset>`` → value."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: dict[str, bytes | None] = {}
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for tp, msgs in consumer.poll(timeout_ms=500).items():
                for m in msgs:
                    out[f"{connector}:{topic}:{tp.partition}:{m.offset}"] = m.value
        return out
    finally:
        consumer.close()


def values(start: int, count: int) -> list[bytes | None]:
    out: list[bytes | None] = []
    for i in range(start, start + count):
        if i % 97 == 0:
            out.append(b"{not json")
        elif i % 101 == 0:
            out.append(b"\xff\xfe")
        elif i % 211 == 0:
            out.append(None)  # tombstone
        else:
            out.append(b'{"n": %d, "v": %d.5}' % (i, i))
    return out


def test_records_in_equal_examples_plus_dead_letters(kafka_bootstrap: str) -> None:
    topic = make_topic(kafka_bootstrap)
    produce(kafka_bootstrap, topic, values(0, 500))
    src = KafkaSource(name="k", bootstrap_servers=kafka_bootstrap, topic=topic, mode="once")
    src.open()
    records = []
    try:
        while not src.exhausted:
            records.extend(src.read(128))
        position = src.position
    finally:
        src.close()
    out = ExampleGen("k", key="n").process(records)
    assert len(records) == 500 == len(out.examples) + len(out.dead_letters)
    assert {e["id"] for e in out.examples} == {
        str(i) for i in range(500) if i % 97 and i % 101 and i % 211}
    assert {d["reason"] for d in out.dead_letters} == {"unparsable", "bad_encoding"}
    assert sum(int(o) for o in position["offsets"].values()) == 500
    # resume: nothing more to read from the end position
    again = KafkaSource(name="k", bootstrap_servers=kafka_bootstrap, topic=topic, mode="once")
    again.open(position)
    try:
        assert again.exhausted and again.read(10) == []
    finally:
        again.close()


@pytest.mark.slow
def test_kill_9_during_kafka_ingest_loses_no_id(tmp_path: Path, kafka_bootstrap: str) -> None:
    topic = make_topic(kafka_bootstrap)
    broker = f"embedded://{tmp_path / 'log'}"
    folder = tmp_path / "connectors"
    write_definition(folder, "kin", type="kafka", pipeline="p",
                     options={"bootstrap_servers": kafka_bootstrap, "topic": topic,
                              "poll_timeout_ms": 100},
                     ingest={"batch_size": 83})
    sent = {"n": 0}

    def feed(count: int) -> object:
        def step() -> None:
            produce(kafka_bootstrap, topic, values(sent["n"], count))
            sent["n"] += count
        return step

    args = ["ingest", "kin", "--dir", str(folder)]
    kill_restart(args, broker, [feed(1500), feed(1000), feed(1200)], random.Random(5))
    every = source_ids(kafka_bootstrap, topic, "kin")
    assert len(every) == sent["n"]
    expected = {i for i, v in every.items() if v and v.startswith(b'{"n"')}
    ids = finish(args, broker, "p.examples", expected)
    assert set(ids) == expected  # no gap, nothing foreign; duplicates (same ids) allowed
    letters = {d["id"] for d in read_topic(broker, "p.deadletter")}
    assert letters == set(every) - expected
