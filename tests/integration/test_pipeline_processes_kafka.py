"""One pipeline over two OS processes on a real Kafka broker (``PipelineRun(processes=2)``).

The children open their own Kafka clients from the log's URL. Every processor
must have read every record of its inputs, with no lag left. On Kafka the
examples topic has several partitions whose fetches interleave by timing, so
a window's contents may differ from the embedded run's: the windows' shape
(split, index, size, feature types) must be the same, and the learning side is
checked by invariants, as in the embedded multi-process test.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from streamml.log import open_log
from streamml.log.embedded import EmbeddedLog
from streamml.pipeline import PipelineRun, reset_topics
from streamml.pipeline.status import pipeline_status
from streamml.settings import load_settings
from tests.pipeline_helpers import (
    ROWS,
    inputs_consumed,
    records,
    run_to_end,
    taxi,
    windows,
)

pytestmark = pytest.mark.kafka


def shape(ws: dict[tuple[Any, ...], Any]) -> dict[tuple[Any, ...], Any]:
    """Per window: examples counted and the (feature, type) pairs, not the values."""
    return {k: (v["num_examples"], sorted((f, s["type"]) for f, s in v["features"].items()))
            for k, v in ws.items()}


def test_two_processes_on_kafka_match_the_embedded_one_process_run(kafka_url: str,
                                                                   tmp_path: Path) -> None:
    name = f"mp{uuid.uuid4().hex[:6]}"
    kafka = open_log(settings=load_settings(config_file=None, broker=kafka_url))
    embedded = EmbeddedLog(str(tmp_path / "one"))
    try:
        p_kafka = taxi(kafka_url, name=name)
        p_one = taxi(tmp_path / "one", name=name)
        reset_topics(kafka, p_kafka)
        one = run_to_end(p_one, embedded, checkpoint_every_s=3600)
        with PipelineRun(p_kafka, kafka, processes=2, checkpoint_every_s=3600) as run:
            assert run.children is not None and run.split[1] == ["trainer", "evaluator",
                                                                 "pusher"]
            two = run.run_until_done(idle_s=0.8)
        assert two.ingested == one.ingested == ROWS
        inputs_consumed(one, p_one, embedded)
        inputs_consumed(two, p_kafka, kafka)
        w1, w2 = windows(embedded, name), windows(kafka, name)
        assert len(w1) >= 6 and shape(w1) == shape(w2)
        schemas = [v for _, v in records(kafka, f"{name}.schema")]
        assert [v["version"] for v in schemas] == [1]
        assert set(schemas[0]["features"]) == {
            f for f, t in next(iter(shape(w1).values()))[1] if t is not None}
        candidates = {k for k, v in records(kafka, f"{name}.candidates") if v is not None}
        evaluated = {v["candidate_id"] for _, v in records(kafka, f"{name}.evaluations")}
        assert candidates and evaluated == candidates
        view = pipeline_status(kafka, name).view
        assert [m["version"] for m in view.models] == list(range(1, len(view.models) + 1))
        assert {m["candidate_id"] for m in view.models} <= {e["candidate_id"]
                                                            for e in view.blessed}
    finally:
        kafka.close()
        embedded.close()
