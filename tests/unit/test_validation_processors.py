"""SchemaGen, StatisticsGen and ExampleValidator through the embedded Runner on taxi rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from streamml.log.base import TopicPartition
from streamml.log.embedded import EmbeddedLog
from streamml.payloads.anomalies import Alert
from streamml.payloads.deadletter import DeadLetter
from streamml.payloads.schema import SchemaVersion
from streamml.runtime.runner import Runner
from streamml.serde import decode, encode
from streamml.statistics.processor import StatisticsGen
from streamml.validation.schema import infer_schema, read_table
from streamml.validation.schemagen import SchemaGen
from streamml.validation.validator import ExampleValidator

TAXI = Path(__file__).resolve().parents[2] / "streamml" / "data" / "taxi.csv"
P = "taxi"


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EmbeddedLog]:
    with EmbeddedLog(tmp_path / "log") as embedded:
        yield embedded


def _examples(n: int, fault_from: int | None = None) -> list[dict]:
    table = read_table(TAXI)  # the file is not stationary in its row order: shuffle it
    rows = table.take(np.random.default_rng(7).permutation(table.num_rows)[:n]).to_pylist()
    out = []
    for i, row in enumerate(rows):
        if fault_from is not None and i >= fault_from:
            row["fare"] = (row["fare"] or 0) * 1.5
            if i % 500 == 0:
                row["payment_type"] = "Bitcoin"
        out.append({"id": f"taxi.csv:{i}", "source": "taxi", "split": "train",
                    "event_time": 1_700_000_000_000 + i, "ingest_time": 1_700_000_000_000 + i,
                    "features": row})
    return out


def _produce(log: EmbeddedLog, values: list[dict]) -> None:
    runner = Runner(log, [], P)  # creates nothing; make the topic via the catalog spec
    runner._ensure(f"{P}.examples")
    with log.producer() as producer:
        for v in values:
            producer.send(f"{P}.examples", encode(v), v["id"].encode(),
                          timestamp_ms=v["event_time"])


def _read(log: EmbeddedLog, topic: str) -> list:  # type: ignore[type-arg]
    if not log.topic_exists(topic):
        return []
    tps = [TopicPartition(topic, p.partition) for p in log.describe_topic(topic).partitions]
    out: list = []
    with log.consumer() as consumer:
        consumer.assign(tps)
        consumer.seek_to_beginning(tps)
        while batch := consumer.poll(0.1):
            out += [decode(r.value) for r in batch]
    return out


def test_quarantine_policy_counts_and_one_alert_per_cause(log: EmbeddedLog) -> None:
    schema = infer_schema(TAXI, pipeline=P, created_at=0)
    values = _examples(3000, fault_from=None)
    for i in (10, 20, 30):
        values[i]["features"]["payment_type"] = "Bitcoin"
    values[40]["features"]["fare"] = -5.0
    _produce(log, values)
    v = ExampleValidator(f"{P}.examples", f"{P}.anomalies", schema=schema, policy="quarantine")
    runner = Runner(log, [v], P, idle_after_s=60)
    runner.run_until_idle(idle_s=0.1, timeout_s=60)
    assert (v.passed, v.quarantined) == (2996, 4)
    assert v.passed + v.quarantined == runner.stats()[0].records_in == 3000
    runner.close()
    letters = [DeadLetter.model_validate(x) for x in _read(log, f"{P}.deadletter")]
    assert sorted(d.example_id or "" for d in letters) == [
        "taxi.csv:10", "taxi.csv:20", "taxi.csv:30", "taxi.csv:40"]
    assert {d.reason for d in letters} == {"quarantined"}
    alerts = [Alert.model_validate(x) for x in _read(log, f"{P}.anomalies")]
    opened = Counter((a.type, a.feature) for a in alerts if a.status == "open")
    assert opened == {("ENUM_TYPE_UNEXPECTED_STRING_VALUES", "payment_type"): 1,
                      ("FLOAT_TYPE_SMALL_FLOAT", "fare"): 1}
    enum = [a for a in alerts if a.type.startswith("ENUM")]
    assert max(a.count for a in enum) == 3
    assert enum[-1].status == "resolved" and "taxi.csv:30" in enum[-1].example_ids


def test_flag_policy_passes_everything(log: EmbeddedLog) -> None:
    schema = infer_schema(TAXI, pipeline=P, created_at=0)
    values = _examples(1000)
    values[5]["features"]["tolls"] = 3.0
    _produce(log, values)
    v = ExampleValidator(f"{P}.examples", f"{P}.anomalies", schema=schema)
    with Runner(log, [v], P, idle_after_s=60) as runner:
        runner.run_until_idle(idle_s=0.1, timeout_s=60)
    assert (v.passed, v.quarantined) == (1000, 0)
    assert _read(log, f"{P}.deadletter") == []
    [alert] = [Alert.model_validate(x) for x in _read(log, f"{P}.anomalies")][:1]
    assert (alert.type, alert.feature, alert.example_ids) == (
        "SCHEMA_NEW_COLUMN", "tolls", ["taxi.csv:5"])


def test_pipeline_schemagen_statistics_validator_detects_drift(log: EmbeddedLog) -> None:
    _produce(log, _examples(6000, fault_from=4000))
    procs = [
        SchemaGen(f"{P}.examples", f"{P}.schema", f"{P}.anomalies", infer_from=2000,
                  auto_evolve=True),
        StatisticsGen(f"{P}.examples", f"{P}.statistics", count_window=1000, cumulative=False),
        ExampleValidator(f"{P}.examples", f"{P}.anomalies", schema_topic=f"{P}.schema",
                         statistics_topic=f"{P}.statistics"),
    ]
    with Runner(log, procs, P, idle_after_s=60) as runner:
        runner.run_until_idle(idle_s=0.2, timeout_s=120)
    schemas = [SchemaVersion.model_validate(x) for x in _read(log, f"{P}.schema")]
    assert schemas[0].version == 1 and schemas[-1].version >= 2  # evolved, no crash
    assert "Bitcoin" in (schemas[-1].features["payment_type"].domain or [])
    alerts = [Alert.model_validate(x) for x in _read(log, f"{P}.anomalies")]
    drift = [a for a in alerts if a.scope == "window" and a.type == "DRIFT"]
    assert drift and {a.feature for a in drift} == {"fare"}
    first = drift[0]
    assert first.status == "open" and first.window is not None
    # examples.* has several partitions, so count windows interleave them: the shift
    # (from the 4000th example produced) starts mixing into window 3; nothing before it
    assert first.window.id in ("count:1000:3", "count:1000:4")
    assert first.metric == "ks" and first.p_value is not None and first.p_value < 1e-4
    assert len({a.id for a in drift if a.status == "open"}) <= 2  # one alert per cause
    evolved = [a for a in alerts if a.component == "SchemaGen"]
    assert {a.type for a in evolved} == {"ENUM_TYPE_UNEXPECTED_STRING_VALUES"}


def test_live_integral_floats_infer_int_and_raise_nothing(log: EmbeddedLog) -> None:
    values = _examples(4000)
    for i, v in enumerate(values):  # ints written as 180.0 (all rows) or 180/180.0 (mixed)
        f = v["features"]
        if f["trip_seconds"] is not None:
            f["trip_seconds"] = float(f["trip_seconds"])
        if i % 2 and f["trip_start_hour"] is not None:
            f["trip_start_hour"] = float(f["trip_start_hour"])
    _produce(log, values)
    procs = [
        SchemaGen(f"{P}.examples", f"{P}.schema", f"{P}.anomalies", infer_from=2000),
        StatisticsGen(f"{P}.examples", f"{P}.statistics", count_window=1000, cumulative=False),
        ExampleValidator(f"{P}.examples", f"{P}.anomalies", schema_topic=f"{P}.schema",
                         statistics_topic=f"{P}.statistics"),
    ]
    with Runner(log, procs, P, idle_after_s=60) as runner:
        runner.run_until_idle(idle_s=0.2, timeout_s=120)
    [schema] = [SchemaVersion.model_validate(x) for x in _read(log, f"{P}.schema")]
    assert schema.features["trip_seconds"].type == "int"
    assert schema.features["trip_start_hour"].type == "int"
    assert schema.features["fare"].type == "float"
    alerts = [Alert.model_validate(x) for x in _read(log, f"{P}.anomalies")]
    # (rare companies missing from the first 2000 examples are real new categories)
    assert {a.type for a in alerts} <= {"ENUM_TYPE_UNEXPECTED_STRING_VALUES"}
    assert {a.feature for a in alerts} <= {"company"}
