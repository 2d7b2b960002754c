"""DuckDB over the archive: one view per archived topic, plus the lineage store.

Views, created for every ``topic=<t>`` folder that holds files:

* ``<topic>`` with ``.`` and ``-`` turned into ``_`` (``demo.examples`` →
  ``demo_examples``), always;
* the bare role (``examples``) when it is unambiguous: the topic is a catalog
  topic of the selected ``pipeline``, or, with no pipeline selected, the only
  archived pipeline with that role;
* ``<view>_latest`` for compacted topics with a snapshot (latest value per key).

Columns are those of the archive (:mod:`streamml.history.archive`) plus the
hive partition columns ``topic``, ``date``, ``hour`` and ``ts`` (the
timestamp as a DuckDB ``TIMESTAMP``, UTC). ``value`` is DuckDB's ``JSON`` type:
``SELECT value->>'$.label' FROM examples``. The lineage store
(:mod:`streamml.history.lineage`), when present, is attached read-only as
``lineage`` (``SELECT * FROM lineage.artifacts``).

>>> import tempfile
>>> from pathlib import Path
>>> from streamml.history.archive import records_table, write_atomic
>>> from streamml.history.layout import hour_dir
>>> from streamml.log.base import Record
>>> root = Path(tempfile.mkdtemp())
>>> rows = [Record("demo.examples", 0, i, 0, None, b'{"x": %d}' % i) for i in range(3)]
>>> write_atomic(records_table(rows), hour_dir(root, "demo.examples", 0) / "0-0-2.parquet")
True
>>> sorted(archive_views(root))
['demo_examples', 'examples']
>>> sql = "SELECT count(*) AS n, max((value->>'$.x')::INT) AS x FROM examples"
>>> run_query(root, sql).to_pylist()
[{'n': 3, 'x': 2}]
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow as pa

from streamml.errors import ConfigError
from streamml.history.layout import (
    LINEAGE_DB,
    archive_files,
    archived_topics,
    snapshots,
    topic_dir,
)

#: Schema metadata key of a result: the JSON list of its DuckDB ``JSON`` columns.
JSON_COLUMNS_KEY = b"streamml:json_columns"
_IDENT_RE = re.compile(r"[^A-Za-z0-9_]")


def view_name(topic: str) -> str:
    """The always-available view name of a topic.

    >>> view_name("taxi-v2.examples")
    'taxi_v2_examples'
    """
    name = _IDENT_RE.sub("_", topic)
    return name if not name[:1].isdigit() else f"t_{name}"


def _quote(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def archive_views(root: Path, pipeline: str | None = None) -> dict[str, str]:
    """View name → topic for every archived topic with files (see the module docstring)."""
    from streamml.catalog import load_catalog

    catalog = load_catalog()
    topics = [t for t in archived_topics(root) if archive_files(root, t)]
    views = {view_name(t): t for t in topics}
    by_role: dict[str, list[str]] = {}
    for topic in topics:
        found = catalog.role_of(topic)
        if found is None or (pipeline is not None and found[0] != pipeline):
            continue
        by_role.setdefault(found[1], []).append(topic)
    for role, owners in by_role.items():
        if len(owners) == 1 and role not in views:
            views[role] = owners[0]
    return views


def connect(root: Path, pipeline: str | None = None, *, lineage: bool = True) -> Any:
    """An in-memory DuckDB connection with the archive views (and lineage attached)."""
    import duckdb

    con = duckdb.connect()
    for name, topic in archive_views(root, pipeline).items():
        glob = str(topic_dir(root, topic) / "date=*" / "hour=*" / "*.parquet")
        con.execute(
            f"CREATE VIEW {_quote(name)} AS SELECT * REPLACE (value::JSON AS value), "  # noqa: S608 - identifiers quoted, paths are ours
            f"make_timestamp(timestamp * 1000) AS ts "
            f"FROM read_parquet({_sql_str(glob)}, hive_partitioning=true)"
        )
        snaps = snapshots(root, topic)
        if snaps:
            latest = str(snaps[-1][1] / "*.parquet")
            con.execute(
                f"CREATE VIEW {_quote(name + '_latest')} AS SELECT * REPLACE "  # noqa: S608 - as above
                f"(value::JSON AS value), make_timestamp(timestamp * 1000) AS ts "
                f"FROM read_parquet({_sql_str(latest)}, hive_partitioning=false)"
            )
    db = root / LINEAGE_DB
    if lineage and db.is_file():
        try:
            con.execute(f"ATTACH {_sql_str(str(db))} AS lineage (READ_ONLY)")
        except duckdb.Error:  # locked by a running materializer: archive views still work
            pass
    return con


def run_query(root: Path, sql: str, pipeline: str | None = None) -> pa.Table:
    """Run user ``sql`` over the archive; DuckDB errors become one-line ``ConfigError``.

    The result's schema metadata lists its ``JSON`` columns under
    ``JSON_COLUMNS_KEY`` (so ``--json`` output nests them).
    """
    import duckdb

    if not sql.strip():
        raise ConfigError("empty query")
    con = connect(root, pipeline)
    try:
        relation = con.sql(sql)
        if relation is None:
            return pa.table({})
        table = relation.to_arrow_table()
        json_cols = {n for n, t in zip(relation.columns, relation.types, strict=True)
                     if str(t) == "JSON"}
        return table.replace_schema_metadata(
            {JSON_COLUMNS_KEY: orjson.dumps(sorted(json_cols))}
        )
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = ""
        if "does not exist" in first and not archive_views(root, pipeline):
            hint = f" (the archive at {root} is empty: run `streamml archive` first)"
        raise ConfigError(f"query failed: {first}{hint}") from None
    finally:
        con.close()


def _jsonable(table: pa.Table) -> list[dict[str, Any]]:
    rows = table.to_pylist()
    json_cols = orjson.loads((table.schema.metadata or {}).get(JSON_COLUMNS_KEY, b"[]"))
    for row in rows:
        for name in json_cols:
            if isinstance(row.get(name), str):
                row[name] = orjson.loads(row[name])
    return rows


def write_json_lines(table: pa.Table, out: IO[bytes]) -> None:
    """One JSON object per row; JSON columns are nested, other values JSON-ified."""
    for row in _jsonable(table):
        out.write(orjson.dumps(row, default=_bytes_text, option=orjson.OPT_NON_STR_KEYS))
        out.write(b"\n")


def write_csv(table: pa.Table, out: IO[bytes]) -> None:
    import pyarrow.csv as pacsv

    columns = []
    for column in table.columns:
        if pa.types.is_nested(column.type) or pa.types.is_binary(column.type):
            column = pa.array(
                [None if v is None else orjson.dumps(v, default=_bytes_text).decode()
                 for v in column.to_pylist()], pa.string())
        columns.append(column)
    pacsv.write_csv(pa.table(columns, names=table.column_names), out)


def _bytes_text(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def write_parquet(table: pa.Table, path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, path)


def print_table(table: pa.Table, limit: int = 1000, file: IO[str] | None = None) -> None:
    """A rich table of the first ``limit`` rows (and a row count)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file or sys.stdout, soft_wrap=True)
    view = Table(show_lines=False)
    for name in table.column_names:
        view.add_column(name, overflow="fold")
    for row in table.slice(0, limit).to_pylist():
        view.add_row(*("NULL" if v is None else str(v) for v in row.values()))
    console.print(view)
    more = f" (first {limit} shown)" if table.num_rows > limit else ""
    console.print(f"{table.num_rows} row(s){more}", style="dim")


__all__: Sequence[str] = [
    "archive_views",
    "connect",
    "print_table",
    "run_query",
    "view_name",
    "write_csv",
    "write_json_lines",
    "write_parquet",
]
