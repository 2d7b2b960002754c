"""The archive's Parquet files: one fixed schema, exact bytes, atomic writes.

Columns (one row per record) are documented in :mod:`streamml.history.archive`.
``key``/``value`` (or their ``*_bin`` twins) give back the exact bytes, so
replay from the archive is byte-identical to replay from the log.

>>> import tempfile
>>> from streamml.log.base import Record
>>> recs = [Record("t", 0, i, 1_000, None, b'{"i": %d}' % i, ()) for i in range(3)]
>>> target = Path(tempfile.mkdtemp()) / "0-0-2.parquet"
>>> write_atomic(records_table(recs), target), write_atomic(records_table(recs), target)
(True, False)
>>> [r.value for r in read_records(target, "t", min_offset=1)]
[b'{"i": 1}', b'{"i": 2}']
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from streamml.log.base import Record, records_from_columns

HOUR_MS = 3_600_000

ARCHIVE_SCHEMA = pa.schema(
    [
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("timestamp", pa.int64(), nullable=False),
        pa.field("key", pa.string()),
        pa.field("value", pa.string()),
        pa.field(
            "headers",
            pa.list_(pa.struct([pa.field("key", pa.string()), pa.field("value", pa.binary())])),
        ),
        pa.field("key_bin", pa.binary()),
        pa.field("value_bin", pa.binary()),
    ]
)


def _text(data: bytes | None) -> tuple[str | None, bytes | None]:
    if data is None:
        return None, None
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, data


def records_table(records: Sequence[Record]) -> pa.Table:
    """The archive rows of ``records`` (see the module docstring for the columns).

    >>> from streamml.log.base import Record
    >>> t = records_table([Record("t", 0, 7, 1000, b"k", b'{"a": 1}', (("h", b"v"),))])
    >>> t.to_pylist()[0]["value"], t.to_pylist()[0]["headers"]
    ('{"a": 1}', [{'key': 'h', 'value': b'v'}])
    """
    keys = [_text(r.key) for r in records]
    values = [_text(r.value) for r in records]
    return pa.table(
        {
            "partition": pa.array([r.partition for r in records], pa.int32()),
            "offset": pa.array([r.offset for r in records], pa.int64()),
            "timestamp": pa.array([r.timestamp_ms for r in records], pa.int64()),
            "key": pa.array([k[0] for k in keys], pa.string()),
            "value": pa.array([v[0] for v in values], pa.string()),
            "headers": pa.array(
                [[{"key": k, "value": v} for k, v in r.headers] for r in records],
                ARCHIVE_SCHEMA.field("headers").type,
            ),
            "key_bin": pa.array([k[1] for k in keys], pa.binary()),
            "value_bin": pa.array([v[1] for v in values], pa.binary()),
        },
        schema=ARCHIVE_SCHEMA,
    )


def row_bytes(text: str | None, raw: bytes | None) -> bytes | None:
    """Inverse of the text/binary split: the original key or value bytes."""
    if raw is not None:
        return raw
    return None if text is None else text.encode("utf-8")


def read_records(path: Path, topic: str, *, from_ms: int | None = None,
                 to_ms: int | None = None, min_offset: int | None = None,
                 max_offset: int | None = None) -> list[Record]:
    """The records of one archive file, optionally filtered (offsets inclusive), in offset order.

    Columnar (filtered in Arrow, rows rebuilt column by column): far faster than
    ``to_pylist()`` of whole rows.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> rs = [Record("t", 0, i, 10 * i, None, b"v%d" % i, (("h", b"x"),)) for i in range(5)]
    >>> _ = write_atomic(records_table(rs), d / "0-0-4.parquet")
    >>> read_records(d / "0-0-4.parquet", "t", from_ms=10, max_offset=2) == rs[1:3]
    True
    """
    import pyarrow.compute as pc

    table = pq.read_table(path)
    mask = None
    for column, op, bound in (("timestamp", pc.greater_equal, from_ms),
                              ("timestamp", pc.less, to_ms),
                              ("offset", pc.greater_equal, min_offset),
                              ("offset", pc.less_equal, max_offset)):
        if bound is not None:
            cond = op(table.column(column), bound)
            mask = cond if mask is None else pc.and_(mask, cond)
    if mask is not None:
        table = table.filter(mask)
    n = table.num_rows
    if not n:
        return []
    cols = {name: table.column(name).to_pylist() for name in table.column_names}
    keys = [row_bytes(t, b) for t, b in zip(cols["key"], cols["key_bin"], strict=True)]
    values = [row_bytes(t, b) for t, b in zip(cols["value"], cols["value_bin"], strict=True)]
    headers = [tuple((h["key"], h["value"]) for h in hs) if hs else () for hs in cols["headers"]]
    partitions = set(cols["partition"])
    if len(partitions) == 1:
        return records_from_columns(topic, partitions.pop(), n, cols["offset"],
                                    cols["timestamp"], keys, values, headers)
    return [Record(topic, p, o, t, k, v, h) for p, o, t, k, v, h in zip(
        cols["partition"], cols["offset"], cols["timestamp"], keys, values, headers, strict=True)]


def write_atomic(table: pa.Table, target: Path) -> bool:
    """Write ``table`` to ``target`` via ``<target>.tmp`` + rename; ``False`` if it existed."""
    if target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, target)
    return True


def runs(records: Sequence[Record], max_rows: int) -> list[list[Record]]:
    """Split one partition's records (offset order) into contiguous runs of one hour.

    Consecutive records only: with out-of-order timestamps a run ends at every
    change of hour, so files never interleave offsets and are written in offset
    order (a crash between two files leaves a prefix, never a hole).

    >>> from streamml.log.base import Record
    >>> rs = [Record("t", 0, i, ts, None, b"") for i, ts in enumerate([0, 1, HOUR_MS, 2])]
    >>> [[r.offset for r in run] for run in runs(rs, 10)]
    [[0, 1], [2], [3]]
    """
    out: list[list[Record]] = []
    current: list[Record] = []
    bucket = None
    for record in records:
        this = record.timestamp_ms // HOUR_MS
        if current and (this != bucket or len(current) >= max_rows):
            out.append(current)
            current = []
        current.append(record)
        bucket = this
    if current:
        out.append(current)
    return out
