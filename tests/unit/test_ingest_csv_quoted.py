"""CSV records with quoted newlines (RFC 4180): once, follow, chunking, resume, kill -9.

The reference is Python's :mod:`csv` module over the whole file (a batch
computation): every record it reads is one example whose features are its
cells, and whose id is the record's first physical line.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamml.connectors.filetext as filetext
from streamml.connectors.base import SourceRecord
from streamml.connectors.examplegen import ExampleGen
from streamml.connectors.file import FileSource
from tests.connector_helpers import finish, kill_restart, read_topic, write_definition


def drain(src: FileSource, limit: int = 5) -> list[SourceRecord]:
    out: list[SourceRecord] = []
    while batch := src.read(limit):
        out.extend(batch)
    return out


def quote(cell: str) -> str:
    if cell and not any(c in cell for c in ',"\n\r') and cell == cell.strip():
        return cell
    return '"' + cell.replace('"', '""') + '"'


def csv_text(rows: list[list[str]], eol: str = "\n") -> str:
    return "".join(",".join(quote(c) for c in row) + eol for row in rows)


def reference(text: str, source: str, name: str) -> list[tuple[str, list[str]]]:
    """(id, cells) of every record after the header, as the csv module reads them."""
    reader = csv.reader(io.StringIO(text, newline="\n"))
    out, header_seen = [], False
    while True:
        first = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return out
        if not row:
            continue
        if header_seen:
            out.append((f"{source}:{name}:{first}", row))
        header_seen = True


FIXTURE_OK = [HealthCheck.function_scoped_fixture]
CELL = st.text(alphabet='ab ,"\n\r\té', max_size=12)
ROWS = st.lists(st.tuples(CELL, CELL), min_size=1, max_size=25)


def rows_of(cells: list[tuple[str, str]]) -> list[list[str]]:
    return [["k", "x", "y"]] + [[str(i), "v" + a, b] for i, (a, b) in enumerate(cells)]


def features_match(examples: list[dict[str, object]], ref: list[tuple[str, list[str]]]) -> None:
    assert [e["id"] for e in examples] == [i for i, _ in ref]
    for e, (_, row) in zip(examples, ref, strict=True):
        f = e["features"]
        assert isinstance(f, dict)
        assert [f["k"], f["x"], f["y"]] == [int(row[0]), row[1], row[2] or None]


def test_quoted_newlines_commas_and_escaped_quotes_once(tmp_path: Path) -> None:
    text = csv_text([["k", "note", "n"], ["1", "two\nlines", "3"], ["2", 'say "hi", ok', "4"],
                     ["3", "a\r\nb\n\nc", "5"], ["4", "", "6"], ["5", "plain", "7"]])
    path = tmp_path / "q.csv"
    path.write_text(text, newline="")
    src = FileSource(name="q", path=str(path))
    src.open()
    records = drain(src, 2)
    ref = reference(text, "q", "q.csv")
    assert [r.id for r in records] == [i for i, _ in ref] == [
        "q:q.csv:2", "q:q.csv:4", "q:q.csv:5", "q:q.csv:9", "q:q.csv:10"]
    out = ExampleGen("q").process(records)
    assert not out.dead_letters
    assert [e["features"]["note"] for e in out.examples] == [
        "two\nlines", 'say "hi", ok', "a\r\nb\n\nc", None, "plain"]
    assert out.examples[0]["position"] == {"file": "q.csv", "gen": 0, "line": 2, "offset": 9}


def test_stray_quote_costs_one_line_and_records_in_equal_out(tmp_path: Path) -> None:
    body = (b'k,v\n1,"ok\nstill ok"\n2,"stray\n' + b"".join(b"%d,x\n" % i for i in range(3, 60))
            + b'60,"closed"\n61,"open at the end')
    path = tmp_path / "s.csv"
    path.write_bytes(body)
    src = FileSource(name="s", path=str(path), max_record_bytes=200)
    src.open()
    records = drain(src, 7)
    out = ExampleGen("s", key="k").process(records)
    assert len(records) == len(out.examples) + len(out.dead_letters) == 61
    assert sorted(int(e["id"]) for e in out.examples) == [1, *range(3, 61)]
    dead = {d["id"]: d for d in out.dead_letters}
    assert set(dead) == {"s:s.csv:4", "s:s.csv:63"}
    assert dead["s:s.csv:4"]["reason"] == "unparsable"
    assert "quote" in dead["s:s.csv:4"]["detail"]
    assert dead["s:s.csv:63"]["original"] == '61,"open at the end'


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURE_OK)
@given(ROWS, st.integers(1, 9), st.integers(3, 64), st.sampled_from(["\n", "\r\n"]))
def test_framing_matches_the_csv_module_whatever_the_chunk_size(
        tmp_path_factory: pytest.TempPathFactory, cells: list[tuple[str, str]], budget: int,
        chunk: int, eol: str) -> None:
    text = csv_text(rows_of(cells), eol)
    path = tmp_path_factory.mktemp("h") / "h.csv"
    path.write_text(text, newline="")
    old = filetext.CHUNK
    filetext.CHUNK = chunk
    try:
        src = FileSource(name="h", path=str(path))
        src.open()
        records = drain(src, budget)
    finally:
        filetext.CHUNK = old
    out = ExampleGen("h").process(records)
    assert not out.dead_letters
    features_match(out.examples, reference(text, "h", "h.csv"))


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURE_OK)
@given(ROWS, st.lists(st.integers(1, 40), min_size=1, max_size=30), st.randoms())
def test_follow_waits_for_open_records_and_resumes_exactly(
        tmp_path_factory: pytest.TempPathFactory, cells: list[tuple[str, str]],
        cuts: list[int], rnd: random.Random) -> None:
    """Appended in random pieces (cut inside quoted fields too), read between appends,
    with restarts from the JSON position: exactly the csv module's records, once each."""
    data = csv_text(rows_of(cells)).encode()
    path = tmp_path_factory.mktemp("f") / "f.csv"
    path.write_bytes(b"")
    src = FileSource(name="f", path=str(path), mode="follow", poll_interval_s=0)
    src.open()
    got: list[SourceRecord] = []
    written = 0
    for cut in [*cuts, len(data)]:
        piece = data[written:written + cut]
        written += len(piece)
        with path.open("ab") as f:
            f.write(piece)
        got.extend(drain(src, rnd.randint(1, 4)))
        position = orjson.loads(orjson.dumps(src.position))
        offset = position["files"][next(iter(position["files"]))]["offset"]
        # the position is a record boundary covering exactly the records returned
        consumed = data[:offset]
        assert offset == 0 or (consumed.endswith(b"\n") and consumed.count(b'"') % 2 == 0)
        assert len(reference(consumed.decode(), "f", "f.csv")) == len(got)
        if rnd.random() < 0.5:
            src.close()
            src = FileSource(name="f", path=str(path), mode="follow", poll_interval_s=0)
            src.open(position)
    got.extend(drain(src))
    src.close()
    out = ExampleGen("f").process(got)
    assert not out.dead_letters
    features_match(out.examples, reference(data.decode(), "f", "f.csv"))


