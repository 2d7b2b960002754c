"""Files as validation input: one batch per file, parsed as the schema says.

Shared by ``streamml validate`` (a whole file against a schema) and the live
validation pipeline (:mod:`streamml.examples.validation_pipeline`, which tests
each window against a reference *file*), so that a reference file gives the
same statistics on both paths.

A numeric schema column that a reader typed as text (one ``N/A`` in a CSV
column of numbers makes pyarrow read the whole column as strings) is parsed
value by value: the bad token stays a string and flags one row, the numbers
stay numbers.

>>> import pyarrow as pa
>>> from streamml.payloads.schema import FeatureSpec, SchemaVersion
>>> schema = SchemaVersion(pipeline="p", version=1, origin="curated", created_at=0,
...                        features={"fare": FeatureSpec(type="float")})
>>> b = file_batch(pa.table({"fare": ["7", "7.5", "N/A"]}), schema, "f.csv")
>>> b.values("fare"), b.id_at(2)
([7, 7.5, 'N/A'], 'f.csv:3')
>>> file_batch(pa.table({"n": ["1"] * 19 + ["-"]}), None, "f.csv").values("n")[-2:]
[1, '-']
>>> w = reference_window(pa.table({"fare": [1.0, 2.0, 4.0]}), schema)
>>> w.split, w.num_examples, w.features["fare"].numeric.mean
('all', 3, 2.3333333333333335)
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from streamml.connectors.coltypes import numeric_text_kind
from streamml.errors import ConfigError
from streamml.payloads.schema import SchemaVersion
from streamml.payloads.statistics import StatisticsWindow, Window
from streamml.statistics.batch import ExampleBatch
from streamml.statistics.dataset import StatisticsAccumulator

_INT_RE = re.compile(r"^[+-]?\d+$")


def parse_number(v: Any) -> Any:
    """A numeric text cell as int or float; anything else unchanged.

    >>> parse_number("7"), parse_number(" 7.5 "), parse_number("abc"), parse_number(None)
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


def read_table(path: str | Path) -> pa.Table:
    """Read a CSV, JSON Lines or Parquet file.

    In a CSV only an empty cell is missing, as in ingestion (``N/A``, ``null``...
    stay text, so that a token in a column of numbers is seen, not dropped).
    """
    p = Path(path)
    if p.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return pq.read_table(p)
    if p.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        import pyarrow.json as pjson

        return pjson.read_json(p)
    import pyarrow.csv as pcsv

    return pcsv.read_csv(p, convert_options=pcsv.ConvertOptions(
        null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True))


def load_table(path: str | Path) -> pa.Table:
    """:func:`read_table`, any reader error as one ConfigError line.

    >>> try:
    ...     load_table("/nonexistent.csv")
    ... except ConfigError as exc:
    ...     print(str(exc)[:28])
    cannot read /nonexistent.csv
    """
    try:
        return read_table(path)
    except Exception as exc:  # noqa: BLE001 - any reader error is a user error here
        raise ConfigError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None


def first_row_number(path: str | Path) -> int:
    """The number the file source gives a file's first row: its line (a CSV's header is
    line 1), or its index in a Parquet file; ids then agree with the live pipeline's.

    >>> first_row_number("a.csv"), first_row_number("a.jsonl"), first_row_number("a.parquet")
    (2, 1, 0)
    """
    suffix = Path(path).suffix.lower()
    return 0 if suffix in (".parquet", ".pq") else 1 if suffix in (
        ".jsonl", ".ndjson", ".json") else 2


def file_batch(table: pa.Table, schema: SchemaVersion | None, source: str,
               first: int = 1) -> ExampleBatch:
    """The table as one batch with ids ``<source>:<n>``, ``n`` from ``first`` on.

    Columns read as text are parsed value by value (see the module docs) when the
    schema says they are numbers, or, for a column the schema does not name, when
    their values are mostly numbers (ingestion's rule:
    :func:`~streamml.connectors.coltypes.numeric_text_kind`).
    """
    b = ExampleBatch.from_table(table, ids=[f"{source}:{i + first}"
                                            for i in range(table.num_rows)])
    for name in table.column_names:
        col = table.column(name)
        if not pa.types.is_string(col.type):
            continue
        spec = schema.features.get(name) if schema is not None else None
        if (spec.type in ("int", "float") if spec is not None
                else numeric_text_kind(col) is not None):
            b.set_values(name, [parse_number(v) for v in b.values(name)])
    return b


def file_statistics(table: pa.Table, schema: SchemaVersion) -> StatisticsAccumulator:
    """Statistics of the whole table, columns parsed as in :func:`file_batch`."""
    acc = StatisticsAccumulator()
    acc.add_columns(file_batch(table, schema, "reference").columns(), table.num_rows)
    return acc


def reference_window(source: pa.Table | str | Path, schema: SchemaVersion, *,
                     pipeline: str | None = None) -> StatisticsWindow:
    """A reference file's statistics (with sketches) as one window, split ``all``: what
    :class:`~streamml.validation.validator.ExampleValidator` takes as ``reference``."""
    table = source if isinstance(source, pa.Table) else load_table(source)
    acc = file_statistics(table, schema)
    return StatisticsWindow(
        pipeline=pipeline or schema.pipeline, split="all",
        window=Window(id="reference", kind="cumulative"), num_examples=acc.num_examples,
        features=acc.extract(with_sketches=True), created_at=int(time.time() * 1000),
        component="reference")
