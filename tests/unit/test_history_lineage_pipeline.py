"""Lineage from the real pipeline: a model trained across a drift alert (issue 7).

The taxi pipeline (9,000 replayed rows, drift injected halfway, the
LineageRecorder and LineageMaterializer in the graph) runs on the embedded log.
Every lineage answer is checked against the topics themselves: the examples'
offsets and event times recomputed from ``<p>.examples``, the schema version
from ``<p>.schema``, the evaluation from ``<p>.evaluations``, the alerts open
while it trained from ``<p>.anomalies``. A model server then loads the model
and the lineage shows it downstream.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamml import serde
from streamml.cli import main as cli_main
from streamml.examples.taxi_pipeline import build_pipeline
from streamml.history.lineage import LineageStore
from streamml.history.materializer import LineageMaterializer
from streamml.history.recorder import LineageRecorder
from streamml.log.base import Log
from streamml.log.embedded import EmbeddedLog
from streamml.log.read import read_to_end
from streamml.pipeline import PipelineRun
from streamml.processors.base import Message
from streamml.settings import load_settings

T0 = 1_767_225_600_000
P = "lt"
KEY = "lineage-test-key"


def read_topic(log: Log, topic: str) -> list[tuple[int, int, Any]]:
    """``(partition, offset, decoded value)`` of every record, to the end offsets."""
    return [(r.partition, r.offset, r.value and serde.decode(r.value))
            for r in read_to_end(log, topic)]


@dataclass
class Run:
    root: Path
    broker: str
    history: Path


@pytest.fixture(scope="module")
def taxi_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("lineage")
    broker = f"embedded://{root / 'log'}"
    settings = load_settings(config_file=None, broker=broker, signing_key=KEY)
    mp = pytest.MonkeyPatch()
    mp.setenv("STREAMML_HISTORY_DIR", str(root / "history"))
    try:
        pipeline = build_pipeline(settings, name=P, rows=9000, window=500, start_ms=T0)
        with EmbeddedLog(root / "log") as log, PipelineRun(pipeline, log) as run:
            run.run_until_done(idle_s=0.8)
        for proc in pipeline.processors:
            if isinstance(proc, LineageMaterializer):
                assert Path(proc.db_path) == root / "history" / "lineage.duckdb"
                proc.close()
        yield Run(root, broker, root / "history")
    finally:
        mp.undo()


def expected_alerts(alerts: list[dict[str, Any]], start: int, end: int) -> set[str]:
    """Alerts of the anomalies topic open at some point of ``[start, end]``, from the topic."""
    opened: dict[str, int] = {}
    resolved: dict[str, int] = {}
    for a in alerts:
        opened[a["id"]] = min(opened.get(a["id"], a["first_seen"]), a["first_seen"])
        if a["status"] == "resolved":
            resolved[a["id"]] = a["resolved_at"]
    return {f"{P}/alert/{aid}" for aid, t in opened.items()
            if t < end and (aid not in resolved or resolved[aid] > start)}


def test_lineage_of_a_blessed_model_trained_across_a_drift_alert(taxi_run: Run) -> None:
    with EmbeddedLog(taxi_run.root / "log") as log:
        examples = read_topic(log, f"{P}.examples")
        releases = [v for _, _, v in read_topic(log, f"{P}.models") if v and v["kind"] == "release"]
        evaluations = {v["id"]: v for _, _, v in read_topic(log, f"{P}.evaluations")}
        schemas = [v for _, _, v in read_topic(log, f"{P}.schema")]
        alerts = [v for _, _, v in read_topic(log, f"{P}.anomalies")]
    assert len(releases) >= 2 and [s["version"] for s in schemas] == [1]
    store = LineageStore(taxi_run.history / "lineage.duckdb", read_only=True)
    try:
        across = 0
        for rel in releases:
            answer = store.lineage(f"{rel['name']}:{rel['version']}")
            up = answer["upstream"]
            assert answer["model"]["id"] == f"{P}/model/{rel['name']}@{rel['version']}"
            # examples: the offsets trained on, recomputed from the examples topic
            ranges = {(r["partition"], r["start"], r["end"]) for r in up["examples"]}
            assert ranges == {(r["partition"], r["start"], r["end"]) for r in rel["trained_on"]}
            trained = [v for p, o, v in examples if v["split"] == "train" and any(
                p == r[0] and r[1] <= o < r[2] for r in ranges)]
            assert len(trained) == rel["examples_seen"]
            times = [v["event_time"] for v in trained]
            assert up["event_time"] == {"start_ms": min(times), "end_ms": max(times)}
            # schema version, evaluation and gate decision
            assert [s["version"] for s in up["schemas"]] == [1]
            ev = evaluations[rel["evaluation_id"]]
            assert [e["id"] for e in up["evaluations"]] == [f"{P}/evaluation/{ev['id']}"]
            assert up["evaluations"][0]["properties"]["metrics"] == ev["metrics"]
            assert up["blessed"] is True is ev["blessed"]
            # drift alerts open while it trained, from the anomalies topic
            got = {a["id"] for a in up["alerts_open_while_training"]}
            assert got == expected_alerts(alerts, min(times), max(times))
            if any(a["properties"]["type"] == "DRIFT" for a in up["alerts_open_while_training"]):
                across += 1
        assert across >= 1, "no blessed model trained across a drift alert"
        # an early model, trained before the drift, has no drift alert
        first = store.lineage(f"{releases[0]['name']}:1")["upstream"]
        assert all(a["properties"]["type"] != "DRIFT"
                   for a in first["alerts_open_while_training"])
    finally:
        store.close()


def test_lineage_cli_shows_the_server_that_loaded_it(
        taxi_run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    from streamml.serving.server import ModelServer

    with EmbeddedLog(taxi_run.root / "log") as log:
        with ModelServer(log, P, signing_key=KEY.encode(), port=0) as server:
            assert server.wait_ready(timeout_s=60)
            host = server.deployments.host
        latest = max(v["version"] for _, _, v in read_topic(log, f"{P}.models")
                     if v and v["kind"] == "release")
    capsys.readouterr()
    code = cli_main.main(["--broker", taxi_run.broker, "lineage", f"{P}:{latest}", "-p", P,
                          "--json", "--dir", str(taxi_run.history)])
    out = capsys.readouterr()
    assert code == 0, out.err
    answer = orjson.loads(out.out)
    assert [(d["host"], d["action"]) for d in answer["downstream"]["deployments"]] == [
        (host, "loaded")]
    assert answer["upstream"]["blessed"] is True
    code = cli_main.main(["--broker", taxi_run.broker, "lineage", f"{P}:{latest}", "-p", P,
                          "--dir", str(taxi_run.history)])
    text = capsys.readouterr().out
    assert code == 0 and "gate decision: BLESSED" in text and f"loaded by {host}" in text


def test_recorder_dead_letters_invalid_payloads_and_is_deterministic() -> None:
    rec = LineageRecorder("p")
    bad = Message("p.candidates", 0, 3, 10, "c@1", {"id": "c@1"})
    good = Message("p.schema", 0, 0, 10, "default", {
        "pipeline": "p", "version": 2, "parent": 1, "origin": "evolved", "created_at": 10,
        "features": {"x": {"type": "float"}}})
    out = list(rec.process([bad, good]))
    assert [e.topic for e in out] == ["p.deadletter", "p.metadata"]
    assert out[0].value["reason"] == "invalid_payload"
    assert out[1].value["input_artifacts"] == ["p/schema/default@1"]
    again = list(LineageRecorder("p").process([bad, good]))
    assert [(e.key, e.value) for e in again] == [(e.key, e.value) for e in out]


LOCKED = '''
import sys
from streamml.history.materializer import LineageMaterializer
from streamml.processors.base import Message
m = LineageMaterializer("p", sys.argv[1])
ev = {"id": "x", "pipeline": "p", "kind": "action", "component": "c", "time": 1}
out = list(m.process([Message("p.metadata", 0, 0, 1, "x", ev)]))
m.flush()  # what the host's checkpoint does
print(len(out), m.busy, m.events)
'''


def test_materializer_leaves_events_on_the_topic_while_the_store_is_locked(
        tmp_path: Path) -> None:
    import subprocess
    import sys

    db = tmp_path / "lineage.duckdb"
    holder = LineageStore(db)  # another process holds the DuckDB file
    try:
        done = subprocess.run([sys.executable, "-c", LOCKED, str(db)], capture_output=True,
                              text=True, check=True)
    finally:
        holder.close()
    assert done.stdout.split() == ["0", "1", "0"]  # no crash, nothing applied
    assert "streamml lineage" in done.stderr
    done = subprocess.run([sys.executable, "-c", LOCKED, str(db)], capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == ["0", "0", "1"]
