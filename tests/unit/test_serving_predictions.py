"""Prediction logging (``serve --log-predictions``) on the embedded log, and serving skew."""

from __future__ import annotations

import http.client
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamml import serde
from streamml.log import Log, open_log
from streamml.log.base import Producer
from streamml.log.read import read_to_end
from streamml.payloads.anomalies import Alert
from streamml.payloads.predictions import Prediction
from streamml.runtime.runner import Runner
from streamml.serving import ModelServer
from streamml.serving.predlog import PredictionLog, records
from streamml.statistics.processor import StatisticsGen
from streamml.validation.serving_skew import (
    serving_skew_validator,
    serving_statistics_gen,
    training_reference,
)
from tests.serving_helpers import INSTANCE, KEY, create_topic, publish, release, wait_for

P = "demo"


def read_topic(log: Log, topic: str) -> list[tuple[str, dict[str, Any]]]:
    """Every (key, value) of ``topic``, partition by partition."""
    return [(r.key.decode(), serde.decode(r.value)) for r in read_to_end(log, topic)]


def post(port: int, path: str, body: Any, headers: dict[str, str] | None = None
         ) -> tuple[int, Any, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=orjson.dumps(body),
                     headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, orjson.loads(resp.read()), dict(resp.getheaders())
    finally:
        conn.close()


def metrics(port: int) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/monitoring/prometheus/metrics")
        resp = conn.getresponse()
        assert resp.status == 200
        text = resp.read().decode()
    finally:
        conn.close()
    return {line.split()[0]: float(line.split()[1])
            for line in text.splitlines() if line and not line.startswith("#")}


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Log]:
    with open_log(f"embedded://{tmp_path / 'log'}") as embedded:
        create_topic(embedded)
        publish(embedded, *release(1))
        yield embedded


# -- the queue and the writer ---------------------------------------------------------------
json_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8) \
    | st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                           max_leaves=6)


@given(instances=st.lists(st.dictionaries(st.text(min_size=1, max_size=6), json_values,
                                          max_size=5), min_size=1, max_size=4))
@settings(max_examples=60, deadline=None)
def test_records_are_valid_predictions_keeping_instances_as_received(
        instances: list[dict[str, Any]]) -> None:
    preds = [0.5] * len(instances)
    out = records(("tipper", 2, "req-9", instances, preds, 1_700_000_000_000), P, "h:1")
    assert [k for k, _, _ in out] == [f"req-9:{i}".encode() for i in range(len(instances))]
    for (_, value, ts), inst in zip(out, instances, strict=True):
        p = Prediction.model_validate(serde.decode(value))
        assert ts == p.event_time and p.split == "serving" and p.version == 2
        for name, v in inst.items():  # scalars and flat lists as is, the rest as JSON text
            flat = not isinstance(v, dict) and not (
                isinstance(v, list) and any(isinstance(x, list | dict) for x in v))
            assert p.features[name] == (v if flat else orjson.dumps(v).decode())


