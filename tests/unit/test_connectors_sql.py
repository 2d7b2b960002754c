"""The SQL source: polling SQLite while another process inserts; ties; DuckDB."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb

from streamml.connectors.examplegen import ExampleGen
from streamml.connectors.sql import SqlSource
from tests.connector_helpers import wait_for

INSERTER = textwrap.dedent("""
    import sqlite3, sys
    con = sqlite3.connect(sys.argv[1], timeout=30)
    for i in range(int(sys.argv[2])):
        # every 3 rows share one ts: ties must be neither skipped nor repeated
        con.execute("INSERT INTO trips (id, ts, fare) VALUES (?, ?, ?)",
                    (i, i // 3, None if i % 7 == 0 else i * 0.5))
        con.commit()
""")


def make_db(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE trips (id INTEGER PRIMARY KEY, ts INTEGER, fare REAL)")
    con.commit()
    con.close()


def test_poll_sqlite_while_another_process_inserts(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    make_db(db)
    src = SqlSource(name="trips", database=str(db), table="trips", column="ts",
                    poll_interval_s=0.0)
    src.open()
    inserter = subprocess.Popen([sys.executable, "-c", INSERTER, str(db), "600"])
    got = []

    def all_read() -> bool:
        got.extend(src.read(25))
        return len(got) >= 600
    try:
        wait_for(all_read, timeout=60, every=0.01)
    finally:
        inserter.wait(timeout=60)
    src.close()
    assert sorted(r.row["id"] for r in got) == list(range(600))  # type: ignore[index]
    out = ExampleGen("trips", key="id", event_time="ts").process(got)
    assert len(out.examples) == 600 and not out.dead_letters
    assert out.examples[0]["features"]["fare"] is None


def test_resume_at_a_tie(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    make_db(db)
    con = sqlite3.connect(db)
    con.executemany("INSERT INTO trips VALUES (?, ?, ?)", [(i, 5, 1.0) for i in range(10)])
    con.commit()
    src = SqlSource(name="t", database=str(db), table="trips", column="ts", mode="once")
    src.open()
    first = src.read(4)
    position = src.position
    src.close()
    src.open(position)
    rest = src.read(100)
    assert [r.row["id"] for r in first + rest] == list(range(10))  # type: ignore[index]
    assert src.read(10) == [] and src.exhausted


def test_duckdb_once(tmp_path: Path) -> None:
    db = tmp_path / "t.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE ev (ts TIMESTAMP, v DOUBLE, name VARCHAR)")
    con.execute("INSERT INTO ev SELECT TIMESTAMP '2024-01-01' + INTERVAL (i) SECOND, i / 2, "
                "'n' || i FROM range(50) t(i)")
    con.close()
    src = SqlSource(name="ev", driver="duckdb", database=str(db), table="ev", column="ts",
                    mode="once")
    src.open()
    got = []
    while not src.exhausted:
        got.extend(src.read(7))
    src.close()
    out = ExampleGen("ev", event_time="ts").process(got)
    assert len(out.examples) == 50 and not out.dead_letters
    assert out.examples[0]["event_time"] == 1704067200000
    assert out.examples[3]["features"]["v"] == 1.5
