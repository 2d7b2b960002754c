"""``streamml query``: views, output formats and one-line errors (issue 7)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from streamml.history.archive import ArchiveSink
from streamml.history.query import archive_views, run_query
from streamml.log.embedded import EmbeddedLog
from tests.unit.test_history_archive import fill, run_history


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    base = tmp_path_factory.mktemp("q")
    with EmbeddedLog(base / "log") as log:
        fill(log, "demo.examples", 90)
        fill(log, "other.examples", 5, partitions=1)
        ArchiveSink(log, base / "arch", ["demo.examples", "other.examples"],
                    pipeline="demo").run()
    return f"embedded://{base / 'log'}", base / "arch"


def test_views_by_topic_and_role(archived: tuple[str, Path]) -> None:
    _, root = archived
    assert sorted(archive_views(root)) == ["demo_examples", "other_examples"]  # role ambiguous
    assert archive_views(root, "demo")["examples"] == "demo.examples"
    rows = run_query(root, "SELECT count(*) AS n, sum((value->>'$.label')::INT) AS pos "
                           "FROM examples", "demo").to_pylist()
    assert rows == [{"n": 90, "pos": 45}]


def test_output_formats(archived: tuple[str, Path], tmp_path: Path) -> None:
    broker, root = archived
    sql = ('SELECT "partition", "offset", value FROM demo_examples '
           'WHERE "offset" < 2 ORDER BY "partition", "offset"')
    proc = run_history("query", sql, "--json", "--dir", str(root), broker=broker)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[0] == {"partition": 0, "offset": 0, "value": {"i": 0, "label": 0}}
    assert len(lines) == 6
    proc = run_history("query", sql, "--csv", "--dir", str(root), broker=broker)
    assert proc.returncode == 0, proc.stderr
    table = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert len(table) == 6 and json.loads(table[1]["value"]) == {"i": 3, "label": 1}
    out = tmp_path / "out.parquet"
    proc = run_history("query", sql, "--parquet", str(out), "--dir", str(root), broker=broker)
    assert proc.returncode == 0, proc.stderr
    assert pq.read_table(out).num_rows == 6
    proc = run_history("query", "SELECT count(*) AS n FROM examples", "-p", "demo",
                       "--dir", str(root), broker=broker)
    assert proc.returncode == 0 and "90" in proc.stdout and "1 row(s)" in proc.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("SELEC 1",), "query failed: Parser Error"),
        (("SELECT * FROM nope",), "query failed: Catalog Error"),
        (("SELECT 1", "--json", "--csv"), "at most one of"),
    ],
)
def test_errors_are_one_line(archived: tuple[str, Path], args: tuple[str, ...],
                             needle: str) -> None:
    broker, root = archived
    proc = run_history("query", *args, "--dir", str(root), broker=broker)
    assert proc.returncode == 2, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("streamml: error: ") and needle in lines[0]


def test_empty_archive_hint(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="archive at .* is empty"):
        run_query(tmp_path, "SELECT * FROM examples")
