"""End to end: the demo pipeline on the embedded log and on a real Kafka broker.

Asserts on the topics' contents: drift alerts name the drifted features and
none opens before the drift; a blessed model reaches ROC AUC >= 0.92; the
model server serves a prediction; both logs give the same statistics windows
and alert causes for the same input; kcat reads alerts and models as JSON.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from streamml import serde
from streamml.demo import DemoConfig, DemoSummary, run_demo
from streamml.log import open_log
from streamml.log.base import Log
from streamml.settings import load_settings

START_MS = 1_672_531_200_000  # examples/taxi_pipeline.START_MS
DRIFTED = {"fare", "payment_type"}
KCAT = "/usr/bin/kcat"


def read_topic(log: Log, topic: str) -> list[tuple[str | None, Any]]:
    out = []
    with log.consumer(group_id=None) as consumer:
        consumer.subscribe([topic])
        consumer.seek_to_beginning()
        while batch := consumer.poll(1.0, 10_000):
            out.extend((r.key.decode() if r.key else None, serde.decode(r.value))
                       for r in batch)
    return out


def run(broker: str, pipeline: str) -> tuple[Log, DemoSummary]:
    settings = load_settings(config_file=None, broker=broker, signing_key="e2e-key")
    log = open_log(settings=settings)
    summary = run_demo(log, settings, DemoConfig(pipeline=pipeline, rate=0.0))
    return log, summary


def check_demo(log: Log, summary: DemoSummary) -> None:
    p = summary.pipeline
    assert summary.drift_row is not None
    drift_ms = START_MS + summary.drift_row * 1000
    alerts = [v for _, v in read_topic(log, f"{p}.anomalies")]
    assert alerts, "no alert at all"
    early = [a for a in alerts if a["first_seen"] < drift_ms]
    assert early == [], early[:3]
    named = {a["feature"] for a in alerts if a["status"] == "open"}
    assert named >= DRIFTED, named
    assert any(a["type"] == "DRIFT" and a["feature"] == "fare" for a in alerts)
    assert any(a["type"] == "ENUM_TYPE_UNEXPECTED_STRING_VALUES" and "Mobile" in a["message"]
               for a in alerts)
    evaluations = [v for _, v in read_topic(log, f"{p}.evaluations")]
    blessed = [e for e in evaluations if e["blessed"]]
    assert blessed and max(e["metrics"]["roc_auc"] for e in blessed) >= 0.92
    models = [v for _, v in read_topic(log, f"{p}.models") if v.get("kind") == "release"]
    assert models and models[-1]["version"] == len(models)
    assert summary.prediction is not None
    [proba] = summary.prediction["predictions"]
    assert 0.0 <= float(proba) <= 1.0


def statistics_digest(log: Log, pipeline: str) -> dict[str, Any]:
    """Final windows by key: example count and per-feature count/missing (order-free)."""
    out: dict[str, Any] = {}
    for key, v in read_topic(log, f"{pipeline}.statistics"):
        if not v.get("final", True):
            continue
        out[str(key)] = (v["num_examples"], sorted(
            (name, f.get("count"), f.get("num_missing")) for name, f in v["features"].items()))
    return out


def alert_causes(log: Log, pipeline: str) -> set[tuple[str, str | None]]:
    return {(v["type"], v.get("feature")) for _, v in read_topic(log, f"{pipeline}.anomalies")
            if v["status"] == "open"}


_EMBEDDED: dict[str, Any] = {}


def test_demo_on_embedded_log(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("e2e")
    log, summary = run(f"embedded://{root / 'log'}", "e2e")
    try:
        check_demo(log, summary)
        assert summary.elapsed_s < 60
        _EMBEDDED["stats"] = statistics_digest(log, "e2e")
        _EMBEDDED["alerts"] = alert_causes(log, "e2e")
    finally:
        log.close()


def _kcat_json(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    proc = subprocess.run(  # noqa: S603 - fixed binary, test input
        [KCAT, "-b", bootstrap, "-C", "-t", topic, "-e", "-q", "-f", "%s\\n"],
        capture_output=True, text=True, timeout=60, check=True)
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


@pytest.mark.kafka
def test_demo_on_kafka_matches_embedded_and_kcat_reads_it(kafka_bootstrap: str,
                                                          kafka_url: str,
                                                          tmp_path: Path) -> None:
    p = f"e2e{uuid.uuid4().hex[:6]}"
    log, summary = run(kafka_url, p)
    try:
        check_demo(log, summary)
        if not _EMBEDDED:
            embedded, esum = run(f"embedded://{tmp_path / 'log'}", p)
            _EMBEDDED["stats"] = statistics_digest(embedded, p)
            _EMBEDDED["alerts"] = alert_causes(embedded, p)
            embedded.close()
        stats = statistics_digest(log, p)
        assert sorted(stats) == sorted(_EMBEDDED["stats"])
        assert stats == _EMBEDDED["stats"]
        assert alert_causes(log, p) == _EMBEDDED["alerts"]
    finally:
        log.close()
    if not Path(KCAT).exists():
        pytest.skip("kcat is not installed (make system-deps)")
    alerts = _kcat_json(kafka_bootstrap, f"{p}.anomalies")
    assert {a["feature"] for a in alerts} >= DRIFTED
    models = [m for m in _kcat_json(kafka_bootstrap, f"{p}.models") if m.get("kind") == "release"]
    assert models and all("metrics" in m and "version" in m for m in models)
    envelope = subprocess.run(  # noqa: S603
        [KCAT, "-b", kafka_bootstrap, "-C", "-t", f"{p}.anomalies", "-e", "-q", "-J"],
        capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    first = json.loads(envelope[0])
    assert json.loads(first["payload"])["pipeline"] == p and first["key"]
