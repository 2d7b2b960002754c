"""``streamml ingest CONNECTOR``: run one connector into ``<pipeline>.examples`` on its own."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click
from rich.console import Console
from rich.live import Live
from rich.text import Text

from streamml.cli.context import CliState, pass_state
from streamml.connectors.definition import load_connector
from streamml.connectors.ingest import Ingestor, IngestStats
from streamml.runtime.checkpoint import hmac_key_from


def progress_line(stats: IngestStats, topic: str) -> Text:
    """The live line: records in, examples, dead letters, rate."""
    return Text.assemble(
        (f"{stats.connector}", "bold"), " → ", (topic, "cyan"), ": ",
        f"{stats.records_in:,} records → ", (f"{stats.examples:,} examples", "green"), " + ",
        (f"{stats.dead_letters:,} dead letters", "red" if stats.dead_letters else "dim"),
        f"  {stats.rate:,.0f} rec/s",
    )


@click.command("ingest")
@click.argument("connector")
@click.option("--pipeline", "-p", default=None,
              help="Pipeline to ingest into (default: the definition's, else the setting).")
@click.option("--once/--follow", "once", default=None,
              help="Stop at the end of the source, or keep following it (default: definition).")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="At most N records per second.")
@click.option("--max-records", type=click.IntRange(min=1), default=None,
              help="Stop after N records.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Records per batch (and per checkpoint).")
@click.option("--dir", "directory", metavar="DIR", default=None,
              help="Connector definitions folder (env STREAMML_CONNECTORS_DIR).")
@pass_state
def command(state: CliState, connector: str, pipeline: str | None, once: bool | None,
            rate: float | None, max_records: int | None, batch_size: int | None,
            directory: str | None) -> None:
    """Run CONNECTOR (a name in connectors/ or a definition file) until its source ends.

    Every record becomes an example on <pipeline>.examples or a dead letter on
    <pipeline>.deadletter. The connector's position is checkpointed after each
    batch, so a restart (even after kill -9) resumes with no gap. Follow mode
    runs until interrupted (Ctrl-C or SIGTERM).
    """
    definition = load_connector(connector, directory)
    pipe = pipeline or definition.pipeline or state.settings.pipeline
    mode = None if once is None else ("once" if once else "follow")
    source = definition.build_source(mode=mode)
    log = state.log()
    ingestor = Ingestor(
        log, source, pipe, examplegen=definition.build_examplegen(pipe),
        batch_size=batch_size or definition.ingest.batch_size,
        rate=rate or definition.ingest.rate, max_records=max_records,
        hmac_key=hmac_key_from(state.settings),
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    console = Console(stderr=True)
    topic = ingestor.examples_spec.name
    try:
        with Live(progress_line(ingestor.stats, topic), console=console, transient=True,
                  refresh_per_second=4, auto_refresh=console.is_terminal) as live:
            def update(stats: IngestStats) -> None:
                if console.is_terminal:
                    live.update(progress_line(stats, topic))
            try:
                ingestor.run(stop, on_batch=update)
            except KeyboardInterrupt:
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        ingestor.close()
    s = ingestor.stats
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(s.reasons.items()))
    click.echo(f"{definition.name}: {s.summary()}" + (f" ({reasons})" if reasons else ""))
    click.echo(f"streamml: {topic} in {s.elapsed_s:.1f}s ({s.rate:,.0f} records/s)", err=True)
