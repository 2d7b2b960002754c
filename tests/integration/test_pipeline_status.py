"""``streamml status`` during and after a run, on the embedded log and on Kafka.

A ``streamml demo`` runs in a subprocess while ``streamml status --json`` is
polled from another: it must see components ``running`` while the run goes
on. After the run, every part of the status is compared with the topics read
directly: components (lag 0 for every processor), the number of statistics
windows and the last one, the open alerts (last record per alert id not
resolved) and the model versions with their metrics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from streamml.log import open_log
from streamml.settings import load_settings
from tests.integration.test_e2e_demo import read_topic

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "streamml.cli.main"]
ROOT = Path(__file__).resolve().parents[2]
PROCESSORS = {"statistics_gen", "schema_gen", "example_validator", "trainer", "evaluator",
              "pusher"}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMML_")}
    env.update(PYTHONPATH=str(ROOT), STREAMML_SIGNING_KEY="status-test-key")
    return env


def _status(broker: str, pipeline: str, cwd: Path) -> dict[str, Any]:
    proc = subprocess.run([*CLI, "--broker", broker, "status", pipeline, "--json"],
                          capture_output=True, text=True, cwd=cwd, env=_env(), check=False)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def _expected(broker: str, pipeline: str) -> dict[str, Any]:
    """What the status must say, computed from the topics themselves."""
    settings = load_settings(config_file=None, broker=broker)
    log = open_log(settings=settings)
    try:
        windows = [v for _, v in read_topic(log, f"{pipeline}.statistics")
                   if v.get("final", True) and v["window"]["kind"] != "cumulative"]
        alerts: dict[str, Any] = {}
        for _, a in read_topic(log, f"{pipeline}.anomalies"):
            alerts[a["id"]] = a
        releases = [v for _, v in read_topic(log, f"{pipeline}.models")
                    if v is not None and v.get("kind") == "release"]
    finally:
        log.close()
    return {
        "windows": len(windows), "last_window": windows[-1] if windows else None,
        "open_alerts": sorted(a["id"] for a in alerts.values() if a["status"] != "resolved"),
        "models": [(r["version"], r["candidate_id"], r["metrics"]) for r in releases],
    }


def _check_status_during_and_after(broker: str, pipeline: str, cwd: Path) -> None:
    demo = subprocess.Popen([*CLI, "--broker", broker, "demo", "-p", pipeline, "--rows", "6000",
                             "--rate", "500", "--no-serve", "-q"], cwd=cwd, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[dict[str, Any]] = []
    try:
        while demo.poll() is None:
            status = _status(broker, pipeline, cwd)
            if demo.poll() is None:  # still running when the status was read
                seen.append(status)
            time.sleep(0.5)
        out, err = demo.communicate()
        assert demo.returncode == 0, err[-3000:]
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    running = [{c["name"] for c in s["components"] if c["state"] == "running"} for s in seen]
    assert any(names & PROCESSORS for names in running), (running, seen[-1:])

    final = _status(broker, pipeline, cwd)
    want = _expected(broker, pipeline)
    by_name = {c["name"]: c for c in final["components"]}
    assert PROCESSORS <= set(by_name), by_name
    assert {n: by_name[n]["lag"] for n in PROCESSORS} == dict.fromkeys(PROCESSORS, 0)
    assert final["windows"] == want["windows"] > 0
    assert final["last_window"] == want["last_window"]
    assert sorted(a["id"] for a in final["open_alerts"]) == want["open_alerts"]
    assert want["open_alerts"], "the demo's drift opens alerts"
    assert [(m["version"], m["candidate_id"], m["metrics"]) for m in final["models"]] == \
        want["models"]


def test_status_during_a_run_on_the_embedded_log(tmp_path: Path) -> None:
    _check_status_during_and_after(f"embedded://{tmp_path / 'log'}", "st", tmp_path)


@pytest.mark.kafka
def test_status_during_a_run_on_kafka(kafka_url: str, tmp_path: Path) -> None:
    _check_status_during_and_after(kafka_url, f"st{uuid.uuid4().hex[:8]}", tmp_path)
