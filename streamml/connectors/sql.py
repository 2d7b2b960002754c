"""The SQL source: poll a table by an increasing column through DB-API (SQLite, DuckDB).

Each poll runs::

    SELECT *, <tiebreak> FROM <table>
    WHERE <column> > :hwm OR (<column> = :hwm AND <tiebreak> > :tie)
    ORDER BY <column>, <tiebreak> LIMIT :n

so rows sharing a value of ``column`` (a timestamp, say) are neither skipped
nor read twice: the high-water mark is the pair ``(column, tiebreak)`` of the
last row returned. ``tiebreak`` defaults to ``rowid`` (SQLite and DuckDB both
have it); set it to a unique key column for tables without one. The position
is ``{"value": <last column value>, "tie": <last tiebreak>}``.

Like Kafka Connect's JDBC source in incrementing mode, rows inserted later
with a ``column`` value *below* the high-water mark, and rows whose ``column``
is NULL, are not read. Each record's id is ``<connector>:<table>:<tiebreak>``.

>>> import sqlite3, tempfile, os
>>> db = os.path.join(tempfile.mkdtemp(), "t.db")
>>> con = sqlite3.connect(db)
>>> _ = con.execute("CREATE TABLE trips (ts INTEGER, fare REAL)")
>>> _ = con.executemany("INSERT INTO trips VALUES (?, ?)", [(1, 2.5), (1, 3.0), (2, 4.0)])
>>> con.commit(); con.close()
>>> src = SqlSource(name="trips", database=db, table="trips", column="ts", mode="once")
>>> src.open()
>>> [(r.id, r.row) for r in src.read(2)]
[('trips:trips:1', {'ts': 1, 'fare': 2.5}), ('trips:trips:2', {'ts': 1, 'fare': 3.0})]
>>> src.position
{'value': 1, 'tie': 2}
>>> [r.id for r in src.read(10)], src.exhausted
(['trips:trips:3'], False)
>>> src.read(10), src.exhausted
([], True)
>>> src.close()
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import re
import time
from pathlib import Path
from typing import Any, Literal

from streamml.connectors.base import Position, SourceConnector, SourceRecord
from streamml.errors import ConfigError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
TIE_ALIAS = "__streamml_tie"


def _check_ident(name: str, what: str) -> str:
    if not _IDENT.fullmatch(name):
        raise ConfigError(f"invalid SQL {what} {name!r}: use letters, digits and _ (schema.table)")
    return name


def jsonable(value: Any) -> Any:
    """A JSON-able form of a DB-API value (dates as ISO text, decimals as floats, blobs as text).

    >>> jsonable(dt.date(2024, 1, 2)), jsonable(decimal.Decimal("1.5")), jsonable(b"\\xff")
    ('2024-01-02', 1.5, '/w==')
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return str(value)


class SqlSource(SourceConnector):
    """Poll ``table`` by ``column`` (increasing), ties broken by ``tiebreak``.

    Options: ``driver`` (``sqlite`` or ``duckdb``), ``database`` (a file path),
    ``table``, ``column``, ``tiebreak`` (default ``rowid``), ``mode`` (``follow``
    keeps polling; ``once`` stops at the first empty poll), ``poll_interval_s``.
    """

    type_name = "sql"

    def __init__(
        self,
        *,
        name: str,
        database: str,
        table: str,
        column: str,
        driver: Literal["sqlite", "duckdb"] = "sqlite",
        tiebreak: str = "rowid",
        mode: Literal["once", "follow"] = "follow",
        poll_interval_s: float = 0.5,
        base_dir: str | None = None,
    ) -> None:
        if driver not in ("sqlite", "duckdb"):
            raise ConfigError(
                f"connector {name!r}: driver must be sqlite or duckdb, not {driver!r}")
        if mode not in ("once", "follow"):
            raise ConfigError(f"connector {name!r}: mode must be 'once' or 'follow', not {mode!r}")
        self.name = name
        self.database = database if base_dir is None else str(Path(base_dir) / database)
        self.table = _check_ident(table, "table")
        self.column = _check_ident(column, "column")
        self.tiebreak = _check_ident(tiebreak, "tiebreak column")
        self.driver = driver
        self.mode = mode
        self.poll_interval_s = poll_interval_s
        self._con: Any = None
        self._value: Any = None
        self._tie: Any = None
        self._empty_polls = 0
        self._last_poll = 0.0

    def describe(self) -> str:
        return f"sql {self.driver}:{self.database} {self.table} by {self.column} ({self.mode})"

    def _connect(self) -> Any:
        if not Path(self.database).exists():
            raise ConfigError(f"connector {self.name!r}: database {self.database} not found")
        if self.driver == "sqlite":
            import sqlite3

            con = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True,
                                  isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA busy_timeout = 5000")
            return con
        import duckdb

        return duckdb.connect(self.database, read_only=True)

    def open(self, position: Position | None = None) -> None:
        self.close()
        self._value = position.get("value") if position else None
        self._tie = position.get("tie") if position else None
        self._empty_polls = 0
        self._con = self._connect()

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    @property
    def position(self) -> Position:
        return {"value": self._value, "tie": self._tie}

    @property
    def exhausted(self) -> bool:
        return self.mode == "once" and self._empty_polls > 0

    def _query(self, limit: int) -> tuple[str, list[Any]]:
        t, c, k = self.table, self.column, self.tiebreak
        select = f"SELECT *, {k} AS {TIE_ALIAS} FROM {t}"  # noqa: S608 - identifiers checked
        order = f" ORDER BY {c}, {k} LIMIT {int(limit)}"
        if self._value is None:
            return f"{select} WHERE {c} IS NOT NULL{order}", []
        return f"{select} WHERE {c} > ? OR ({c} = ? AND {k} > ?){order}", [
            self._value, self._value, self._tie]

    def read(self, max_records: int) -> list[SourceRecord]:
        if self._con is None:
            raise ConfigError(f"connector {self.name!r} is not open")
        if self.mode == "follow" and self._empty_polls and (
            time.monotonic() - self._last_poll < self.poll_interval_s
        ):
            return []
        self._last_poll = time.monotonic()
        sql, params = self._query(max_records)
        cur = self._con.execute(sql, params)
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
        if not rows:
            self._empty_polls += 1
            return []
        self._empty_polls = 0
        out = []
        ci = names.index(self.column)
        keep = [i for i, n in enumerate(names) if n != TIE_ALIAS]
        for values in rows:
            tie = values[-1]
            row = {names[i]: jsonable(values[i]) for i in keep}
            tie_j = jsonable(tie)
            position: dict[str, int | str] = {"table": self.table, "tie": tie_j}
            value = row[names[ci]]
            if value is not None:
                position["value"] = value if isinstance(value, int | str) else str(value)
            out.append(SourceRecord(None, position, id=f"{self.name}:{self.table}:{tie_j}",
                                    fmt="row", row=row))
        last = rows[-1]
        self._value, self._tie = jsonable(last[ci]), jsonable(last[-1])
        return out
