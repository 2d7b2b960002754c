"""``streamml validate FILE --schema schema.yaml``: batch-validate a CSV, JSON Lines or
Parquet file (the checks: :mod:`streamml.validation.filecheck`).

Exit code: 0 when clean, 1 when anomalies were found, 2 on usage errors.
"""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from streamml.cli.context import CliState, pass_state
from streamml.errors import StreamMLError
from streamml.validation.checks import SEVERITY
from streamml.validation.filecheck import validate_table
from streamml.validation.files import load_table, row_lines
from streamml.validation.schema import load_schema


class AnomaliesFound(StreamMLError):
    """The file has anomalies: exit code 1, one summary line on stderr."""

    exit_code = 1


@click.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--schema", "schema_path", required=True,
              type=click.Path(exists=True, dir_okay=False),
              help="Schema file (YAML or JSON), e.g. from `streamml schema infer`.")
@click.option("--reference", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Reference data (CSV/Parquet, e.g. training) to test drift against.")
@click.option("--window", type=click.IntRange(0), default=0, show_default=True,
              help="Also test each window of this many rows, as the live pipeline tests its "
                   "count windows, e.g. 1000 (0: the whole file only, as TFDV does).")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"file", "num_examples", "anomalies": [...]} as JSON.')
@pass_state
def command(state: CliState, file: str, schema_path: str, reference: str | None,
            window: int, as_json: bool) -> None:
    """Validate FILE (CSV, JSON Lines or Parquet) against a schema; exit 1 on anomalies.

    Reports, per feature, each kind of anomaly (TFDV type names): missing
    required values, wrong types, values outside the domain or range, NaN/Inf,
    unknown columns, low presence, and drift against --reference; the whole
    file, and with --window N each window of N rows. Example ids are FILE:LINE
    (the CSV header is line 1; Parquet: FILE:ROW from 0), as the live pipeline
    names them.

    The same checks live, on a file that grows or any connector:
    streamml run streamml.examples.validation_pipeline -o path=FILE
    -o schema=SCHEMA -o reference=REF, then streamml alerts -p validate.
    """
    schema = load_schema(schema_path)
    table = load_table(file)
    ref = load_table(reference) if reference else None
    anomalies = validate_table(table, schema, Path(file).name, ref, window=window or None,
                               lines=row_lines(file, table.num_rows))
    if as_json:
        click.echo(orjson.dumps({"file": file, "schema_version": schema.version,
                                 "num_examples": table.num_rows,
                                 "anomalies": anomalies}).decode())
    elif not anomalies:
        click.echo(f"{file}: {table.num_rows} example(s), no anomalies")
    else:
        click.echo(f"{file}: {table.num_rows} example(s), {len(anomalies)} anomaly kind(s)")
        for a in sorted(anomalies, key=lambda a: (SEVERITY.get(a["type"], "") != "error",
                                                  str(a["feature"]), a["type"])):
            where = f" e.g. {a['example_id']}" if a.get("example_id") else ""
            click.echo(f"  {a['severity']:<7} {a['type']:<36} {a['feature'] or '-':<24} "
                       f"count={a['count']}{where}: {a['message']}")
    if anomalies:
        raise AnomaliesFound(f"{file}: {sum(a['count'] for a in anomalies)} anomaly record(s) "
                             f"of {len(anomalies)} kind(s)")
