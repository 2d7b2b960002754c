"""Parse a batch of CSV lines with pyarrow in one go, and type its columns.

Each item is one record; a quoted field may hold newlines (the file source
frames such records, see :mod:`~streamml.connectors.filetext`). Records that are
not CSV (unbalanced quotes, a wrong number of fields) are refused as
``unparsable`` and the rest still parse. A value that does not fit its
column's locked type (``N/A`` in a column of numbers) stays its text: the row
is an example, and the ExampleValidator flags the value against the schema
(``UNEXPECTED_DATA_TYPE``) and quarantines the example if its policy says so.
Only empty cells are missing (``NA``, ``null``... stay text).

>>> from streamml.connectors.coltypes import ColumnTypes
>>> types = ColumnTypes()
>>> p = parse_csv_batch(b"a,b", [b"1,x", b'2,"y', b"3.0,", b"4,z,extra"], types)
>>> p.names, p.columns, p.row_pos, sorted(p.refused)
(['a', 'b'], [[1, 3], ['x', None]], [0, 2], [1, 3])
>>> parse_csv_batch(b"a,b", [b"N/A,x", b"5,y"], types).columns
[['N/A', 5], ['x', 'y']]
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from streamml.connectors.coltypes import (
    CoercionError,
    ColumnTypes,
    Kind,
    bool_text_kind,
    coerce,
    numeric_text_kind,
)
from streamml.payloads.base import finite_json

_INT_LIMIT = 2.0**63


@dataclass
class ParsedCsv:
    """Typed columns (Python lists) of the parsed rows; ``row_pos[r]`` is row r's line index."""

    names: list[str]
    columns: list[list[Any]] = field(default_factory=list)
    row_pos: list[int] = field(default_factory=list)
    refused: dict[int, tuple[str, str]] = field(default_factory=dict)


def _read(header: bytes, lines: list[bytes], column_types: dict[str, pa.DataType],
          invalid: list[str], body: bytes | None = None) -> pa.Table:
    """``body``: ``b"\\n".join(lines)`` when the caller has it already."""
    buf = b"".join((header, b"\n", b"\n".join(lines) if body is None else body, b"\n"))
    # Quoted fields holding newlines (RFC 4180): only then pay for pyarrow's slower mode.
    multiline = buf.count(b"\n") != len(lines) + 1

    def on_invalid(row: Any) -> str:
        invalid.append(row.text)
        return "skip"

    return pacsv.read_csv(
        pa.py_buffer(buf),
        read_options=pacsv.ReadOptions(use_threads=True, block_size=max(len(buf) + 1, 1 << 20)),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid,
                                         newlines_in_values=multiline),
        convert_options=pacsv.ConvertOptions(
            null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True,
            true_values=["true", "True", "TRUE"], false_values=["false", "False", "FALSE"],
            timestamp_parsers=[], column_types=column_types,
        ),
    )


def _basic(t: pa.DataType) -> bool:
    return bool(pa.types.is_null(t) or pa.types.is_integer(t) or pa.types.is_floating(t)
                or pa.types.is_boolean(t) or pa.types.is_string(t)
                or pa.types.is_large_string(t))


def _integral(col: pa.ChunkedArray) -> bool:
    valid = pc.drop_null(col)
    if len(valid) == 0:
        return True
    finite = pc.is_finite(valid)
    if not pc.all(finite).as_py():
        return False
    if not pc.all(pc.equal(valid, pc.floor(valid))).as_py():
        return False
    return bool(pc.max(pc.abs(valid)).as_py() < _INT_LIMIT)


def _kind(col: pa.ChunkedArray) -> Kind:
    t = col.type
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "int" if _integral(col) else "float"
    if pa.types.is_boolean(t):
        return "bool"
    return "string"


def _typed_column(name: str, col: pa.ChunkedArray, types: ColumnTypes) -> list[Any]:
    kind = _kind(col)
    lock = kind
    if kind == "string" and name not in types.locked:
        # numbers (or true/false) with a few tokens: a number (bool) column
        lock = numeric_text_kind(col) or bool_text_kind(col) or kind
    target = types.resolve(name, lock)
    if target == "null":
        return [None] * len(col)
    if target == kind:
        if kind == "int" and not pa.types.is_integer(col.type):
            return col.cast(pa.int64()).to_pylist()
        if kind == "float":
            values = col.to_pylist()
            if not pc.all(pc.is_finite(pc.drop_null(col))).as_py():
                values = finite_json(values)
            return values
        return col.to_pylist()
    if target == "float" and kind == "int":
        return col.cast(pa.float64()).to_pylist()
    values = col.to_pylist()
    if target == "int":
        target = types.widen(name, values)
    for r, value in enumerate(values):
        try:
            values[r] = coerce(value, target)
        except CoercionError:
            continue  # stays its text (see the module docs)
    if target == "float":
        values = finite_json(values)
    return values


