"""One pipeline over several OS processes: ``PipelineRun(..., processes=N)``.

A machine with several cores runs a pipeline faster when its components run
in several processes over the same log. Topics are the only coupling between
components and every processor checkpoints its state and offsets under its own
key, so the processes are independent; each processor is hosted by exactly
one process. The design:

* **Who hosts what** (:func:`split_components`). Process 0 is the calling
  process (its main module must be import-safe: ``if __name__ == "__main__"``,
  as *spawn* requires). It hosts every connector (the ingest loops: the
  caller's source objects, rate limits and progress stay where they were
  built) and the data family (StatisticsGen, SchemaGen, ExampleValidator):
  process 0 drains its processors after every ingest batch in topological
  order, exactly as the one-process run does, so statistics windows, schemas
  and anomalies are the same as there. The other processors are placed by
  family (:data:`FAMILY`: the learning chain Trainer → Evaluator → Pusher
  together, the lineage pair together, any other processor alone) with the
  longest-first greedy rule over an estimated cost (:data:`COST`, measured on
  the taxi pipeline), ties to the lowest process number: deterministic. For
  the taxi pipeline and two processes the learning chain gets the second
  process. ``groups`` (lists of processor names, one per child) override it.
* **How a child gets the pipeline.** Children are started with
  ``multiprocessing``'s *spawn* method (no fork: forking a process that
  already runs threads, such as rich's live display or Kafka clients, is
  unsafe and warns on Python 3.12+) and rebuild the pipeline from its
  :class:`~streamml.pipeline.loader.PipelineOrigin` (``load_pipeline`` records
  ref, settings, name and build options on the pipeline). A pipeline built in
  code needs one: build it with ``load_pipeline("module:function")``, or set
  ``pipeline.origin``.
* **Completion.** Each child sends reports over a pipe: its processors'
  stats (lag included, from a fresh end-offset lookup), the time of the report
  and the time it last handled or emitted a record. The run is *drained* when
  the sources are exhausted, process 0 lags nowhere, and every child's last
  report says it lags nowhere and was made after the last activity of any
  process (so no record written since can be unseen). ``run_until_done`` waits
  for that to hold ``idle_s`` (time windows close on idle). Then, on
  :meth:`ProcessGroup.stop`, the children write their final checkpoints and exit.
* **Failures and signals.** A child that raises sends the error and exits
  non-zero; one that dies (``kill -9``) is seen by its exit code; either way
  the parent raises :class:`PipelineProcessError` (one line; the other
  processes still checkpoint and stop). Children ignore SIGINT (Ctrl-C reaches
  the whole process group: the parent stops them); SIGTERM or the parent's
  death (the pipe closes) makes a child checkpoint and exit. After ``kill -9``
  a rerun resumes every processor exactly from its own checkpoint.

>>> from streamml.pipeline import load_pipeline
>>> p = load_pipeline("examples/drift_pipeline.py", name="docs")
>>> split_components(p, 2)
[['ingest/penguins', 'statistics_gen', 'schema_gen', 'example_validator'], ['trainer']]
>>> split_components(p, 2, groups=[["schema_gen"]])[1]
['schema_gen']
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from typing import Any

from streamml.errors import ConfigError, StreamMLError
from streamml.pipeline.components import Connector, Step
from streamml.pipeline.graph import Pipeline
from streamml.runtime.runner import ProcessorStats

#: CPU seconds per 15,000 taxi rows of the built-in processors (decoding included),
#: measured on the taxi pipeline in one process: only their ratios matter.
COST: dict[str, float] = {
    "Trainer": 1.6, "LineageMaterializer": 0.9, "Evaluator": 0.5, "StatisticsGen": 0.5,
    "SchemaGen": 0.5, "ExampleValidator": 0.4, "LineageRecorder": 0.1, "Pusher": 0.05,
}
#: Processors that stay in one process: ``data`` is pinned to process 0.
FAMILY: dict[str, str] = {
    "StatisticsGen": "data", "SchemaGen": "data", "ExampleValidator": "data",
    "Trainer": "learning", "Evaluator": "learning", "Pusher": "learning",
    "LineageRecorder": "lineage", "LineageMaterializer": "lineage",
}
#: A connector's ingest loop (source, ExampleGen, encoding and sending).
CONNECTOR_COST = 0.6
DEFAULT_COST = 0.3
#: A child reports at least this often (its lag, for the parent's completion check).
REPORT_EVERY_S = 0.05
#: how long a child's lagging consumers wait for a fetch, and an idle child sleeps
WAIT_S = 0.02
IDLE_SLEEP_S = 0.005


class PipelineProcessError(StreamMLError):
    """A process hosting part of a pipeline failed or died."""


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity masks (macOS, Windows)
        return os.cpu_count() or 1


def resolve_processes(value: int | str | None) -> int:
    """``"auto"`` -> ``min(2, usable CPUs)``; an int >= 1 as is.

    Two processes, not one per CPU: the data family stays with the connectors and
    the learning chain is the only other heavy part, so a third process has
    little to take (``groups`` spread a bigger pipeline deliberately).

    >>> resolve_processes(3), resolve_processes("2"), resolve_processes("auto") >= 1
    (3, 2, True)
    """
    if value is None:
        return 1
    if value == "auto":
        return max(1, min(2, usable_cpus()))
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"processes must be a positive number or 'auto', not {value!r}"
                          ) from None
    if n < 1:
        raise ConfigError(f"processes must be at least 1, not {n}")
    return n


def _class_key(component: Any, table: dict[str, Any]) -> Any:
    if isinstance(component, Step):
        for cls in type(component.processor).__mro__:
            if cls.__name__ in table:
                return table[cls.__name__]
    return None


def estimated_cost(component: Any) -> float:
    """The :data:`COST` of a component (its processor's class, or a base class)."""
    if isinstance(component, Connector):
        return CONNECTOR_COST
    cost = _class_key(component, COST)
    return DEFAULT_COST if cost is None else float(cost)


def split_components(pipeline: Pipeline, processes: int, *,
                     groups: Sequence[Sequence[str]] = (),
                     exclude: Collection[str] = ()) -> list[list[str]]:
    """Component names per process, in topological order; process 0 hosts the connectors.

    With ``groups``, child ``i`` hosts ``groups[i - 1]`` and process 0 the
    rest (``processes`` is then ``len(groups) + 1``). Otherwise the data
    family stays in process 0 and the other families are placed longest-first
    by :func:`estimated_cost`; empty processes are dropped.
    """
    hosted = [c for c in pipeline.order if c.name not in exclude]
    index = {c.name: i for i, c in enumerate(hosted)}
    if groups:
        seen: set[str] = set()
        for group in groups:
            for name in group:
                component = pipeline.component(name)  # ConfigError for an unknown name
                if not isinstance(component, Step):
                    raise ConfigError(f"{name} is a connector: connectors run in the main "
                                      "process, only processors can be grouped")
                if name in seen or name in exclude:
                    raise ConfigError(f"{name} is given to more than one process")
                seen.add(name)
        rest = [c.name for c in hosted if c.name not in seen]
        out = [rest, *([n for n in sorted(g, key=index.__getitem__)] for g in groups)]
        return [g for i, g in enumerate(out) if g or i == 0]
    families: dict[str, list[Any]] = {}
    for c in hosted:
        family = "data" if isinstance(c, Connector) else (_class_key(c, FAMILY) or c.name)
        families.setdefault(family, []).append(c)
    pinned = families.pop("data", [])
    loads = [0.0] * max(1, processes)
    loads[0] = sum(estimated_cost(c) for c in pinned)
    assigned: list[list[Any]] = [list(pinned)] + [[] for _ in loads[1:]]
    units = sorted(families.values(), key=lambda u: (-sum(map(estimated_cost, u)),
                                                     index[u[0].name]))
    for unit in units:
        target = min(range(len(loads)), key=lambda i: (loads[i], i))
        assigned[target].extend(unit)
        loads[target] += sum(estimated_cost(c) for c in unit)
    out = [sorted((c.name for c in g), key=index.__getitem__) for g in assigned]
    return [g for i, g in enumerate(out) if g or i == 0]


@dataclass
class ChildReport:
    """What a child last said about its processors."""

    stats: list[ProcessorStats] = field(default_factory=list)
    at: float = 0.0
    """``time.monotonic()`` when the lags were looked up (system-wide clock on Linux)."""
    last_active: float = 0.0
    cpu_s: float = 0.0

    @property
    def lag(self) -> int:
        return sum(s.lag for s in self.stats)


@dataclass
class _Child:
    index: int
    names: list[str]
    process: Any
    conn: Connection
    report: ChildReport = field(default_factory=ChildReport)
    ready: bool = False
    closed: bool = False
    error: str | None = None

    @property
    def label(self) -> str:
        return f"process {self.index} ({', '.join(self.names)})"


class ProcessGroup:
    """The child processes of one :class:`~streamml.pipeline.execute.PipelineRun`."""

    def __init__(self, pipeline: Pipeline, log_url: str, groups: list[list[str]], *,
                 hmac_key: bytes | None, runner_options: dict[str, Any]) -> None:
        if pipeline.origin is None:
            raise ConfigError(
                f"pipeline {pipeline.name} was built in code: running it in several processes "
                "needs to know how to build it again (load it with load_pipeline("
                "'module:function'), or set pipeline.origin)")
        self.pipeline = pipeline
        self.log_url = log_url
        self.groups = groups
        self.hmac_key = hmac_key
        self.runner_options = runner_options
        self.children: list[_Child] = []
        self.stopped_by_child = False

    def start(self, timeout_s: float = 120.0) -> None:
        """Spawn one process per group; return once every one has started its runner."""
        ctx = multiprocessing.get_context("spawn")
        for i, names in enumerate(self.groups, start=1):
            parent_end, child_end = ctx.Pipe()
            proc = ctx.Process(
                target=child_main, name=f"streamml-{self.pipeline.name}-{i}", daemon=True,
                args=(self.pipeline.origin, self.log_url, names, self.hmac_key,
                      self.runner_options, child_end, i))
            proc.start()
            child_end.close()  # so the child's death is an EOF here, and ours one there
            self.children.append(_Child(i, names, proc, parent_end))
        deadline = time.monotonic() + timeout_s
        while not all(c.ready for c in self.children):
            self.poll(wait_s=0.05)
            if time.monotonic() > deadline:
                raise PipelineProcessError(
                    f"processes not ready after {timeout_s:.0f}s: " + ", ".join(
                        c.label for c in self.children if not c.ready))

    def poll(self, wait_s: float = 0.0) -> None:
        """Read every child's messages; raise :class:`PipelineProcessError` on a failure."""
        for child in self.children:
            if child.closed:
                continue
            try:
                while child.conn.poll(wait_s):
                    wait_s = 0.0
                    self._receive(child, child.conn.recv())
            except (EOFError, OSError):
                child.process.join(5.0)
                if child.error is None and not child.closed:
                    code = child.process.exitcode
                    how = (f"was killed by signal {-code}" if code is not None and code < 0
                           else f"exited with code {code}")
                    child.error = f"{child.label} {how}"
                child.closed = True
            if child.error is not None:
                raise PipelineProcessError(child.error)

    def _receive(self, child: _Child, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "report":
            child.report = message[1]
            child.ready = True
        elif kind == "error":
            child.error = f"{child.label} failed: {message[1]}"
        elif kind == "closed":
            child.report = message[1]
            child.closed = True
            if not message[2]:
                self.stopped_by_child = True  # it stopped on its own (SIGTERM): so do we

    def stats(self) -> dict[str, ProcessorStats]:
        return {s.name: replace(s) for c in self.children for s in c.report.stats}

    @property
    def last_active(self) -> float:
        return max((c.report.last_active for c in self.children), default=0.0)

    def cpu_s(self) -> float:
        """CPU seconds the children have used (as last reported)."""
        return sum(c.report.cpu_s for c in self.children)

    def quiet_since(self, t: float) -> bool:
        """Every child reported no lag in a report made after ``t``."""
        return all(c.report.at > t and c.report.lag == 0 for c in self.children)

    def stop(self, timeout_s: float = 60.0) -> None:
        """Ask every child to checkpoint and exit; wait; terminate stragglers."""
        for child in self.children:
            if child.process.is_alive():
                try:
                    child.conn.send("stop")
                except OSError:
                    pass
        deadline = time.monotonic() + timeout_s
        for child in self.children:
            while not child.closed and time.monotonic() < deadline:
                try:
                    if child.conn.poll(0.1):
                        self._receive(child, child.conn.recv())
                except (EOFError, OSError):
                    break
            child.process.join(max(0.1, deadline - time.monotonic()))
            if child.process.is_alive():
                child.process.terminate()
                child.process.join(5.0)
            if child.process.is_alive():
                child.process.kill()
                child.process.join()
            child.conn.close()
            child.closed = True


def child_main(origin: Any, log_url: str, names: list[str], hmac_key: bytes | None,
               runner_options: dict[str, Any], conn: Connection, index: int) -> None:
    """Body of a child process: host ``names`` of the rebuilt pipeline until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    from streamml.log import open_log
    from streamml.signals import keep_signals_from_pyarrow

    keep_signals_from_pyarrow()
    from streamml.runtime.runner import Runner

    runner = log = None
    try:
        pipeline = origin.rebuild()
        processors = []
        for name in names:
            step = pipeline.component(name)
            if not isinstance(step, Step):
                raise ConfigError(f"{name} is not a processor")
            processors.append(step.processor)
        log = open_log(log_url, settings=pipeline.settings)
        runner = Runner(log, processors, pipeline.name, hmac_key=hmac_key, **runner_options)
        runner.start()
        conn.send(("report", ChildReport(runner.stats(), time.monotonic(), 0.0,
                                         time.process_time())))
        last_active = last_sent = 0.0
        emitted = 0
        asked = False
        while not stop.is_set():
            if conn.poll():
                conn.recv()  # "stop" (EOFError when the parent is gone)
                asked = True
                break
            # lagging consumers wait up to WAIT_S for their fetches instead of spinning
            handled = runner.step(wait_s=WAIT_S)
            now = time.monotonic()
            if handled:
                last_active = now
            if now - last_sent < REPORT_EVERY_S:
                if not handled:
                    time.sleep(IDLE_SLEEP_S)
                continue  # report (and look end offsets up) at most every REPORT_EVERY_S
            stats = runner.stats()  # lags from a fresh end-offset lookup
            total = sum(s.emitted for s in stats)
            if total != emitted:  # emitted records (on_idle too): activity others must see
                last_active, emitted = now, total
            conn.send(("report", ChildReport(stats, now, last_active, time.process_time())))
            last_sent = now
        stats = runner.stats()
        runner.close()
        conn.send(("closed", ChildReport(stats, time.monotonic(), last_active,
                                         time.process_time()), asked))
    except (EOFError, BrokenPipeError):  # the parent is gone: checkpoint and exit
        if runner is not None:
            runner.close()
    except BaseException as exc:
        try:
            conn.send(("error", "".join(traceback.format_exception_only(exc)).strip()))
            if runner is not None:
                runner.close()  # no final checkpoint after a processor failed
        finally:
            os._exit(1)
    finally:
        if log is not None:
            log.close()
