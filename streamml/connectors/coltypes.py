"""Column typing for ExampleGen: per batch inference (pyarrow), locked per connector.

A column's type is inferred over a whole batch, never value by value: pyarrow
infers CSV columns; a float column whose values are all integral (``180.0``)
is an int column. The first batch that types a column *locks* its type for the
connector (it is part of the checkpointed state), so later batches agree:

* int then float widens the lock to float (``12`` then ``12.5``);
* a text column whose values are mostly numbers (95%) locks as a number: its
  few tokens (``N/A``) are the exceptions, not the type;
* a value that a locked numeric or bool column cannot convert stays as it
  came (``N/A`` stays text): the example is not refused here, the
  ExampleValidator flags it against the schema and, by policy, quarantines it;
* a locked string column keeps its text as is (CSV columns are then read as text).

>>> t = ColumnTypes()
>>> t.resolve("fare", "int"), t.resolve("fare", "float"), t.locked
('int', 'float', {'fare': 'float'})
>>> coerce("180.0", "int"), coerce(180.0, "int"), coerce(True, "string")
(180, 180, 'true')
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

Kind = str  # "int" | "float" | "bool" | "string" | "list" | "null"
_INT_MAX = 2**63
TRUE = {"true", "True", "TRUE"}
FALSE = {"false", "False", "FALSE"}


class CoercionError(ValueError):
    """A value cannot take its column's type."""


def coerce(value: Any, kind: Kind) -> Any:
    """``value`` as a ``kind`` value; :class:`CoercionError` when impossible."""
    if value is None:
        return None
    if kind == "int":
        if isinstance(value, bool):
            raise CoercionError(f"{value!r} is not an int")
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                try:
                    value = float(value)
                except ValueError:
                    raise CoercionError(f"{value!r} is not an int") from None
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and -_INT_MAX <= value < _INT_MAX:
            return value
        raise CoercionError(f"{value!r} is not an int (of 64 bits)")
    if kind == "float":
        if isinstance(value, bool):
            raise CoercionError(f"{value!r} is not a float")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise CoercionError(f"{value!r} is not a float") from None
        raise CoercionError(f"{value!r} is not a float")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value in TRUE:
            return True
        if isinstance(value, str) and value in FALSE:
            return False
        raise CoercionError(f"{value!r} is not a bool")
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return repr(value)
        return orjson.dumps(value).decode()
    return value


def kind_of_values(values: list[Any], infer_integral: bool) -> Kind:
    """The kind of a batch column of Python values (``None`` ignored).

    >>> kind_of_values([1, 180.0, None], True), kind_of_values([1, 2.5], True)
    ('int', 'float')
    >>> kind_of_values(["a", 1], True), kind_of_values([None], True), kind_of_values([[1]], True)
    ('string', 'null', 'list')
    """
    kinds = set()
    integral = True
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool):
            kinds.add("bool")
        elif isinstance(v, int):
            kinds.add("int")
        elif isinstance(v, float):
            kinds.add("float")
            if integral and not (math.isfinite(v) and v.is_integer() and abs(v) < _INT_MAX):
                integral = False
        elif isinstance(v, str):
            kinds.add("string")
        elif isinstance(v, list):
            kinds.add("list")
        else:
            kinds.add("string")
    if not kinds:
        return "null"
    if "list" in kinds:
        return "list"
    if len(kinds) == 1 and "float" not in kinds:
        return kinds.pop()
    if kinds <= {"int", "float"}:
        return "int" if infer_integral and integral else "float"
    return "string"


#: A column whose values are numbers at least this often is a number column holding a
#: few tokens (``N/A``, ``-``), not a text column.
NUMBER_SHARE = 0.95
# ASCII digits only (Python's \d takes any script's); int64 has up to 19 digits.
_NUMBER = r"^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"
_INTEGER = r"^\s*[+-]?[0-9]{1,19}\s*$"
_INTEGER_19 = r"^\s*[+-]?[0-9]{19}\s*$"  # may or may not fit int64


