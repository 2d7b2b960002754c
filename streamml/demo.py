"""The main job: replay the bundled taxi CSV as a live stream through a pipeline.

For the backbone release the pipeline is two processors (see
:mod:`streamml.processors.basic`): raw rows → examples → window summaries.
The replay and the runner interleave in one process, so the demo is
deterministic and needs nothing but the installed package.

>>> import tempfile
>>> from streamml.log.embedded import EmbeddedLog
>>> with EmbeddedLog(tempfile.mkdtemp()) as log:
...     summary = run_demo(log, DemoConfig(rows=120, window=50))
>>> summary.produced, summary.examples, summary.windows, summary.dead_letters
(120, 120, 2, 0)
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from streamml import serde
from streamml.log.base import Log, TopicPartition, TopicSpec
from streamml.processors.basic import ToExample, WindowMeans
from streamml.runtime.runner import ProcessorStats, Runner

TAXI_EVENT_TIME = "trip_start_timestamp"


def taxi_csv() -> Path:
    """Path of the bundled Chicago taxi CSV (see ``streamml/data/PROVENANCE.md``)."""
    return Path(str(resources.files("streamml") / "data" / "taxi.csv"))


@dataclass(frozen=True)
class DemoConfig:
    pipeline: str = "demo"
    rows: int | None = None  # None: the whole file
    rate: float = 0.0  # rows per second; 0 = as fast as the pipeline goes
    window: int = 1000
    chunk: int = 500
    source: Path = field(default_factory=taxi_csv)
    hmac_key: bytes | None = None  # checkpoint HMAC key (setting checkpoint_key)


@dataclass
class DemoProgress:
    """What the live display shows; updated after every chunk."""

    produced: int = 0
    elapsed_s: float = 0.0
    processors: list[ProcessorStats] = field(default_factory=list)
    last_window: dict[str, Any] | None = None


@dataclass
class DemoSummary:
    produced: int
    examples: int
    windows: int
    dead_letters: int
    elapsed_s: float
    processors: list[ProcessorStats]
    last_window: dict[str, Any] | None
    topics: dict[str, int]


def read_rows(path: Path, limit: int | None) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(event_time_ms, row)``; the event time comes from the taxi timestamp column."""
    with path.open(newline="", encoding="utf-8") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            if limit is not None and i >= limit:
                return
            stamp = row.get(TAXI_EVENT_TIME) or ""
            yield (int(stamp) * 1000 if stamp.isdigit() else int(time.time() * 1000)), row


def demo_topics(pipeline: str) -> list[str]:
    return [f"{pipeline}.{role}" for role in ("raw", "examples", "statistics", "deadletter",
                                                "checkpoints")]


def reset_pipeline(log: Log, pipeline: str) -> None:
    """Delete the demo's topics so every run starts from an empty pipeline."""
    for topic in demo_topics(pipeline):
        if log.topic_exists(topic):
            log.delete_topic(topic)


def _last_window(log: Log, topic: str) -> dict[str, Any] | None:
    if not log.topic_exists(topic):
        return None
    info = log.describe_topic(topic)
    with log.consumer() as consumer:
        tps = [TopicPartition(topic, p.partition) for p in info.partitions if p.end_offset]
        if not tps:
            return None
        consumer.assign(tps)
        for p in info.partitions:
            if p.end_offset:
                consumer.seek(TopicPartition(topic, p.partition), p.end_offset - 1)
        records = consumer.poll(timeout_s=1.0)
    latest = max(records, key=lambda r: r.timestamp_ms, default=None)
    return None if latest is None else serde.decode(latest.value)


def run_demo(
    log: Log,
    config: DemoConfig | None = None,
    on_progress: Callable[[DemoProgress], None] | None = None,
) -> DemoSummary:
    """Replay the taxi CSV into ``<p>.raw`` and run the pipeline until it is drained."""
    cfg = config or DemoConfig()
    p = cfg.pipeline
    reset_pipeline(log, p)
    raw = f"{p}.raw"
    log.create_topic(TopicSpec(name=raw, partitions=1))
    processors = [
        ToExample(raw, f"{p}.examples", source=cfg.source.name),
        WindowMeans(f"{p}.examples", f"{p}.statistics", window=cfg.window),
    ]
    progress = DemoProgress()
    started = time.monotonic()
    runner = Runner(log, processors, p, checkpoint_every_records=2000, poll_timeout_s=0.0,
                    hmac_key=cfg.hmac_key)
    with runner, log.producer() as producer:
        chunk: list[bytes] = []
        stamps: list[int] = []

        def ship() -> None:
            for value, stamp in zip(chunk, stamps, strict=True):
                producer.send(raw, value, timestamp_ms=stamp)
            producer.flush()
            progress.produced += len(chunk)
            chunk.clear()
            stamps.clear()
            while runner.step():
                pass
            progress.elapsed_s = time.monotonic() - started
            progress.processors = runner.stats()
            if on_progress:
                on_progress(progress)
            if cfg.rate > 0:
                ahead = progress.produced / cfg.rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)

        for stamp, row in read_rows(cfg.source, cfg.rows):
            chunk.append(serde.encode(row))
            stamps.append(stamp)
            if len(chunk) >= cfg.chunk:
                ship()
        if chunk:
            ship()
        runner.run_until_idle(idle_s=0.2)
        stats = runner.stats()
    progress.processors = stats
    progress.last_window = _last_window(log, f"{p}.statistics")
    progress.elapsed_s = time.monotonic() - started
    if on_progress:
        on_progress(progress)
    topics = {t: log.describe_topic(t).records for t in demo_topics(p) if log.topic_exists(t)}
    by_name = {s.name: s for s in stats}
    return DemoSummary(
        produced=progress.produced,
        examples=by_name["to_example"].emitted,
        windows=by_name["window_means"].emitted,
        dead_letters=sum(s.dead_letters for s in stats),
        elapsed_s=progress.elapsed_s,
        processors=stats,
        last_window=progress.last_window,
        topics=topics,
    )
