"""Sketch error bounds, mergeability and bounded memory (KLL, HyperLogLog, Misra–Gries)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamml.statistics.hll import HyperLogLog, relative_error
from streamml.statistics.kll import RANK_ERROR, KLLSketch
from streamml.statistics.topk import MisraGries

N = 200_000
QS = np.linspace(0.001, 0.999, 999)


def _distributions() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(42)
    return {
        "normal": rng.normal(10, 3, N),
        "lognormal": rng.lognormal(0, 2, N),
        "uniform_sorted": np.sort(rng.uniform(-1, 1, N)),
        "reverse_sorted": np.arange(N, 0, -1, dtype=float),
        "heavy_ties": rng.integers(0, 20, N).astype(float),
        "pareto": rng.pareto(1.1, N),
    }


def max_rank_error(sketch: KLLSketch, data: np.ndarray) -> float:
    """Largest distance between the requested rank and the true rank interval of the answer."""
    d = np.sort(data)
    values = sketch.quantiles(QS)
    lo = np.searchsorted(d, values, "left") / len(d)
    hi = np.searchsorted(d, values, "right") / len(d)
    return float(np.max(np.maximum(0.0, np.maximum(lo - QS, QS - hi))))


@pytest.mark.parametrize("name", list(_distributions()))
@pytest.mark.parametrize("batch", [997, 20_000, N])
def test_kll_rank_error_within_documented_bound(name: str, batch: int) -> None:
    data = _distributions()[name]
    sketch = KLLSketch()
    for i in range(0, N, batch):
        sketch.update(data[i : i + batch])
    assert sketch.n == N
    assert max_rank_error(sketch, data) <= RANK_ERROR
    assert sketch.min == data.min() and sketch.max == data.max()


@pytest.mark.parametrize("name", list(_distributions()))
def test_kll_rank_error_after_merges(name: str) -> None:
    data = _distributions()[name]
    parts = np.array_split(data, 37)
    sketches = []
    for part in parts:
        s = KLLSketch()
        s.update(part)
        sketches.append(s)
    # merge as a tree and as a chain: both stay within the bound
    while len(sketches) > 1:
        merged = []
        for a, b in zip(sketches[::2], sketches[1::2], strict=False):
            a.merge(b)
            merged.append(a)
        if len(sketches) % 2:
            merged.append(sketches[-1])
        sketches = merged
    assert sketches[0].n == N
    assert max_rank_error(sketches[0], data) <= RANK_ERROR


def test_kll_one_at_a_time() -> None:
    data = np.random.default_rng(7).exponential(size=30_000)
    s = KLLSketch()
    for x in data:
        s.update([x])
    assert max_rank_error(s, data) <= RANK_ERROR


def test_kll_memory_is_bounded() -> None:
    rng = np.random.default_rng(0)
    small, mid, big = KLLSketch(), KLLSketch(), KLLSketch()
    sizes = {}
    for i in range(100):
        chunk = rng.normal(size=10_000)
        big.update(chunk)
        if i < 10:
            mid.update(chunk)
        if i < 1:
            small.update(chunk)
    for name, s in (("10k", small), ("100k", mid), ("1M", big)):
        sizes[name] = len(json.dumps(s.to_dict()))
        # about 3k float64 items, base64-encoded (4/3), plus a little JSON
        assert s.num_retained <= 3 * s.k
        assert sizes[name] <= 3 * s.k * 8 * 4 / 3 + 2_000
    assert sizes["1M"] <= 2 * sizes["10k"]
    assert sizes["1M"] <= 1.25 * sizes["100k"]


def test_kll_deterministic_and_round_trip() -> None:
    data = np.random.default_rng(3).normal(size=50_000)
    a, b = KLLSketch(), KLLSketch()
    for s in (a, b):
        for i in range(0, len(data), 4096):
            s.update(data[i : i + 4096])
    assert a.to_dict() == b.to_dict()
    c = KLLSketch.from_dict(json.loads(json.dumps(a.to_dict())))
    rest = np.random.default_rng(4).normal(size=10_000)
    a.update(rest)
    c.update(rest)
    assert a.to_dict() == c.to_dict()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), max_size=300), st.lists(st.floats(-1e6, 1e6), max_size=300))
def test_kll_merge_equals_union_within_bound(xs: list[float], ys: list[float]) -> None:
    a, b, u = KLLSketch(k=16), KLLSketch(k=16), KLLSketch(k=16)
    a.update(xs)
    b.update(ys)
    u.update(xs + ys)
    a.merge(b)
    assert a.n == u.n == len(xs) + len(ys)
    if a.n:
        data = np.array(xs + ys)
        assert a.min == data.min() and a.max == data.max()
        # k=16 keeps hypothesis fast; check against the bound of that k (about 10%)
        assert max_rank_error(a, data) <= 0.2


@pytest.mark.parametrize("n", [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000])
def test_hll_relative_error(n: int) -> None:
    rng = np.random.default_rng(n)
    errors = []
    for _ in range(5):
        h = HyperLogLog()
        values = rng.random(n)
        for i in range(0, n, 65_536):
            h.add_numbers(values[i : i + 65_536])
        errors.append(h.estimate() / n - 1)
    # 3.5 sigma on each single estimate, ~2 sigma on the RMS of 5
    # (+1/n: two of a handful of values may share a register)
    assert max(abs(e) for e in errors) <= 3.5 * relative_error(12) + 1 / n
    assert float(np.sqrt(np.mean(np.square(errors)))) <= 2 * relative_error(12) + 1 / n


def test_hll_strings_and_memory_bound() -> None:
    h = HyperLogLog()
    h.add_strings([f"v{i}" for i in range(20_000)])
    assert abs(h.estimate() / 20_000 - 1) <= 3.5 * relative_error(12)
    small = len(json.dumps(h.to_dict()))
    h.add_strings([f"w{i}" for i in range(200_000)])
    assert len(json.dumps(h.to_dict())) == small


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 5000)), st.lists(st.integers(0, 5000)))
def test_hll_merge_is_the_union_sketch(xs: list[int], ys: list[int]) -> None:
    a, b, u = HyperLogLog(), HyperLogLog(), HyperLogLog()
    a.add_numbers(np.array(xs, dtype=float))
    b.add_numbers(np.array(ys, dtype=float))
    u.add_numbers(np.array(xs + ys, dtype=float))
    a.merge(b)
    assert np.array_equal(a.registers, u.registers)
    truth = len(set(xs) | set(ys))
    assert abs(a.estimate() - truth) <= max(2.0, 5 * relative_error(12) * truth)


def _check_mg(mg: MisraGries, truth: Counter[str]) -> None:
    bound = mg.max_error
    assert bound <= mg.n / (mg.capacity + 1) + 1e-9
    for value, true in truth.items():
        est = mg.counts.get(value, 0)
        assert true - bound - 1e-9 <= est <= true


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.sampled_from("abcdefghijklmnop"), max_size=60), max_size=8),
       st.integers(1, 8))
def test_misra_gries_bound_holds_through_merges(batches: list[list[str]], capacity: int) -> None:
    summaries = []
    for batch in batches:
        mg = MisraGries(capacity)
        mg.add_counts(Counter(batch))
        summaries.append(mg)
    total = MisraGries(capacity)
    for mg in summaries:
        total.merge(mg)
    truth = Counter(v for batch in batches for v in batch)
    assert total.n == sum(truth.values())
    _check_mg(total, truth)
    if total.exact:
        assert total.counts == dict(truth)


def test_misra_gries_memory_bound_and_heavy_hitters() -> None:
    rng = np.random.default_rng(1)
    values = rng.zipf(1.5, 1_000_000)
    mg = MisraGries(capacity=200)
    for i in range(0, len(values), 50_000):
        mg.add_counts(Counter(map(str, values[i : i + 50_000].tolist())))
    assert len(mg.counts) <= 200
    truth = Counter(map(str, values.tolist()))
    _check_mg(mg, truth)
    assert [v for v, _ in mg.top(3)] == [v for v, _ in truth.most_common(3)]
