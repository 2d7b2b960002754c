"""The file source: once/follow, rotation, truncation, globs, resume; records in = out."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from streamml.connectors.base import SourceRecord
from streamml.connectors.examplegen import ExampleGen
from streamml.connectors.file import FileSource
from tests.connector_helpers import wait_for

BAD_CSV = (b"k,x,y\n1,2,3\n2,\"3,4\n3,4\n4,\xff,5\n" + b"5," + b"7" * 3000 + b",1\n"
           b",6,7\n\n6,7,8\n7,8,9")  # last line unterminated: read at EOF in once mode


def drain(src: FileSource, limit: int = 7) -> list[SourceRecord]:
    out: list[SourceRecord] = []
    while True:
        batch = src.read(limit)
        if not batch:
            return out
        out.extend(batch)


def test_csv_once_records_in_equals_examples_plus_dead_letters(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(BAD_CSV)
    src = FileSource(name="f", path=str(path), max_record_bytes=1000)
    src.open()
    records = drain(src, 3)
    assert src.exhausted
    out = ExampleGen("f", key="k", max_record_bytes=1000).process(records)
    assert len(records) == 8 == len(out.examples) + len(out.dead_letters)
    assert sorted(e["id"] for e in out.examples) == ["1", "6", "7"]
    assert sorted(d["reason"] for d in out.dead_letters) == [
        "bad_encoding", "missing_key", "oversize", "unparsable", "unparsable"]


def test_jsonl_and_parquet_once(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b'{"k": 1}\n{bad\n\xff\n{"k": 2.0}\n[1]\n{}\n')
    pq.write_table(pa.table({"k": [1, 2, None], "v": ["a", "b", "c"]}), tmp_path / "b.parquet")
    (tmp_path / "c.parquet").write_bytes(b"not parquet")
    src = FileSource(name="d", path=str(tmp_path))
    src.open()
    records = drain(src)
    out = ExampleGen("d", key="k").process(records)
    assert len(records) == 6 + 3 + 1 == len(out.examples) + len(out.dead_letters)
    assert sorted(e["id"] for e in out.examples) == ["1", "1", "2", "2"]
    reasons = sorted(d["reason"] for d in out.dead_letters)
    assert reasons == ["bad_encoding", "missing_key", "missing_key", "unparsable", "unparsable",
                       "unparsable"]


def test_resume_from_a_position_skips_nothing(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(b"a\n" + b"".join(f"{i}\n".encode() for i in range(100)))
    src = FileSource(name="r", path=str(path))
    src.open()
    first = src.read(37)
    position = orjson.loads(orjson.dumps(src.position))
    src.close()
    again = FileSource(name="r", path=str(path))
    again.open(position)
    rest = drain(again)
    assert [r.raw for r in first + rest] == [str(i).encode() for i in range(100)]


WRITER = textwrap.dedent("""
    import os, sys
    path = sys.argv[1]
    def write(text, mode="a"):
        with open(path, mode) as f:
            f.write(text)
    n = 0
    for command in sys.stdin:
        op, count = command.split()
        if op == "rotate":
            os.rename(path, path + ".1")
            write("k,v\\n", "w")
        elif op == "truncate":
            with open(path, "r+") as f:
                f.truncate(0)
            write("k,v\\n")
        for _ in range(int(count)):
            write(f"{n},{n * 1.5}\\n")
            n += 1
        print("ok", flush=True)
""")


def test_follow_while_another_process_appends_rotates_and_truncates(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("k,v\n")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    src = FileSource(name="ev", path=str(path), mode="follow", poll_interval_s=0.01)
    src.open()
    got: list[SourceRecord] = []

    def command(line: str, until: int) -> None:
        assert writer.stdin is not None and writer.stdout is not None
        writer.stdin.write(line + "\n")
        writer.stdin.flush()
        assert writer.stdout.readline().strip() == "ok"

        def caught_up() -> bool:
            got.extend(src.read(50))
            return len(got) >= until
        wait_for(caught_up, timeout=30, every=0.01)

    try:
        command("append 100", 100)
        command("append 50", 150)
        command("rotate 100", 250)
        command("truncate 30", 280)
        command("append 20", 300)
    finally:
        assert writer.stdin is not None
        writer.stdin.close()
        writer.wait(timeout=30)
        src.close()
    keys = [r.raw.split(b",")[0] for r in got if r.raw is not None]
    assert keys == [str(i).encode() for i in range(300)]
    ids = [r.id for r in got]
    assert len(set(ids)) == 300
    assert ids[0] == "ev:events.csv:2" and ids[149] == "ev:events.csv:151"
    assert ids[150] == "ev:events.csv~1:2" and ids[250] == "ev:events.csv~2:2"
    assert ExampleGen("ev").process(got).dead_letters == []


def test_glob_follow_picks_up_new_files(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"x": 1}\n')
    src = FileSource(name="g", path=str(tmp_path / "*.jsonl"), mode="follow",
                     poll_interval_s=0.0)
    src.open()
    assert [r.id for r in src.read(10)] == ["g:a.jsonl:1"]
    (tmp_path / "b.jsonl").write_text('{"x": 2}\n{"x": 3}\n')
    (tmp_path / "a.jsonl").open("a").write('{"x": 4}\n')
    got: list[str] = []

    def seen_all() -> bool:
        got.extend(r.id for r in src.read(10))
        return len(got) >= 3
    wait_for(seen_all, timeout=30, every=0.01)
    assert sorted(got) == ["g:a.jsonl:2", "g:b.jsonl:1", "g:b.jsonl:2"]
    src.close()


def test_rotation_before_the_connector_ever_saw_the_file(tmp_path: Path) -> None:
    """Regression (flaky kill -9 test): rotated while down, never checkpointed.

    The rotated file is read first, as generation 0, and the new file at the
    path is generation 1: ids do not depend on what the ingester happened to see.
    """
    path = tmp_path / "events.csv"
    path.write_bytes(b"k,v\n1,a\n2,b\n")
    path.rename(tmp_path / "events.csv.1")
    path.write_bytes(b"k,v\n3,c\n")
    (tmp_path / "events.csv.2.gz").write_bytes(b"\x1f\x8b not read")
    src = FileSource(name="ev", path=str(path), mode="follow", poll_interval_s=0)
    src.open()
    ids = [r.id for r in drain(src)]
    assert ids == ["ev:events.csv:2", "ev:events.csv:3", "ev:events.csv~1:2"]
    position = src.position
    src.close()
    # Restart from the position: nothing is re-read; a late write to the rotated file is.
    with (tmp_path / "events.csv.1").open("ab") as f:
        f.write(b"4,d\n")
    src.open(position)
    assert [r.id for r in drain(src)] == ["ev:events.csv:4"]
    src.close()
