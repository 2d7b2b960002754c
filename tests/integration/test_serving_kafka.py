"""ModelSubscriber and the model server on a real Apache Kafka broker."""

from __future__ import annotations

import http.client
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from streamml.client import ModelSubscriber
from streamml.log.kafka import KafkaLog
from streamml.serving import ModelServer
from tests.serving_helpers import (
    INSTANCE,
    KEY,
    create_topic,
    flip_data_byte,
    publish,
    release,
    wait_for,
)

pytestmark = pytest.mark.kafka


@pytest.fixture
def kafka(kafka_bootstrap: str) -> Iterator[tuple[KafkaLog, str]]:
    pipeline = f"serve-{uuid.uuid4().hex[:8]}"
    with KafkaLog(kafka_bootstrap, {"client_id": "streamml-tests"}) as log:
        topic = create_topic(log, pipeline)
        yield log, pipeline
        log.delete_topic(topic)
        if log.topic_exists(f"{pipeline}.predictions"):
            log.delete_topic(f"{pipeline}.predictions")


def test_subscriber_on_kafka_verifies_reassembles_and_resumes(
    kafka: tuple[KafkaLog, str], tmp_path: Path
) -> None:
    log, pipeline = kafka
    topic = f"{pipeline}.models"
    publish(log, *release(1, pipeline=pipeline), topic=topic)
    publish(log, *release(2, pipeline=pipeline, chunk_size=100), topic=topic)
    state = tmp_path / "state.json"
    with ModelSubscriber(log, pipeline, signing_key=KEY, state_path=state) as sub:
        assert sub.catch_up(timeout_s=60)
        assert [m.version for m in sub.updates(timeout_s=1)] == [2]
        good, _ = release(3, pipeline=pipeline)
        publish(log, good, topic=topic, value=flip_data_byte(good))
        publish(log, *release(4, pipeline=pipeline, chunk_size=100), topic=topic)
        got = list(sub.updates(timeout_s=5))
        assert [m.version for m in got] == [4]
        assert sub.stats["refused:bad_signature"] == 1
        assert isinstance(got[0].predict([INSTANCE])[0], float)
    with ModelSubscriber(log, pipeline, signing_key=KEY, state_path=state) as sub:
        assert sub.catch_up(timeout_s=60)
        assert list(sub.updates(timeout_s=1)) == []
        assert sub.latest("tipper").version == 4  # type: ignore[union-attr]


def test_server_on_kafka_serves_the_latest_verified_version(kafka: tuple[KafkaLog, str]) -> None:
    log, pipeline = kafka
    topic = f"{pipeline}.models"
    publish(log, *release(1, pipeline=pipeline), topic=topic)
    publish(log, *release(2, pipeline=pipeline, key=None), topic=topic)
    with ModelServer(log, pipeline, signing_key=KEY, port=0) as server:
        assert server.wait_ready(60)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            conn.request("POST", "/v1/models/tipper:predict",
                         body=orjson.dumps({"instances": [INSTANCE]}))
            resp = conn.getresponse()
            body = orjson.loads(resp.read())
        finally:
            conn.close()
    assert resp.status == 200 and body["model_version"] == 1


def _post(port: int, path: str, body: object, headers: dict[str, str] | None = None
          ) -> tuple[int, dict, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=orjson.dumps(body), headers=headers or {})
        resp = conn.getresponse()
        return resp.status, orjson.loads(resp.read()), dict(resp.getheaders())
    finally:
        conn.close()


def _metrics(port: int) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/monitoring/prometheus/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return {ln.split()[0]: float(ln.split()[1])
            for ln in text.splitlines() if ln and not ln.startswith("#")}


def test_server_on_kafka_logs_predictions_that_kcat_reads(
        kafka: tuple[KafkaLog, str], kafka_bootstrap: str) -> None:
    log, pipeline = kafka
    publish(log, *release(1, pipeline=pipeline), topic=f"{pipeline}.models")
    sent: dict[str, tuple[dict, object]] = {}
    with ModelServer(log, pipeline, signing_key=KEY, port=0, log_predictions=True) as server:
        assert server.wait_ready(60)
        for i in range(20):
            batch = [{**INSTANCE, "fare": float(i + j), "row": f"{i}/{j}"}
                     for j in range(i % 4 + 1)]
            status, body, headers = _post(server.port, "/v1/models/tipper:predict",
                                          {"instances": batch}, {"X-Request-Id": f"kafka-{i}"})
            assert status == 200 and headers["X-Request-Id"] == f"kafka-{i}"
            for j, (inst, pred) in enumerate(zip(batch, body["predictions"], strict=True)):
                sent[f"kafka-{i}:{j}"] = (inst, pred)
        wait_for(lambda: _metrics(server.port)["streamml_predictions_pending"] == 0,
                 timeout_s=60, what="the prediction log to drain")
        m = _metrics(server.port)
    assert m["streamml_predictions_offered_total"] == len(sent)
    assert m["streamml_predictions_logged_total"] + m["streamml_predictions_dropped_total"] \
        == len(sent)
    proc = subprocess.run(  # noqa: S603 - fixed binary, test input
        ["/usr/bin/kcat", "-b", kafka_bootstrap, "-C", "-t", f"{pipeline}.predictions",
         "-e", "-q", "-J"], capture_output=True, text=True, timeout=60, check=True)
    envelopes = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    got = {e["key"]: json.loads(e["payload"]) for e in envelopes}
    assert len(envelopes) == m["streamml_predictions_logged_total"] == len(sent)
    assert set(got) == set(sent)
    for key, (inst, pred) in sent.items():
        record = got[key]
        assert record["features"] == inst and record["prediction"] == pred
        assert (record["model"], record["version"], record["split"]) == ("tipper", 1, "serving")
