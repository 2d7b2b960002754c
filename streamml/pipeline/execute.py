"""Run a :class:`~streamml.pipeline.graph.Pipeline` in one process, on any log.

:class:`PipelineRun` interleaves the ingest loops of the pipeline's connectors
(one batch each, rate-limited by their token buckets) with the embedded
:class:`~streamml.runtime.runner.Runner` hosting every processor in
topological order, so each turn pushes new examples through the whole graph.
It works on the embedded log and on Kafka alike (the Runner and the ingest
loop only use the :class:`~streamml.log.base.Log` interface); on Kafka each
processor can instead run as its own worker group (``streamml run PIPELINE
--component NAME``), and ``exclude`` leaves those components out of this process.

>>> import pathlib, tempfile
>>> from streamml.log.embedded import EmbeddedLog
>>> from streamml.pipeline import Pipeline, ReplaySource
>>> from streamml.statistics.processor import StatisticsGen
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "t.csv").write_text("x\\n" + "".join(f"{i}\\n" for i in range(30)))
>>> p = Pipeline(name="p", components=[ReplaySource("t", str(d / "t.csv")),
...              StatisticsGen("p.examples", "p.statistics", count_window=5, cumulative=False)],
...              settings={"broker": f"embedded://{d}/log"})
>>> log = EmbeddedLog(str(d / "log"))
>>> with PipelineRun(p, log) as run:
...     progress = run.run_until_done()
>>> progress.ingested, sum(s.emitted for s in progress.processors) > 0
(30, True)
>>> log.close()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from streamml.connectors.ingest import Ingestor, IngestStats
from streamml.log.base import Log
from streamml.pipeline.graph import Pipeline
from streamml.runtime.checkpoint import hmac_key_from
from streamml.runtime.runner import ProcessorStats, Runner, topic_spec


@dataclass
class RunProgress:
    """What a run has done so far (for progress displays)."""

    elapsed_s: float = 0.0
    ingested: int = 0
    connectors: list[IngestStats] = field(default_factory=list)
    processors: list[ProcessorStats] = field(default_factory=list)
    done: bool = False

    @property
    def rate(self) -> float:
        """Records ingested per second."""
        return self.ingested / self.elapsed_s if self.elapsed_s else 0.0


def reset_topics(log: Log, pipeline: Pipeline) -> list[str]:
    """Delete every topic of ``pipeline`` (and its checkpoints): a run from scratch."""
    topics = [*pipeline.topics, f"{pipeline.name}.checkpoints", f"{pipeline.name}.deadletter"]
    deleted = []
    for topic in dict.fromkeys(topics):
        if log.topic_exists(topic):
            log.delete_topic(topic)
            deleted.append(topic)
    return deleted


class PipelineRun:
    """Run ``pipeline`` over ``log`` (see the module docstring).

    ``drain_each_batch`` makes every ingest batch flow through all processors
    before the next one is read (the downstream lag stays at one batch).
    "Drained" means no processor lags (:meth:`Runner.lag`: end offsets minus
    next offsets), not "a poll came back empty": on Kafka an empty poll often
    just means a fetch is in flight. While records are in flight the lagging
    processors poll for up to ``wait_s``; ``drain_timeout_s`` bounds a drain
    that stops making progress. ``exclude`` names components that run
    elsewhere (faust workers): they are not hosted here.
    """

    def __init__(self, pipeline: Pipeline, log: Log, *, batch_size: int = 500,
                 checkpoint_every_records: int = 5000, checkpoint_every_s: float = 5.0,
                 drain_each_batch: bool = True, idle_after_s: float = 0.5,
                 wait_s: float = 0.02, drain_timeout_s: float = 10.0,
                 hmac_key: bytes | None = None, exclude: Collection[str] = ()) -> None:
        for name in exclude:
            pipeline.component(name)  # ConfigError for an unknown name
        self.pipeline = pipeline
        self.exclude = frozenset(exclude)
        self.log = log
        self.drain_each_batch = drain_each_batch
        self.wait_s = wait_s
        self.drain_timeout_s = drain_timeout_s
        key = hmac_key if hmac_key is not None else hmac_key_from(pipeline.settings)
        processors = [p for p in pipeline.processors if p.processor_name not in self.exclude]
        self.runner = Runner(log, processors, pipeline.name, batch_size=batch_size,
                             checkpoint_every_records=checkpoint_every_records,
                             checkpoint_every_s=checkpoint_every_s, poll_timeout_s=0.0,
                             idle_after_s=idle_after_s, hmac_key=key)
        self.ingestors = [
            Ingestor(log, c.source, pipeline.name, examplegen=c.examplegen,
                     batch_size=c.batch_size, rate=c.rate, max_records=c.max_records,
                     hmac_key=key)
            for c in pipeline.connectors if c.name not in self.exclude
        ]
        self.progress = RunProgress()
        self._started_at = 0.0

    def start(self) -> None:
        """Create every topic from the catalog, start the ingestors and the runner."""
        self._started_at = time.monotonic()
        for topic in self.pipeline.topics:
            if not self.log.topic_exists(topic):
                self.log.create_topic(topic_spec(self.pipeline.name, topic), exist_ok=True)
        for ing in self.ingestors:
            ing.start()
        self.runner.start()

    def close(self) -> None:
        """Final checkpoints, then release consumers, producers and sources."""
        try:
            self.runner.close()
        finally:
            for ing in self.ingestors:
                ing.close()

    def __enter__(self) -> PipelineRun:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def sources_done(self) -> bool:
        return all(ing.done() for ing in self.ingestors)

    def step(self) -> int:
        """One turn: one batch per connector, then the processors (drained if configured)."""
        moved = 0
        for ing in self.ingestors:
            if not ing.done():
                moved += ing.step()
        handled = self.runner.step()
        moved += handled
        if self.drain_each_batch:
            moved += self.drain()
        self._update()
        return moved

    def drain(self) -> int:
        """Step the processors until none lags; returns the records they handled.

        Gives up (returns) after ``drain_timeout_s`` without progress.
        """
        moved = 0
        deadline = time.monotonic() + self.drain_timeout_s
        while True:
            handled = self.runner.step()
            moved += handled
            if handled:
                deadline = time.monotonic() + self.drain_timeout_s
                continue
            if not self.runner.lag() or time.monotonic() > deadline:
                return moved
            # Records exist that the consumers have not fetched yet: wait for them.
            handled = self.runner.step(wait_s=self.wait_s)
            moved += handled
            if handled:
                deadline = time.monotonic() + self.drain_timeout_s

    def _update(self) -> None:
        p = self.progress
        p.elapsed_s = time.monotonic() - self._started_at
        p.connectors = [ing.stats for ing in self.ingestors]
        p.ingested = sum(s.records_in for s in p.connectors)
        p.processors = self.runner.stats()

    def run_until_done(self, *, idle_s: float = 1.0, timeout_s: float | None = None,
                       stop: threading.Event | None = None,
                       on_progress: Callable[[RunProgress], None] | None = None,
                       every_s: float = 0.1) -> RunProgress:
        """Step until the sources are exhausted and the processors idle for ``idle_s``.

        ``idle_s`` must exceed the runner's ``idle_after_s`` so processors get
        their ``on_idle`` call (time windows close on it). Sources that follow
        (never exhausted) run until ``stop`` is set or ``timeout_s``.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        idle_since: float | None = None
        last_report = 0.0
        while not (stop is not None and stop.is_set()):
            moved = self.step()
            now = time.monotonic()
            if on_progress is not None and now - last_report >= every_s:
                last_report = now
                on_progress(self.progress)
            if deadline is not None and now > deadline:
                break
            if moved or not self.sources_done:
                idle_since = None
                if not moved:
                    time.sleep(0.005)
                continue
            if self.runner.lag():  # records in flight (not yet fetched): not idle
                idle_since = None
                self.runner.step(wait_s=self.wait_s)
                continue
            idle_since = idle_since or now
            if now - idle_since >= idle_s:
                break
            time.sleep(0.01)
        self.progress.done = self.sources_done
        self._update()
        if on_progress is not None:
            on_progress(self.progress)
        return self.progress
