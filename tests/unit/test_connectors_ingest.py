"""The ingest loop and CLI: kill -9 and restart loses no id; connectors list; partitioner."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2

from streamml.log.partitioner import partitions_for
from streamml.payloads.examples import Example
from tests.connector_helpers import (
    finish,
    kill_restart,
    read_topic,
    run_ingest_cli,
    write_definition,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=50), st.integers(min_value=1, max_value=12))
def test_partitioner_matches_kafka(keys: list[bytes], n: int) -> None:
    assert partitions_for(keys, n) == [(murmur2(k) & 0x7FFFFFFF) % n for k in keys]


def test_connectors_list_and_ingest_cli(tmp_path: Path) -> None:
    broker = f"embedded://{tmp_path / 'log'}"
    data = tmp_path / "d.csv"
    data.write_bytes(b"k,x\n1,2\n2,\xff\n,3\n4,5\n")
    folder = tmp_path / "connectors"
    write_definition(folder, "small", type="file", pipeline="p",
                     options={"path": str(data)}, example={"key": "k"})
    listed = run_ingest_cli("connectors", "list", "--dir", str(folder), broker=broker)
    assert listed.returncode == 0 and "small" in listed.stdout and "file" in listed.stdout
    proc = run_ingest_cli("ingest", "small", "--dir", str(folder), broker=broker)
    assert proc.returncode == 0, proc.stderr
    assert "4 records → 2 examples + 2 dead letters" in proc.stdout
    examples = read_topic(broker, "p.examples")
    assert sorted(e["id"] for e in examples) == ["1", "4"]
    for e in examples:
        Example.model_validate(e)
    assert {d["reason"] for d in read_topic(broker, "p.deadletter")} == {
        "bad_encoding", "missing_key"}
    missing = run_ingest_cli("ingest", "nope", "--dir", str(folder), broker=broker)
    assert missing.returncode != 0 and "streamml: error: no connector 'nope'" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.mark.slow
def test_kill_9_during_file_follow_loses_no_id(tmp_path: Path) -> None:
    rng = random.Random(7)
    broker = f"embedded://{tmp_path / 'log'}"
    path = tmp_path / "events.csv"
    path.write_text("k,v\n")
    folder = tmp_path / "connectors"
    write_definition(folder, "ev", type="file", pipeline="p",
                     options={"path": str(path), "mode": "follow", "poll_interval_s": 0.05},
                     ingest={"batch_size": 97})
    expected: set[str] = set()
    state = {"n": 0, "gen": 0, "line": 1}

    def append(count: int, rotate: bool = False) -> object:
        def step() -> None:
            if rotate:
                path.rename(path.with_suffix(".csv.1"))
                path.write_text("k,v\n")
                state["gen"], state["line"] = state["gen"] + 1, 1
            with path.open("a") as f:
                for _ in range(count):
                    f.write(f"{state['n']},{state['n'] * 0.5}\n")
                    state["n"] += 1
                    state["line"] += 1
                    name = "events.csv" if state["gen"] == 0 else f"events.csv~{state['gen']}"
                    expected.add(f"ev:{name}:{state['line']}")
        return step

    feed = [append(3000), append(2000), append(2500, rotate=True), append(2000), append(1500)]
    args = ["ingest", "ev", "--dir", str(folder)]
    kill_restart(args, broker, feed, rng)
    ids = finish(args, broker, "p.examples", expected)
    assert set(ids) == expected  # no gap, nothing foreign; duplicates (same ids) allowed
    assert len(expected) == 11_000


@pytest.mark.slow
def test_kill_9_during_sql_polling_loses_no_id(tmp_path: Path) -> None:
    rng = random.Random(11)
    broker = f"embedded://{tmp_path / 'log'}"
    db = tmp_path / "t.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE trips (id INTEGER PRIMARY KEY, ts INTEGER, fare REAL)")
    con.commit()
    folder = tmp_path / "connectors"
    write_definition(folder, "trips", type="sql", pipeline="p",
                     options={"database": str(db), "table": "trips", "column": "ts",
                              "poll_interval_s": 0.05},
                     example={"key": "id", "event_time": "ts"}, ingest={"batch_size": 89})
    counter = {"n": 0}

    def insert(count: int) -> object:
        def step() -> None:
            rows = [(i, i // 4, i * 0.25) for i in range(counter["n"], counter["n"] + count)]
            con.executemany("INSERT INTO trips VALUES (?, ?, ?)", rows)
            con.commit()
            counter["n"] += count
        return step

    args = ["ingest", "trips", "--dir", str(folder)]
    kill_restart(args, broker, [insert(3000), insert(2500), insert(3000), insert(1500)], rng)
    expected = {str(i) for i in range(counter["n"])}
    ids = finish(args, broker, "p.examples", expected)
    con.close()
    assert set(ids) == expected