@pytest.mark.slow
def test_kill_9_while_following_quoted_multiline_records(tmp_path: Path) -> None:
    """Records in = examples + dead letters, by id, after kill -9s mid-record."""
    rng = random.Random(3)
    broker = f"embedded://{tmp_path / 'log'}"
    path = tmp_path / "notes.csv"
    path.write_text("k,note,n\n")
    folder = tmp_path / "connectors"
    write_definition(folder, "notes", type="file", pipeline="p",
                     options={"path": str(path), "mode": "follow", "poll_interval_s": 0.05},
                     example={"key": "k"}, ingest={"batch_size": 53})
    good: dict[str, str] = {}
    bad: set[str] = set()
    state = {"n": 0, "line": 1, "pending": b""}

    def append(count: int) -> object:
        def step() -> None:
            chunks = [state["pending"]]
            for _ in range(count):
                n = int(state["n"])
                note = f'line one of {n}\nsays "hi", then\n\nends {n}' if n % 3 else f"n{n}"
                fields = [str(n), note, str(n % 7)] + (["extra"] if n % 97 == 5 else [])
                record = ",".join(quote(c) for c in fields) + "\n"
                first = int(state["line"]) + 1
                if n % 97 == 5:
                    bad.add(f"notes:notes.csv:{first}")  # wrong number of fields
                else:
                    good[str(n)] = note
                state["line"] = first + record.count("\n") - 1
                state["n"] = n + 1
                chunks.append(record.encode())
            data = b"".join(chunks)
            cut = len(data) - rng.randint(1, 40)  # leave a record half-written at EOF
            with path.open("ab") as f:
                f.write(data[:cut])
            state["pending"] = data[cut:]
        return step

    def last() -> None:
        with path.open("ab") as f:
            f.write(bytes(state["pending"]))

    feed = [append(700), append(500), append(900), append(600), last]
    args = ["ingest", "notes", "--dir", str(folder)]
    kill_restart(args, broker, feed, rng)
    ids = finish(args, broker, "p.examples", set(good), also={"p.deadletter": bad})
    assert set(ids) == set(good)
    examples = {e["id"]: e for e in read_topic(broker, "p.examples")}
    assert all(examples[k]["features"]["note"] == note for k, note in good.items())
    dead = read_topic(broker, "p.deadletter")
    assert {d["id"] for d in dead} == bad and {d["reason"] for d in dead} == {"unparsable"}
    assert len(good) + len(bad) == 2700
