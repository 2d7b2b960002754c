"""One micro-batch of examples as columns, built once and shared by StatisticsGen and validation.

:class:`ExampleBatch` holds the examples' envelope fields as numpy arrays
(offsets, partitions, log and event times) and, per feature, the values of
every example (lazily), the set of Python value types, and one pyarrow array
built by ``pyarrow.array`` (type inference in C) when the column is *simple*:
numbers only (no bools), strings only, or bools only. Mixed or list columns
have no array; consumers fall back to the values. The inferred type tells the
value types of int, string and bool columns, so only float columns (which may
hold ints) are scanned in Python; example ids are built only when asked for.

:meth:`ExampleBatch.concat` joins micro-batches into one block reusing their
arrays: StatisticsGen accumulates blocks of thousands of examples at once.

:meth:`ExampleBatch.of_messages` keeps the last batch it built (by identity of
the message list), so two processors handed the same micro-batch (a fused host,
the benchmark) build the columns once.

>>> from streamml.processors.base import Message
>>> msgs = [Message("p.examples", 0, i, 10 + i, None,
...                 {"id": f"e{i}", "event_time": 100 + i, "features": f})
...         for i, f in enumerate([{"x": 1.5, "s": "a"}, {"x": None, "s": 3}])]
>>> b = ExampleBatch.of_messages(msgs)
>>> b.array("x").to_pylist(), b.array("s"), b.event_ms.tolist(), b.ids
([1.5, None], None, [100, 101], ['e0', 'e1'])
>>> ExampleBatch.of_messages(msgs) is b, ExampleBatch.of_messages(msgs[:1]) is b
(True, False)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import pyarrow as pa

from streamml.statistics.columns import Column, column_from_arrow, column_from_values

_NONE = type(None)
_NUMBER_KINDS = frozenset({int, float, _NONE})
_EMPTY: Mapping[str, Any] = {}
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError,
                 TypeError, ValueError)


def simple_kinds(arr: pa.Array) -> frozenset[type] | None:
    """Value types implied by an inferred arrow type; None if the values must be looked at.

    ``pyarrow.array`` infers int64 only from ints (a bool raises), string only
    from str and bool only from bools; a double column may hold ints and bools.
    """
    t = arr.type
    if pa.types.is_integer(t):
        kind: frozenset[type] = frozenset({int})
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        kind = frozenset({str})
    elif pa.types.is_boolean(t):
        kind = frozenset({bool})
    else:
        return None
    return kind | {_NONE} if arr.null_count else kind


def _same_types(vals: list[Any], kind: type) -> bool:
    return len(vals) == 0 or set(map(type, vals)) == {kind}


class ExampleBatch:
    """Columns of one micro-batch of examples (see module docs).

    >>> b = ExampleBatch([{"n": 1}, {"n": 2, "t": [1, 2]}, {}])
    >>> b.names, b.array("n").type, b.array("t"), b.kinds("t") == {list, type(None)}
    (['n', 't'], DataType(int64), None, True)
    >>> {k: (c.present, c.missing) for k, c in b.columns(np.array([1, 2])).items()}
    {'n': (1, 1), 't': (1, 1)}
    """

    _last: tuple[Sequence[Any], ExampleBatch, Any, Any] | None = None

    def __init__(self, rows: Sequence[Mapping[str, Any]], ids: list[str] | None = None) -> None:
        self.rows = rows
        self.n = len(rows)
        self._ids = ids
        self._messages: Sequence[Any] = ()
        self._values: dict[str, list[Any]] = {}
        self.names: list[str] = self._uniform_columns(rows) or (
            sorted(set().union(*rows)) if rows else [])
        self._kinds: dict[str, frozenset[type]] = {}
        self._arrays: dict[str, pa.Array | None] = {}
        self._numbers: dict[str, tuple[np.ndarray, np.ndarray | None, str]] = {}
        self.partition = np.zeros(self.n, dtype=np.int64)
        self.offset = np.arange(self.n, dtype=np.int64)
        self.log_ms = np.zeros(self.n, dtype=np.int64)
        self.event_ms = np.zeros(self.n, dtype=np.int64)
        self.topic = ""
        self.splits: list[Any] = [None] * self.n
        self.envelopes: Sequence[Mapping[str, Any]] = [_EMPTY] * self.n
        """The messages of a batch decoded from raw bytes (:mod:`~.rawbatch`)."""
        self.id_values: pa.Array | None = None
        """The envelopes' ``id`` column, when the batch was decoded columnar."""
        self.row_of: Callable[[int], Mapping[str, Any]] | None = None
        """Example ``i``'s features decoded exactly (key order, int or float), if no rows."""
        self.occurs_any: Callable[[str, np.ndarray], bool] | None = None
        """Whether the feature's key occurs in any example at those indices (for batches
        decoded from record bytes, which have no rows; see :meth:`_occurs`)."""
        self._parts: Sequence[ExampleBatch] = ()

    @property
    def ids(self) -> list[str]:
        """Example ids: the envelope's ``id``, else the record key, else topic:partition:offset."""
        if self._ids is None:
            if self._messages and self.id_values is not None:
                self._ids = [str(v or m.key or f"{m.topic}:{m.partition}:{m.offset}")
                             for v, m in zip(self.id_values.to_pylist(), self._messages,
                                             strict=True)]
            elif self._messages:
                self._ids = [str(v.get("id") or m.key or f"{m.topic}:{m.partition}:{m.offset}")
                             for v, m in zip(self.envelopes, self._messages, strict=True)]
            else:
                self._ids = [str(i) for i in range(self.n)]
        return self._ids

    def id_at(self, i: int) -> str:
        """:attr:`ids` ``[i]``, without building every id of the batch for one.

        >>> ExampleBatch([{}, {}], ["a", "b"]).id_at(1)
        'b'
        """
        if self._ids is not None or not self._messages:
            return self.ids[i]
        m = self._messages[i]
        v = (self.id_values[i].as_py() if self.id_values is not None
             else self.envelopes[i].get("id"))
        return str(v or m.key or f"{m.topic}:{m.partition}:{m.offset}")

    @classmethod
    def of_messages(cls, messages: Sequence[Any]) -> ExampleBatch:
        """The batch of ``messages`` (examples of one topic), reused for the same list."""
        last = cls._last
        if (last is not None and last[0] is messages and len(messages) == last[1].n
                and (not messages or (messages[0] is last[2] and messages[-1] is last[3]))):
            return last[1]  # the same list with the same messages (not a reused buffer)
        values: list[Any] = [m.value for m in messages]
        envelopes: list[Mapping[str, Any]] = values if _same_types(values, dict) else [
            v if isinstance(v, Mapping) else _EMPTY for v in values]
        feats: list[Any] = [v.get("features") for v in envelopes]
        rows: list[Mapping[str, Any]] = feats if _same_types(feats, dict) else [
            f if isinstance(f, Mapping) else _EMPTY for f in feats]
        b = cls(rows)
        b._messages = messages
        b.envelopes = envelopes
        b.topic = messages[0].topic if messages else ""
        b.partition = np.array([m.partition for m in messages], dtype=np.int64)
        b.offset = np.array([m.offset for m in messages], dtype=np.int64)
        b.log_ms = np.array([m.timestamp_ms for m in messages], dtype=np.int64)
        raw: list[Any] = [v.get("event_time") for v in envelopes]
        events: list[int] = raw if _same_types(raw, int) else [
            e if type(e) is int else m.timestamp_ms for e, m in zip(raw, messages, strict=True)]
        try:
            b.event_ms = np.array(events, dtype=np.int64)
        except OverflowError:  # an event time beyond int64: the log time instead
            b.event_ms = np.array([e if -(1 << 63) <= e < (1 << 63) else m.timestamp_ms
                                   for e, m in zip(events, messages, strict=True)], np.int64)
        b.splits = [v.get("split") for v in envelopes]
        cls._last = (messages, b, messages[0] if messages else None,
                     messages[-1] if messages else None)
        return b

    @classmethod
    def concat(cls, batches: Sequence[ExampleBatch]) -> ExampleBatch:
        """One batch holding the examples of ``batches`` in order, reusing their columns.

        A feature's arrays are concatenated when every batch has one of the same
        type (a batch without the feature contributes nulls) and ints do not mix
        with floats (the float array would hide them); otherwise its values are,
        and the column is rebuilt from them.

        >>> a, b = ExampleBatch([{"x": 1}, {"x": 2}]), ExampleBatch([{"y": "s"}, {"x": 1.5}])
        >>> c = ExampleBatch.concat([a, b])
        >>> c.n, c.names, c.values("x"), c.array("y").to_pylist()
        (4, ['x', 'y'], [1, 2, None, 1.5], [None, None, 's', None])
        >>> c.kinds("x") == {int, float, type(None)}
        True
        """
        if len(batches) == 1:
            return batches[0]
        has_rows = all(len(b.rows) == b.n for b in batches)
        out = cls([])
        if has_rows:
            out.rows = list(chain.from_iterable(b.rows for b in batches))
        else:
            out._parts = list(batches)
        out.n = sum(b.n for b in batches)
        out.names = sorted(set().union(*(b.names for b in batches)))
        out.topic = next((b.topic for b in batches if b.topic), "")
        for attr in ("partition", "offset", "log_ms", "event_ms"):
            setattr(out, attr, np.concatenate([getattr(b, attr) for b in batches]))
        out.splits = list(chain.from_iterable(b.splits for b in batches))
        for name in out.names:
            arrays = [b.array(name) if name in b.names else None for b in batches]
            types = {a.type for a in arrays if a is not None}
            kinds = frozenset().union(*(b.kinds(name) for b in batches if name in b.names))
            if len(types) == 1 and not {int, float} <= kinds and all(
                    a is not None or name not in b.names
                    for a, b in zip(arrays, batches, strict=True)):
                [t] = types
                out._arrays[name] = pa.concat_arrays(
                    [a if a is not None else pa.nulls(b.n, t)
                     for a, b in zip(arrays, batches, strict=True)])
                missing = any(name not in b.names for b in batches)
                out._kinds[name] = kinds | {_NONE} if missing else kinds
            else:
                out._values[name] = list(chain.from_iterable(
                    b.values(name) if name in b.names else [None] * b.n for b in batches))
        return out

    @classmethod
    def from_table(cls, table: pa.Table, ids: list[str] | None = None) -> ExampleBatch:
        """A batch over a pyarrow Table (one example per row; nulls are missing)."""
        b = cls([], ids if ids is not None else [str(i) for i in range(table.num_rows)])
        b.n = table.num_rows
        b.names = list(table.column_names)
        for name in b.names:
            col = table.column(name).combine_chunks()
            b._arrays[name] = col
            t = col.type
            kind: frozenset[type]
            if pa.types.is_integer(t):
                kind = frozenset({int})
            elif pa.types.is_floating(t):
                kind = frozenset({float})
            elif pa.types.is_string(t) or pa.types.is_large_string(t):
                kind = frozenset({str})
            elif pa.types.is_boolean(t):
                kind = frozenset({bool})
            else:
                kind = frozenset({object})
                b._arrays[name] = None
                b._values[name] = col.to_pylist()
            b._kinds[name] = kind | {_NONE} if col.null_count else kind
        return b

    def set_values(self, name: str, values: list[Any]) -> None:
        """Replace a feature's column by Python values (e.g. numbers parsed from text)."""
        if name not in self.names:
            self.names.append(name)
        self._values[name] = values
        self._kinds.pop(name, None)
        self._arrays.pop(name, None)
        self._numbers.pop(name, None)

    def row(self, i: int) -> Mapping[str, Any]:
        """The features of example ``i`` (a dict built from the columns for a table)."""
        if self.rows:
            return self.rows[i]
        if self.row_of is not None:
            return self.row_of(i)
        return {name: self.values(name)[i] for name in self.names}

    def values(self, name: str) -> list[Any]:
        """The feature's value in every example (``None`` where missing)."""
        vals = self._values.get(name)
        if vals is None:
            arr = self._arrays.get(name)
            if arr is not None:
                vals = arr.to_pylist()
            else:
                vals = [r.get(name) for r in self.rows]
            self._values[name] = vals
        return vals

    def _uniform_columns(self, rows: Sequence[Mapping[str, Any]]) -> list[str] | None:
        """Feature names, with every column at once, when all rows have the same keys.

        One C-speed pass (row lengths, then ``itemgetter`` and ``zip``) instead
        of one per feature; ``None`` (nothing done) when the rows differ.
        """
        if len(rows) < 2 or type(rows[0]) is not dict:
            return None
        first = rows[0]
        if len(first) < 2 or set(map(len, rows)) != {len(first)}:
            return None
        names = sorted(first)
        try:
            columns = zip(*map(itemgetter(*names), rows), strict=True)
        except (KeyError, TypeError):  # a row has other keys (or is not a mapping)
            return None
        for name, col in zip(names, columns, strict=True):
            self._values[name] = list(col)
        return names

    def kinds(self, name: str) -> frozenset[type]:
        """Python types of the feature's values (``NoneType`` for missing)."""
        k = self._kinds.get(name)
        if k is None:
            self.array(name)  # an inferred int, string or bool array tells the kinds
            k = self._kinds.get(name)
            if k is None:
                k = self._kinds[name] = frozenset(map(type, self.values(name)))
        return k

    def array(self, name: str) -> pa.Array | None:
        """The column as one pyarrow array if it is simple (see module docs), else ``None``."""
        if name in self._arrays:
            return self._arrays[name]
        vals = self.values(name)
        arr: pa.Array | None
        try:
            arr = pa.array(vals, from_pandas=False)
        except _ARROW_ERRORS:
            arr = None
        if arr is not None:
            kinds = simple_kinds(arr)
            if kinds is not None:
                self._kinds[name] = kinds
            elif pa.types.is_floating(arr.type):
                kinds = self._kinds[name] = frozenset(map(type, vals))
                if not kinds <= _NUMBER_KINDS:  # bools read as numbers
                    arr = None
            else:  # all missing, lists, nested values: no simple array
                arr = None
        self._arrays[name] = arr
        return arr

    def columns(self, indices: np.ndarray | None = None) -> dict[str, Column]:
        """Statistics columns of the examples at ``indices`` (all when ``None``).

        Features are those occurring (as a key) in those examples, like
        :func:`~streamml.statistics.columns.columns_from_rows`.
        """
        out: dict[str, Column] = {}
        whole = indices is None or len(indices) == self.n
        pick: pa.Array | None = None
        mask: np.ndarray | None = None
        n_mask = 0  # rows in mask (indices ascending: no repeats)
        if not whole and indices is not None:
            if len(indices) < 2 or bool(np.all(np.diff(indices) > 0)):
                n_mask = len(indices)
                mask = np.zeros(self.n, dtype=bool)  # ascending: a filter (faster than take)
                mask[indices] = True
                pick = pa.array(mask)
            else:
                pick = pa.array(indices)
        for name in self.names:
            arr = self.array(name)
            col: Column | None = None
            if mask is not None and arr is not None and (
                    pa.types.is_int64(arr.type) or pa.types.is_float64(arr.type)):
                col = self._number_column(name, arr, mask, n_mask)
            if col is None and arr is not None and not (
                    int in self.kinds(name) and float in self.kinds(name)):
                if pick is not None:
                    arr = arr.filter(pick) if pick.type == pa.bool_() else arr.take(pick)
                col = column_from_arrow(arr)
            if col is None and self.kinds(name) == {_NONE}:  # missing everywhere
                size = self.n if whole or indices is None else len(indices)
                col = Column(present=0, missing=size)
            if col is None:
                vals = self.values(name)
                picked = vals if whole or indices is None else [vals[i] for i in indices]
                col = column_from_values(picked)
            if col.present == 0 and not self._occurs(name, indices):
                continue
            out[name] = col
        return out

    def _number_column(self, name: str, arr: pa.Array, mask: np.ndarray,
                       picked: int) -> Column | None:
        """The column of an int64/float64 feature at the ``picked`` rows of ``mask``, picked
        with numpy.

        The array is converted once per batch (a block has a piece per split and
        window), so each piece is a numpy selection instead of an arrow filter and
        conversion; the same :class:`Column` as :func:`column_from_arrow` of the
        filtered array. ``None`` when ints mix with floats (handled by values).
        """
        got = self._numbers.get(name)
        if got is None:
            kinds = self.kinds(name)
            if int in kinds and float in kinds:
                return None
            x = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)
            valid = None
            if arr.null_count:
                valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            kind = "int" if pa.types.is_int64(arr.type) else "float"
            got = self._numbers[name] = (x, valid, kind)
        x, valid, kind = got
        numbers = x[mask if valid is None else mask & valid]
        present = int(numbers.size)
        return Column(present=present, missing=picked - present,
                      numbers=numbers, type_counts={kind: present} if present else {})

    def _occurs(self, name: str, indices: np.ndarray | None) -> bool:
        """Whether the feature's key occurs in any example at ``indices`` (all: ``None``)."""
        if self._parts:  # a block: ask the micro-batches that hold those examples
            start = 0
            for part in self._parts:
                end = start + part.n
                local = None if indices is None else (
                    indices[(indices >= start) & (indices < end)] - start)
                if (name in part.names and (local is None or local.size)
                        and part._occurs(name, local)):
                    return True
                start = end
            return False
        if not self.rows:  # decoded from bytes: ask them; a table: every key occurs
            if self.occurs_any is None:
                return True
            return self.occurs_any(name, np.arange(self.n) if indices is None else indices)
        if indices is None:
            return any(name in r for r in self.rows)
        rows = self.rows
        return any(name in rows[i] for i in indices.tolist())
