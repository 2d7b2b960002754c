"""One micro-batch of examples as columns, built once and shared by StatisticsGen and validation.

:class:`ExampleBatch` holds the examples' envelope fields as numpy arrays
(offsets, partitions, log and event times) and, per feature, the values of
every example (lazily), the set of Python value types, and one pyarrow array
built by ``pyarrow.array`` (type inference in C) when the column is *simple*:
numbers only (no bools), strings only, or bools only. Mixed or list columns
have no array; consumers fall back to the values.

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

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from streamml.statistics.columns import Column, column_from_arrow, column_from_values

_NONE = type(None)
_NUMBER_KINDS = frozenset({int, float, _NONE})
_SIMPLE = (_NUMBER_KINDS, frozenset({str, _NONE}), frozenset({bool, _NONE}))
_EMPTY: Mapping[str, Any] = {}


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
        self.ids = ids if ids is not None else [str(i) for i in range(self.n)]
        self.names: list[str] = sorted(set().union(*rows)) if rows else []
        self._values: dict[str, list[Any]] = {}
        self._kinds: dict[str, frozenset[type]] = {}
        self._arrays: dict[str, pa.Array | None] = {}
        self.partition = np.zeros(self.n, dtype=np.int64)
        self.offset = np.arange(self.n, dtype=np.int64)
        self.log_ms = np.zeros(self.n, dtype=np.int64)
        self.event_ms = np.zeros(self.n, dtype=np.int64)
        self.topic = ""
        self.splits: list[Any] = [None] * self.n
        self.envelopes: list[Mapping[str, Any]] = [_EMPTY] * self.n

    @classmethod
    def of_messages(cls, messages: Sequence[Any]) -> ExampleBatch:
        """The batch of ``messages`` (examples of one topic), reused for the same list."""
        last = cls._last
        if (last is not None and last[0] is messages and len(messages) == last[1].n
                and (not messages or (messages[0] is last[2] and messages[-1] is last[3]))):
            return last[1]  # the same list with the same messages (not a reused buffer)
        envelopes = [m.value if isinstance(m.value, Mapping) else _EMPTY for m in messages]
        rows = []
        for v in envelopes:
            f = v.get("features")
            rows.append(f if isinstance(f, Mapping) else _EMPTY)
        ids = [str(v.get("id") or m.key or f"{m.topic}:{m.partition}:{m.offset}")
               for v, m in zip(envelopes, messages, strict=True)]
        b = cls(rows, ids)
        b.envelopes = envelopes
        b.topic = messages[0].topic if messages else ""
        b.partition = np.fromiter((m.partition for m in messages), np.int64, len(messages))
        b.offset = np.fromiter((m.offset for m in messages), np.int64, len(messages))
        b.log_ms = np.fromiter((m.timestamp_ms for m in messages), np.int64, len(messages))
        b.event_ms = np.fromiter(
            (e if type(e) is int else m.timestamp_ms
             for e, m in zip((v.get("event_time") for v in envelopes), messages, strict=True)),
            np.int64, len(messages))
        b.splits = [v.get("split") for v in envelopes]
        cls._last = (messages, b, messages[0] if messages else None,
                     messages[-1] if messages else None)
        return b

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

    def row(self, i: int) -> Mapping[str, Any]:
        """The features of example ``i`` (a dict built from the columns for a table)."""
        if self.rows:
            return self.rows[i]
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

    def kinds(self, name: str) -> frozenset[type]:
        """Python types of the feature's values (``NoneType`` for missing)."""
        k = self._kinds.get(name)
        if k is None:
            k = self._kinds[name] = frozenset(map(type, self.values(name)))
        return k

    def array(self, name: str) -> pa.Array | None:
        """The column as one pyarrow array if it is simple (see module docs), else ``None``."""
        if name in self._arrays:
            return self._arrays[name]
        kinds = self.kinds(name)
        arr = None
        if any(kinds <= s for s in _SIMPLE) and kinds != {_NONE}:
            try:
                arr = pa.array(self.values(name), from_pandas=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
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
        for name in self.names:
            arr = self.array(name)
            col: Column | None = None
            if arr is not None and not (int in self.kinds(name) and float in self.kinds(name)):
                col = column_from_arrow(arr if whole else arr.take(pa.array(indices)))
            if col is None:
                vals = self.values(name)
                picked = vals if whole or indices is None else [vals[i] for i in indices]
                col = column_from_values(picked)
            if col.present == 0 and not self._occurs(name, indices):
                continue
            out[name] = col
        return out

    def _occurs(self, name: str, indices: np.ndarray | None) -> bool:
        if not self.rows:
            return True
        rows = self.rows if indices is None else [self.rows[i] for i in indices]
        return any(name in r for r in rows)
