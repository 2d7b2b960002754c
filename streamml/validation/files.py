"""Files as validation input: one batch per file, parsed as the schema says.

Shared by ``streamml validate`` (a whole file against a schema) and the live
validation pipeline (:mod:`streamml.examples.validation_pipeline`, which tests
each window against a reference *file*), so that a reference file gives the
same statistics on both paths.

A numeric column of a CSV that the reader typed as text (one ``N/A`` in a
column of numbers makes pyarrow read the whole column as strings) is parsed
value by value: the bad token stays a string and flags one row, the numbers
stay numbers (true/false text likewise, in a bool column). JSON Lines that
pyarrow refuses (a column of numbers and text) are read with their mixed
columns as text and parsed the same way; their other text stays text.

>>> import pyarrow as pa
>>> from streamml.payloads.schema import FeatureSpec, SchemaVersion
>>> schema = SchemaVersion(pipeline="p", version=1, origin="curated", created_at=0,
...                        features={"fare": FeatureSpec(type="float")})
>>> csv_like = _untyped(pa.table({"fare": ["7", "7.5", "N/A"], "n": ["1"] * 2 + ["-"]}))
>>> b = file_batch(csv_like, schema, "f.csv")
>>> b.values("fare"), b.id_at(2), file_batch(csv_like, None, "f.csv").values("n")
([7, 7.5, 'N/A'], 'f.csv:3', ['1', '1', '-'])
>>> file_batch(pa.table({"fare": ["7", "7.5"]}), schema, "f.parquet").values("fare")
['7', '7.5']
>>> w = reference_window(pa.table({"fare": [1.0, 2.0, 4.0]}), schema)
>>> w.split, w.num_examples, w.features["fare"].numeric.mean
('all', 3, 2.3333333333333335)
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from streamml.connectors.coltypes import FALSE, TRUE, bool_text_kind, numeric_text_kind
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
    if _INT_RE.match(text) and abs(number := int(text)) < 2**63:
        return number
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

        try:
            return pjson.read_json(p)
        except pa.ArrowInvalid:  # e.g. a column of numbers with a token: read it as text
            return _read_json_lines_as_text(p)
    import pyarrow.csv as pcsv

    return _untyped(pcsv.read_csv(p, convert_options=pcsv.ConvertOptions(
        null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True)))


#: Table metadata: the columns whose text is untyped (all of a CSV's: ``*``; else a JSON
#: list of names), whose numbers and true/false may be parsed.
UNTYPED = b"streamml.untyped_text"


def _untyped(table: pa.Table, names: list[str] | None = None) -> pa.Table:
    value = b"*" if names is None else orjson.dumps(names)
    return table.replace_schema_metadata({**(table.schema.metadata or {}), UNTYPED: value})


def _untyped_columns(table: pa.Table) -> set[str]:
    value = (table.schema.metadata or {}).get(UNTYPED)
    if value is None:
        return set()
    return set(table.column_names) if value == b"*" else set(orjson.loads(value))


def _read_json_lines_as_text(path: Path) -> pa.Table:
    """JSON Lines that pyarrow refuses (a column of mixed types): columns of one type as
    they are, the others as text (numbers as written), for :func:`file_batch` to parse."""
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    if not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{path}: every line must be a JSON object")
    names = list(dict.fromkeys(k for r in rows for k in r))
    columns, as_text = {}, []
    for name in names:
        values = [r.get(name) for r in rows]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            columns[name] = pa.array([v if v is None or isinstance(v, str)
                                      else orjson.dumps(v).decode() for v in values])
            as_text.append(name)
    return _untyped(pa.table(columns), as_text)


def row_lines(path: str | Path, num_rows: int) -> list[int] | None:
    """The line each row of a CSV or JSON Lines file starts on (blank lines and quoted
    newlines counted, as the file source numbers them); ``None`` for Parquet, or when the
    rows found are not ``num_rows`` (ids then fall back to :func:`first_row_number` on).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return None
    with p.open(newline="", encoding="utf-8", errors="replace") as f:
        if suffix in (".jsonl", ".ndjson", ".json"):
            lines = [n for n, line in enumerate(f, 1) if line.strip()]
        else:
            import csv

            reader, lines, prev = csv.reader(f), [], 0
            try:
                for row in reader:
                    start, prev = prev + 1, reader.line_num
                    if row:
                        lines.append(start)
            except csv.Error:  # e.g. a field over csv's size limit (pyarrow has none)
                return None
            lines = lines[1:]  # the header
    return lines if len(lines) == num_rows else None


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


def parse_bool(v: Any) -> Any:
    """A ``true``/``false`` text cell (as ingestion reads them) as a bool; else unchanged.

    >>> parse_bool("true"), parse_bool("FALSE"), parse_bool("maybe"), parse_bool(None)
    (True, False, 'maybe', None)
    """
    return True if v in TRUE else False if v in FALSE else v


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
               lines: list[int] | None = None) -> ExampleBatch:
    """The table as one batch with ids ``<source>:<n>``: ``n`` from ``lines`` (see
    :func:`row_lines`), else the row's number from 1.

    Text columns of an untyped source (a CSV, read by :func:`read_table`) are parsed
    value by value (see the module docs) when the schema says they are numbers, or,
    for a column the schema does not name, when their values are mostly numbers
    (ingestion's rule: :func:`~streamml.connectors.coltypes.numeric_text_kind`). A
    typed source's text (a Parquet or JSON string) is text, as ingestion reads it.
    """
    numbers = lines if lines is not None else range(1, table.num_rows + 1)
    b = ExampleBatch.from_table(table, ids=[f"{source}:{n}" for n in numbers])
    for name in sorted(_untyped_columns(table)):
        col = table.column(name)
        if not pa.types.is_string(col.type):
            continue
        spec = schema.features.get(name) if schema is not None else None
        kind = spec.type if spec is not None else numeric_text_kind(col) or bool_text_kind(col)
        if kind in ("int", "float"):
            b.set_values(name, [parse_number(v) for v in b.values(name)])
        elif kind == "bool":
            b.set_values(name, [parse_bool(v) for v in b.values(name)])
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
