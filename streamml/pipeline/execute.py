"""Run a :class:`~streamml.pipeline.graph.Pipeline` in one process, on any log.

:class:`PipelineRun` interleaves the ingest loops of the pipeline's connectors
(one batch each, rate-limited by their token buckets) with the embedded
:class:`~streamml.runtime.runner.Runner` hosting every processor in
topological order, so each turn pushes new examples through the whole graph.
It works on the embedded log and on Kafka alike (the Runner and the ingest
loop only use the :class:`~streamml.log.base.Log` interface); on Kafka each
processor can instead run as its own worker group (``streamml run PIPELINE
--component NAME``), and ``exclude`` leaves those components out of this process.
With ``processes=N`` (or ``"auto"``) the processors are split over N OS
processes on the same log (:mod:`streamml.pipeline.processes`: how they are
split, how children rebuild the pipeline, when the run is done); this process
keeps the connectors and its share of the processors.

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
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamml.connectors.ingest import Ingestor, IngestStats
from streamml.log.base import Log
from streamml.pipeline.graph import Pipeline
from streamml.pipeline.processes import ProcessGroup, resolve_processes, split_components
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
    elsewhere (faust workers): they are not hosted here. ``processes`` and
    ``groups`` spread the processors over several OS processes (see
    :func:`~streamml.pipeline.processes.split_components`).
    """

    def __init__(self, pipeline: Pipeline, log: Log, *, batch_size: int = 500,
                 checkpoint_every_records: int = 5000, checkpoint_every_s: float = 5.0,
                 drain_each_batch: bool = True, idle_after_s: float = 0.5,
                 wait_s: float = 0.02, drain_timeout_s: float = 10.0,
                 hmac_key: bytes | None = None, exclude: Collection[str] = (),
                 processes: int | str = 1, groups: Sequence[Sequence[str]] = ()) -> None:
        for name in exclude:
            pipeline.component(name)  # ConfigError for an unknown name
        self.pipeline = pipeline
        self.exclude = frozenset(exclude)
        self.log = log
        self.drain_each_batch = drain_each_batch
        self.wait_s = wait_s
        self.drain_timeout_s = drain_timeout_s
        key = hmac_key if hmac_key is not None else hmac_key_from(pipeline.settings)
        # "auto" needs a pipeline the children can rebuild; one built in code
        # without an origin runs here alone (an explicit count says it must not)
        n = 1 if processes == "auto" and pipeline.origin is None else resolve_processes(processes)
        #: Component names per process (process 0 is this one).
        self.split = split_components(pipeline, n, groups=groups, exclude=self.exclude)
        here = set(self.split[0])
        processors = [p for p in pipeline.processors if p.processor_name in here]
        options: dict[str, Any] = dict(
            batch_size=batch_size, checkpoint_every_records=checkpoint_every_records,
            checkpoint_every_s=checkpoint_every_s, poll_timeout_s=0.0,
            idle_after_s=idle_after_s)
        self.runner = Runner(log, processors, pipeline.name, hmac_key=key,
                             **options)
        self.children = (ProcessGroup(pipeline, log.url, self.split[1:], hmac_key=key,
                                      runner_options=options)
                         if len(self.split) > 1 else None)
        self.ingestors = [
            Ingestor(log, c.source, pipeline.name, examplegen=c.examplegen,
                     batch_size=c.batch_size, rate=c.rate, max_records=c.max_records,
                     hmac_key=key)
            for c in pipeline.connectors if c.name not in self.exclude
        ]
        self.progress = RunProgress()
        self._started_at = 0.0
        self._last_active = 0.0
        self._emitted = 0
        self._lag_here = 0  # this process's lag, from the last _update

    def start(self) -> None:
        """Create every topic from the catalog, start the runner, children and ingestors."""
        self._started_at = time.monotonic()
        for topic in self.pipeline.topics:
            if not self.log.topic_exists(topic):
                self.log.create_topic(topic_spec(self.pipeline.name, topic), exist_ok=True)
        self.runner.start()
        try:
            if self.children is not None:
                self.children.start()  # returns once every child's runner has started
            for ing in self.ingestors:
                ing.start()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Final checkpoints (children first), then release consumers, producers, sources."""
        try:
            if self.children is not None:
                self.children.stop()
        finally:
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

    def drained(self) -> bool:
        """Sources exhausted and no processor in any process lags (see processes)."""
        if not self.sources_done:
            return False
        if self.children is None:
            return self.runner.lag() == 0
        self.children.poll()
        since = max(self._last_active, self.children.last_active)
        return self.children.quiet_since(since) and self.runner.lag() == 0

    def cpu_s(self) -> float:
        """CPU seconds used by this process and (as last reported) its children."""
        return time.process_time() + (self.children.cpu_s() if self.children else 0.0)

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
        if self.children is not None:
            self.children.poll()  # PipelineProcessError if a child failed
        self._update(moved)
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

    def _update(self, moved: int = 0) -> None:
        p = self.progress
        now = time.monotonic()
        p.elapsed_s = now - self._started_at
        p.connectors = [ing.stats for ing in self.ingestors]
        p.ingested = sum(s.records_in for s in p.connectors)
        stats = self.runner.stats()
        self._lag_here = sum(s.lag for s in stats)  # this pass's end-offset lookup
        emitted = sum(s.emitted for s in stats)
        if moved or emitted != self._emitted:  # activity the children may not have seen
            self._last_active, self._emitted = now, emitted
        if self.children is None:
            p.processors = stats
            return
        by_name = {s.name: s for s in stats} | self.children.stats()
        p.processors = [by_name[n] for n in (q.processor_name for q in self.pipeline.processors)
                        if n in by_name]

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
            if self.children is not None and self.children.stopped_by_child:
                break  # a child was stopped (SIGTERM): stop the run
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
            if self._lag_here:  # records in flight (not yet fetched): not idle
                idle_since = None
                self.runner.step(wait_s=self.wait_s)
                continue
            if not self.drained():  # a child lags, or has not reported since
                idle_since = None
                time.sleep(0.005)
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
