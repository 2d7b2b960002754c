"""Batch validation of a whole table: what ``streamml validate FILE`` reports.

The same code path as the live ExampleValidator: the file's columns are
screened with pyarrow (:meth:`~streamml.validation.checks.SchemaChecker.check_batch`)
and the failing rows checked one by one. Per-example findings are aggregated
per (type, feature); presence is also tested against the schema's
``min_fraction``, and with a reference the distributions are compared (KS /
chi-square, see :mod:`streamml.validation.drift`), over the whole table and,
optionally, each window of rows as the live pipeline tests its count windows.

>>> import pyarrow as pa
>>> from streamml.payloads.schema import FeatureSpec, SchemaVersion
>>> schema = SchemaVersion(pipeline="p", version=1, origin="curated", created_at=0,
...                        features={"fare": FeatureSpec(type="float", min=0.0)})
>>> [(a["type"], a["example_id"], a["value"]) for a in validate_table(
...     pa.table({"fare": [3.0, -1.0]}), schema, "f.csv")]
[('FLOAT_TYPE_SMALL_FLOAT', 'f.csv:3', -1.0)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from streamml.payloads.schema import SchemaVersion
from streamml.statistics.batch import ExampleBatch
from streamml.statistics.dataset import StatisticsAccumulator
from streamml.validation.checks import Finding, SchemaChecker
from streamml.validation.compare import (
    WindowFinding,
    check_presence_against_schema,
    compare_statistics,
)
from streamml.validation.drift import DriftConfig
from streamml.validation.files import file_batch, file_statistics, first_row_number

__all__ = ["validate_table"]

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
