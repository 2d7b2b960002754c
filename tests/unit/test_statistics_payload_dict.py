"""StatisticsGen builds its window records as plain dicts (no pydantic models on the
hot path); these tests hold them to the models: validating such a dict and dumping it
again must give the very same JSON bytes (every field, type, key order, token)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streamml import serde
from streamml.payloads.statistics import StatisticsWindow
from streamml.processors.base import Message
from streamml.statistics.options import StatisticsOptions
from streamml.statistics.processor import StatisticsGen
from streamml.statistics.windows import OpenWindow

floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([0.0, 180.0, -1e308, 1e308, 2.5]))
scalars = st.one_of(st.none(), floats, st.integers(-10**6, 10**6), st.booleans(),
                    st.text(max_size=6))
values = st.one_of(scalars, st.lists(st.one_of(st.integers(-5, 5), floats), max_size=4))
rows_st = st.lists(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), values, max_size=4),
                   min_size=0, max_size=40)


def both(w: OpenWindow, **kw: Any) -> tuple[bytes, bytes]:
    raw = serde.encode(w.payload_dict("p", "train", **kw))
    via_models = serde.encode(w.payload("p", "train", **kw).to_json())
    return raw, via_models


@settings(max_examples=200, deadline=None)
@given(rows_st, st.sampled_from(["count", "time", "cumulative"]), st.booleans(),
       st.sampled_from([None, 3]), st.booleans())
def test_window_dict_is_the_models_json(rows: list[dict[str, Any]], kind: str, sketches: bool,
                                        schema_version: int | None, final: bool) -> None:
    kw: dict[str, Any] = {"size": 60_000, "start_ms": 120_000} if kind == "time" else {}
    w = OpenWindow(kind, f"{kind}:x", options=StatisticsOptions(), **kw)  # type: ignore[arg-type]
    w.accumulator.add_batch(rows)
    for i in range(len(rows)):
        w.observe("p.examples", i % 2, 10 + i, 1_000 + i, 130_000 + i)
    raw, via_models = both(w, schema_version=schema_version, with_sketches=sketches,
                           final=final)
    assert raw == via_models


def test_large_numeric_window_with_compacted_sketches() -> None:
    """Many values (KLL compacts, HyperLogLog estimates), NaN/Inf and an integral float."""
    rng = np.random.default_rng(7)
    x = rng.lognormal(size=30_000)
    x[::997] = np.nan
    x[5] = math.inf
    rows = [{"x": float(v), "n": int(i % 13), "s": f"v{i % 50}", "z": 180.0}
            for i, v in enumerate(x)]
    w = OpenWindow("count", "count:30000:0", size=30_000, index=0)
    w.accumulator.add_batch(rows)
    w.observe("p.examples", 0, 0, 5, 5)
    raw, via_models = both(w, schema_version=None, with_sketches=True)
    assert raw == via_models
    record = serde.decode(raw)
    assert record["features"]["x"]["numeric"]["num_inf"] == 1
    assert record["features"]["z"]["numeric"]["histograms"][0]["buckets"] == [
        {"low": 180.0, "high": 180.0, "count": 30_000.0}]


def test_statisticsgen_records_validate_and_round_trip() -> None:
    gen = StatisticsGen("p.examples", "p.statistics", count_window=4, cumulative_every=3)
    msgs = [Message("p.examples", 0, i, 1_000 + i, f"id{i}",
                    {"split": "train", "event_time": 1_000 + i,
                     "features": {"x": float(i) if i != 2 else math.nan, "c": "ab"[i % 2]}})
            for i in range(9)]
    out = list(gen.process(msgs))
    assert [e.key for e in out] == ["train/count:4:0", "train/count:4:1", "train/cumulative"]
    for emit in out:
        model = StatisticsWindow.model_validate(emit.value)
        assert serde.encode(model.to_json()) == serde.encode(emit.value)


def _old_formats(state: dict[str, Any]) -> list[str]:
    """The earlier ``sketches`` format (zlib of the JSON state), as older records carry it."""
    import base64
    import zlib

    import orjson

    return [base64.b64encode(zlib.compress(orjson.dumps(state), 1)).decode()]


@settings(max_examples=100, deadline=None)
@given(rows_st, st.lists(st.sampled_from(["$array", "\x00", "\x0012", "nbytes", "a\x00"]),
                         max_size=5))
def test_packed_sketches_round_trip_in_every_format(rows: list[dict[str, Any]],
                                                    odd: list[str]) -> None:
    """Packed states (arrays as raw bytes) read back as the JSON state, whatever the values."""
    import pytest

    from streamml.statistics._codec import pack_state, unpack_state
    from streamml.statistics.feature import FeatureAccumulator

    acc = OpenWindow("count", "w").accumulator
    acc.add_batch(rows + [{"a": v} for v in odd])  # category values that look like markers
    for feature in acc.features.values():
        state = feature.to_dict()
        assert unpack_state(pack_state(feature.to_dict(arrays=True))) == state
        for text in _old_formats(state):
            assert unpack_state(text) == state
        restored = FeatureAccumulator.from_dict(unpack_state(pack_state(
            feature.to_dict(arrays=True))))
        assert restored.to_dict() == state
    with pytest.raises(ValueError):
        unpack_state("lz4:99999999999:AAAA")
    with pytest.raises(ValueError):
        unpack_state("not a state")


def test_overflowing_moments_survive_a_checkpoint() -> None:
    """Values near 1e154 overflow M2 (and 1e308 the mean); the JSON checkpoint keeps them."""
    gen = StatisticsGen("p.examples", "p.statistics", count_window=None, cumulative_every=None)
    msgs = [Message("p.examples", 0, i, 1_000 + i, f"id{i}",
                    {"split": "train", "event_time": 1_000 + i, "features": {"x": v}})
            for i, v in enumerate([1.9e154, 0.0, 1e308, 1e308])]
    gen.process(msgs)
    state = serde.decode(serde.encode(gen.snapshot()))  # as the checkpoint store keeps it
    clone = gen.clone()
    clone.restore(state)
    [before] = gen.cumulative_statistics()
    [after] = clone.cumulative_statistics()
    assert serde.encode(after.value) == serde.encode(before.value)
    assert before.value["features"]["x"]["numeric"]["std_dev"] in ("Infinity", "NaN")


def test_taking_a_piece_over_equals_merging_it_into_an_empty_window() -> None:
    """``take_over`` is ``merge`` into an empty window, sketches' coin counters included."""
    rng = np.random.default_rng(3)
    rows = [{"x": float(v), "n": int(v * 10) % 7, "s": f"v{int(v * 100) % 9}",
             "gone": math.nan}  # a numeric feature whose sketch stays empty
            for v in rng.normal(size=5_000)]
    merged, taken = OpenWindow("count", "w"), OpenWindow("count", "w")
    pieces = []
    for _ in range(2):
        piece = OpenWindow("count", "piece")
        piece.accumulator.add_batch(rows)
        piece.observe("p.examples", 0, 7, 9, 11)
        pieces.append(piece)
    merged.merge(pieces[0])
    taken.take_over(pieces[1])
    assert taken.to_dict() == merged.to_dict()
    for w in (merged, taken):  # and they go on alike
        w.accumulator.add_batch(rows[:3_000])
    assert taken.to_dict() == merged.to_dict()


