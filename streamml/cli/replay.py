"""``streamml replay PIPELINE``: history into an isolated namespace (see history.replay)."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from streamml.cli.archive import split_topics
from streamml.cli.context import CliState, pass_state
from streamml.cli.tail import parse_time
from streamml.history.layout import HISTORY_DIR_ENV, resolve_dir
from streamml.history.replay import default_namespace, replay, run_processors


@click.command("replay")
@click.argument("pipeline")
@click.option("--from-time", "from_time", required=True, metavar="T1",
              help="Start of the range (ISO 8601, UTC if naive, or epoch ms), inclusive.")
@click.option("--to-time", "to_time", required=True, metavar="T2",
              help="End of the range, exclusive.")
@click.option("--source", type=click.Choice(["kafka", "archive", "auto"]), default="auto",
              show_default=True, help="kafka: the log only; archive: Parquet only; auto: the "
              "archive for what the log no longer has, then the log.")
@click.option("--namespace", "-n", default=None, metavar="NAME",
              help="Pipeline name of the replay (topics NAME.<role>, its own groups and "
              "checkpoints). Default: PIPELINE-replay-<from>-<to>. Must be new.")
@click.option("--roles", "-r", multiple=True, metavar="ROLE[,ROLE...]",
              help="Topic roles to replay (default: examples).")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=None,
              envvar=HISTORY_DIR_ENV, help="History folder (default .streamml-history).")
@click.option("--run", "run_ref", default=None, metavar="MODULE:ATTR",
              help="Then run this pipeline's processors (built with name=NAMESPACE) over the "
              "replayed topics, e.g. examples/taxi_pipeline.py:build_pipeline.")
@click.option("--run-timeout", type=click.FloatRange(min=1), default=None,
              help="Give up on --run after this many seconds.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@pass_state
def command(state: CliState, pipeline: str, from_time: str, to_time: str, source: str,
            namespace: str | None, roles: tuple[str, ...], directory: str | None,
            run_ref: str | None, run_timeout: float | None, quiet: bool) -> None:
    """Replay [T1, T2) of PIPELINE's history into an isolated namespace.

    Records keep their partition, key, value, headers and timestamp; replaying
    the same range twice gives identical records. Live topics, consumer groups
    and checkpoints are never touched. With --run, the pipeline's processors
    then recompute statistics, anomalies and models over the namespace; promote
    results with `streamml promote --namespace NAME --pipeline PIPELINE`.
    """
    from_ms, to_ms = parse_time(from_time), parse_time(to_time)
    namespace = namespace or default_namespace(pipeline, from_ms, to_ms)
    log = state.log()
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("replay {task.description}"), BarColumn(), MofNCompleteColumn(),
        TaskProgressColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=console, disable=quiet or not console.is_terminal,
    )
    task = progress.add_task(namespace, total=None)

    def report(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    with progress:
        stats = replay(log, pipeline, from_ms, to_ms, source=source,  # type: ignore[arg-type]
                       namespace=namespace, roles=split_topics(roles) or ["examples"],
                       root=resolve_dir(directory), progress=report)
    counts = ", ".join(f"{n} from {k}" for k, n in sorted(stats.by_source.items())) or "none"
    click.echo(f"streamml: replayed {stats.records} record(s) ({counts}) into "
               f"{', '.join(stats.topics)} (namespace {namespace})", err=True)
    if run_ref is not None:
        processors = run_processors(log, run_ref, namespace, settings=state.settings,
                                    timeout_s=run_timeout)
        for p in processors:
            click.echo(f"streamml: {namespace}: {p.name}: {p.records_in} in, {p.emitted} out, "
                       f"{p.dead_letters} dead letter(s)", err=True)
    click.echo(namespace)
    sys.stderr.flush()
