"""``streamml validate FILE --schema schema.yaml``: batch-validate a CSV/Parquet file.

The same code path as the live ExampleValidator: the file's columns are
screened with pyarrow (:meth:`~streamml.validation.checks.SchemaChecker.check_batch`)
and the failing rows checked one by one. Per-example findings are aggregated
per (type, feature); presence is also tested against the schema's
``min_fraction``, and with ``--reference`` the distributions are compared
(KS / chi-square, see :mod:`streamml.validation.drift`).

Exit code: 0 when clean, 1 when anomalies were found, 2 on usage errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
import orjson
import pyarrow as pa

from streamml.cli.context import CliState, pass_state
from streamml.errors import StreamMLError
from streamml.payloads.schema import SchemaVersion
from streamml.statistics.batch import ExampleBatch
from streamml.statistics.dataset import StatisticsAccumulator
from streamml.validation.checks import SEVERITY, Finding, SchemaChecker
from streamml.validation.compare import (
    WindowFinding,
    check_presence_against_schema,
    compare_statistics,
)
from streamml.validation.drift import DriftConfig
from streamml.validation.files import (
    file_batch,
    file_statistics,
    first_row_number,
    load_table,
    row_lines,
)
from streamml.validation.schema import load_schema


class AnomaliesFound(StreamMLError):
    """The file has anomalies: exit code 1, one summary line on stderr."""

    exit_code = 1


_RANGE = {"SMALL": "min", "BIG": "max"}


def _aggregate(found: dict[int, list[Finding]], b: ExampleBatch,
               schema: SchemaVersion) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for i in sorted(found):
        for f in found[i]:
            g = groups.get((f.kind, f.feature))
            if g is None:
                g = groups[(f.kind, f.feature)] = {
                    "feature": f.feature, "type": f.kind, "severity": f.severity, "count": 0,
                    "example_id": f.example_id, "example_ids": [], "message": f.detail,
                }
                bound = _RANGE.get(f.kind.split("_")[-2]) if f.kind.count("_") >= 3 else None
                spec = schema.features.get(f.feature)
                if bound and spec is not None and f.feature in b.names:
                    g["value"] = b.values(f.feature)[i]
                    g["threshold"] = getattr(spec, bound)
            g["count"] += 1
            if len(g["example_ids"]) < 10:
                g["example_ids"].append(f.example_id)
    return list(groups.values())


def _window_findings(b: ExampleBatch, schema: SchemaVersion, ref: StatisticsAccumulator | None,
                     cfg: DriftConfig, window: int,
                     lines: Sequence[int]) -> list[tuple[WindowFinding, tuple[int, int]]]:
    """Each full window of ``window`` rows, as the live validator tests it: against the
    reference and the schema's ``min_fraction``. Returns findings with their row span."""
    out: list[tuple[WindowFinding, tuple[int, int]]] = []
    for start in range(0, b.n - window + 1, window):
        acc = StatisticsAccumulator()
        acc.add_columns(b.columns(np.arange(start, start + window)), window)
        found = check_presence_against_schema(schema, acc, cfg)
        if ref is not None:
            found += compare_statistics(ref, acc, cfg)
        span = (lines[start], lines[start + window - 1])
        out.extend((f, span) for f in found)
    return out


def _window_anomaly(f: WindowFinding) -> dict[str, Any]:
    return {"feature": f.feature, "type": f.kind, "severity": f.severity, "count": 1,
            "metric": f.metric, "value": f.value, "threshold": f.threshold,
            "p_value": f.p_value, "message": f.message}


def validate_table(table: pa.Table, schema: SchemaVersion, source: str,
                   reference: pa.Table | None = None, drift: DriftConfig | None = None,
                   window: int | None = None,
                   lines: list[int] | None = None) -> list[dict[str, Any]]:
    """Anomalies of a whole table (the ``--json`` ``anomalies`` list).

    The whole file is tested once; with ``window``, so is each full window of that many
    rows (the live pipeline's count windows), so that a change over part of the file is
    found as it would be live. A window finding of a cause the whole file does not show
    is reported with ``rows`` (the first and last row of each window where it was found,
    numbered as example ids are) and ``count`` (the number of those windows).
    """
    if lines is None:
        first = first_row_number(source)
        lines = list(range(first, first + table.num_rows))
    b = file_batch(table, schema, source, lines=lines)
    anomalies = _aggregate(SchemaChecker(schema).check_batch(b), b, schema)
    cfg = drift or DriftConfig()
    cur = StatisticsAccumulator()
    cur.add_columns(b.columns(), b.n)
    ref = file_statistics(reference, schema) if reference is not None else None
    found = check_presence_against_schema(schema, cur, cfg)
    if ref is not None:
        found += compare_statistics(ref, cur, cfg)
    whole = {(f.kind, f.feature) for f in found}
    anomalies += [_window_anomaly(f) for f in found]
    by_cause: dict[tuple[str, str | None], dict[str, Any]] = {}
    for f, (lo, hi) in _window_findings(b, schema, ref, cfg, window, lines) if window else ():
        if (f.kind, f.feature) in whole:
            continue
        a = by_cause.get((f.kind, f.feature))
        if a is None:
            a = by_cause[(f.kind, f.feature)] = _window_anomaly(f)
            a.update(count=0, rows=[], message=f"rows {lo}-{hi}: {f.message}")
        a["count"] += 1
        if len(a["rows"]) < 10:
            a["rows"].append([lo, hi])
    return anomalies + list(by_cause.values())


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
