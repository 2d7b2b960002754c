"""Turn a micro-batch (example feature dicts or a pyarrow Table) into typed columns.

Each feature of a batch becomes one :class:`Column`: how many examples have it
and how many miss it, its numeric values as one float64 numpy array, its
string values as one pyarrow array, bools, per-example list lengths, and how
many values of each type were seen. Values of list features are flattened.

The fast path hands each column to ``pyarrow.array`` (type inference in C) and
works on the result with ``pyarrow.compute``/numpy; only columns that mix
types (ints and strings, scalars and lists, the JSON tokens ``"NaN"``,
``"Infinity"``, ``"-Infinity"`` among numbers) fall back to a Python pass.

>>> cols = columns_from_rows([{"fare": 1.5, "pay": "Cash"}, {"fare": 2, "tags": [1, 2]}, {}])
>>> cols["fare"].present, cols["fare"].missing, cols["fare"].numbers.tolist()
(2, 1, [1.5, 2.0])
>>> cols["pay"].strings.to_pylist(), cols["tags"].list_lengths.tolist()
(['Cash'], [2])
>>> columns_from_rows([{"x": "NaN"}, {"x": 3}])["x"].type_counts
{'int': 1, 'float': 1}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamml.payloads.base import NONFINITE_TOKENS

Rows = Sequence[Mapping[str, Any]]
_EMPTY_F64 = np.empty(0, dtype=np.float64)
_EMPTY_I64 = np.empty(0, dtype=np.int64)
_TOKENS = pa.array(list(NONFINITE_TOKENS), pa.string())
_NO_STRINGS = pa.array([], pa.string())  # arrow arrays are immutable: one empty of each
_NO_BOOLS = pa.array([], pa.bool_())


@dataclass
class Column:
    """One feature of one batch, split by value type (see module docs).

    >>> Column(present=1, missing=0, numbers=np.array([2.0]), type_counts={"int": 1}).numbers
    array([2.])
    """

    present: int
    missing: int
    numbers: np.ndarray = field(default_factory=lambda: _EMPTY_F64)
    strings: pa.Array = field(default_factory=lambda: _NO_STRINGS)
    bools: pa.Array = field(default_factory=lambda: _NO_BOOLS)
    list_lengths: np.ndarray = field(default_factory=lambda: _EMPTY_I64)
    """Number of values of each example whose value is a list."""
    type_counts: dict[str, int] = field(default_factory=dict)
    """Values seen by type: ``int``, ``float``, ``string``, ``bool``."""


def _from_flat(arr: pa.Array, col: Column) -> bool:
    """Fill ``col`` from a flat arrow array without nulls; False if the type is unsupported."""
    t = arr.type
    n = len(arr)
    if pa.types.is_null(t) or n == 0:
        return True
    if pa.types.is_integer(t):
        col.numbers = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)
        col.type_counts["int"] = n
    elif pa.types.is_floating(t) or pa.types.is_decimal(t):
        col.numbers = np.asarray(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False))
        col.type_counts["float"] = n
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        tokens = pc.is_in(arr, value_set=_TOKENS)
        n_tokens = pc.sum(tokens).as_py() or 0
        if n_tokens:  # "NaN"/"Infinity"/"-Infinity" are floats on the wire, as in Example
            col.numbers = np.array([NONFINITE_TOKENS[v] for v in arr.filter(tokens).to_pylist()])
            col.type_counts["float"] = n_tokens
            arr = arr.filter(pc.invert(tokens))
            n -= n_tokens
        col.strings = arr
        if n:
            col.type_counts["string"] = n
    elif pa.types.is_dictionary(t):
        return _from_flat(arr.dictionary_decode(), col)
    elif pa.types.is_boolean(t):
        col.bools = arr
        col.type_counts["bool"] = n
    else:
        return False
    return True


def column_from_arrow(arr: pa.Array | pa.ChunkedArray) -> Column | None:
    """A :class:`Column` from an arrow array (nulls are missing); None if unsupported."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    missing = arr.null_count
    col = Column(present=len(arr) - missing, missing=missing)
    if missing:
        arr = arr.drop_null()
    t = arr.type
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        col.list_lengths = np.asarray(pc.list_value_length(arr).to_numpy(zero_copy_only=False),
                                      dtype=np.int64)
        flat = pc.list_flatten(arr)
        if flat.null_count:  # None inside a list: skip it as a value
            flat = flat.drop_null()
        return col if _from_flat(flat, col) else None
    return col if _from_flat(arr, col) else None


def _slow_column(values: list[Any]) -> Column:
    """Python pass for columns that mix types."""
    ints: list[float] = []
    floats: list[float] = []
    strings: list[str] = []
    bools: list[bool] = []
    lengths: list[int] = []
    missing = 0

    def put(v: Any) -> None:
        if isinstance(v, bool):
            bools.append(v)
        elif isinstance(v, int):
            ints.append(float(v))
        elif isinstance(v, float):
            floats.append(v)
        elif isinstance(v, str):
            token = NONFINITE_TOKENS.get(v)
            if token is None:
                strings.append(v)
            else:
                floats.append(token)
        elif v is not None:
            strings.append(str(v))

    for v in values:
        if v is None:
            missing += 1
        elif isinstance(v, list):
            lengths.append(len(v))
            for item in v:
                put(item)
        else:
            put(v)
    counts = {"int": len(ints), "float": len(floats), "string": len(strings), "bool": len(bools)}
    return Column(
        present=len(values) - missing,
        missing=missing,
        numbers=np.array(ints + floats, dtype=np.float64),
        strings=pa.array(strings, pa.string()),
        bools=pa.array(bools, pa.bool_()),
        list_lengths=np.array(lengths, dtype=np.int64),
        type_counts={k: v for k, v in counts.items() if v},
    )


def column_from_values(values: list[Any]) -> Column:
    """A :class:`Column` from one feature's Python values (``None`` = missing).

    >>> column_from_values([1, None, float("nan")]).type_counts
    {'float': 1, 'int': 1}
    >>> column_from_values([True, "x"]).type_counts
    {'string': 1, 'bool': 1}
    """
    try:
        arr = pa.array(values, from_pandas=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
        return _slow_column(values)
    t = arr.type
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        # pyarrow reads bools among numbers as numbers, and ints among floats as floats:
        # one C-speed pass over the value types tells
        kinds = Counter(map(type, values))
        if kinds.get(bool):
            return _slow_column(values)
    elif pa.types.is_list(t) and (pa.types.is_integer(t.value_type)
                                  or pa.types.is_floating(t.value_type)):
        if any(type(x) is bool for v in values if v for x in v):
            return _slow_column(values)
    col = column_from_arrow(arr)
    if col is None:
        return _slow_column(values)
    if pa.types.is_floating(t) and kinds.get(int):
        ints = kinds[int]
        col.type_counts = {k: v for k, v in (("float", col.present - ints), ("int", ints)) if v}
    return col


def columns_from_rows(rows: Rows) -> dict[str, Column]:
    """Typed columns of every feature that occurs in ``rows`` (absent = missing)."""
    names: set[str] = set().union(*rows) if rows else set()
    return {name: column_from_values([r.get(name) for r in rows]) for name in sorted(names)}


def columns_from_table(table: pa.Table) -> dict[str, Column]:
    """Typed columns of a pyarrow Table; unsupported column types go through Python."""
    out: dict[str, Column] = {}
    for name in table.column_names:
        chunked = table.column(name)
        col = column_from_arrow(chunked)
        out[name] = col if col is not None else _slow_column(chunked.to_pylist())
    return out