def numeric_text_kind(col: pa.Array | pa.ChunkedArray) -> Kind | None:
    """``int``/``float`` if a text column's values are mostly numbers (:data:`NUMBER_SHARE`).

    >>> numeric_text_kind(pa.array(["1", "2", None] + ["3"] * 20 + ["N/A"]))
    'int'
    >>> numeric_text_kind(pa.array(["1.5"] * 19 + ["x"])), numeric_text_kind(pa.array(["1", "x"]))
    ('float', None)
    >>> numeric_text_kind(pa.array(["1" * 25] * 19 + ["N/A"]))  # beyond int64: float
    'float'
    >>> numeric_text_kind(pa.array(["1700000000000000001"] * 19 + ["N/A"]))  # int64 still
    'int'
    """
    valid = len(col) - col.null_count
    if valid == 0:
        return None
    numbers = pc.sum(pc.match_substring_regex(col, _NUMBER)).as_py() or 0
    if numbers == 0 or numbers < NUMBER_SHARE * valid:
        return None
    ints = pc.sum(pc.match_substring_regex(col, _INTEGER)).as_py() or 0
    if ints != numbers:
        return "float"
    long = pc.filter(col, pc.match_substring_regex(col, _INTEGER_19)).to_pylist()
    return "float" if any(abs(int(v)) >= _INT_MAX for v in long) else "int"


def bool_text_kind(col: pa.Array | pa.ChunkedArray) -> Kind | None:
    """``bool`` if a text column's values are mostly ``true``/``false`` (:data:`NUMBER_SHARE`).

    >>> bool_text_kind(pa.array(["true", "False"] * 10 + ["maybe"]))
    'bool'
    >>> bool_text_kind(pa.array(["true", "x"]))
    """
    valid = len(col) - col.null_count
    hits = pc.sum(pc.is_in(col, pa.array(sorted(TRUE | FALSE)))).as_py() or 0
    return "bool" if valid and hits and hits >= NUMBER_SHARE * valid else None


def mixed_values_kind(values: list[Any]) -> Kind | None:
    """For parsed values (JSON, Parquet, SQL) of mixed types: ``int``/``float``/``bool`` if
    values of that type are :data:`NUMBER_SHARE` of them, the rest being text. Text is
    never read as a number here: a JSON string is a string (``"02101"``).

    >>> mixed_values_kind([1, 2.5] * 10 + ["N/A"]), mixed_values_kind([True] * 20 + ["?"])
    ('float', 'bool')
    >>> mixed_values_kind([1, "a", True]), mixed_values_kind(["1", "2"])
    (None, None)
    """
    valid = ints = floats = bools = 0
    for v in values:
        if v is None:
            continue
        valid += 1
        if isinstance(v, bool):
            bools += 1
        elif isinstance(v, int):
            ints += 1
        elif isinstance(v, float):
            floats += 1
    if valid and ints + floats >= NUMBER_SHARE * valid and ints + floats:
        return "int" if floats == 0 and all(
            abs(v) < _INT_MAX for v in values if type(v) is int) else "float"
    if valid and bools >= NUMBER_SHARE * valid and bools:
        return "bool"
    return None


class ColumnTypes:
    """Locked column types of one connector (snapshot/restore with its checkpoint)."""

    def __init__(self, locked: dict[str, Kind] | None = None) -> None:
        self.locked: dict[str, Kind] = dict(locked or {})

    def resolve(self, column: str, batch_kind: Kind) -> Kind:
        """The kind to give ``column`` in a batch whose values have ``batch_kind``."""
        if batch_kind in ("null", "list"):
            return batch_kind
        lock = self.locked.get(column)
        if lock is None:
            self.locked[column] = batch_kind
            return batch_kind
        if lock == "int" and batch_kind == "float":
            self.locked[column] = "float"
            return "float"
        return lock

    def widen(self, column: str, values: list[Any]) -> Kind:
        """Widen a locked int column to float if ``values`` (text too) hold a fraction or a
        number beyond int64.

        >>> t = ColumnTypes({"n": "int"})
        >>> t.widen("n", [5, "1e30"]), coerce("1" * 25, "float") > 1e24
        ('float', True)
        """
        lock = self.locked.get(column, "null")
        if lock != "int":
            return lock
        for v in values:
            if isinstance(v, bool) or v is None:
                continue
            if isinstance(v, str):
                try:
                    v = float(v)
                except ValueError:
                    continue
            if isinstance(v, float) and math.isfinite(v) and not v.is_integer() or (
                    isinstance(v, int | float) and abs(v) >= _INT_MAX):  # beyond int64
                self.locked[column] = "float"
                return "float"
        return lock

    def snapshot(self) -> dict[str, Kind]:
        return dict(self.locked)
