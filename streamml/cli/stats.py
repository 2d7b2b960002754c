"""``streamml stats``: statistics of the latest windows (store or topic), or of a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from streamml.cli.alerts import iso, read_topic
from streamml.cli.context import CliState, pass_state
from streamml.errors import ConfigError
from streamml.payloads.statistics import StatisticsWindow
from streamml.statistics.dataset import StatisticsAccumulator
from streamml.statistics.store import StatisticsDB
from streamml.validation.files import file_batch, read_table

DEFAULT_DB = ".streamml-stats.duckdb"
_COLUMNS = ("type", "count", "num_missing", "mean", "std_dev", "min", "q50", "max",
            "distinct_count", "top_value")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _print_rows(rows: list[dict[str, Any]]) -> None:
    header = ("window", "split", "feature", *_COLUMNS)
    table = [header] + [(r["window_id"], r["split"], r["feature"],
                         *(_fmt(r.get(c)) for c in _COLUMNS)) for r in rows]
    widths = [min(max(len(str(row[i])) for row in table), 28) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(str(c)[:w].ljust(w) for c, w in zip(row, widths, strict=True)))


def _file_rows(file: str, feature: str | None) -> list[dict[str, Any]]:
    try:
        table = read_table(file)
    except Exception as exc:  # noqa: BLE001 - any reader error is a user error here
        raise ConfigError(f"cannot read {file}: {str(exc).splitlines()[0]}") from None
    acc = StatisticsAccumulator()
    acc.add_columns(file_batch(table, None, Path(file).name).columns(), table.num_rows)
    if feature is not None and feature not in acc.features:
        raise ConfigError(f"no feature {feature!r} in {file}")
    from streamml.payloads.statistics import Window

    w = StatisticsWindow(pipeline="file", split="all", num_examples=acc.num_examples,
                         window=Window(id=Path(file).name, kind="cumulative"),
                         features=acc.extract(), created_at=0)
    with StatisticsDB(":memory:") as db:
        db.append([w])
        return db.latest("file", feature=feature)


@click.command("stats")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--pipeline", "-p", default=None, help="Pipeline (default: the settings').")
@click.option("--feature", "-f", default=None, help="Only this feature.")
@click.option("--split", default=None, help="Only windows of this split (train, eval, all...).")
@click.option("--last", "-n", default=1, show_default=True, help="How many recent windows.")
@click.option("--db", "db_path", default=DEFAULT_DB, show_default=True,
              type=click.Path(dir_okay=False),
              help="DuckDB statistics store (from the StatisticsStore sink); when missing, "
              "the <pipeline>.statistics topic is read instead.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per (window, feature).")
@pass_state
def command(state: CliState, file: str | None, pipeline: str | None, feature: str | None,
            split: str | None, last: int, db_path: str, as_json: bool) -> None:
    """Per-feature statistics of the latest windows, or of FILE (CSV or Parquet).

    Shows count, missing, mean, std (population), min, median, max, distinct and
    the top value per feature. Without FILE, reads the statistics store if it
    exists, else the <pipeline>.statistics topic. For history, use SQL on the
    store: duckdb .streamml-stats.duckdb "SELECT window_id, mean FROM stats
    WHERE feature = 'fare'".
    """
    if last < 1:
        raise ConfigError("--last must be >= 1")
    if file is not None:
        rows = _file_rows(file, feature)
    else:
        p = pipeline or state.settings.pipeline
        if Path(db_path).is_file():
            with StatisticsDB(db_path, read_only=True) as db:
                rows = db.latest(p, feature=feature, last=last, split=split)
        else:
            windows = [StatisticsWindow.model_validate(v)
                       for v in read_topic(state.log(), f"{p}.statistics")]
            with StatisticsDB(":memory:") as db:
                db.append(windows)
                rows = db.latest(p, feature=feature, last=last, split=split)
        if not rows:
            raise ConfigError(f"no statistics for pipeline {p!r}"
                              + (f" and feature {feature!r}" if feature else ""))
    if as_json:
        for r in rows:
            r.pop("inputs", None)
            click.echo(orjson.dumps(r, option=orjson.OPT_NON_STR_KEYS).decode())
        return
    first = rows[0]
    if file is None:
        click.echo(f"{len({(r['split'], r['window_id']) for r in rows})} window(s), latest "
                   f"{first['split']}/{first['window_id']} with {first['num_examples']} "
                   f"example(s), created {iso(first['created_at'])}")
    else:
        click.echo(f"{file}: {first['num_examples']} example(s)")
    _print_rows(rows)