def test_quantile_histogram_edges_are_the_sketch_quantiles_at_even_ranks() -> None:
    from streamml.statistics.numeric import NumericAccumulator

    acc = NumericAccumulator()
    acc.add(np.arange(1_000, dtype=np.float64))
    opts = StatisticsOptions()
    hist = acc.extract_dict(opts)["histograms"][1]
    edges = [hist["buckets"][0]["low"]] + [b["high"] for b in hist["buckets"]]
    want = acc.quantiles.quantiles(np.linspace(0.0, 1.0, opts.num_quantile_buckets + 1))
    assert edges == want.tolist()


def test_negative_zero_counts_as_zero() -> None:
    from streamml.statistics.numeric import NumericAccumulator

    a, b = NumericAccumulator(), NumericAccumulator()
    a.add(np.array([-0.0, 0.0, 1.0]))
    b.add(np.array([0.0, -0.0, 1.0]))
    assert a.to_dict() == b.to_dict() and str(a.min) == "0.0" and a.zeros == 2


def test_damaged_packed_states_are_value_errors() -> None:
    """A wrong size claim, a bad checksum, a broken frame, deep nesting: ValueError, not
    garbage memory, OSError or RecursionError."""
    import base64
    import zlib

    import pyarrow as pa
    import pytest

    from streamml.statistics._codec import pack_state, unpack_state

    good = pack_state({"x": np.arange(4, dtype=np.float64)})
    _, size, crc, body = good.split(":", 3)
    raw = pa.Codec("lz4").decompress(base64.b64decode(body), decompressed_size=int(size),
                                     asbytes=True)
    deep = b"[" * 600 + b"]" * 600
    deep_raw = len(deep).to_bytes(4, "little") + deep
    deep_text = (f"lz4:{len(deep_raw)}:{zlib.crc32(deep_raw):08x}:"
                 + base64.b64encode(pa.Codec("lz4").compress(deep_raw, asbytes=True)).decode())
    padded = raw + bytes(4096)  # a size lie whose extra bytes are zeros: the CRC agrees
    lie = f"lz4:{len(padded)}:{zlib.crc32(padded):08x}:{body}"
    bomb = base64.b64encode(zlib.compress(b'{"x":"' + b"a" * (80 << 20) + b'"}')).decode()
    for text in (lie, f"lz4:{int(size) + 4096}:{crc}:{body}",  # claims more
                 f"lz4:{size}:{zlib.crc32(raw) ^ 1:08x}:{body}",
                 f"lz4:{size}:{crc}:AAAA", "lz4:10:0:AAAA", "lz4:x", deep_text):
        with pytest.raises(ValueError):
            unpack_state(text)
    with pytest.raises(ValueError, match="too large"):  # stops at the bound, not at 80 MB
        unpack_state(bomb)
    junk = raw + b"junk"  # well-formed, checksummed, but more than its header names
    trailing = (f"lz4:{len(junk)}:{zlib.crc32(junk):08x}:"
                + base64.b64encode(pa.Codec("lz4").compress(junk, asbytes=True)).decode())
    with pytest.raises(ValueError, match="does not account for"):
        unpack_state(trailing)
    assert unpack_state(good)["x"] == base64.b64encode(np.arange(4.0).tobytes()).decode()


