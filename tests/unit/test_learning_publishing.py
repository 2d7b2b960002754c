"""Publishing: superseded chunks are tombstoned; outputs are stamped with write time."""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path

import pytest
from river import linear_model

from streamml import serde
from streamml.client.subscriber import ModelSubscriber
from streamml.learning.artifact import dump_model, inline_artifact
from streamml.learning.evaluator import Evaluator
from streamml.learning.gate import GateConfig, MetricThreshold
from streamml.learning.pusher import Pusher
from streamml.learning.trainer import Trainer
from streamml.log import open_log
from streamml.log.base import Log, TopicPartition, TopicSpec
from streamml.log.embedded import EmbeddedLog
from streamml.payloads.artifacts import ModelSignature
from streamml.payloads.candidates import Candidate
from streamml.payloads.evaluations import Evaluation
from streamml.payloads.models import ModelRecord, ModelRelease
from streamml.processors.base import Emit, Message
from streamml.runtime.runner import Runner

KEY = b"k"


def big_model(seed: int, width: int = 3000) -> linear_model.LinearRegression:
    model = linear_model.LinearRegression()
    model.learn_one({f"f{i}": float(i + seed) for i in range(width)}, 1.0)  # ~100 kB pickled
    return model


def small_model(seed: int) -> linear_model.LinearRegression:
    return big_model(seed, width=2)


def cand(cid: str, model: object) -> Message:
    name, seq = cid.split("@")
    value = Candidate(
        id=cid, pipeline="p", model=name, sequence=int(seq), algorithm="lr",
        signature=ModelSignature(task="regression", inputs=[], label="y"), examples_seen=1,
        trained_on=[], created_at=0, artifact=inline_artifact(dump_model(model))).to_json()
    return Message("p.candidates", 0, 0, 0, cid, value)


def blessed(cid: str, t: int = 5) -> Message:
    value = {"id": cid, "pipeline": "p", "candidate_id": cid, "model": cid.split("@")[0],
             "examples": 100, "min_examples": 10, "metrics": {"mae": 0.1}, "blessed": True,
             "reasons": [], "decided_at": t, "checks": [
                 {"metric": "mae", "kind": "value", "direction": "lower", "threshold": 0.5,
                  "value": 0.1, "passed": True}]}
    return Message("p.evaluations", 0, 0, 0, cid, value)


def publish(p: Pusher, cid: str, model: object) -> list[Emit]:
    return list(p.process([cand(cid, model), blessed(cid)]))


def chunk_keys(out: list[Emit]) -> list[str]:
    return [e.key for e in out if not e.is_tombstone and e.key and "/" in e.key]  # type: ignore[misc]


def tombstones(out: list[Emit]) -> list[str]:
    return [str(e.key) for e in out if e.is_tombstone]


def test_pusher_tombstones_chunks_of_superseded_versions() -> None:
    p = Pusher("p", KEY, model_name="tipper", max_message_bytes=20_000)
    v1 = publish(p, "m@1", big_model(1))
    assert chunk_keys(v1) and tombstones(v1) == []
    v2 = publish(p, "m@2", big_model(2))
    # v2's chunks, then v2's release, then (only then) v1's chunks go
    assert tombstones(v2) == chunk_keys(v1)
    last_release = max(i for i, e in enumerate(v2) if e.key == "tipper")
    assert not any(e.is_tombstone for e in v2[:last_release])
    assert tombstones(v2[last_release + 1:]) == chunk_keys(v1)
    assert all(e.encoded_value() is None for e in v2 if e.is_tombstone)
    # state survives a restart: the next version still deletes v2's chunks
    restarted = p.clone()
    restarted.restore(p.snapshot())
    v3 = publish(restarted, "m@3", small_model(3))  # small: published inline
    assert chunk_keys(v3) == [] and tombstones(v3) == chunk_keys(v2)
    v4 = publish(restarted, "m@4", small_model(4))
    assert tombstones(v4) == []  # nothing chunked left to delete


def write(log: Log, emits: list[Emit]) -> None:
    with log.producer() as producer:
        for e in emits:
            producer.send(e.topic, e.encoded_value(), serde.encode_key(e.key),
                          timestamp_ms=e.timestamp_ms)