def parse_csv_batch(header: bytes, lines: list[bytes], types: ColumnTypes, *,
                    body: bytes | None = None) -> ParsedCsv:
    """Parse ``lines`` under ``header``; type the columns with (and update) ``types``.

    ``body`` is ``b"\\n".join(lines)`` if the caller built it already (it is not rebuilt).
    """
    names = next(csv.reader([header.decode("utf-8")]), [])
    out = ParsedCsv(names=names)
    if body is None:
        body = b"\n".join(lines)
    if b'"' not in body:
        ok = list(range(len(lines)))
    else:
        body = None  # some lines may be refused: the parsed text is rebuilt
        ok = []
        for i, line in enumerate(lines):
            if line.count(b'"') % 2:
                out.refused[i] = ("unparsable", "unbalanced quotes")
            else:
                ok.append(i)
    if not ok:
        return out
    string_cols = {n: pa.string() for n in names if types.locked.get(n) == "string"}
    invalid: list[str] = []
    try:
        table = _read(header, [lines[i] for i in ok] if body is None else lines, string_cols,
                      invalid, body)
    except (pa.ArrowInvalid, ValueError) as exc:
        return _one_by_one(header, lines, ok, types, out, str(exc))
    odd = [n for n, t in zip(table.column_names, table.schema.types, strict=True) if not _basic(t)]
    if odd:  # dates, times, decimals...: keep their text
        string_cols.update({n: pa.string() for n in odd})
        invalid.clear()
        table = _read(header, [lines[i] for i in ok], string_cols, invalid)
    if invalid:
        where: dict[str, list[int]] = {}
        for i in ok:
            where.setdefault(lines[i].decode("utf-8"), []).append(i)
        dropped = set()
        for text in invalid:
            found = where.get(text)
            if not found:
                return _one_by_one(header, lines, ok, types, out, "unmapped invalid row")
            i = found.pop(0)
            dropped.add(i)
            out.refused[i] = ("unparsable", "wrong number of fields")
        ok = [i for i in ok if i not in dropped]
    if table.num_rows != len(ok) or table.column_names != names:
        return _one_by_one(header, lines, ok, types, out, "rows do not match lines")
    out.row_pos = ok
    out.columns = [_typed_column(n, c, types)
                   for n, c in zip(names, table.columns, strict=True)]
    return out


def _one_by_one(header: bytes, lines: list[bytes], ok: list[int], types: ColumnTypes,
                out: ParsedCsv, why: str) -> ParsedCsv:
    """Slow path: parse every line alone (a batch-level parse failed)."""
    rows: list[list[Any]] = []
    row_pos: list[int] = []
    for i in ok:
        invalid: list[str] = []
        try:
            table = _read(header, [lines[i]], {}, invalid)
        except (pa.ArrowInvalid, ValueError) as exc:
            out.refused[i] = ("unparsable", str(exc)[:500])
            continue
        if invalid or table.num_rows != 1 or table.column_names != out.names:
            out.refused[i] = ("unparsable", f"not a CSV row of {len(out.names)} fields")
            continue
        row = []
        for n, col in zip(out.names, table.columns, strict=True):
            value = col.to_pylist()[0]
            lock = types.locked.get(n)
            if lock is not None and value is not None:
                try:
                    value = coerce(value, lock)
                except CoercionError:  # stays its text (see the module docs)
                    value = _cell_text(lines[i], out.names.index(n))
                else:
                    if lock == "string":
                        value = _cell_text(lines[i], out.names.index(n))
            row.append(value)
        rows.append(row)
        row_pos.append(i)
    out.row_pos = row_pos
    out.columns = [list(c) for c in zip(*rows, strict=True)] if rows else []
    _ = why
    return out


def _cell_text(line: bytes, index: int) -> str | None:
    cells = next(csv.reader([line.decode("utf-8")]), [])
    return cells[index] if index < len(cells) and cells[index] != "" else None
