"""StatisticsGen on the taxi data: window counts and statistics against pyarrow per window."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pytest

from streamml.payloads.statistics import StatisticsWindow
from streamml.processors.base import Emit, Message
from streamml.processors.basic import split_of
from streamml.statistics import StatisticsAccumulator
from streamml.statistics.processor import StatisticsGen

TAXI = Path(__file__).resolve().parents[2] / "streamml" / "data" / "taxi.csv"
TOPIC = "taxi.examples"
DAY_MS = 86_400_000


def taxi_table() -> pa.Table:
    table = pcsv.read_csv(TAXI, convert_options=pcsv.ConvertOptions(strings_can_be_null=True))
    table = table.append_column("event_time", pc.multiply(table["trip_start_timestamp"], 1000))
    ids = [f"taxi.csv:{i}" for i in range(table.num_rows)]
    table = table.append_column("id", pa.array(ids))
    table = table.append_column("split", pa.array([split_of(i) for i in ids]))
    return table.sort_by("event_time")


FEATURES = [c for c in pcsv.read_csv(TAXI).column_names]


def messages(table: pa.Table) -> list[Message]:
    out = []
    for offset, row in enumerate(table.to_pylist()):
        features = {k: row[k] for k in FEATURES}
        value = {"id": row["id"], "split": row["split"], "event_time": row["event_time"],
                 "features": features}
        out.append(Message(TOPIC, 0, offset, 1_700_000_000_000 + offset, row["id"], value))
    return out


def run(gen: StatisticsGen, msgs: list[Message], batch: int = 500) -> list[Emit]:
    out: list[Emit] = []
    for i in range(0, len(msgs), batch):
        out.extend(gen.process(msgs[i : i + batch]))
    return out


def check_against_pyarrow(window: StatisticsWindow, rows: pa.Table) -> None:
    assert window.num_examples == rows.num_rows
    for name in FEATURES:
        col = rows.column(name)
        fs = window.features[name]
        assert fs.num_missing == col.null_count, name
        assert fs.count == rows.num_rows - col.null_count, name
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            if fs.count == 0:
                continue
            assert fs.numeric is not None
            assert math.isclose(fs.numeric.mean or 0, pc.mean(col).as_py(), rel_tol=1e-9)
            assert math.isclose(fs.numeric.std_dev or 0, pc.stddev(col, ddof=0).as_py(),
                                rel_tol=1e-7, abs_tol=1e-9)
            assert fs.numeric.min == pc.min(col).as_py() and fs.numeric.max == pc.max(col).as_py()
        elif pa.types.is_string(col.type) and fs.count:
            assert fs.categorical is not None
            assert fs.categorical.distinct == len(pc.unique(col.drop_null()))
            vc = pc.value_counts(col.drop_null()).to_pylist()
            top = max(vc, key=lambda d: (d["counts"], [-ord(c) for c in d["values"]]))
            assert fs.categorical.top_values[0].count == top["counts"]


def test_count_windows_per_split_match_pyarrow() -> None:
    table = taxi_table()
    gen = StatisticsGen(TOPIC, "taxi.statistics", count_window=2000, cumulative=False)
    out = run(gen, messages(table))
    windows = [StatisticsWindow.model_validate(e.value) for e in out]
    for split in ("train", "eval"):
        rows = table.filter(pc.equal(table["split"], split))
        mine = [w for w in windows if w.split == split]
        assert len(mine) == rows.num_rows // 2000
        for e, w in zip([e for e in out if e.key.startswith(split)], mine, strict=True):
            assert e.key == f"{split}/count:2000:{w.window.index}"
            check_against_pyarrow(w, rows.slice(w.window.index * 2000, 2000))
            assert sum(r.count for r in w.inputs) >= 2000


def test_time_windows_match_pyarrow_and_close_on_idle() -> None:
    table = taxi_table()
    size = 90 * DAY_MS
    gen = StatisticsGen(TOPIC, "taxi.statistics", count_window=None, time_window_ms=size,
                        cumulative=False, splits="all")
    out = run(gen, messages(table))
    out.extend(gen.on_idle(now_ms=2_000_000_000_000))
    starts = pa.array([t - t % size for t in table["event_time"].to_pylist()])
    expected = sorted(set(starts.to_pylist()))
    assert [e.key for e in out] == [f"all/time:{size}:{s}" for s in expected]
    for e in out:
        w = StatisticsWindow.model_validate(e.value)
        assert w.window.event_time is not None
        start = w.window.event_time.start_ms
        check_against_pyarrow(w, table.filter(pc.equal(starts, start)))
    assert gen.late == 0
    assert sum(StatisticsWindow.model_validate(e.value).num_examples for e in out) == len(table)


def test_late_examples_are_counted_not_lost_from_cumulative() -> None:
    gen = StatisticsGen("p.examples", "p.statistics", count_window=None, time_window_ms=1000,
                        cumulative_every=None)
    msgs = [Message("p.examples", 0, i, i, None, {"event_time": t, "features": {"x": t}})
            for i, t in enumerate([100, 2500, 300])]
    out = list(gen.process(msgs))
    assert [e.key for e in out] == ["all/time:1000:0"]
    assert out[0].value["num_examples"] == 1 and gen.late == 1
    [cum] = gen.cumulative_statistics()
    assert cum.key == "all/cumulative" and cum.value["num_examples"] == 3


def test_cumulative_progress_and_schema_reset() -> None:
    gen = StatisticsGen("p.examples", "p.statistics", count_window=None, cumulative_every=2,
                        schema_topic="p.schema", splits="all")
    ex = [Message("p.examples", 0, i, i, None, {"features": {"x": i}}) for i in range(5)]
    schema = Message("p.schema", 0, 0, 10, "schema", {"version": 2})
    out = list(gen.process(ex[:3] + [schema] + ex[3:]))
    assert [(e.key, e.value["num_examples"], e.value["final"]) for e in out] == [
        ("all/cumulative", 3, False),  # progress when the batch's piece crossed 2
        ("all/cumulative", 3, True),
        ("all/cumulative:v2", 2, False),
    ]
    assert out[-1].value["window"]["since_schema_version"] == 2


@pytest.mark.parametrize("cut", [1, 3333, 7001])
def test_snapshot_restore_mid_stream_gives_identical_output(cut: int) -> None:
    msgs = messages(taxi_table())
    config: dict[str, Any] = dict(count_window=1500, time_window_ms=180 * DAY_MS,
                                  allowed_lateness_ms=DAY_MS, splits="both")
    uninterrupted = StatisticsGen(TOPIC, "taxi.statistics", **config)
    whole = run(uninterrupted, msgs[:cut])
    # the run that wrote the checkpoint: snapshot() accumulates the buffered block (a
    # deterministic step, nothing is due in it), so a restore resumes exactly where it was
    uninterrupted.snapshot()
    whole += run(uninterrupted, msgs[cut:])
    first = StatisticsGen(TOPIC, "taxi.statistics", **config)
    out = run(first, msgs[:cut])
    state = json.loads(json.dumps(first.snapshot()))
    second = first.clone()
    second.restore(state)
    out.extend(run(second, msgs[cut:]))
    assert [(e.key, e.value) for e in out] == [(e.key, e.value) for e in whole]


def test_windows_read_back_merge_to_the_cumulative_statistics() -> None:
    table = taxi_table()
    gen = StatisticsGen(TOPIC, "taxi.statistics", count_window=3000, splits="all",
                        cumulative_every=None)
    out = run(gen, messages(table))
    merged = StatisticsAccumulator()
    for e in out:
        merged.merge(StatisticsAccumulator.from_window(StatisticsWindow.model_validate(e.value)))
    [cum] = gen.cumulative_statistics()
    rest = StatisticsAccumulator.from_dict(gen.state["all"].counts[5].accumulator.to_dict())
    merged.merge(rest)
    total = StatisticsWindow.model_validate(cum.value)
    assert merged.num_examples == total.num_examples == table.num_rows
    for name, fs in merged.extract().items():
        ref = total.features[name]
        assert (fs.count, fs.num_missing) == (ref.count, ref.num_missing)
        if fs.numeric is not None and fs.numeric.mean is not None:
            assert ref.numeric is not None and ref.numeric.mean is not None
            assert math.isclose(fs.numeric.mean, ref.numeric.mean, rel_tol=1e-9)


def _exact(value: dict[str, Any]) -> dict[str, Any]:
    """The exact part of a window record: ids, counts, moments, extremes, type counts."""
    feats = {}
    for name, f in value["features"].items():
        num = f["numeric"] or {}
        cat = f["categorical"] or {}
        feats[name] = (f["count"], f["num_missing"], f["type_counts"],
                       {k: num.get(k) for k in ("mean", "std_dev", "min", "max", "num_zeros",
                                                "num_nan", "num_inf")},
                       cat.get("avg_length"), cat.get("distinct") if cat.get("distinct_exact")
                       else None)
    return {"window": value["window"], "num_examples": value["num_examples"],
            "inputs": value["inputs"], "created_at": value["created_at"], "final": value["final"],
            "features": feats}


@pytest.mark.parametrize("batch", [1, 500, 4096])
def test_block_accumulation_gives_the_windows_of_per_batch_accumulation(batch: int) -> None:
    """Buffering micro-batches into blocks changes when work is done, not what is emitted."""
    msgs = messages(taxi_table())[:9000]
    config: dict[str, Any] = dict(count_window=1500, time_window_ms=30 * DAY_MS,
                                  allowed_lateness_ms=DAY_MS, splits="both", cumulative_every=2000)
    per_batch = run(StatisticsGen(TOPIC, "s", block_rows=1, **config), msgs, batch)
    blocked = run(StatisticsGen(TOPIC, "s", **config), msgs, batch)  # default block_rows
    assert [e.key for e in blocked] == [e.key for e in per_batch] and len(blocked) > 20
    for a, b in zip(blocked, per_batch, strict=True):
        ea, eb = _exact(a.value), _exact(b.value)
        for name in ea["features"]:
            ma, mb = ea["features"][name][3], eb["features"][name][3]
            for key in ma:
                if isinstance(ma[key], float):
                    assert ma[key] == pytest.approx(mb[key], rel=1e-9, abs=1e-12), (name, key)
                    mb[key] = ma[key]
        assert ea == eb
