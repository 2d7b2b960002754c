"""Questions about a micro-batch of example records that its columns cannot answer.

:mod:`~streamml.statistics.rawbatch` decodes records columnar with ``pyarrow.json``;
a few facts are lost on the way and read from the records' bytes here: which
values of a double column were written as JSON ints, whether a feature key is
present (with a null value) or absent, and a record's features decoded exactly.

>>> vals = [b'{"features":{"x":1,"y":null}}', b'{"features":{"x":2.0}}']
>>> rows = RawRows(vals, b"\\n".join(vals), frozenset())
>>> rows.presence("y").tolist(), rows.row(1)
([True, False], {'x': 2.0})
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from streamml.statistics.batch import _EMPTY

_EXACT_INT = float(1 << 53)


class RawRows:
    """The records' bytes, for the few questions columns cannot answer.

    ``clash``: key names found in the envelope outside ``features``; a feature
    key among them may occur more than once in a record, so it is answered by
    decoding those records exactly. Any other ``"<key>":`` in a record's bytes
    is that feature's key (in JSON text a ``"`` inside a string is escaped).
    """

    def __init__(self, vals: list[bytes], buf: bytes, clash: frozenset[str]) -> None:
        self.vals = vals
        self.buf = buf
        self.clash = clash
        self._array: pa.Array | None = None
        self._presence: dict[str, np.ndarray] = {}
        self._features: dict[int, Any] = {}

    def array(self) -> pa.Array:
        """The records as one binary array over the joined buffer (no copy)."""
        if self._array is None:
            n = len(self.vals)
            offsets = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(np.fromiter(map(len, self.vals), np.int64, n) + 1, out=offsets[1:])
            offsets[-1] -= 1
            self._array = pa.Array.from_buffers(
                pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(self.buf)])
        return self._array

    def features(self, i: int) -> Any:
        """Record ``i``'s features, decoded exactly."""
        f = self._features.get(i)
        if f is None:
            f = self._features[i] = orjson.loads(self.vals[i]).get("features")
        return f

    def row(self, i: int) -> Any:
        """Record ``i``'s features as a dict, decoded exactly (for per-example checks)."""
        f = self.features(i)
        return f if isinstance(f, dict) else _EMPTY

    def _matches(self, rows: np.ndarray, pattern: str) -> np.ndarray:
        sub = self.array().take(pa.array(rows))
        return np.asarray(pc.match_substring_regex(sub, pattern).to_numpy(zero_copy_only=False),
                          dtype=bool)

    def int_rows(self, doubles: list[tuple[str, pa.Array]]) -> dict[str, np.ndarray] | None:
        """Per double feature: the rows whose value was written as a JSON int.

        Only integral values can be. A key that is not an envelope key occurs
        once in a record (features are flat, and in JSON text a ``"`` inside a
        string is escaped), so a regex over those records tells; records whose
        key also occurs in the envelope are decoded. ``None``: a value is not
        finite (a ``NaN``/``Infinity`` literal) or an int beyond 2**53.
        """
        integral: dict[str, np.ndarray] = {}
        for name, arr in doubles:
            x = arr.to_numpy(zero_copy_only=False)  # nulls become NaN
            with np.errstate(invalid="ignore"):
                if np.isinf(x).any() or (np.isnan(x).sum() != arr.null_count):
                    return None
                rows = np.flatnonzero(x == np.floor(x))
            if rows.size:
                integral[name] = rows
        if not integral:
            return {}
        values = dict(doubles)
        keys = {name: re.escape(orjson.dumps(name).decode()) for name in integral}
        tail = r"\s*:\s*-?[0-9]+\s*[,}]"  # the key, then a number without . e E
        union = np.unique(np.concatenate(list(integral.values())))
        if not (self.clash & integral.keys()) and not self._matches(
                union, f"(?:{'|'.join(keys.values())}){tail}").any():
            return {}  # one regex over the records with integral values: no int at all
        out: dict[str, np.ndarray] = {}
        for name, rows in integral.items():
            if name in self.clash:  # the key may occur in the envelope too: decode
                hit = np.fromiter((type((self.features(i) or {}).get(name)) is int
                                   for i in rows.tolist()), bool, rows.size)
            else:
                hit = self._matches(rows, keys[name] + tail)
            out[name] = rows[hit]
            x = values[name].to_numpy(zero_copy_only=False)
            if np.any(np.abs(x[out[name]]) >= _EXACT_INT):
                return None  # a huge int: its double lost digits
        return out

    def occurs_any(self, name: str, rows: np.ndarray) -> bool:
        """Whether any of those records has the key ``name``: :meth:`presence`, but a plain
        ``"<name>":`` in a record's bytes answers yes at once (the common case)."""
        got = self._presence.get(name)
        if got is None and name not in self.clash:
            plain = orjson.dumps(name) + b":"
            vals = self.vals
            if any(plain in vals[i] for i in rows.tolist()):
                return True
        return bool(self.presence(name)[rows].any())

    def presence(self, name: str) -> np.ndarray:
        """Per record: whether its features have the key ``name`` (null values included)."""
        got = self._presence.get(name)
        if got is None:
            key = re.escape(orjson.dumps(name).decode()) + r"\s*:"
            got = self._matches(np.arange(len(self.vals)), key)
            if name in self.clash:
                for i in np.flatnonzero(got).tolist():
                    f = self.features(i)
                    got[i] = isinstance(f, dict) and name in f
            self._presence[name] = got
        return got
