"""ExampleGen: typing rules against a pyarrow batch computation, ids, splits, dead letters."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamml.connectors.base import SourceRecord
from streamml.connectors.examplegen import ExampleBatch, ExampleGen, hash_split, to_event_ms
from streamml.connectors.file import FileSource
from streamml.payloads.deadletter import DeadLetter
from streamml.payloads.examples import Example
from streamml.processors.basic import split_of

TAXI = Path(__file__).resolve().parents[2] / "streamml" / "data" / "taxi.csv"


def csv_records(header: bytes, lines: list[bytes], source: str = "s") -> list[SourceRecord]:
    return [SourceRecord(line, {"line": i}, id=f"{source}:f.csv:{i}", fmt="csv", header=header)
            for i, line in enumerate(lines, start=2)]


def test_taxi_types_match_a_pyarrow_batch_computation() -> None:
    src = FileSource(name="taxi-file", path=str(TAXI))
    src.open()
    records = src.read(100_000)
    gen = ExampleGen("taxi-file", event_time="trip_start_timestamp", event_time_unit="s")
    out = gen.process(records)
    assert len(out.examples) == len(records) == 15_002 and not out.dead_letters
    # The batch computation: pyarrow over the whole file; only empty cells are null;
    # a float column whose values are all integral is an int column.
    table = pacsv.read_csv(TAXI, convert_options=pacsv.ConvertOptions(
        null_values=[""], strings_can_be_null=True))
    expected: dict[str, list[object]] = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_floating(col.type):
            valid = pc.drop_null(col)
            if pc.all(pc.equal(valid, pc.floor(valid))).as_py():
                col = col.cast(pa.int64())
        expected[name] = col.to_pylist()
    for i, example in enumerate(out.examples):
        for name, values in expected.items():
            got, want = example["features"][name], values[i]
            assert got == want and type(got) is type(want), (i, name, got, want)
    first = out.examples[0]
    assert first["features"]["pickup_community_area"] is None  # empty cell: missing, not ""
    assert first["event_time"] == 1400269500 * 1000
    assert first["id"] == "taxi-file:taxi.csv:2"
    assert gen.types.locked["trip_miles"] in ("int", "float")
    for example in out.examples[:500]:
        Example.model_validate(example)


def test_integral_float_in_an_int_column_is_an_int_and_empty_is_missing() -> None:
    gen = ExampleGen("s")
    out = gen.process(csv_records(b"secs,name,flag", [b"180.0,a,true", b"12,,false",
                                                         b"7.0,c,"]))
    feats = [e["features"] for e in out.examples]
    assert [f["secs"] for f in feats] == [180, 12, 7]
    assert all(type(f["secs"]) is int for f in feats)
    assert [f["name"] for f in feats] == ["a", None, "c"]
    assert [f["flag"] for f in feats] == [True, False, None]
    # a later batch with a fraction widens the column to float; a token that is not a
    # number (or not a bool) stays its text, for the validator to flag: nothing is refused
    out = gen.process(csv_records(b"secs,name,flag", [b"1.5,x,true", b"N/A,y,maybe",
                                                         b"2,z,false"]))
    assert [e["features"]["secs"] for e in out.examples] == [1.5, "N/A", 2.0]
    assert [e["features"]["flag"] for e in out.examples] == [True, "maybe", False]
    assert out.dead_letters == []
    assert gen.types.locked == {"secs": "float", "name": "string", "flag": "bool"}
    # the same through the line-by-line path (a quoted field sends the batch there)
    out = gen.process(csv_records(b"secs,name,flag", [b'abc,"q, r",true', b"3,s,false"]))
    assert [(e["features"]["secs"], e["features"]["name"]) for e in out.examples] == [
        ("abc", "q, r"), (3.0, "s")]


def test_json_values_that_do_not_fit_their_column_are_kept_as_they_came() -> None:
    gen = ExampleGen("j")

    def batch(*raws: bytes) -> ExampleBatch:
        return gen.process([SourceRecord(r, {"line": i}, id=f"j:{i}", fmt="json")
                            for i, r in enumerate(raws)])
    batch(b'{"n": 1.5, "b": true}')  # locks n: float, b: bool
    out = batch(b'{"n": "N/A", "b": "perhaps"}', b'{"n": 2, "b": false}')
    assert out.dead_letters == []
    assert [(e["features"]["n"], e["features"]["b"]) for e in out.examples] == [
        ("N/A", "perhaps"), (2.0, False)]


def test_every_kind_of_bad_input_is_a_dead_letter() -> None:
    gen = ExampleGen("s", key="k", max_record_bytes=64)
    lines = [
        b"a,1,2",                      # ok
        b'b,"1,2',                     # unbalanced quote: unparsable
        b"c,1",                        # too few fields: unparsable
        b"d,\xff\xfe,2",               # invalid UTF-8: bad_encoding
        b"e," + b"9" * 100 + b",1",    # oversize
        b",1,2",                       # missing key
        b"f,3,4",                      # ok
    ]
    out = gen.process(csv_records(b"k,x,y", lines))
    assert len(out.examples) + len(out.dead_letters) == len(lines)
    assert sorted(e["id"] for e in out.examples) == ["a", "f"]
    reasons = {d["id"]: d["reason"] for d in out.dead_letters}
    assert reasons == {"s:f.csv:3": "unparsable", "s:f.csv:4": "unparsable",
                       "s:f.csv:5": "bad_encoding", "s:f.csv:6": "oversize",
                       "s:f.csv:7": "missing_key"}
    letters = {d["id"]: DeadLetter.model_validate(d) for d in out.dead_letters}
    assert letters["s:f.csv:5"].encoding == "base64"
    assert letters["s:f.csv:5"].original_bytes() == lines[3]
    assert letters["s:f.csv:3"].original_bytes() == lines[1]
    assert letters["s:f.csv:6"].position == {"line": 6}


def test_json_records_type_per_batch_and_refuse_non_objects() -> None:
    gen = ExampleGen("j", event_time="t", label="y")
    raws = [b'{"t": "2024-01-01T00:00:00Z", "n": 180.0, "o": {"a": 1}, "y": 1}',
            b'{"t": 1704067200000, "n": 3, "l": [1, 2]}',
            b"[1, 2]", b"{nope", b'{"t": "x\xff"}', b'{"t": "yesterday"}']
    recs = [SourceRecord(r, {"line": i}, id=f"j:{i}", fmt="json") for i, r in enumerate(raws)]
    out = gen.process(recs)
    assert len(out.examples) + len(out.dead_letters) == len(raws)
    a, b = out.examples
    assert a["features"] == {"t": "2024-01-01T00:00:00Z", "n": 180, "o.a": 1}
    assert a["label"] == 1 and a["event_time"] == b["event_time"] == 1704067200000
    assert b["features"]["l"] == [1, 2] and b["label"] is None
    assert sorted(d["reason"] for d in out.dead_letters) == [
        "bad_encoding", "invalid_type", "unparsable", "unparsable"]
    for e in out.examples:
        Example.model_validate(e)


def test_non_finite_floats_travel_as_tokens() -> None:
    out = ExampleGen("s").process(csv_records(b"x", [b"1.5", b"nan", b"inf"]))
    values = [e["features"]["x"] for e in out.examples]
    assert values[0] == 1.5 and values[1:] == ["NaN", "Infinity"]
    ex = Example.model_validate(out.examples[1])
    assert math.isnan(ex.features["x"])  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "unit", "ms"), [
    (1400269500, "s", 1400269500000), (1400269500123, "ms", 1400269500123),
    (1400269500123456, "us", 1400269500123), ("2014-05-16T19:45:00+00:00", "iso", 1400269500000),
    ("2014-05-16 19:45:00", "auto", 1400269500000), (1400269500.5, "auto", 1400269500500),
])
def test_event_time_units(value: object, unit: str, ms: int) -> None:
    assert to_event_ms(value, unit) == ms  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=50))
def test_split_is_deterministic_and_matches_split_of(example_id: str) -> None:
    assert hash_split(example_id) == hash_split(example_id) == split_of(example_id)


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=0, max_value=10**9), st.sampled_from([(2, 1), (8, 2), (1, 1)]))
def test_split_ratio_follows_the_buckets(seed: int, buckets: tuple[int, int]) -> None:
    train, ev = buckets
    splits = [("train", train), ("eval", ev)]
    n = 6000
    got = sum(hash_split(f"{seed}:{i}", splits) == "eval" for i in range(n))
    expected = n * ev / (train + ev)
    assert abs(got - expected) < 5 * math.sqrt(n * ev / (train + ev) * train / (train + ev))


def test_configured_splits_and_key_ids() -> None:
    gen = ExampleGen("s", key="k", splits={"train": 8, "eval": 1, "test": 1})
    out = gen.process(csv_records(b"k,v", [f"id{i},{i}".encode() for i in range(300)]))
    assert {e["split"] for e in out.examples} == {"train", "eval", "test"}
    assert all(e["split"] == hash_split(e["id"], gen.splits) for e in out.examples)


def test_a_first_batch_of_numbers_with_a_few_tokens_locks_a_number_column() -> None:
    """The first batch decides a column's type: a token in it must not make the whole
    column text for good (every later fare a string, the token no longer an anomaly)."""
    lines = [f"{i}.5,{i},code{i % 3}".encode() for i in range(40)]
    lines[7] = b"N/A,-,code1"
    gen = ExampleGen("s")
    out = gen.process(csv_records(b"fare,secs,code", lines))
    assert gen.types.locked == {"fare": "float", "secs": "int", "code": "string"}
    feats = [e["features"] for e in out.examples]
    assert (feats[7]["fare"], feats[7]["secs"]) == ("N/A", "-")
    assert feats[8]["fare"] == 8.5 and feats[8]["secs"] == 8 and feats[8]["code"] == "code2"
    # true/false with a token: a bool column, the token kept
    gen = ExampleGen("b")
    out = gen.process(csv_records(b"paid", [b"true", b"false"] * 15 + [b"maybe"]))
    assert gen.types.locked == {"paid": "bool"}
    assert [e["features"]["paid"] for e in out.examples][-2:] == [False, "maybe"]
    # mostly text (under 95% numbers): a text column, as it was
    mixed = [f"{i},x{i}".encode() if i % 10 else f"a{i},y".encode() for i in range(40)]
    gen = ExampleGen("m")
    gen.process(csv_records(b"n,t", mixed))
    assert gen.types.locked == {"n": "string", "t": "string"}
    # JSON rows the same
    gen = ExampleGen("j")
    raws = [orjson.dumps({"fare": i + 0.5}) for i in range(30)] + [b'{"fare": "N/A"}']
    out = gen.process([SourceRecord(r, {"line": i}, id=f"j:{i}", fmt="json")
                       for i, r in enumerate(raws)])
    assert gen.types.locked == {"fare": "float"}
    assert [e["features"]["fare"] for e in out.examples][-2:] == [29.5, "N/A"]
    # ... but JSON text is text, however many digits it holds: ids and zip codes stay as
    # written (a key "000001" is not the example "1")
    gen = ExampleGen("z", key="trip")
    raws = [orjson.dumps({"trip": f"{i:06d}", "zip": "02101"}) for i in range(30)]
    out = gen.process([SourceRecord(r, {"line": i}, id=f"z:{i}", fmt="json")
                       for i, r in enumerate(raws)])
    assert gen.types.locked == {"trip": "string", "zip": "string"}
    assert (out.examples[1]["id"], out.examples[1]["features"]["zip"]) == ("000001", "02101")
    # a column of ints beyond int64 with a token: floats, not ints JSON cannot carry
    gen = ExampleGen("big")
    gen.process(csv_records(b"n", [b"1" * 25] * 30 + [b"N/A"]))
    assert gen.types.locked == {"n": "float"}


def test_a_label_not_of_its_column_type_is_a_dead_letter() -> None:
    """A feature token goes on to the validator; a label token is refused: it is what the
    model learns."""
    gen = ExampleGen("s", label="tips")
    out = gen.process(csv_records(b"fare,tips", [f"{i}.5,{i}.25".encode() for i in range(30)]
                                  + [b"N/A,1.5", b"2.5,N/A"]))
    assert [d["reason"] for d in out.dead_letters] == ["invalid_type"]
    assert "label 'tips' (float)" in out.dead_letters[0]["detail"]
    assert [e["features"]["fare"] for e in out.examples][-1] == "N/A"
    assert len(out.examples) + len(out.dead_letters) == 32


def test_numbers_beyond_int64_widen_an_int_column_and_nan_labels_are_labels() -> None:
    gen = ExampleGen("s", label="y")
    gen.process(csv_records(b"n,y", [b"5,1.5"] * 3))  # locks n: int, y: float
    out = gen.process(csv_records(b"n,y", [b"1e30,NaN", b"7,2.5", b"N/A,inf"]))
    assert gen.types.locked["n"] == "float"
    assert [e["features"]["n"] for e in out.examples] == [1e30, 7.0, "N/A"]
    assert [e["label"] for e in out.examples] == ["NaN", 2.5, "Infinity"]  # tokens
    assert out.dead_letters == []
    orjson.dumps(out.examples)  # what the ingest loop writes: no int beyond 64 bits
