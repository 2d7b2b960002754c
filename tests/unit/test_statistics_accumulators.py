"""Accumulators against batch numpy/pyarrow computations; merge == union; snapshots."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamml.payloads.statistics import FeatureStatistics
from streamml.processors.basic import _typed
from streamml.statistics import RANK_ERROR, StatisticsAccumulator
from streamml.statistics.hll import relative_error

TAXI = Path(__file__).resolve().parents[2] / "streamml" / "data" / "taxi.csv"


def taxi_rows() -> list[dict[str, Any]]:
    with TAXI.open(newline="") as f:
        return [{k: _typed(v) for k, v in row.items()} for row in csv.DictReader(f)]


def close(a: float | None, b: float, rel: float = 1e-9) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def numeric_values(rows: list[dict[str, Any]], name: str) -> np.ndarray:
    out: list[float] = []
    for r in rows:
        v = r.get(name)
        items = v if isinstance(v, list) else [v]
        out.extend(float(x) for x in items
                   if isinstance(x, int | float) and not isinstance(x, bool))
    return np.array(out, dtype=float)


def check_numeric(fs: FeatureStatistics, values: np.ndarray, exact_sketch: bool = False) -> None:
    """Every numeric statistic against numpy over the same values."""
    num = fs.numeric
    assert num is not None
    finite = values[np.isfinite(values)]
    assert num.num_nan == int(np.isnan(values).sum())
    assert num.num_inf == int(np.isinf(values).sum())
    if finite.size == 0:
        assert num.mean is None
        return
    assert close(num.mean, float(finite.mean()))
    assert close(num.std_dev, float(finite.std(ddof=0)), rel=1e-9)
    assert num.min == finite.min() and num.max == finite.max()
    assert num.num_zeros == int((finite == 0).sum())
    d = np.sort(finite)
    for key, v in num.quantiles.items():
        q = float(key)
        lo = np.searchsorted(d, v, "left") / d.size
        hi = np.searchsorted(d, v, "right") / d.size
        assert lo - RANK_ERROR - 1e-12 <= q <= hi + RANK_ERROR + 1e-12, (key, v)
    assert num.distinct is not None
    truth = len(np.unique(finite))
    assert abs(num.distinct - truth) <= 4 * relative_error(12) * truth + 1
    ew = next(h for h in num.histograms if h.type == "equal_width")
    assert math.isclose(sum(b.count for b in ew.buckets), finite.size)
    if exact_sketch and finite.min() < finite.max():
        edges = [ew.buckets[0].low] + [b.high for b in ew.buckets]
        counts, _ = np.histogram(finite, bins=edges)
        assert [b.count for b in ew.buckets] == counts.tolist()


def check_strings(fs: FeatureStatistics, values: list[str]) -> None:
    cat = fs.categorical
    assert cat is not None
    truth = Counter(values)
    assert cat.distinct_exact and cat.distinct == len(truth)
    top = [(v.value, v.count) for v in cat.top_values]
    expected = sorted(truth.items(), key=lambda kv: (-kv[1], kv[0]))[: len(top)]
    assert top == [(v, float(c)) for v, c in expected]
    assert close(cat.avg_length, sum(map(len, values)) / len(values))


def test_growing_prefixes_of_taxi_match_batch_computation() -> None:
    rows = taxi_rows()
    acc = StatisticsAccumulator()
    seen = 0
    for size in (1, 7, 50, 300, 1000, 3643, 10_001):
        if seen >= len(rows):
            break
        batch = rows[seen : seen + size]
        acc.add_batch(batch)
        seen += len(batch)
        prefix = rows[:seen]
        stats = acc.extract()
        assert acc.num_examples == seen
        for name, fs in stats.items():
            present = sum(1 for r in prefix if r.get(name) is not None)
            assert (fs.count, fs.num_missing) == (present, seen - present), name
            if fs.type in ("int", "float"):
                check_numeric(fs, numeric_values(prefix, name), exact_sketch=seen <= 300)
            elif fs.type == "string":
                check_strings(fs, [r[name] for r in prefix if isinstance(r.get(name), str)])


def test_table_and_rows_give_the_same_statistics() -> None:
    table = pcsv.read_csv(TAXI)
    rows = table.to_pylist()
    a, b = StatisticsAccumulator(), StatisticsAccumulator()
    for batch in table.to_batches(max_chunksize=2048):
        a.add_batch(pa.Table.from_batches([batch]))
    for i in range(0, len(rows), 2048):
        b.add_batch(rows[i : i + 2048])
    sa, sb = a.extract(), b.extract()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert sa[name].count == sb[name].count
        assert sa[name].numeric == sb[name].numeric or (
            close(sa[name].numeric.mean, sb[name].numeric.mean)  # type: ignore[union-attr]
        )
    fare = table.column("fare")
    fs = sa["fare"].numeric
    assert fs is not None
    assert close(fs.mean, pc.mean(fare).as_py())
    assert close(fs.std_dev, pc.stddev(fare, ddof=0).as_py())


def test_lists_mixed_types_and_nonfinite() -> None:
    rows: list[dict[str, Any]] = [
        {"tags": ["a", "bb"], "x": 1, "y": "NaN", "flag": True},
        {"tags": [], "x": "oops", "y": float("inf"), "flag": False},
        {"tags": ["a"], "x": 2.5, "y": 3.0},
        {"x": None, "tags": None},
    ]
    acc = StatisticsAccumulator()
    acc.add_batch(rows)
    s = acc.extract()
    vpe = s["tags"].values_per_example
    assert vpe is not None and (vpe.min, vpe.max, vpe.mean) == (0, 2, 1.0)
    assert s["tags"].count == 3 and s["tags"].num_missing == 1
    assert s["x"].type_counts == {"float": 1, "int": 1, "string": 1} and s["x"].type == "float"
    assert s["x"].numeric is not None and s["x"].numeric.mean == 1.75
    y = s["y"].numeric
    assert y is not None and (y.num_nan, y.num_inf, y.mean) == (1, 1, 3.0)
    flag = s["flag"]
    assert flag.type == "bool" and flag.num_missing == 2
    assert flag.categorical is not None and flag.categorical.distinct == 2


values_st = st.one_of(
    st.none(),
    st.integers(-1000, 1000),
    st.floats(-1e6, 1e6),
    st.sampled_from([float("nan"), float("inf"), "NaN"]),
    st.sampled_from(["a", "bb", "ccc", "Cash", "Credit Card"]),
    st.booleans(),
    st.lists(st.integers(-5, 5), max_size=4),
)
rows_st = st.lists(
    st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), values_st, max_size=4), max_size=40
)


def _exact_view(fs: FeatureStatistics) -> dict[str, Any]:
    """The exact part of the statistics (sketch outputs dropped)."""
    d = fs.model_dump()
    num = d.get("numeric")
    if num:
        for key in ("quantiles", "median", "histograms", "distinct"):
            num.pop(key, None)
        for key in ("mean", "std_dev"):  # compared with a relative tolerance instead
            num[key] = num[key] is None
    return d


def same_moments(a: FeatureStatistics, b: FeatureStatistics) -> bool:
    if a.numeric is None or b.numeric is None or a.numeric.mean is None:
        return a.numeric == b.numeric or a.numeric is not None and b.numeric is not None
    return (close(a.numeric.mean, b.numeric.mean or 0.0)
            and close(a.numeric.std_dev, b.numeric.std_dev or 0.0, rel=1e-7))


@settings(max_examples=150, deadline=None)
@given(rows_st, rows_st, st.integers(1, 7))
def test_merge_equals_union(left: list[dict[str, Any]], right: list[dict[str, Any]],
                            batch: int) -> None:
    a, b, u = StatisticsAccumulator(), StatisticsAccumulator(), StatisticsAccumulator()
    for i in range(0, len(left), batch):
        a.add_batch(left[i : i + batch])
    b.add_batch(right)
    u.add_batch(left + right)
    a.merge(b)
    sa, su = a.extract(), u.extract()
    assert a.num_examples == u.num_examples == len(left) + len(right)
    assert sa.keys() == su.keys()
    for name in su:
        fa, fu = sa[name], su[name]
        assert fa.count + fa.num_missing == a.num_examples
        assert _exact_view(fa) == _exact_view(fu), name
        assert same_moments(fa, fu), name
        if fu.numeric is not None and fu.numeric.mean is not None:
            assert fa.numeric is not None
            assert close(fa.numeric.mean, fu.numeric.mean, rel=1e-9)
            # both sketches are exact at this size: identical quantiles and distinct counts
            assert fa.numeric.quantiles == fu.numeric.quantiles
            assert fa.numeric.distinct == fu.numeric.distinct


def test_snapshot_round_trip_gives_identical_extraction() -> None:
    rows = taxi_rows()
    acc = StatisticsAccumulator()
    for i in range(0, 9000, 1500):
        acc.add_batch(rows[i : i + 1500])
    state = json.loads(json.dumps(acc.to_dict()))
    copy = StatisticsAccumulator.from_dict(state)
    assert copy.extract(with_sketches=True) == acc.extract(with_sketches=True)
    for a in (acc, copy):
        a.add_batch(rows[9000:])
    assert copy.to_dict() == acc.to_dict()


def test_sketch_state_is_bounded_in_stream_length() -> None:
    rng = np.random.default_rng(5)
    small, big = StatisticsAccumulator(), StatisticsAccumulator()

    def table(n: int) -> pa.Table:
        return pa.table({"x": rng.normal(size=n),
                         "s": pa.array([f"v{i}" for i in rng.integers(0, 5000, n)])})

    small.add_batch(table(10_000))
    for _ in range(100):
        big.add_batch(table(10_000))
    size_small = len(json.dumps(small.to_dict()))
    size_big = len(json.dumps(big.to_dict()))
    assert big.num_examples == 1_000_000
    assert size_big <= 1.5 * size_small


@pytest.mark.parametrize("batch", [1, 64, 4096])
def test_batch_size_does_not_change_exact_statistics(batch: int) -> None:
    rows = taxi_rows()[:5000]
    a, ref = StatisticsAccumulator(), StatisticsAccumulator()
    for i in range(0, len(rows), batch):
        a.add_batch(rows[i : i + batch])
    ref.add_batch(rows)
    for name, fs in ref.extract().items():
        assert _exact_view(a.extract()[name]) == _exact_view(fs)
        assert same_moments(a.extract()[name], fs)
