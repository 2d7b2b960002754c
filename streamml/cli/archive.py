"""``streamml archive``: copy topics to the Parquet archive (:mod:`streamml.history.archive`)."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from streamml.catalog import load_catalog
from streamml.cli.context import CliState, pass_state
from streamml.errors import ConfigError, UnknownTopic
from streamml.history.archive import ArchiveSink
from streamml.history.layout import HISTORY_DIR_ENV, resolve_dir
from streamml.log.base import Log


def pipeline_topics(log: Log, pipeline: str) -> list[str]:
    """Every existing catalog topic of ``pipeline`` except internal ones (checkpoints)."""
    catalog = load_catalog()
    names = [
        catalog.topic_name(pipeline, role)
        for role in catalog.roles
        if not catalog.definition(role).internal
    ]
    return [name for name in names if log.topic_exists(name)]


def split_topics(values: tuple[str, ...]) -> list[str]:
    """``--topics a,b --topics c`` → ``['a', 'b', 'c']``.

    >>> split_topics(("a,b", "c"))
    ['a', 'b', 'c']
    """
    return [t.strip() for v in values for t in v.split(",") if t.strip()]


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT/SIGTERM so the sink flushes and checkpoints before exiting."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@click.command("archive")
@click.option("--pipeline", "-p", default=None, help="Archive every topic of this pipeline "
              "(default: the pipeline setting).")
@click.option("--topics", "-t", multiple=True, metavar="T[,T...]",
              help="Archive these topics instead (repeatable, comma-separated).")
@click.option("--follow", "-f", is_flag=True, help="Keep archiving new records until stopped.")
@click.option("--retention-days", type=click.IntRange(min=0), default=None,
              help="Delete archive hour partitions older than this many days.")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=None,
              envvar=HISTORY_DIR_ENV, help="History folder (default .streamml-history).")
@click.option("--flush-interval", type=click.FloatRange(min=0.01), default=5.0,
              show_default=True, help="In --follow mode, write files at least this often (s).")
@click.option("--flush-rows", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Write files when this many records are buffered.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
@pass_state
def command(state: CliState, pipeline: str | None, topics: tuple[str, ...], follow: bool,
            retention_days: int | None, directory: str | None, flush_interval: float,
            flush_rows: int, quiet: bool) -> None:
    """Archive topics to Parquet: topic=T/date=D/hour=H/<partition>-<first>-<last>.parquet.

    Resumes where it stopped; a restart (even after kill -9) writes no
    duplicate. Compacted topics also get a latest-value-per-key snapshot.
    """
    log = state.log()
    pipeline = pipeline or state.settings.pipeline
    names = split_topics(topics) or pipeline_topics(log, pipeline)
    if not names:
        raise ConfigError(f"no topics of pipeline {pipeline!r} to archive; use --topics")
    for name in names:
        if not log.topic_exists(name):
            raise UnknownTopic(f"no such topic: {name}")
    root = resolve_dir(directory)
    console = Console(stderr=True)
    show = not quiet and console.is_terminal
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("behind {task.fields[behind]}"), TimeElapsedColumn(),
        console=console, disable=not show,
    )
    tasks = {t: progress.add_task(t, total=None, behind=0) for t in names}

    def report(topic: str, done: int, behind: int) -> None:
        progress.update(tasks[topic], completed=done, total=done + behind, behind=behind)

    sink = ArchiveSink(log, root, names, pipeline=pipeline, flush_rows=flush_rows,
                       flush_interval_s=flush_interval, progress=report,
                       retention_days=retention_days)
    stop = threading.Event()
    with stop_on_signals(stop), progress:
        stats = sink.run(follow=follow, stop=stop)
    summary = (f"streamml: archived {stats.records} record(s) of {len(names)} topic(s) "
               f"into {stats.files} file(s) under {root}")
    if stats.snapshots:
        summary += f", {stats.snapshots} snapshot(s)"
    if stats.deleted_partitions:
        summary += f", deleted {stats.deleted_partitions} expired hour partition(s)"
    click.echo(summary, err=True)
    sys.stderr.flush()
