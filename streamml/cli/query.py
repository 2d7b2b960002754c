"""``streamml query "SQL"``: DuckDB over the archive (see :mod:`streamml.history.query`)."""

from __future__ import annotations

from pathlib import Path

import click

from streamml.cli.context import CliState, pass_state
from streamml.errors import ConfigError
from streamml.history.layout import HISTORY_DIR_ENV, resolve_dir
from streamml.history.query import (
    print_table,
    run_query,
    write_csv,
    write_json_lines,
    write_parquet,
)


@click.command("query")
@click.argument("sql")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per row.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row.")
@click.option("--parquet", "parquet_out", type=click.Path(dir_okay=False), default=None,
              metavar="OUT", help="Write the result to this Parquet file.")
@click.option("--pipeline", "-p", default=None,
              help="Name views by role for this pipeline's topics (examples, schema...).")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=None,
              envvar=HISTORY_DIR_ENV, help="History folder (default .streamml-history).")
@click.option("--limit", default=1000, show_default=True, help="Rows shown in table output.")
@pass_state
def command(state: CliState, sql: str, as_json: bool, as_csv: bool, parquet_out: str | None,
            pipeline: str | None, directory: str | None, limit: int) -> None:
    """Run SQL over the archive: one view per topic, e.g. SELECT count(*) FROM examples.

    Views: the topic name with '.'/'-' as '_' (demo_examples), the bare role
    (examples) when unambiguous, <view>_latest for compacted-topic snapshots,
    and lineage.* (artifacts, executions, inputs, edges, deployments, alerts).
    value is JSON: value->>'$.field'.
    """
    if sum([as_json, as_csv, parquet_out is not None]) > 1:
        raise ConfigError("use at most one of --json, --csv, --parquet")
    table = run_query(resolve_dir(directory), sql, pipeline)
    stdout = click.get_binary_stream("stdout")
    if as_json:
        write_json_lines(table, stdout)
    elif as_csv:
        write_csv(table, stdout)
    elif parquet_out is not None:
        write_parquet(table, Path(parquet_out))
        click.echo(f"streamml: wrote {table.num_rows} row(s) to {parquet_out}", err=True)
    else:
        print_table(table, limit=limit, file=click.get_text_stream("stdout"))
    stdout.flush()
