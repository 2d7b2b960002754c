"""StatisticsGen and ExampleValidator as faust workers on a real broker.

Both take raw record bytes (``raw_values``) and decode micro-batches
columnar; this runs that path under the faust host: ``streamml run
examples/taxi_pipeline.py -c statistics_gen`` and ``-c example_validator`` in
their own processes, the ingest and SchemaGen in a third. Checked against the
topics: the statistics windows account for every example of each split, the
injected drift raises alerts naming ``fare`` and ``payment_type``, and a record
that is not JSON becomes one ``invalid_json`` dead letter per worker.
"""

from __future__ import annotations

import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamml import serde
from streamml.log.kafka import KafkaLog
from streamml.log.read import read_to_end
from streamml.runtime.checkpoint import CheckpointStore
from tests.integration.test_pipeline_workers import (
    CLI,
    PIPELINE_FILE,
    _covers,
    _env,
    _read,
    _spawn,
    _stop,
    _wait,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROWS = 6000
WINDOW = 1000  # the taxi pipeline's statistics window (examples per split)
INLINE_SKIPS = ("statistics_gen", "example_validator", "trainer", "evaluator", "pusher",
                "lineage_recorder", "lineage")


@pytest.fixture
def log(kafka_bootstrap: str) -> Iterator[KafkaLog]:
    with KafkaLog(kafka_bootstrap, {"client_id": "validation-workers-test"}) as kafka_log:
        yield kafka_log


def test_validation_components_as_faust_workers(log: KafkaLog, kafka_url: str,
                                                tmp_path: Path) -> None:
    p = f"vw{uuid.uuid4().hex[:8]}"
    common = [PIPELINE_FILE, "-p", p, "-o", f"rows={ROWS}"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(_spawn(["run", *common, "-c", "statistics_gen"], kafka_url, tmp_path,
                            "statistics_gen"))
        procs.append(_spawn(["run", *common, "-c", "example_validator"], kafka_url, tmp_path,
                            "example_validator"))
        skips = [arg for name in INLINE_SKIPS for arg in ("--skip", name)]
        inline = subprocess.run([*CLI, "--broker", kafka_url, "run", *common, *skips],
                                cwd=tmp_path, env=_env(tmp_path), capture_output=True,
                                text=True, check=False)
        assert inline.returncode == 0, inline.stderr[-3000:]
        with log.producer() as producer:  # not JSON: each worker must dead-letter it
            producer.send(f"{p}.examples", b"{not json", b"bad-1", partition=0)
            producer.flush()

        store = CheckpointStore(log, p)
        _wait(lambda: _covers(store, log, "statistics_gen", [f"{p}.examples"]), 600,
              "StatisticsGen to consume every example", procs, tmp_path)
        _wait(lambda: _covers(store, log, "example_validator",
                              [f"{p}.examples", f"{p}.statistics", f"{p}.schema"]),
              600, "ExampleValidator to consume every input", procs, tmp_path)

        examples = [serde.decode(r.value) for r in read_to_end(log, f"{p}.examples")
                    if r.key != b"bad-1"]
        assert len(examples) == ROWS
        per_split = Counter(v["split"] for v in examples)
        windows = [v for _, v in _read(log, f"{p}.statistics")
                   if v["window"]["kind"] == "count"]
        for split, n in per_split.items():
            sizes = [w["num_examples"] for w in windows if w["split"] == split]
            assert sizes and all(s == WINDOW for s in sizes), (split, sizes)
            assert len(sizes) == n // WINDOW, (split, n, len(sizes))  # every full window

        alerts = [v for _, v in _read(log, f"{p}.anomalies")]
        drifted = {a["feature"] for a in alerts if a["type"] in
                   ("DRIFT", "ENUM_TYPE_UNEXPECTED_STRING_VALUES")}
        assert {"fare", "payment_type"} <= drifted, drifted

        dead = [v for _, v in _read(log, f"{p}.deadletter")]
        bad = Counter(d["component"] for d in dead if d["reason"] == "invalid_json")
        assert bad == Counter({"statistics_gen": 1, "example_validator": 1}), dead
    finally:
        _stop(procs)
