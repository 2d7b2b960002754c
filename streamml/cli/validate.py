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

import re
from pathlib import Path
from typing import Any

import click
import orjson
import pyarrow as pa

from streamml.cli.context import CliState, pass_state
from streamml.errors import ConfigError, StreamMLError
from streamml.payloads.schema import SchemaVersion
from streamml.statistics.batch import ExampleBatch
from streamml.statistics.dataset import StatisticsAccumulator
from streamml.validation.checks import SEVERITY, Finding, SchemaChecker
from streamml.validation.compare import check_presence_against_schema, compare_statistics
from streamml.validation.drift import DriftConfig
from streamml.validation.schema import load_schema, read_table


class AnomaliesFound(StreamMLError):
    """The file has anomalies: exit code 1, one summary line on stderr."""

    exit_code = 1


_RANGE = {"SMALL": "min", "BIG": "max"}
_INT_RE = re.compile(r"^[+-]?\d+$")


def _parse_number(v: Any) -> Any:
    """A numeric text cell as int or float; anything else unchanged.

    >>> _parse_number("7"), _parse_number("7.5"), _parse_number("abc"), _parse_number(None)
    (7, 7.5, 'abc', None)
    """
    if not isinstance(v, str):
        return v
    text = v.strip()
    if _INT_RE.match(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return v


def file_batch(table: pa.Table, schema: SchemaVersion, source: str) -> ExampleBatch:
    """The file as a batch; numeric schema columns read as text are parsed value by value,
    so one bad token flags one row, not the whole column."""
    b = ExampleBatch.from_table(table, ids=[f"{source}:{i + 1}" for i in range(table.num_rows)])
    for name, spec in schema.features.items():
        if name in table.column_names and spec.type in ("int", "float") and (
                pa.types.is_string(table.column(name).type)):
            b.set_values(name, [_parse_number(v) for v in b.values(name)])
    return b


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


def validate_table(table: pa.Table, schema: SchemaVersion, source: str,
                   reference: pa.Table | None = None,
                   drift: DriftConfig | None = None) -> list[dict[str, Any]]:
    """Anomalies of a whole table (the ``--json`` ``anomalies`` list)."""
    b = file_batch(table, schema, source)
    anomalies = _aggregate(SchemaChecker(schema).check_batch(b), b, schema)
    cfg = drift or DriftConfig()
    cur = StatisticsAccumulator()
    cur.add_columns(b.columns(), b.n)
    windows = check_presence_against_schema(schema, cur, cfg)
    if reference is not None:
        ref = StatisticsAccumulator()
        ref.add_columns(file_batch(reference, schema, "reference").columns(), reference.num_rows)
        windows += compare_statistics(ref, cur, cfg)
    for w in windows:
        anomalies.append({"feature": w.feature, "type": w.kind, "severity": w.severity,
                          "count": 1, "metric": w.metric, "value": w.value,
                          "threshold": w.threshold, "p_value": w.p_value, "message": w.message})
    return anomalies


def _load(path: str) -> pa.Table:
    try:
        return read_table(path)
    except Exception as exc:  # noqa: BLE001 - any reader error is a user error here
        raise ConfigError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None


@click.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--schema", "schema_path", required=True,
              type=click.Path(exists=True, dir_okay=False),
              help="Schema file (YAML or JSON), e.g. from `streamml schema infer`.")
@click.option("--reference", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Reference data (CSV/Parquet, e.g. training) to test drift against.")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"file", "num_examples", "anomalies": [...]} as JSON.')
@pass_state
def command(state: CliState, file: str, schema_path: str, reference: str | None,
            as_json: bool) -> None:
    """Validate FILE (CSV or Parquet) against a schema; exit 1 if there are anomalies.

    Reports, per feature, each kind of anomaly (TFDV type names): missing
    required values, wrong types, values outside the domain or range, NaN/Inf,
    unknown columns, low presence, and drift against --reference.
    """
    try:
        schema = load_schema(schema_path)
    except Exception as exc:  # noqa: BLE001 - YAML or validation error: one line
        raise ConfigError(f"invalid schema {schema_path}: {str(exc).splitlines()[0]}") from None
    table = _load(file)
    ref = _load(reference) if reference else None
    anomalies = validate_table(table, schema, Path(file).name, ref)
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