class _Broken(Producer):
    def send(self, topic: str, value: bytes | None, key: bytes | None = None, **kw: Any) -> None:
        raise OSError("broker down")

    def flush(self, timeout_s: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_full_queue_drops_and_counts_and_warns_once(
        log: Log, caplog: pytest.LogCaptureFixture) -> None:
    plog = PredictionLog(log, P, source="h:1", max_pending=5)  # not started: nothing drains
    with caplog.at_level(logging.WARNING, logger="streamml.serving"):
        accepted = [plog.offer("tipper", 1, f"r{i}", [INSTANCE] * 2, [0.1, 0.2], 5)
                    for i in range(6)]
    assert accepted == [True, True, False, False, False, False]
    assert sum("queue full" in r.message for r in caplog.records) == 1
    plog.start()
    plog.stop()
    c = plog.counts()
    assert (c["offered"], c["logged"], c["dropped"], c["pending"]) == (12, 4, 8, 0)
    keys = sorted(k for k, _ in read_topic(log, f"{P}.predictions"))
    assert keys == ["r0:0", "r0:1", "r1:0", "r1:1"]


def test_a_failing_broker_counts_failures_and_never_raises(log: Log) -> None:
    plog = PredictionLog(log, P, source="h:1").start()
    assert plog._producer is not None
    plog._producer.close()
    plog._producer = _Broken()
    assert plog.offer("tipper", 1, "r", [INSTANCE] * 3, [0.1] * 3, 5)
    plog.stop()
    c = plog.counts()
    assert (c["offered"], c["failed"], c["logged"], c["pending"]) == (3, 3, 0, 0)


# -- the server ------------------------------------------------------------------------------
def test_server_logs_every_answered_instance_as_sent(log: Log) -> None:
    rng = np.random.default_rng(3)
    sent: list[tuple[str | None, list[dict[str, Any]]]] = []
    answers: dict[str, list[Any]] = {}
    with ModelServer(log, P, signing_key=KEY, port=0, log_predictions=True) as server:
        assert server.wait_ready(60)
        for i in range(30):
            n = int(rng.integers(1, 6))
            batch = [{"fare": float(rng.uniform(1, 50)), "trip_miles": float(rng.uniform(0, 9)),
                      "passengers": int(rng.integers(1, 5)), "row": i * 10 + j, "tags": ["a"]}
                     for j in range(n)]
            given = f"client-{i}" if i % 3 == 0 else None
            status, body, headers = post(server.port, "/v1/models/tipper:predict",
                                         {"instances": batch},
                                         {"X-Request-Id": given} if given else None)
            assert status == 200
            rid = headers["X-Request-Id"]
            assert rid == given if given else rid
            sent.append((rid, batch))
            answers[rid] = body["predictions"]
        # refused requests log nothing
        assert post(server.port, "/v1/models/tipper:predict",
                    {"instances": [{"fare": "cheap"}]})[0] == 400
        assert post(server.port, "/v1/models/nope:predict", {"instances": [INSTANCE]})[0] == 404
        wait_for(lambda: metrics(server.port)["streamml_predictions_pending"] == 0,
                 what="the prediction log to drain")
        m = metrics(server.port)
    total = sum(len(b) for _, b in sent)
    assert m["streamml_predictions_offered_total"] == total
    assert m["streamml_predictions_logged_total"] + m["streamml_predictions_dropped_total"] \
        == total
    assert m["streamml_predictions_dropped_total"] == 0
    got = {k: Prediction.model_validate(v) for k, v in read_topic(log, f"{P}.predictions")}
    assert len(got) == total
    for rid, batch in sent:
        for j, inst in enumerate(batch):
            p = got[f"{rid}:{j}"]
            assert (p.request_id, p.index, p.model, p.version) == (rid, j, "tipper", 1)
            assert p.features == inst
            assert p.prediction == answers[rid][j]


def test_server_drops_rather_than_waits_when_the_queue_is_full(log: Log) -> None:
    with ModelServer(log, P, signing_key=KEY, port=0, log_predictions=True,
                     prediction_queue=1) as server:
        assert server.wait_ready(60)
        for n in (1, 2, 3, 1):  # requests of 2+ instances never fit in a queue of 1
            assert post(server.port, "/v1/models/tipper:predict",
                        {"instances": [INSTANCE] * n})[0] == 200
            wait_for(lambda: metrics(server.port)["streamml_predictions_pending"] == 0,
                     what="the prediction log to drain")
        m = metrics(server.port)
    assert (m["streamml_predictions_logged_total"],
            m["streamml_predictions_dropped_total"]) == (2, 5)
    assert len(read_topic(log, f"{P}.predictions")) == 2


def test_without_the_option_nothing_is_logged(log: Log) -> None:
    with ModelServer(log, P, signing_key=KEY, port=0) as server:
        assert server.wait_ready(60)
        status, _, headers = post(server.port, "/v1/models/tipper:predict",
                                  {"instances": [INSTANCE]})
        assert status == 200 and "X-Request-Id" not in headers
        assert metrics(server.port)["streamml_prediction_log_enabled"] == 0
    assert not log.topic_exists(f"{P}.predictions")


# -- serving statistics and the skew check -----------------------------------------------
def _rows(rng: np.random.Generator, n: int, fare_scale: float = 1.0) -> list[dict[str, Any]]:
    return [{"fare": round(float(f) * fare_scale, 2), "trip_miles": round(float(m), 2),
             "passengers": int(p)}
            for f, m, p in zip(rng.lognormal(2.3, 0.5, n), rng.lognormal(1.0, 0.6, n),
                               rng.integers(1, 5, n), strict=True)]


def test_served_instances_feed_the_training_serving_skew_check(log: Log) -> None:
    rng = np.random.default_rng(11)
    with log.producer() as producer:  # training examples, then their statistics
        log.create_topic(log_spec(f"{P}.examples"), exist_ok=True)
        for i, row in enumerate(_rows(rng, 3000)):
            producer.send(f"{P}.examples", serde.encode(
                {"id": f"t{i}", "source": "train", "event_time": 1000 + i, "ingest_time": 1000 + i,
                 "split": "train", "features": row}), f"t{i}".encode())
        producer.flush()
    with Runner(log, [StatisticsGen(f"{P}.examples", f"{P}.statistics", pipeline=P,
                                    count_window=1000, cumulative=False)], P) as runner:
        runner.run_until_idle(idle_s=0.3, timeout_s=120)
    reference = training_reference(log, P)
    assert reference.num_examples == 3000

    def serve_and_check(fare_scale: float) -> set[tuple[str, str | None]]:
        rows = _rows(rng, 1000, fare_scale)
        served[0] += len(rows)
        for i in range(0, len(rows), 50):
            assert post(server.port, "/v1/models/tipper:predict",
                        {"instances": rows[i:i + 50]})[0] == 200
        wait_for(lambda: metrics(server.port)["streamml_predictions_pending"] == 0,
                 what="the prediction log to drain")
        runner.run_until_idle(idle_s=0.3, timeout_s=120)
        windows = [v for _, v in read_topic(log, f"{P}.statistics") if v["split"] == "serving"]
        assert len(windows) == served[0] // 500  # the check really ran on serving windows
        alerts = [Alert.model_validate(v) for _, v in read_topic(log, f"{P}.anomalies")]
        return {(a.type, a.feature) for a in alerts if a.type == "SKEW" and a.status != "resolved"}

    served = [0]
    processors = [serving_statistics_gen(P, count_window=500), serving_skew_validator(P, reference)]
    with ModelServer(log, P, signing_key=KEY, port=0, log_predictions=True) as server, \
            Runner(log, processors, P) as runner:
        assert server.wait_ready(60)
        assert serve_and_check(1.0) == set()
        assert serve_and_check(3.0) == {("SKEW", "fare")}


def log_spec(topic: str) -> Any:
    from streamml.runtime.runner import topic_spec

    return topic_spec(P, topic)


def test_serving_skew_steps_wire_into_a_pipeline(tmp_path: Path) -> None:
    from streamml.payloads.statistics import StatisticsWindow, Window
    from streamml.pipeline.graph import Pipeline
    from streamml.validation.serving_skew import serving_skew_steps

    ref = StatisticsWindow(pipeline=P, split="train", num_examples=0, features={},
                           window=Window(id="reference", kind="cumulative"), created_at=0)
    pipe = Pipeline(name=P, components=serving_skew_steps(P, ref),
                    external=[f"{P}.predictions"], settings={"broker": f"embedded://{tmp_path}"})
    assert [c.name for c in pipe.order] == ["serving_statistics_gen", "serving_skew_validator"]
