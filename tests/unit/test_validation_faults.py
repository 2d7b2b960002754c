"""Fault suite: non-numeric tokens, a dropped column mid-stream, River's synthetic drift."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamml.log.embedded import EmbeddedLog
from streamml.payloads.anomalies import Alert
from streamml.payloads.statistics import StatisticsWindow
from streamml.processors.base import Message
from streamml.runtime.runner import Runner
from streamml.statistics.processor import StatisticsGen
from streamml.validation.schema import infer_schema
from streamml.validation.schemagen import SchemaGen
from streamml.validation.validator import ExampleValidator
from tests.unit.test_validation_processors import TAXI, P, _examples, _produce, _read


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EmbeddedLog]:
    with EmbeddedLog(tmp_path / "log") as embedded:
        yield embedded


def _msgs(values: list[dict]) -> list[Message]:
    return [Message(f"{P}.examples", 0, i, v["event_time"], v["id"], v)
            for i, v in enumerate(values)]


def test_non_numeric_tokens_in_a_numeric_column() -> None:
    values = _examples(2000)
    bad = [300, 301, 1700]
    for i in bad:
        values[i]["features"]["fare"] = ["abc", "12,50", "N/A"][bad.index(i)]
    values[900]["features"]["fare"] = "NaN"  # a JSON token for a float: NaN, not a string
    schema = infer_schema(TAXI, pipeline=P, created_at=0)
    v = ExampleValidator(f"{P}.examples", f"{P}.anomalies", schema=schema)
    gen = StatisticsGen(f"{P}.examples", f"{P}.statistics", count_window=1000, splits="all",
                        cumulative=False)
    msgs = _msgs(values)
    alerts, windows = [], []
    for i in range(0, len(msgs), 500):
        batch = msgs[i:i + 500]
        windows += [StatisticsWindow.model_validate(e.value) for e in gen.process(batch)]
        alerts += [Alert.model_validate(e.value) for e in v.process(batch)]
    types = {(a.type, a.feature) for a in alerts}
    assert types == {("UNEXPECTED_DATA_TYPE", "fare"), ("FLOAT_TYPE_HAS_NAN", "fare")}
    tok = [a for a in alerts if a.type == "UNEXPECTED_DATA_TYPE"]
    assert tok[0].status == "open" and tok[0].example_ids[:2] == ["taxi.csv:300", "taxi.csv:301"]
    assert tok[0].first_seen == values[300]["event_time"]  # within the window it started
    assert {i for a in tok for i in a.example_ids} == {f"taxi.csv:{i}" for i in bad}
    fare = windows[0].features["fare"]
    assert fare.type == "float" and fare.type_counts["string"] == 2  # one token: no type flip
    assert fare.numeric is not None and fare.numeric.num_nan == 1
    assert windows[1].features["fare"].type_counts["string"] == 1


def test_dropped_column_mid_stream_through_the_pipeline(log: EmbeddedLog) -> None:
    values = _examples(6000)
    for v in values[3000:]:
        del v["features"]["trip_miles"]
    _produce(log, values)
    procs = [
        SchemaGen(f"{P}.examples", f"{P}.schema", f"{P}.anomalies", infer_from=2000,
                  auto_evolve=True),
        StatisticsGen(f"{P}.examples", f"{P}.statistics", count_window=1000, cumulative=False,
                      splits="all"),
        ExampleValidator(f"{P}.examples", f"{P}.anomalies", schema_topic=f"{P}.schema",
                         statistics_topic=f"{P}.statistics"),
    ]
    with Runner(log, procs, P, idle_after_s=60) as runner:
        runner.run_until_idle(idle_s=0.2, timeout_s=120)
        assert all(s.records_in > 0 for s in runner.stats())  # nobody crashed
    alerts = [Alert.model_validate(x) for x in _read(log, f"{P}.anomalies")]
    about = [a for a in alerts if a.feature == "trip_miles"]
    per_example = [a for a in about if a.type == "FEATURE_TYPE_NOT_PRESENT"]
    assert per_example and per_example[0].status == "open"
    assert per_example[-1].count == 3000 and per_example[-1].status != "resolved"
    # examples.* interleaves partitions: the drop shows in the window holding example 3000
    ids = {int(i.rsplit(":", 1)[1]) for a in per_example for i in a.example_ids}
    assert min(ids) >= 3000
    window = [a for a in about if a.type == "SCHEMA_MISSING_COLUMN"]
    assert window and window[0].window is not None
    assert window[0].window.id in ("count:1000:2", "count:1000:3")
    assert {a.type for a in about} <= {"FEATURE_TYPE_NOT_PRESENT", "SCHEMA_MISSING_COLUMN",
                                       "FEATURE_TYPE_LOW_FRACTION_PRESENT"}  # partial window


def _river_examples(n: int, position: int) -> list[dict]:
    from river.datasets import synth

    stream = synth.ConceptDriftStream(stream=synth.SEA(seed=42, variant=0),
                                      drift_stream=synth.SEA(seed=42, variant=3),
                                      position=position, width=50, seed=1)
    out = []
    for i, (x, y) in enumerate(itertools.islice(stream, n)):
        features = {f"x{k}": float(val) for k, val in x.items()}
        features["label"] = bool(y)
        out.append({"id": f"sea:{i}", "split": "train", "event_time": 1_000_000 + i,
                    "features": features})
    return out


def test_river_concept_drift_detected_after_its_position_not_before() -> None:
    position, size = 6000, 1000
    values = _river_examples(12_000, position)
    gen = StatisticsGen(f"{P}.examples", f"{P}.statistics", count_window=size, splits="all",
                        cumulative=False)
    v = ExampleValidator(f"{P}.examples", f"{P}.anomalies", statistics_topic=f"{P}.statistics")
    alerts: list[Alert] = []
    msgs = _msgs(values)
    for i in range(0, len(msgs), 500):
        stats = [Message(f"{P}.statistics", 0, i, e.timestamp_ms or 0, e.key, e.value)
                 for e in gen.process(msgs[i:i + 500])]
        alerts += [Alert.model_validate(e.value) for e in v.process(stats)]
    drift = [a for a in alerts if a.scope == "window" and a.status == "open"]
    assert {(a.type, a.feature) for a in drift} == {("DRIFT", "label")}
    [opened] = drift
    assert opened.window is not None and opened.window.index is not None
    first_after = position // size  # window [6000, 7000): the first one after the drift
    assert opened.window.index == first_after
    assert opened.metric == "chi2" and opened.p_value is not None and opened.p_value < 1e-4
    # against the previous window the change is over one window later: resolved, not repeated
    assert [a.status for a in alerts if a.id == opened.id][-1] == "resolved"
