"""Replay determinism beyond counts: the same range replayed twice gives the same artifacts.

The live taxi pipeline runs once (the lineage fixture). A range of its
examples is then replayed into three namespaces, twice from the log and once
from the Parquet archive, and the whole pipeline (StatisticsGen, SchemaGen,
ExampleValidator, Trainer, Evaluator, Pusher, lineage) runs over each. The
namespaces must hold equal contents, not just equal counts:

* statistics windows: every payload equal (the namespace name aside);
* alerts: every record equal (ids, statuses, values, times);
* candidates and models: same ids, versions, parents, metrics and artifact
  bytes; each release's signature verifies and the unpickled models have
  equal weights (the HMAC itself differs: it signs the pipeline name, which
  is the namespace);
* lineage events: equal.

Nothing is excluded as "write time": every payload time is an event or log
time carried by the replayed records (``created_at`` of a statistics window is
the newest record timestamp in it, ``decided_at`` the newest eval event time),
which the replay preserves.
"""

from __future__ import annotations

from typing import Any

import pytest

from streamml.history.archive import ArchiveSink
from streamml.history.lineage import LineageStore
from streamml.history.replay import replay, run_processors
from streamml.learning.artifact import load_release_model
from streamml.log.embedded import EmbeddedLog
from streamml.payloads.models import ModelRelease
from streamml.settings import load_settings
from tests.history_helpers import contents, records
from tests.unit.test_history_lineage_pipeline import KEY, T0, P, Run, read_topic, taxi_run

__all__ = ["taxi_run"]  # the module-scoped live run, shared with the lineage tests

PIPELINE_FILE = f'''
from streamml.examples.taxi_pipeline import build_pipeline as taxi


def build_pipeline(settings, name):
    return taxi(settings, name=name, rows=9000, window=500, start_ms={T0})
'''
ROLES = ("statistics", "anomalies", "schema", "candidates", "evaluations", "models", "metadata")


def weights(model: Any) -> dict[str, Any]:
    """Learned parameters of a River model or pipeline, step by step."""
    steps = getattr(model, "steps", None)
    parts = list(steps.values()) if steps else [model]
    out: dict[str, Any] = {}
    for i, step in enumerate(parts):
        for attr in ("weights", "intercept", "counts", "means", "vars"):
            value = getattr(step, attr, None)
            if value is not None and not callable(value):
                out[f"{i}.{attr}"] = dict(value) if hasattr(value, "items") else value
    return out


@pytest.fixture(scope="module")
def replayed(taxi_run: Run) -> tuple[Run, list[str]]:
    (taxi_run.root / "pipe.py").write_text(PIPELINE_FILE)
    settings = load_settings(config_file=None, broker=taxi_run.broker, signing_key=KEY)
    archive = taxi_run.root / "archive"
    namespaces = []
    with EmbeddedLog(taxi_run.root / "log") as log:
        # record timestamps are ingest times: the range is rows ~1,000..8,500 of the run
        stamps = sorted(r.timestamp_ms for r in records(log, f"{P}.examples"))
        lo, hi = stamps[1000], stamps[8500]
        expected = sum(lo <= t < hi for t in stamps)
        assert 6000 < expected < 8000
        ArchiveSink(log, archive, [f"{P}.examples"], pipeline=P).run()
        for ns, source in (("rp-a", "kafka"), ("rp-b", "kafka"), ("rp-c", "archive")):
            stats = replay(log, P, lo, hi, source=source, namespace=ns,  # type: ignore[arg-type]
                           root=archive)
            assert stats.records == expected
            run_processors(log, f"{taxi_run.root / 'pipe.py'}:build_pipeline", ns,
                           settings=settings, idle_s=0.8)
            namespaces.append(ns)
    return taxi_run, namespaces


@pytest.mark.parametrize("role", ROLES)
def test_replayed_twice_gives_equal_contents(replayed: tuple[Run, list[str]], role: str) -> None:
    run, namespaces = replayed
    with EmbeddedLog(run.root / "log") as log:
        first, *others = (contents(log, ns, role) for ns in namespaces)
    assert first, f"nothing on {role}"
    for other in others:
        assert len(other) == len(first)
        for a, b in zip(first, other, strict=True):
            assert a == b


def test_replayed_models_verify_and_have_equal_weights(
        replayed: tuple[Run, list[str]]) -> None:
    run, namespaces = replayed
    models: list[list[tuple[int, int | None, str, dict[str, Any]]]] = []
    with EmbeddedLog(run.root / "log") as log:
        for ns in namespaces:
            releases = [ModelRelease.model_validate(v) for _, _, v in
                        read_topic(log, f"{ns}.models") if v and v["kind"] == "release"]
            models.append([(r.version, r.parent_version, r.artifact.sha256,
                            weights(load_release_model(r, KEY.encode()))) for r in releases])
    assert len(models[0]) >= 2, "too few blessed models to compare"
    assert all(w[3] for w in models[0])
    for other in models[1:]:
        assert other == models[0]


def test_live_pipeline_untouched(replayed: tuple[Run, list[str]]) -> None:
    run, namespaces = replayed
    with EmbeddedLog(run.root / "log") as log:
        assert log.describe_topic(f"{P}.examples").records == 9000
        for ns in namespaces:
            assert log.topic_exists(f"{ns}.checkpoints")
    store = LineageStore(run.history / "lineage.duckdb", read_only=True)
    try:  # the replays' lineage: same ranges, schema and gate decision in every namespace
        answers = [store.lineage(f"{ns}:1")["upstream"] for ns in namespaces]
    finally:
        store.close()
    for up in answers:
        assert up["blessed"] is True and [s["version"] for s in up["schemas"]] == [1]
        assert up["event_time"] == answers[0]["event_time"]
        assert [(r["partition"], r["start"], r["end"]) for r in up["examples"]] == [
            (r["partition"], r["start"], r["end"]) for r in answers[0]["examples"]]
