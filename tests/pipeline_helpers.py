"""Helpers for tests of whole pipeline runs: the taxi pipeline, topic contents, invariants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamml import serde
from streamml.log.base import Log
from streamml.log.read import read_to_end
from streamml.pipeline import Pipeline, PipelineRun, RunProgress, load_pipeline
from streamml.settings import load_settings

TAXI = "streamml.examples.taxi_pipeline"
START_MS = 1_750_000_000_000  # fixed event times: both runs see the same input
ROWS, WINDOW = 4000, 500


def taxi(log_dir: Path | str, name: str = "t", **options: Any) -> Pipeline:
    """The taxi pipeline on ``log_dir`` (embedded) or a ``kafka://`` URL, fixed input."""
    broker = log_dir if str(log_dir).startswith("kafka://") else f"embedded://{log_dir}"
    settings = load_settings(config_file=None, broker=str(broker), signing_key="test-key")
    opts: dict[str, Any] = dict(rows=ROWS, window=WINDOW, batch_size=250, start_ms=START_MS)
    opts.update(options)
    return load_pipeline(TAXI, settings, name=name, **opts)


def records(log: Log, topic: str) -> list[tuple[str | None, Any]]:
    """``(key, decoded value)`` of every record of ``topic``, in offset order per partition."""
    if not log.topic_exists(topic):
        return []
    return [(r.key.decode() if r.key else None,
             None if r.value is None else serde.decode(r.value))
            for r in read_to_end(log, topic)]


def stamped(value: Any) -> Any:
    """``value`` without ``created_at`` (the wall-clock write stamp) anywhere in it."""
    if isinstance(value, dict):
        return {k: stamped(v) for k, v in value.items() if k != "created_at"}
    if isinstance(value, list):
        return [stamped(v) for v in value]
    return value


def windows(log: Log, p: str, *, last_wins: bool = False) -> dict[tuple[Any, ...], Any]:
    """Final statistics windows by (split, window id).

    A re-emitted window must be identical, unless ``last_wins``: after a crash a
    count window is re-counted from the checkpoint, and what it holds depends on
    how the partitions of the examples topic interleave in the new polls.
    """
    out: dict[tuple[Any, ...], Any] = {}
    for _, v in records(log, f"{p}.statistics"):
        if not v.get("final", True):
            continue
        v = stamped(v)
        key = (v.get("split"), v["window"].get("kind"), v["window"].get("id"))
        if last_wins:
            out[key] = v
        assert out.setdefault(key, v) == v, f"window {key} re-emitted with other content"
    return out


def run_to_end(pipeline: Pipeline, log: Log, **kwargs: Any) -> RunProgress:
    with PipelineRun(pipeline, log, **kwargs) as run:
        return run.run_until_done(idle_s=0.8)


def inputs_consumed(progress: RunProgress, pipeline: Pipeline, log: Log) -> None:
    """Counts in = counts out: every processor read every record of its inputs."""
    for proc in pipeline.processors:
        stats = {s.name: s for s in progress.processors}[proc.processor_name]
        total = sum(log.describe_topic(t).records for t in proc.inputs if log.topic_exists(t))
        assert (stats.records_in, stats.lag) == (total, 0), proc.processor_name
