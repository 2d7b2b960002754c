"""The lineage CLI waits for a pipeline's materializer to release the DuckDB file lock."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from streamml.errors import ConfigError
from streamml.history.lineage import LineageStore

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
sys.stdin.readline()          # hold the lock until the test says so
con.close()
print("released", flush=True)
"""


def _holder(db: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(db)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_locked_store_is_a_config_error_without_waiting(tmp_path: Path) -> None:
    db = tmp_path / "lineage.duckdb"
    LineageStore(db).close()
    proc = _holder(db)
    try:
        with pytest.raises(ConfigError, match="cannot open lineage store"):
            LineageStore(db)
    finally:
        proc.communicate("\n")


def test_store_opens_once_the_other_process_releases_it(tmp_path: Path) -> None:
    db = tmp_path / "lineage.duckdb"
    LineageStore(db).close()
    proc = _holder(db)
    assert proc.stdin is not None
    # release from a timer thread while the store is waiting for the lock

    def release() -> None:
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()

    timer = threading.Timer(0.5, release)
    timer.start()
    try:
        store = LineageStore(db, wait_s=60.0)
        assert store.con.execute("SELECT count(*) FROM events").fetchone() == (0,)
        store.close()
    finally:
        timer.join()
        proc.communicate()
