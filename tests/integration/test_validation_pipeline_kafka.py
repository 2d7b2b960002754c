"""The validation pipeline on a real Kafka broker, read back by kcat.

One CSV file with two of the fault suite's faults (``N/A`` tokens in ``fare``
and ``trip_miles`` ×1.6 over part of the stream, both from row ``AT``) runs
through ``streamml.examples.validation_pipeline`` on Kafka with the
quarantine policy: every token is one quarantined dead letter and one count of
the ``UNEXPECTED_DATA_TYPE`` alert, as ``streamml validate`` counts them on the
same file; the drift is found; nothing else alerts. (When, in windows, is
tested on the embedded log: a count window holds examples in the order the
consumer reads the 3 partitions, which on Kafka is not the file's order.)
"""

from __future__ import annotations

import csv
import json
import random
import subprocess
import uuid
from pathlib import Path

import pytest

from streamml.connectors.definition import DATA_DIR
from streamml.log import open_log
from streamml.pipeline import load_pipeline
from streamml.settings import load_settings
from streamml.validation.filecheck import validate_table
from streamml.validation.files import load_table
from streamml.validation.schema import infer_schema, save_schema
from tests.pipeline_helpers import inputs_consumed, records, run_to_end
from tests.unit.test_validation_pipeline import AT, PIPELINE, W, _inject, _line, _write

pytestmark = pytest.mark.kafka
KCAT = "/usr/bin/kcat"


def test_validation_pipeline_on_kafka(kafka_url: str, kafka_bootstrap: str,
                                      tmp_path: Path) -> None:
    with (DATA_DIR / "taxi.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    random.Random(5).shuffle(rows)
    ref, cur = rows[:len(rows) // 2], rows[len(rows) // 2:]
    path = _write(tmp_path / "faults.csv", _inject("scale change",
                                                   _inject("non-numeric tokens", cur)))
    _write(tmp_path / "ref.csv", ref)
    schema = infer_schema(DATA_DIR / "taxi.csv", pipeline="v", created_at=0)
    save_schema(schema, tmp_path / "schema.yaml")
    p = f"val{uuid.uuid4().hex[:6]}"
    settings = load_settings(config_file=None, broker=kafka_url)
    log = open_log(settings=settings)
    try:
        pipeline = load_pipeline(PIPELINE, settings, name=p, path=str(path), window=W,
                                 schema=str(tmp_path / "schema.yaml"),
                                 reference=str(tmp_path / "ref.csv"), policy="quarantine")
        inputs_consumed(run_to_end(pipeline, log), pipeline, log)
        alerts = [v for _, v in records(log, f"{p}.anomalies")]
        letters = [v for _, v in records(log, f"{p}.deadletter")]
        examples = log.describe_topic(f"{p}.examples").records
    finally:
        log.close()
    assert examples == len(cur)
    tokens = [i + 2 for i in range(AT, len(cur)) if i % 200 == 0]
    assert sorted(_line(d["example_id"]) for d in letters) == tokens
    assert {d["reason"] for d in letters} == {"quarantined"}
    last = {a["id"]: a for a in alerts}
    assert {(a["type"], a["feature"]) for a in last.values()} == {
        ("UNEXPECTED_DATA_TYPE", "fare"), ("DRIFT", "trip_miles")}, last
    # An alert resolves after a window of examples without its cause and a new one opens
    # if it comes back: Kafka's fetches may hand over one partition's examples in long
    # runs, so a cause can come and go in the order they are read. Counts add up.
    counted = sum(a["count"] for a in last.values()
                  if a["type"] == "UNEXPECTED_DATA_TYPE" and a["scope"] == "example")
    batch = {(a["type"], a["feature"]): a for a in validate_table(
        load_table(path), schema, path.name, load_table(tmp_path / "ref.csv"), window=W)}
    assert counted == batch[("UNEXPECTED_DATA_TYPE", "fare")]["count"] == len(tokens)
    assert ("DRIFT", "trip_miles") in batch

    if not Path(KCAT).exists():
        pytest.skip("kcat is not installed (make system-deps)")
    out = subprocess.run(  # noqa: S603 - fixed binary, test input
        [KCAT, "-b", kafka_bootstrap, "-C", "-t", f"{p}.anomalies", "-e", "-q", "-f", "%s\\n"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    assert sorted(json.loads(line)["id"] for line in out.splitlines() if line.strip()) == sorted(
        a["id"] for a in alerts)
