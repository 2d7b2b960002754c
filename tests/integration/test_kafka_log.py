"""KafkaLog against a real Apache Kafka broker (the ``kafka_bootstrap`` fixture)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from streamml.errors import BrokerUnavailable, ConfigError, TopicExists, UnknownTopic
from streamml.log import TopicPartition, TopicSpec
from streamml.log.kafka import KafkaLog

pytestmark = pytest.mark.kafka

KCAT = shutil.which("kcat") or "/usr/bin/kcat"


@pytest.fixture
def log(kafka_bootstrap: str) -> Iterator[KafkaLog]:
    with KafkaLog(kafka_bootstrap, {"client_id": "streamml-tests"}) as kafka_log:
        yield kafka_log


def _name(prefix: str = "t") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


def _poll_all(consumer, want: int, timeout_s: float = 20.0) -> list:  # type: ignore[no-untyped-def]
    out: list = []
    deadline = time.monotonic() + timeout_s
    while len(out) < want and time.monotonic() < deadline:
        out += consumer.poll(timeout_s=0.5)
    return out


def test_topic_lifecycle_round_trips_the_spec(log: KafkaLog) -> None:
    spec = TopicSpec(
        name=_name("cfg"),
        partitions=3,
        cleanup_policy="compact",
        retention_ms=3_600_000,
        retention_bytes=10 << 20,
        segment_bytes=1 << 20,
        config={"max.message.bytes": "2000000"},
    )
    assert log.create_topic(spec) is True
    assert log.create_topic(spec) is False
    with pytest.raises(TopicExists):
        log.create_topic(spec, exist_ok=False)
    assert spec.name in log.list_topics()
    assert log.topic_exists(spec.name)
    info = log.describe_topic(spec.name)
    assert info.spec == spec
    assert [p.partition for p in info.partitions] == [0, 1, 2]
    assert info.records == 0
    log.delete_topic(spec.name)
    assert spec.name not in log.list_topics()
    with pytest.raises(UnknownTopic):
        log.describe_topic(spec.name)
    with pytest.raises(UnknownTopic):
        log.delete_topic(spec.name)


def test_default_spec_means_keep_forever(log: KafkaLog) -> None:
    spec = TopicSpec(name=_name("dflt"))
    log.create_topic(spec)
    assert log.describe_topic(spec.name).spec == spec  # retention -1 read back as None
    assert not any(t.startswith("__") for t in log.list_topics())
    log.delete_topic(spec.name)


def test_invalid_topics_are_config_errors(log: KafkaLog) -> None:
    with pytest.raises(ConfigError):
        log.create_topic(TopicSpec(name="bad name with spaces"))
    with pytest.raises(ConfigError):
        log.create_topic(TopicSpec(name=_name(), partitions=0))


def test_produce_consume_commit_and_seek(log: KafkaLog) -> None:
    topic = _name("pc")
    log.create_topic(TopicSpec(name=topic, partitions=2))
    t0 = int(time.time() * 1000) - 10_000
    with log.producer() as producer:
        for i in range(50):
            producer.send(
                topic, f"v{i}".encode(), f"k{i % 5}".encode(),
                timestamp_ms=t0 + i, headers=(("n", str(i).encode()),),
            )  # fmt: skip
        producer.send(topic, None, b"k0", partition=1, timestamp_ms=t0 + 50)  # tombstone
        producer.flush()
    info = log.describe_topic(topic)
    assert info.records == 51

    with log.consumer("g1") as consumer:
        consumer.subscribe([topic])
        assert consumer.assignment() == {TopicPartition(topic, 0), TopicPartition(topic, 1)}
        records = _poll_all(consumer, 51)
        assert len(records) == 51
        for p in (0, 1):
            offsets = [r.offset for r in records if r.partition == p]
            assert offsets == list(range(len(offsets)))
        by_value = {r.value: r for r in records}
        assert by_value[b"v7"].key == b"k2"
        assert by_value[b"v7"].headers == (("n", b"7"),)
        assert by_value[b"v7"].timestamp_ms == t0 + 7
        assert by_value[None].key == b"k0"
        # Same key, same partition (murmur2, Kafka's default partitioner).
        assert len({r.partition for r in records if r.key == b"k3"}) == 1
        consumer.commit()
        ends = consumer.end_offsets(consumer.assignment())
        assert sum(ends.values()) == 51
        for tp, end in ends.items():
            assert consumer.committed(tp) == end
        tp0 = TopicPartition(topic, 0)
        consumer.seek(tp0, 1)
        assert consumer.position(tp0) == 1
        assert consumer.beginning_offsets([tp0]) == {tp0: 0}

    with log.consumer("g1") as again:  # resumes at the committed offsets
        again.subscribe([topic])
        assert again.poll(timeout_s=1.0) == []

    with log.consumer() as reader:  # no group: manual assignment, time lookups
        tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        reader.assign(tps)
        found = reader.offsets_for_times({tp: t0 + 25 for tp in tps})
        assert all(v is not None for v in found.values())
        assert reader.offsets_for_times({tps[0]: t0 + 10**9}) == {tps[0]: None}
        reader.seek_to_time(t0 + 25)
        later = _poll_all(reader, 51 - 25)
        assert sorted(r.timestamp_ms for r in later) == [t0 + i for i in range(25, 51)]
        with pytest.raises(ConfigError):
            reader.commit()
    log.delete_topic(topic)


def test_send_many(log: KafkaLog) -> None:
    topic = _name("many")
    log.create_topic(TopicSpec(name=topic, partitions=3))
    values = [str(i).encode() for i in range(5_000)]
    with log.producer() as producer:
        producer.send_many(topic, values)
        producer.send_many(topic, values[:10], [b"k"] * 10)
    assert log.describe_topic(topic).records == 5_010
    log.delete_topic(topic)


def test_send_to_unknown_topic_is_quick(log: KafkaLog) -> None:
    with log.producer() as producer:
        start = time.monotonic()
        with pytest.raises(UnknownTopic, match="nope"):
            producer.send(_name("nope"), b"x")
        assert time.monotonic() - start < 5
        topic = _name("p")
        log.create_topic(TopicSpec(name=topic, partitions=1))
        with pytest.raises(UnknownTopic):
            producer.send(topic, b"x", partition=3)
    log.delete_topic(topic)


def test_unreachable_broker_fails_fast_and_clearly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends
    start = time.monotonic()
    with pytest.raises(BrokerUnavailable) as err, KafkaLog(f"127.0.0.1:{port}", {}) as dead:
        dead.list_topics()
    assert time.monotonic() - start < 15
    message = str(err.value)
    assert f"127.0.0.1:{port}" in message and "\n" not in message


def test_kcat_reads_what_we_produce(log: KafkaLog, kafka_bootstrap: str) -> None:
    topic = _name("kcat")
    log.create_topic(TopicSpec(name=topic, partitions=1))
    payloads = [json.dumps({"id": i, "x": i * 0.5}).encode() for i in range(3)]
    with log.producer() as producer:
        for i, payload in enumerate(payloads):
            producer.send(topic, payload, f"id-{i}".encode(), headers=(("schema", b"v1"),))
    out = subprocess.run(
        [KCAT, "-b", kafka_bootstrap, "-C", "-t", topic, "-e", "-J", "-q"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    messages = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert [m["offset"] for m in messages] == [0, 1, 2]
    assert [m["key"] for m in messages] == ["id-0", "id-1", "id-2"]
    assert [json.loads(m["payload"]) for m in messages] == [json.loads(p) for p in payloads]
    assert messages[0]["headers"] == ["schema", "v1"]
    log.delete_topic(topic)


def test_we_read_what_kcat_produces(log: KafkaLog, kafka_bootstrap: str) -> None:
    topic = _name("kcatp")
    log.create_topic(TopicSpec(name=topic, partitions=1))
    lines = "".join(f"k{i}:{json.dumps({'n': i})}\n" for i in range(4))
    subprocess.run(
        [KCAT, "-b", kafka_bootstrap, "-P", "-t", topic, "-K:", "-H", "src=kcat"],
        input=lines, text=True, timeout=60, check=True,
    )  # fmt: skip
    with log.consumer() as consumer:
        consumer.assign([TopicPartition(topic, 0)])
        records = _poll_all(consumer, 4)
    assert [r.key for r in records] == [b"k0", b"k1", b"k2", b"k3"]
    assert [json.loads(r.value) for r in records] == [{"n": i} for i in range(4)]
    assert records[0].headers == (("src", b"kcat"),)
    log.delete_topic(topic)


def test_big_records_up_to_max_request_size(log: KafkaLog) -> None:
    """Records up to ``max_request_size`` (16 MiB + 64 KiB by default, what the catalog's
    models/checkpoints topics allow) go through; bigger ones are a ConfigError."""
    topic = _name("big")
    log.create_topic(TopicSpec(name=topic, partitions=1, config={"max.message.bytes": "16777216"}))
    seven, nine, seventeen = b"7" * (7 << 20), b"9" * (9 << 20), b"x" * (17 << 20)
    with log.producer(max_request_size=8 << 20) as small:
        small.send(topic, seven, b"k7")
        small.flush(60)
        with pytest.raises(ConfigError, match="max_request_size"):
            small.send(topic, nine)
        with pytest.raises(ConfigError, match="max_request_size"):
            small.send_many(topic, [nine])
            small.flush(60)
    with log.producer() as default:
        default.send_many(topic, [nine])
        default.flush(60)
        with pytest.raises(ConfigError, match="max_request_size"):
            default.send(topic, seventeen)
    with log.consumer() as consumer:
        consumer.assign([TopicPartition(topic, 0)])
        records = _poll_all(consumer, 2, timeout_s=60)
    assert [(r.offset, len(r.value or b"")) for r in records] == [(0, 7 << 20), (1, 9 << 20)]
    log.delete_topic(topic)


def test_many_sends_keep_order_and_close_stops_everything(kafka_bootstrap: str) -> None:
    import threading

    kafka_log = KafkaLog(kafka_bootstrap, {})
    topic = _name("order")
    kafka_log.create_topic(TopicSpec(name=topic, partitions=2))
    producer = kafka_log.producer(batch_size=4096)  # many small batches
    for i in range(20_000):
        producer.send(topic, b"%d" % i, partition=i % 2)
    producer.send_many(topic, [b"x"] * 10, partition=1)
    producer.flush(60)
    consumer = kafka_log.consumer("g-order")
    consumer.subscribe([topic])
    records = _poll_all(consumer, 20_010, timeout_s=60)
    assert len(records) == 20_010
    for p in (0, 1):
        values = [r.value for r in records if r.partition == p]
        assert values[:10_000] == [b"%d" % i for i in range(p, 20_000, 2)]
    kafka_log.delete_topic(topic)
    kafka_log.close()  # closes the producer, the consumer and the event loop thread
    assert not [t for t in threading.enumerate() if t.name.startswith("streamml-kafka")]
    with pytest.raises(ConfigError):
        producer.send(topic, b"late")
