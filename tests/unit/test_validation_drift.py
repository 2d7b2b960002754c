"""Drift metrics against hand-computed TFDV formulas; no alert on same-distribution taxi
samples, alerts on real shifts; TFDV's JSD flags the 1,710-mile trip, the default does not."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from scipy import stats

from streamml.payloads.statistics import Bucket, Histogram
from streamml.statistics import StatisticsAccumulator
from streamml.statistics.kll import KLLSketch
from streamml.validation.compare import compare_statistics
from streamml.validation.drift import (
    DriftConfig,
    chi2_test,
    equal_width_histogram,
    jensen_shannon,
    ks_test,
    linf_distance,
    psi,
)
from streamml.validation.schema import read_table

TAXI = Path(__file__).resolve().parents[2] / "streamml" / "data" / "taxi.csv"


def hist(*buckets: tuple[float, float, float], nan: int = 0) -> Histogram:
    return Histogram(type="equal_width", num_nan=nan,
                     buckets=[Bucket(low=a, high=b, count=c) for a, b, c in buckets])


def test_jsd_matches_tfdv_alignment_by_hand() -> None:
    # same boundaries: plain JSD
    assert jensen_shannon(hist((0, 1, 1), (1, 2, 1)), hist((0, 2, 2))) == 0.0
    # [0,1]:4 vs [0,2]:4 -> union bounds {0,1,2}: p=[1,0], q=[.5,.5] (uniform within bucket)
    m = [0.75, 0.25]
    kl_p = math.log2(1 / m[0])
    kl_q = 0.5 * math.log2(0.5 / m[0]) + 0.5 * math.log2(0.5 / m[1])
    assert jensen_shannon(hist((0, 1, 4)), hist((0, 2, 4))) == pytest.approx((kl_p + kl_q) / 2)
    # NaN goes to two mismatched buckets, as in TFDV: [0, n1] vs [n2, 0]
    v = jensen_shannon(hist((0, 1, 2), nan=2), hist((0, 1, 2), nan=2))
    p = np.array([2, 0, 2]) / 4
    q = np.array([2, 2, 0]) / 4
    mm = (p + q) / 2
    kl = lambda a, b: sum(x * math.log2(x / y) for x, y in zip(a, b, strict=True) if x > 0)  # noqa: E731
    assert v == pytest.approx((kl(p, mm) + kl(q, mm)) / 2)
    # point buckets (single value) are separate masses
    assert jensen_shannon(hist((3, 3, 5)), hist((3, 3, 7))) == 0.0


def test_linf_ignores_missing_and_psi_by_hand() -> None:
    key, d = linf_distance({"Cash": 60, "Card": 40}, {"Cash": 50, "Card": 30, "Coin": 20})
    assert (key, d) == ("Coin", pytest.approx(0.2))
    expected = 0.4 * math.log(0.9 / 0.5) + (-0.4) * math.log(0.1 / 0.5)
    assert psi([50, 50], [90, 10]) == pytest.approx(expected)


def test_ks_from_exact_sketches_equals_scipy() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=300), rng.normal(0.3, 1, size=200)
    a, b = KLLSketch(), KLLSketch()
    a.update(x)
    b.update(y)
    r = ks_test(a, b)
    ref = stats.ks_2samp(x, y)
    assert r.value == pytest.approx(ref.statistic)
    assert r.p_value == pytest.approx(ref.pvalue, rel=0.3)


def test_chi2_equals_scipy_contingency() -> None:
    ra, rb = {"a": 100, "b": 200, "c": 50}, {"a": 120, "b": 150, "c": 80}
    r = chi2_test(ra, rb)
    table = np.array([[100, 200, 50], [120, 150, 80]])
    assert r.p_value == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue)


@pytest.fixture(scope="module")
def taxi() -> pa.Table:
    return read_table(TAXI)


def _acc(table: pa.Table) -> StatisticsAccumulator:
    acc = StatisticsAccumulator()
    acc.add_batch(table)
    return acc


def test_random_windows_of_taxi_never_alert(taxi: pa.Table) -> None:
    pairs = alerts = 0
    for seed in range(4):
        idx = np.random.default_rng(seed).permutation(taxi.num_rows)
        accs = [_acc(taxi.take(idx[i:i + 1000])) for i in range(0, 15_000, 1000)]
        ref = _acc(taxi.take(idx[:5000]))
        for a, b in zip(accs, accs[1:], strict=False):
            pairs += 1
            alerts += len(compare_statistics(a, b, DriftConfig()))
        for a in accs[5:]:  # held-out windows against a "training" reference
            pairs += 1
            alerts += len(compare_statistics(ref, a, DriftConfig()))
    assert pairs == 96 and alerts == 0


def test_tfdv_jsd_flags_the_outlier_trip_the_default_does_not(taxi: pa.Table) -> None:
    miles = taxi["trip_miles"].to_numpy(zero_copy_only=False)
    outlier = int(np.nanargmax(miles))
    assert miles[outlier] == 1710.0
    rest = np.delete(np.arange(taxi.num_rows), outlier)
    idx = np.random.default_rng(0).permutation(rest)
    with_outlier = np.append(idx[:2000], outlier)
    a, b = taxi.take(with_outlier), taxi.take(idx[2000:4000])
    ha = equal_width_histogram(a["trip_miles"].to_numpy(zero_copy_only=False))
    hb = equal_width_histogram(b["trip_miles"].to_numpy(zero_copy_only=False))
    assert jensen_shannon(ha, hb) > 0.1  # TFDV's usual threshold would alert
    found = compare_statistics(_acc(a), _acc(b), DriftConfig(jsd_threshold=0.1))
    kinds = {(f.kind, f.feature) for f in found}
    assert ("COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH", "trip_miles") in kinds
    assert not [f for f in found if f.kind == "DRIFT"]


def _set(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.column_names.index(name), name, values)


@pytest.mark.parametrize(("fault", "feature", "kind"), [
    ("fare x1.5", "fare", "DRIFT"),
    ("new payment type", "payment_type", "DRIFT"),
    ("trip_miles +2", "trip_miles", "DRIFT"),
    ("tips presence drop", "tips", "FEATURE_TYPE_LOW_FRACTION_PRESENT"),
])
def test_real_shifts_alert_in_every_window(taxi: pa.Table, fault: str, feature: str,
                                           kind: str) -> None:
    idx = np.random.default_rng(1).permutation(taxi.num_rows)
    ref = _acc(taxi.take(idx[:5000]))
    for i in range(5):
        w = taxi.take(idx[5000 + i * 1000: 6000 + i * 1000])
        if fault == "fare x1.5":
            w = _set(w, "fare", pc.multiply(w["fare"], 1.5))
        elif fault == "new payment type":
            pay = [("Mobile" if j % 10 == 0 else v) for j, v in
                   enumerate(w["payment_type"].to_pylist())]
            w = _set(w, "payment_type", pa.array(pay))
        elif fault == "trip_miles +2":
            w = _set(w, "trip_miles", pc.add(w["trip_miles"], 2.0))
        else:
            tips = [None if j % 3 else v for j, v in enumerate(w["tips"].to_pylist())]
            w = _set(w, "tips", pa.array(tips, pa.float64()))
        found = compare_statistics(ref, _acc(w), DriftConfig())
        assert [(f.kind, f.feature) for f in found] == [(kind, feature)]
