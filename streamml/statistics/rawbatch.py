"""Decode a micro-batch of raw example records into columns at once (no per-record dicts).

Processors that set ``raw_values = True`` (StatisticsGen, ExampleValidator) get
each record's JSON bytes undecoded and call :func:`decode_examples`. The fast
path joins the records with ``b"\\n"`` and reads them with ``pyarrow.json``
(type inference in C): the ``features`` struct becomes the columns of an
:class:`~streamml.statistics.batch.ExampleBatch`, the envelope's ``id``,
``event_time`` and ``split`` its row fields. The result is *exactly* that of
decoding each record with orjson and building the batch from dicts, because
the fast path is taken only when it cannot differ:

* every record starts with ``{`` and the reader returns one row per record
  (so rows align with records), the batch has no ``\\u`` or ``\\/`` escape (keys are matched as
  bytes), no ``NaN``/``Infinity`` literal (pyarrow accepts them, orjson does
  not) and is valid UTF-8;
* every feature column is int64, double, string, bool or null (lists,
  nested objects and type changes between rows go the slow way, where
  pyarrow raises on a type change anyway);
* a double column may hold JSON ints (``5`` beside ``5.5``): its integral
  values are looked up in the record bytes (a regex over those rows only)
  and restored as Python ints (where the key also occurs in the envelope,
  those records are decoded with orjson).

Otherwise every record is decoded with orjson (:func:`streamml.serde.decode`);
those that are not JSON are returned as invalid, with the reason, for the
processor to dead-letter. Whether a feature key is *present* with a null
value (versus absent) matters to statistics only where a feature is null in
every example of a window; it is looked up lazily from the bytes.

>>> from streamml.processors.base import Message
>>> raw = [b'{"id":"a","split":"train","event_time":7,"features":{"x":1.5,"n":2}}',
...        b'{"id":"b","event_time":8,"features":{"x":3,"s":"q"}}', b"oops"]
>>> msgs = [Message("p.examples", 0, i, 100 + i, None, v) for i, v in enumerate(raw)]
>>> batch, valid, invalid = decode_examples(msgs)
>>> batch.n, batch.values("x"), batch.ids, batch.splits, [m.offset for m, _ in invalid]
(2, [1.5, 3], ['a', 'b'], ['train', None], [2])
>>> batch2, _, _ = decode_examples(msgs[:2])
>>> batch2.rows, batch2.values("x"), batch2.kinds("s") == {str, type(None)}
([], [1.5, 3], True)
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from streamml.errors import InvalidRecord
from streamml.processors.base import Message
from streamml.processors.deadletter import RAW_TYPES
from streamml.serde import decode
from streamml.statistics.batch import _EMPTY, ExampleBatch, simple_kinds
from streamml.statistics.rawrows import RawRows

_NONE = type(None)
_PARTITION, _OFFSET = attrgetter("partition"), attrgetter("offset")
_LOG_MS, _VALUE = attrgetter("timestamp_ms"), attrgetter("value")
_READ = pj.ReadOptions(use_threads=False, block_size=1 << 30)
Invalid = list[tuple[Message, str]]


def is_raw(value: Any) -> bool:
    """Whether a message value is undecoded record bytes (``None``: a tombstone, decoded)."""
    return isinstance(value, RAW_TYPES)


def decoded(message: Message) -> Message:
    """``message`` with its value decoded from JSON (raises ``InvalidRecord``)."""
    if not is_raw(message.value):
        return message
    return Message(message.topic, message.partition, message.offset, message.timestamp_ms,
                   message.key, decode(bytes(message.value)))


_Decoded = tuple[ExampleBatch, list[Message], Invalid]
_last: tuple[list[Message], _Decoded] | None = None


def decode_examples(messages: Sequence[Message]) -> _Decoded:
    """The batch of the valid examples, those messages, and the invalid ones with reasons.

    The last result is reused for a batch of the same records (the same list, or
    equal messages: two processors of one host that polled the same records,
    like the embedded runner's StatisticsGen and ExampleValidator), so they
    decode it once; the batch is read-only to them. Messages decoded already
    (hosts without ``raw_values``, tests) make the dict batch directly.
    """
    global _last
    if not any(is_raw(m.value) for m in messages):
        return ExampleBatch.of_messages(messages), list(messages), []
    if _last is not None and _same(_last[0], messages):
        return _last[1]
    batch = _columnar(messages) if messages else None
    if batch is not None:
        out: _Decoded = (batch, list(messages), [])
    else:
        out = _per_record(messages)
    _last = (list(messages), out)
    return out


def _same(a: list[Message], b: Sequence[Message]) -> bool:
    """Whether two batches hold equal messages (identity first, then field by field)."""
    if len(a) != len(b):
        return False
    return not a or (a[0] == b[0] and a[-1] == b[-1] and a == list(b))


def _per_record(messages: Sequence[Message]) -> _Decoded:
    """The slow, exact path: orjson per record, then the dict batch."""
    valid: list[Message] = []  # decoded: callers' decoded() is then a no-op
    invalid: Invalid = []
    for m in messages:
        try:
            valid.append(decoded(m))
        except (InvalidRecord, UnicodeDecodeError) as exc:
            invalid.append((m, str(exc)))
    return ExampleBatch.of_messages(valid), valid, invalid


def _columnar(messages: Sequence[Message]) -> ExampleBatch | None:
    """The fast path (see module docs); ``None`` when it could differ from the exact one."""
    vals = list(map(_VALUE, messages))
    if set(map(type, vals)) != {bytes}:
        return None
    n = len(vals)
    if b"".join([v[:1] for v in vals]) != b"{" * n:  # also: no empty record
        return None
    buf = b"\n".join(vals)
    if b"\\" in buf and (b"\\u" in buf or b"\\/" in buf):
        return None  # an escaped key would not match its bytes
    if not buf.isascii():
        try:
            buf.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        table = pj.read_json(io.BytesIO(buf), read_options=_READ)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows != n:  # a record with several values (or none) shifted the rows
        return None
    b = ExampleBatch([])
    b.n = n
    b._messages = messages
    if not _envelope(b, table, messages):
        return None
    if "features" not in table.column_names:
        names: list[str] = []
        children: list[pa.Array] = []
    else:
        feats = table.column("features").combine_chunks()
        if pa.types.is_null(feats.type):
            names, children = [], []
        elif pa.types.is_struct(feats.type):
            children = feats.flatten()
            names = [feats.type.field(i).name for i in range(feats.type.num_fields)]
        else:
            return None
    others = [f for f in table.schema if f.name != "features"]
    if any(_has_floats(f.type) for f in others) and not _finite(table, others):
        return None  # a NaN/Infinity literal, which orjson refuses
    raw = RawRows(vals, buf, _field_names(others))
    doubles = [(name, arr) for name, arr in zip(names, children, strict=True)
               if pa.types.is_float64(arr.type)]
    ints = raw.int_rows(doubles)
    if ints is None:
        return None
    for name, arr in zip(names, children, strict=True):
        if not _feature(b, name, arr, ints.get(name)):
            return None
    b.names = sorted(names)
    b.occurs_any = raw.occurs_any
    b.row_of = raw.row
    return b


def _has_floats(t: pa.DataType) -> bool:
    if pa.types.is_floating(t):
        return True
    if pa.types.is_struct(t):
        return any(_has_floats(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _has_floats(t.value_type)
    return False


def _finite(table: pa.Table, fields: list[pa.Field]) -> bool:
    """Whether every float in those (envelope) columns is finite."""
    def ok(arr: pa.Array) -> bool:
        t = arr.type
        if pa.types.is_floating(t):
            return not (pc.any(pc.is_inf(arr)).as_py() or pc.any(pc.is_nan(arr)).as_py())
        if pa.types.is_struct(t):
            return all(ok(c) for c in arr.flatten())
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            return ok(pc.list_flatten(arr))
        return True
    return all(ok(table.column(f.name).combine_chunks()) for f in fields)


def _field_names(fields: list[pa.Field]) -> frozenset[str]:
    """Every key name in the envelope outside ``features`` (where a feature key could clash)."""
    out: set[str] = set()

    def walk(t: pa.DataType) -> None:
        if pa.types.is_struct(t):
            for i in range(t.num_fields):
                out.add(t.field(i).name)
                walk(t.field(i).type)
        elif pa.types.is_list(t) or pa.types.is_large_list(t):
            walk(t.value_type)
    for f in fields:
        out.add(f.name)
        walk(f.type)
    return frozenset(out)


def _envelope(b: ExampleBatch, table: pa.Table, messages: Sequence[Message]) -> bool:
    """Row fields of ``b`` from the envelope columns; False if one needs the exact path."""
    n = b.n
    b.topic = messages[0].topic
    b.partition = np.fromiter(map(_PARTITION, messages), np.int64, n)
    b.offset = np.fromiter(map(_OFFSET, messages), np.int64, n)
    b.log_ms = np.fromiter(map(_LOG_MS, messages), np.int64, n)
    cols = table.column_names
    b.event_ms = b.log_ms
    if "event_time" in cols:
        ev = table.column("event_time").combine_chunks()
        if pa.types.is_int64(ev.type):
            x = ev.fill_null(0).to_numpy(zero_copy_only=False)
            if ev.null_count:
                valid = np.asarray(ev.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
                x = np.where(valid, x, b.log_ms)
            b.event_ms = np.asarray(x, dtype=np.int64)
        elif not pa.types.is_null(ev.type):
            return False
    b.splits = [None] * n
    b.envelopes = [_EMPTY] * n
    if "split" in cols:
        sp = table.column("split")
        if pa.types.is_string(sp.type):
            b.splits = sp.to_pylist()
    if "id" in cols:
        ident = table.column("id")
        t = ident.type
        if not (pa.types.is_string(t) or pa.types.is_int64(t) or pa.types.is_boolean(t)
                or pa.types.is_null(t)):
            return False
        b.id_values = ident
    return True


def _feature(b: ExampleBatch, name: str, arr: pa.Array, ints: np.ndarray | None) -> bool:
    """Set one feature column of ``b`` from its arrow array; False if unsupported.

    ``ints``: rows of a double column whose value was written as a JSON int.
    """
    t = arr.type
    if pa.types.is_null(t):
        b._arrays[name] = None
        b._values[name] = [None] * b.n
        b._kinds[name] = frozenset({_NONE})
        return True
    if pa.types.is_int64(t) or pa.types.is_string(t) or pa.types.is_boolean(t):
        simple = simple_kinds(arr)
        if simple is None:
            return False
        b._arrays[name], b._kinds[name] = arr, simple
        return True
    if not pa.types.is_float64(t):
        return False
    kinds: set[type] = {float}
    if arr.null_count:
        kinds.add(_NONE)
    b._arrays[name] = arr
    if ints is not None and ints.size:
        vals = arr.to_pylist()
        for i in ints.tolist():
            vals[i] = int(vals[i])
        b._values[name] = vals
        kinds.add(int)
        if ints.size == len(arr) - arr.null_count:
            kinds.discard(float)
    b._kinds[name] = frozenset(kinds)
    return True