def test_subscriber_and_compaction_keep_the_latest_version(tmp_path: Path) -> None:
    log = EmbeddedLog(str(tmp_path / "log"))
    log.create_topic(TopicSpec("p.models", cleanup_policy="compact", segment_bytes=1,
                               config={"delete.retention.ms": "0"}))
    p = Pusher("p", KEY, model_name="tipper", max_message_bytes=20_000)
    models = [big_model(i) for i in range(1, 4)]
    live = ModelSubscriber(log, "p", signing_key=KEY)
    seen = []
    last: list[Emit] = []
    for i, model in enumerate(models, start=1):
        last = publish(p, f"m@{i}", model)
        write(log, last)
        seen += [(s.version, s.model.weights == model.weights)
                 for s in live.updates(timeout_s=0.3)]
    assert seen == [(1, True), (2, True), (3, True)]  # tombstones never disturbed it
    assert live.stats["refused"] == 0
    live.close()
    before = log.describe_topic("p.models").records
    log.compact("p.models")
    consumer = log.consumer(None)
    consumer.assign([TopicPartition("p.models", 0)])
    consumer.seek_to_beginning()
    kept = consumer.poll(0.5, 10_000)
    consumer.close()
    live_keys = {serde.decode_key(r.key) for r in kept if r.value is not None}
    assert len(kept) < before  # v1's and v2's chunks are gone (the active segment stays)
    assert live_keys == {"tipper", *chunk_keys(last)}
    # a subscriber starting after compaction loads version 3 from what is left
    with ModelSubscriber(log, "p", signing_key=KEY) as fresh:
        [served] = list(fresh.updates(timeout_s=0.3))
        assert served.version == 3 and served.model.weights == models[-1].weights
    log.close()


# -- write-time stamps -----------------------------------------------------------
OLD = 1_000_000_000_000  # September 2001: a replay of historical data


def example(i: int, split: str) -> bytes:
    rng = random.Random(i)
    x = rng.uniform(-1, 1)
    return serde.encode({"id": f"e{i}", "split": split, "event_time": OLD + 1000 * i,
                         "features": {"x": x}, "label": 2.0 * x})


def test_learning_outputs_carry_event_times_but_are_stamped_when_written(
        tmp_path: Path) -> None:
    log = EmbeddedLog(str(tmp_path / "log"))
    log.create_topic(TopicSpec("p.examples"))
    with log.producer() as producer:
        for i in range(300):
            producer.send("p.examples", example(i, "train" if i % 3 else "eval"),
                          f"e{i}".encode(), timestamp_ms=OLD + 1000 * i)
    gate = GateConfig(min_examples=20, thresholds=[MetricThreshold(metric="mae", upper=5.0)])
    processors = [
        Trainer("p", {"lin": {"numeric": ["x"], "model": "linear_regression"}},
                snapshot_every=50),
        Evaluator("p", gate, window=50),
        Pusher("p", KEY),
    ]
    started = int(time.time() * 1000)
    runner = Runner(log, processors, "p")
    runner.run_until_idle(idle_s=0.2)
    runner.close()
    ended = int(time.time() * 1000)
    for topic in ("p.candidates", "p.evaluations", "p.models"):
        consumer = log.consumer(None)
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        records = consumer.poll(0.5, 10_000)
        consumer.close()
        assert records, topic
        assert all(started <= r.timestamp_ms <= ended for r in records), topic
        for r in records:
            value = serde.decode(r.value)
            if topic == "p.candidates":
                span = Candidate.model_validate(value).event_time
            elif topic == "p.evaluations":
                span = Evaluation.model_validate(value).window
            else:
                item = ModelRecord.model_validate(value).root
                assert isinstance(item, ModelRelease)
                span = item.event_time
            assert span is not None and OLD <= span.start_ms <= span.end_ms < OLD + 300_000
    log.close()


@pytest.mark.kafka
def test_live_subscriber_on_kafka_reads_through_tombstones(kafka_url: str) -> None:
    pipeline = f"pub{uuid.uuid4().hex[:10]}"
    log = open_log(kafka_url)
    try:
        log.create_topic(TopicSpec(f"{pipeline}.models", cleanup_policy="compact"))
        p = Pusher(pipeline, KEY, model_name="tipper", max_message_bytes=20_000)
        models = [big_model(i) for i in range(1, 4)]
        seen, deleted = [], 0
        with ModelSubscriber(log, pipeline, signing_key=KEY) as live:
            for i, model in enumerate(models, start=1):
                out = list(p.process([_on(pipeline, cand(f"m@{i}", model)),
                                      _on(pipeline, blessed(f"m@{i}"))]))
                deleted += len(tombstones(out))
                write(log, out)
                seen += [(s.version, s.model.weights == model.weights)
                         for s in live.updates(timeout_s=3.0)]
            assert live.stats["refused"] == 0
        assert seen == [(1, True), (2, True), (3, True)] and deleted > 0
        with ModelSubscriber(log, pipeline, signing_key=KEY) as fresh:  # from the start
            assert [s.version for s in fresh.updates(timeout_s=3.0)] == [3]
    finally:
        log.delete_topic(f"{pipeline}.models")
        log.close()


def _on(pipeline: str, msg: Message) -> Message:
    """``msg`` as read from ``pipeline``'s topics."""
    topic = msg.topic.replace("p.", f"{pipeline}.", 1)
    value = {**msg.value, "pipeline": pipeline}
    return Message(topic, msg.partition, msg.offset, msg.timestamp_ms, msg.key, value)
