"""``streamml demo``: the main job, with a live progress display and a summary."""

from __future__ import annotations

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from streamml.cli.context import CliState, pass_state
from streamml.demo import DemoConfig, DemoProgress, DemoSummary, run_demo
from streamml.runtime.checkpoint import hmac_key_from

SHOWN_FEATURES = ("fare", "tips", "trip_miles", "trip_seconds")


def _progress_view(progress: DemoProgress) -> Group:
    rate = progress.produced / progress.elapsed_s if progress.elapsed_s else 0.0
    head = Table.grid(padding=(0, 2))
    head.add_row("rows replayed", f"{progress.produced:,}", "rate", f"{rate:,.0f} rows/s",
                  "elapsed", f"{progress.elapsed_s:.1f}s")
    table = Table("processor", "in", "out", "dead letters", "checkpoints", "lag",
                  title="processors", title_justify="left")
    for s in progress.processors:
        table.add_row(s.name, f"{s.records_in:,}", f"{s.emitted:,}", str(s.dead_letters),
                      str(s.checkpoints), str(s.lag))
    return Group(head, table)


def _window_table(window: dict[str, object]) -> Table:
    table = Table("feature", "count", "missing", "mean", "min", "max",
                  title=f"last statistics window (#{window['window']}, "
                        f"{window['examples']} examples)", title_justify="left")
    features = window.get("features", {})
    assert isinstance(features, dict)
    for name in SHOWN_FEATURES:
        f = features.get(name)
        if not f:
            continue
        mean = "-" if f["mean"] is None else f"{f['mean']:.3f}"
        table.add_row(name, str(f["count"]), str(f["missing"]), mean, str(f["min"]),
                      str(f["max"]))
    return table


def _summary_table(summary: DemoSummary) -> Table:
    table = Table("topic", "records", title="topics", title_justify="left")
    for topic, count in summary.topics.items():
        table.add_row(topic, f"{count:,}")
    return table


@click.command("demo")
@click.option("--pipeline", "-p", default=None, help="Pipeline name (default: setting `pipeline`).")
@click.option("--rows", type=int, default=None, help="Replay only the first N rows.")
@click.option("--rate", type=float, default=0.0, show_default=True,
              help="Replay rate in rows/s (0 = as fast as the pipeline goes).")
@click.option("--window", type=int, default=1000, show_default=True,
              help="Examples per statistics window.")
@click.option("--quiet", "-q", is_flag=True, help="No live display; print the summary only.")
@pass_state
def command(state: CliState, pipeline: str | None, rows: int | None, rate: float, window: int,
            quiet: bool) -> None:
    """Run the main job: the bundled Chicago taxi trips, replayed as a live stream.

    Rows go to <pipeline>.raw with event times from trip_start_timestamp; a
    processor turns them into examples (<pipeline>.examples: stable id, typed
    features, 2:1 train/eval split); another closes tumbling statistics
    windows (<pipeline>.statistics). State and offsets are checkpointed
    together. The demo's topics are reset at the start of every run.
    Works on the embedded log (default) and with --broker kafka://HOST:PORT.
    """
    if window < 1 or (rows is not None and rows < 1) or rate < 0:
        raise click.BadParameter("--rows and --window must be >= 1 and --rate >= 0")
    console = Console()
    log = state.log()
    config = DemoConfig(pipeline=pipeline or state.settings.pipeline, rows=rows, rate=rate,
                        window=window, hmac_key=hmac_key_from(state.settings))
    console.print(f"[bold]streamml demo[/bold] on {log.url}: replaying {config.source.name}")
    if quiet:
        summary = run_demo(log, config)
    else:
        with Live(console=console, refresh_per_second=8, transient=False) as live:
            summary = run_demo(log, config, lambda p: live.update(_progress_view(p)))
    console.print(_summary_table(summary))
    if summary.last_window:
        console.print(_window_table(summary.last_window))
    console.print(
        f"[green]done[/green]: {summary.produced:,} rows → {summary.examples:,} examples → "
        f"{summary.windows} windows, {summary.dead_letters} dead letters, "
        f"in {summary.elapsed_s:.1f}s. Try: streamml tail {config.pipeline}.statistics -n 1 --json"
    )
