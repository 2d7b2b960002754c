"""``streamml run PIPELINE``: run a pipeline defined in Python, in this process or as workers."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import click
import yaml
from rich.console import Console

from streamml.cli.context import CliState, pass_state
from streamml.errors import ConfigError
from streamml.pipeline import PipelineRun, load_pipeline, reset_topics
from streamml.pipeline.processes import resolve_processes


def parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``("rows=2000", "rate=0")`` -> ``{"rows": 2000, "rate": 0}`` (values as YAML scalars).

    >>> parse_options(("rows=2000", "source=file", "rate=0.5"))
    {'rows': 2000, 'source': 'file', 'rate': 0.5}
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ConfigError(f"--option must look like KEY=VALUE, got {pair!r}")
        try:
            out[key] = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            out[key] = text
    return out


@click.command("run")
@click.argument("pipeline_ref", metavar="PIPELINE")
@click.option("--name", "-p", default=None,
              help="Pipeline name (the <p> of <p>.<role> topics), if the definition takes one.")
@click.option("--component", "-c", default=None, metavar="NAME",
              help="Run only this processor, as a faust worker on Kafka (kafka:// broker), "
                   "in its own consumer group <p>.<NAME>.")
@click.option("--skip", "-s", multiple=True, metavar="NAME",
              help="Do not run this component here (it runs as a -c worker). Repeatable.")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE",
              help="Keyword argument of the pipeline's build function, e.g. -o rows=2000. "
                   "Repeatable.")
@click.option("--reset", is_flag=True, help="Delete the pipeline's topics first (start over).")
@click.option("--batch-size", type=click.IntRange(1), default=500, show_default=True,
              help="Most records a processor handles per micro-batch.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), default=None,
              help="Stop after this many seconds (default: when the sources are exhausted "
                   "and the processors idle, or on Ctrl-C).")
@click.option("--processes", "-n", default=None, metavar="N|auto",
              help="Spread the components over N OS processes on the same log (auto: 2 "
                   "when 2 CPUs are usable, else 1); default: setting `processes` (auto).")
@click.option("--group", "-g", "groups", multiple=True, metavar="NAME,NAME",
              help="Processors to run together in one extra process (instead of the "
                   "automatic split). Repeatable: one process per --group.")
@click.option("--dry-run", is_flag=True, help="Build and check the pipeline, print its graph.")
@pass_state
def command(state: CliState, pipeline_ref: str, name: str | None, component: str | None,
            skip: tuple[str, ...], options: tuple[str, ...], reset: bool, batch_size: int,
            timeout: float | None, processes: str | None, groups: tuple[str, ...],
            dry_run: bool) -> None:
    """Run PIPELINE: module:attr, or a .py file exposing build_pipeline(settings).

    The definition is built with the settings (flags > STREAMML_* > config
    file) and checked: a missing upstream, a cycle or an incompatible payload
    stops here with one error line. Then every connector and processor runs
    on this host, in topological order (the embedded default, or the same
    host over --broker kafka://HOST:PORT), until the sources are
    exhausted and the processors idle; state is checkpointed, so a second run
    resumes where the first stopped.

    --processes N splits the components over N OS processes on the same log
    (embedded or Kafka): this one keeps the connectors, statistics and
    validation; the learning chain (and the lineage pair) go to the others.
    The default, auto, is 2 when two CPUs are usable, else 1.
    --group NAME,NAME puts those processors in a process of their own instead.

    On Kafka, --component NAME runs one processor as its own faust worker
    group instead, built from the same definition; --skip NAME leaves it out
    of the in-process run. The built-in components keep one state over all
    their input partitions: one worker per component is active, and a second
    one started for the same component stops with an error.

    \b
    Examples:
      streamml run examples/taxi_pipeline.py
      streamml run examples/drift_pipeline.py --dry-run
      streamml run streamml.examples.taxi_pipeline -o rows=2000 -o rate=0
      streamml run examples/taxi_pipeline.py --processes 2
      streamml -b kafka://127.0.0.1:9092 run examples/taxi_pipeline.py -s trainer
      streamml -b kafka://127.0.0.1:9092 run examples/taxi_pipeline.py -c trainer
    """
    console = Console()
    count = resolve_processes(processes if processes is not None
                              else state.settings.processes)
    pipeline = load_pipeline(pipeline_ref, state.settings, name=name,
                             **parse_options(options))
    if dry_run:
        console.print(f"pipeline [cyan]{pipeline.name}[/cyan]: {len(pipeline.components)} "
                      "components, wiring OK")
        console.print(pipeline.describe(), highlight=False, markup=False)
        return
    if component is not None:
        if reset or skip:
            raise ConfigError("--component runs one worker: it takes no --reset or --skip")
        from streamml.pipeline.workers import component_host

        host = component_host(pipeline, component, state.settings, batch_size=batch_size)
        console.print(f"worker [cyan]{pipeline.name}.{component}[/cyan] on "
                      f"{state.settings.broker}; Ctrl-C stops", highlight=False)
        code = host.run(loglevel="WARNING")
        if code:
            raise click.exceptions.Exit(code)
        return
    group_names = [[n.strip() for n in g.split(",") if n.strip()] for g in groups]
    log = state.log()
    run = PipelineRun(pipeline, log, batch_size=batch_size, exclude=skip, processes=count,
                      groups=group_names)
    if reset:
        reset_topics(log, pipeline)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    console.print(f"running [cyan]{pipeline.name}[/cyan] on {log.url} "
                  f"({len(pipeline.components)} components); Ctrl-C stops")
    if len(run.split) > 1:
        for i, names in enumerate(run.split):
            console.print(f"  process {i}: {', '.join(names)}", highlight=False)
    try:
        with run:
            try:
                progress = run.run_until_done(timeout_s=timeout, stop=stop)
            except KeyboardInterrupt:
                progress = run.progress
    finally:
        signal.signal(signal.SIGTERM, previous)
    for s in progress.connectors:
        console.print(f"ingest/{s.connector}: {s.summary()}")
    for p in progress.processors:
        console.print(f"{p.name}: {p.records_in:,} in, {p.emitted:,} out, lag {p.lag}")
    console.print(f"done in {progress.elapsed_s:.1f}s. See: streamml status {pipeline.name}")

