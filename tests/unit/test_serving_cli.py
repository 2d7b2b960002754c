"""``streamml serve`` as a user runs it (a subprocess), on the embedded log."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from streamml.log import open_log
from tests.cli_helpers import ROOT, assert_one_line_error, cli_env
from tests.serving_helpers import INSTANCE, KEY, create_topic, publish, release, wait_for


def serve(broker: str, *args: str, key: str | None) -> subprocess.Popen[str]:
    env = cli_env(**({"STREAMML_SIGNING_KEY": key} if key else {}))
    return subprocess.Popen(
        [sys.executable, "-m", "streamml.cli.main", "--broker", broker, "serve", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
    )


def test_serve_without_a_key_is_a_one_line_error(tmp_path: Path) -> None:
    proc = serve(f"embedded://{tmp_path}", "--port", "0", key=None)
    out, err = proc.communicate(timeout=60)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert_one_line_error(done, "no signing key", "STREAMML_SIGNING_KEY")


def test_serve_loads_predicts_and_stops_on_sigterm(tmp_path: Path) -> None:
    broker = f"embedded://{tmp_path / 'log'}"
    with open_log(broker) as log:
        create_topic(log)
        publish(log, *release(1))
    proc = serve(broker, "--port", "0", "--pipeline", "demo", key=KEY.decode())
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"serving demo\.models on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        url = match[1]

        def predict() -> dict | None:
            req = urllib.request.Request(
                f"{url}/v1/models/tipper:predict",
                data=json.dumps({"instances": [INSTANCE]}).encode(), method="POST")
            try:
                with urllib.request.urlopen(req) as resp:
                    return json.load(resp)
            except urllib.error.HTTPError as exc:
                exc.close()
                return None

        body = wait_for(predict, what="a served prediction")
        assert body["model_version"] == 1 and len(body["predictions"]) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "loaded model tipper version 1" in err


def test_serve_log_predictions_writes_the_predictions_topic(tmp_path: Path) -> None:
    broker = f"embedded://{tmp_path / 'log'}"
    with open_log(broker) as log:
        create_topic(log)
        publish(log, *release(1))
    proc = serve(broker, "--port", "0", "--log-predictions", "--prediction-queue", "100",
                 key=KEY.decode())
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+), logging predictions to "
                          r"demo\.predictions", line)
        assert match, line
        url = match[1]

        def predict() -> str | None:
            req = urllib.request.Request(
                f"{url}/v1/models/tipper:predict", headers={"X-Request-Id": "cli-1"},
                data=json.dumps({"instances": [INSTANCE, INSTANCE]}).encode(), method="POST")
            try:
                with urllib.request.urlopen(req) as resp:
                    return resp.headers["X-Request-Id"]
            except urllib.error.HTTPError as exc:
                exc.close()
                return None

        assert wait_for(predict, what="a served prediction") == "cli-1"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    with open_log(broker) as log:  # stopping wrote what was queued
        assert log.describe_topic("demo.predictions").records == 2
