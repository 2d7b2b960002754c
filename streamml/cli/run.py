"""``streamml run PIPELINE``: run a pipeline defined in Python, in this process or as workers."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click
from rich.console import Console

from streamml.cli.context import CliState, pass_state
from streamml.errors import ConfigError
from streamml.log import parse_broker_url
from streamml.pipeline import PipelineRun, load_pipeline, reset_topics
from streamml.pipeline.components import Step


@click.command("run")
@click.argument("pipeline_ref", metavar="PIPELINE")
@click.option("--name", "-p", default=None,
              help="Pipeline name (the <p> of <p>.<role> topics), if the definition takes one.")
@click.option("--component", "-c", default=None, metavar="NAME",
              help="Run only this processor, as a faust worker on Kafka (kafka:// broker): "
                   "start several to form a scaled-out consumer group.")
@click.option("--reset", is_flag=True, help="Delete the pipeline's topics first (start over).")
@click.option("--batch-size", type=click.IntRange(1), default=500, show_default=True,
              help="Most records a processor handles per micro-batch.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), default=None,
              help="Stop after this many seconds (default: when the sources are exhausted "
                   "and the processors idle, or on Ctrl-C).")
@click.option("--dry-run", is_flag=True, help="Build and check the pipeline, print its graph.")
@pass_state
def command(state: CliState, pipeline_ref: str, name: str | None, component: str | None,
            reset: bool, batch_size: int, timeout: float | None, dry_run: bool) -> None:
    """Run PIPELINE: module:attr, or a .py file exposing build_pipeline(settings).

    The definition is built with the settings (flags > STREAMML_* > config
    file) and checked: a missing upstream, a cycle or an incompatible payload
    stops here with one error line. Then every connector and processor runs
    in this process, in topological order (the embedded default, or the same
    one-process host over --broker kafka://HOST:PORT), until the sources are
    exhausted and the processors idle; state is checkpointed, so a second run
    resumes where the first stopped.

    On Kafka, --component NAME runs one processor as a faust worker instead:
    run it several times to scale it out (workers split its input partitions).

    \b
    Examples:
      streamml run examples/taxi_pipeline.py
      streamml run examples/drift_pipeline.py --dry-run
      streamml -b kafka://127.0.0.1:9092 run examples/taxi_pipeline.py -c trainer
    """
    console = Console()
    pipeline = load_pipeline(pipeline_ref, state.settings, name=name)
    if dry_run:
        console.print(f"pipeline [cyan]{pipeline.name}[/cyan]: {len(pipeline.components)} "
                      "components, wiring OK")
        console.print(pipeline.describe(), highlight=False, markup=False)
        return
    log = state.log()
    if component is not None:
        _run_worker(state, pipeline, component, batch_size)
        return
    if reset:
        reset_topics(log, pipeline)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    console.print(f"running [cyan]{pipeline.name}[/cyan] on {log.url} "
                  f"({len(pipeline.components)} components); Ctrl-C stops")
    try:
        with PipelineRun(pipeline, log, batch_size=batch_size) as run:
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


def _run_worker(state: CliState, pipeline: object, component: str, batch_size: int) -> None:
    from pathlib import Path

    from streamml.pipeline.graph import Pipeline
    from streamml.runtime.checkpoint import hmac_key_from
    from streamml.runtime.faust_host import FaustHost

    assert isinstance(pipeline, Pipeline)
    settings = state.settings
    if parse_broker_url(settings.broker)[0] != "kafka":
        raise ConfigError("--component runs a faust worker: it needs --broker kafka://HOST:PORT")
    step = pipeline.component(component)
    if not isinstance(step, Step):
        raise ConfigError(f"{component} is a connector; run it with streamml run (no -c)")
    where = Path(settings.state_dir) / "faust" / f"{pipeline.name}.{component}"
    host = FaustHost(step.processor, settings, pipeline=pipeline.name, workdir=where,
                     batch_size=batch_size, hmac_key=hmac_key_from(settings))
    code = host.run(loglevel="WARNING")
    if code:
        raise click.exceptions.Exit(code)