def test_split_values_become_identifiers_and_damaged_statistics_are_dead_letters() -> None:
    from streamml.validation.validator import ExampleValidator

    gen = StatisticsGen("p.examples", "p.statistics", count_window=2, cumulative=False)
    msgs = [Message("p.examples", 0, i, 1_000 + i, f"id{i}",
                    {"split": "Eval-2", "event_time": 1_000 + i, "features": {"x": 1.0}})
            for i in range(2)]
    [out] = gen.process(msgs)
    assert out.key == "eval_2/count:2:0"
    StatisticsWindow.model_validate(out.value)
    v = ExampleValidator("p.examples", "p.anomalies", statistics_topic="p.statistics")
    bad = Message("p.statistics", 0, 0, 5, "k", {**out.value, "split": "Eval-2"})
    [letter] = v.process([bad])
    assert letter.topic == "p.deadletter" and letter.value["reason"] == "invalid_payload"
    from streamml.statistics._codec import pack_state

    damaged = {**out.value, "features": {"x": {**out.value["features"]["x"],
                                               "sketches": {"accumulator": pack_state({})}}}}
    [letter] = v.process([Message("p.statistics", 0, 1, 6, "k", damaged)])
    assert letter.value["reason"] == "invalid_payload" and "damaged" in letter.value["detail"]
    bare = {**out.value, "features": {"x": {**out.value["features"]["x"], "sketches": {}}}}
    assert list(v.process([Message("p.statistics", 0, 2, 7, "k", bare)])) == []
