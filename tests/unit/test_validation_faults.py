"""Fault suite on taxi rows streamed through StatisticsGen + ExampleValidator.

The seven faults of issue #4, each in its own case, each detected within one
window of its start and naming the feature; the clean stream, shuffled
replays and random halves raise nothing; a dropped column through the
Runner with SchemaGen; River's synthetic concept drift near its position.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
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


W = 1000  #: count window of the fault suite
FAULT_AT = 3300  #: first faulty example: in window 3, not at its start


def _inject(fault: str, values: list[dict]) -> None:
    """Inject ``fault`` into the examples from ``FAULT_AT`` on (in place)."""
    for i, v in enumerate(values):
        f = v["features"]
        if i < FAULT_AT:
            continue
        if fault == "new category" and i % 25 == FAULT_AT % 25:
            f["payment_type"] = "Bitcoin"  # never occurred in the data
        elif fault == "scale change" and i < FAULT_AT + 1500:
            f["trip_miles"] = None if f["trip_miles"] is None else f["trip_miles"] * 1.6
        elif fault == "presence drop":
            f["company"] = None  # optional, usually present: only its fraction drops
        elif fault == "non-numeric tokens" and i % 200 == FAULT_AT % 200:
            f["fare"] = "N/A"
        elif fault == "impossible value" and i == FAULT_AT:
            f["trip_seconds"] = -600  # one row, one value
        elif fault == "new column":
            f["surge_multiplier"] = 1.25
        elif fault == "dropped column":
            del f["trip_start_hour"]


def _stream(values: list[dict], reference: StatisticsWindow | None = None,
            batch: int = 500) -> list[Alert]:
    """Examples through StatisticsGen and ExampleValidator; windows fed back as they close."""
    schema = infer_schema(TAXI, pipeline=P, created_at=0)
    gen = StatisticsGen(f"{P}.examples", f"{P}.statistics", count_window=W, splits="all",
                        cumulative=False)
    v = ExampleValidator(f"{P}.examples", f"{P}.anomalies", schema=schema,
                         statistics_topic=f"{P}.statistics", reference=reference)
    alerts: list[Alert] = []
    msgs = _msgs(values)
    for i in range(0, len(msgs), batch):
        examples = msgs[i:i + batch]
        stats = [Message(f"{P}.statistics", 0, i, e.timestamp_ms or 0, e.key, e.value)
                 for e in gen.process(examples)]
        alerts += [Alert.model_validate(e.value) for e in v.process(examples)]
        alerts += [Alert.model_validate(e.value) for e in v.process(stats)]
    return alerts


def _reference(values: list[dict]) -> StatisticsWindow:
    """Training statistics (with sketches) of clean examples, as a reference."""
    gen = StatisticsGen(f"{P}.examples", f"{P}.statistics", count_window=None, splits="all",
                        cumulative=True, cumulative_every=None)
    gen.process(_msgs(values))
    [record] = gen.cumulative_statistics()
    return StatisticsWindow.model_validate(record.value)


@pytest.fixture(scope="module")
def reference() -> StatisticsWindow:
    return _reference(_examples(9000)[6000:])  # other rows of the file than the stream's


@pytest.mark.parametrize(("fault", "feature", "types"), [
    ("new category", "payment_type", {"ENUM_TYPE_UNEXPECTED_STRING_VALUES"}),
    ("scale change", "trip_miles", {"DRIFT"}),
    ("presence drop", "company", {"FEATURE_TYPE_LOW_FRACTION_PRESENT"}),
    ("non-numeric tokens", "fare", {"UNEXPECTED_DATA_TYPE"}),
    ("impossible value", "trip_seconds", {"INT_TYPE_SMALL_INT"}),
    ("new column", "surge_multiplier", {"SCHEMA_NEW_COLUMN"}),
    ("dropped column", "trip_start_hour", {"FEATURE_TYPE_NOT_PRESENT", "SCHEMA_MISSING_COLUMN"}),
])
def test_each_fault_is_detected_within_one_window_naming_the_feature(
        reference: StatisticsWindow, fault: str, feature: str, types: set[str]) -> None:
    values = _examples(6000)
    start_ms = values[FAULT_AT]["event_time"]
    _inject(fault, values)
    alerts = _stream(values, reference)
    opened = [a for a in alerts if a.status == "open"]
    assert {a.feature for a in opened} == {feature}, [(a.type, a.feature) for a in opened]
    assert types <= {a.type for a in opened}
    for kind in types & {a.type for a in opened}:
        first = min((a for a in opened if a.type == kind), key=lambda a: a.first_seen)
        if first.scope == "example":  # opened by the first faulty example itself
            assert first.first_seen == start_ms
            assert first.example_ids[0] == f"taxi.csv:{FAULT_AT}"
        else:  # by the window holding the fault's start, or the next one
            assert first.window is not None and first.window.index is not None
            assert FAULT_AT // W <= first.window.index <= FAULT_AT // W + 1, first
    # nothing before the fault (a scale change that ends may alert again at its end)
    assert min(a.first_seen for a in opened) >= values[(FAULT_AT // W) * W]["event_time"]
    if fault == "impossible value":
        [a] = opened  # one alert for one row, resolved once a clean example window passed
        assert a.example_ids == [f"taxi.csv:{FAULT_AT}"] and a.count == 1
        assert "-600" in a.message
        assert [x.status for x in alerts] == ["open", "resolved"]


def test_clean_shuffled_replays_and_random_halves_raise_nothing(
        reference: StatisticsWindow) -> None:
    values = _examples(6000)
    assert _stream(values, reference) == []
    for seed in range(2):  # shuffled replays of the same rows, and a random half of them
        order = np.random.default_rng(seed).permutation(len(values))
        replay = [dict(values[j], event_time=values[i]["event_time"])
                  for i, j in enumerate(order)]
        assert _stream(replay, reference) == []
        half = [replay[i] for i in sorted(order[: len(order) // 2])]
        assert _stream(half, reference) == []


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
