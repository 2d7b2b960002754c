"""ModelSubscriber and the model server on a real Apache Kafka broker."""

from __future__ import annotations

import http.client
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from streamml.client import ModelSubscriber
from streamml.log.kafka import KafkaLog
from streamml.serving import ModelServer
from tests.serving_helpers import INSTANCE, KEY, create_topic, flip_data_byte, publish, release

pytestmark = pytest.mark.kafka


@pytest.fixture
def kafka(kafka_bootstrap: str) -> Iterator[tuple[KafkaLog, str]]:
    pipeline = f"serve-{uuid.uuid4().hex[:8]}"
    with KafkaLog(kafka_bootstrap, {"client_id": "streamml-tests"}) as log:
        topic = create_topic(log, pipeline)
        yield log, pipeline
        log.delete_topic(topic)


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
