"""Drift and skew metrics: TFDV-compatible comparators, PSI, and the default statistical tests.

**TFDV-compatible metrics** (so thresholds port unchanged):

* :func:`linf_distance` — categorical L-infinity: value counts of each side are
  normalized *separately* (missing values are not values, so they are ignored,
  as in TFDV), and the largest absolute difference of a value's frequency is
  returned with that value (TFDV's ``LInftyDistance``).
* :func:`jensen_shannon` — numeric Jensen–Shannon divergence, TFDV's
  ``JensenShannonDivergence`` on the two *standard* (equal-width) histograms,
  10 buckets each over its own ``[min, max]``: point buckets (``low == high``)
  and buckets with infinite bounds are set aside, the rest are re-bucketed on
  the union of both sets of boundaries assuming values are uniform inside a
  bucket, point masses and infinite masses come back as extra buckets, NaN
  counts as two mismatched buckets (``[0, nan_1]`` and ``[nan_2, 0]``, exactly
  like TFDV, so NaNs never "match"); both are normalized and
  ``JSD = (KL(P||M) + KL(Q||M)) / 2`` with ``log2``, capped at 1.

  Because the buckets are equal-width over the range, one outlier (a 1,710-mile
  taxi trip) squeezes almost all values into the first bucket of one side only,
  and two samples of the same distribution look drifted. That is why it is not
  the default.
* :func:`psi` — population stability index ``sum((q - p) * ln(q / p))`` with
  ``eps`` smoothing; numeric PSI uses the 10 *quantile* buckets of the
  reference (from its sketch), so it is outlier-robust as well.

**Default alerting** (sample-size aware, outlier-robust):

* numeric: two-sample **Kolmogorov–Smirnov** from the KLL quantile sketches.
  ``D = max |F_ref(x) - F_cur(x)|`` over every retained item of both sketches
  (ranks are ``<=``, so ties are handled like the exact test). When a sketch
  has compacted, its CDF is off by up to its rank error ``eps`` (1%), so
  ``D - eps_ref - eps_cur`` is tested (conservative). The p-value is the exact
  one-sample Kolmogorov distribution ``kstwo(n_eff)`` at the effective size
  ``n_eff = n_ref * n_cur / (n_ref + n_cur)`` (finite values only). KS depends
  on ranks only: an outlier moves ``D`` by at most ``1/n``.
* categorical: **chi-square** test of homogeneity on the 2 × K table of value
  counts (top-k counters, exact until the Misra–Gries summary evicts); values
  whose expected count is under 5 in either row are pooled into one bucket.
  The effect size is the L-infinity distance of the (pooled) frequencies.
* an alert needs **both** ``p < alpha`` (default ``1e-4``: a window comparison
  makes one test per feature, ~20 per window, so the family-wise false-alarm
  rate per window pair stays near 0.2%) **and** an effect at least
  ``min_ks`` (0.05) / ``min_linf`` (0.03), so huge windows do not alert on
  trivial shifts and tiny windows cannot alert at all on noise.

>>> import numpy as np
>>> from streamml.statistics.kll import KLLSketch
>>> rng = np.random.default_rng(0)
>>> a, b, c = KLLSketch(), KLLSketch(), KLLSketch()
>>> a.update(rng.normal(size=2000)); b.update(rng.normal(size=2000))
>>> c.update(rng.normal(0.5, 1, size=2000))
>>> ks_test(a, b).alert(DriftConfig()), ks_test(a, c).alert(DriftConfig())
(False, True)
>>> round(linf_distance({"a": 3, "b": 1}, {"a": 1, "b": 1})[1], 3)
0.25
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from streamml.payloads.statistics import Bucket, Histogram
from streamml.statistics.kll import KLLSketch


@dataclass(frozen=True)
class DriftConfig:
    """Thresholds of drift/skew alerting (see module docs for the method).

    ``jsd_threshold``/``linf_threshold`` additionally enable TFDV's comparators
    (``COMPARATOR_*_HIGH`` alerts) with thresholds ported from a TFDV schema.

    >>> DriftConfig().alpha, DriftConfig(jsd_threshold=0.1).jsd_threshold
    (0.0001, 0.1)
    """

    alpha: float = 1e-4
    min_ks: float = 0.05
    min_linf: float = 0.03
    min_presence_drop: float = 0.05
    min_count: int = 30
    """Fewer finite values (or category counts) on a side: no test."""
    size_ratio: float = 2.0
    """Dataset size change: alert when a window is this many times larger/smaller."""
    jsd_threshold: float | None = None
    linf_threshold: float | None = None
    psi_threshold: float | None = None


@dataclass(frozen=True)
class TestResult:
    """Outcome of one comparison: metric, effect size, p-value and the worst value/point."""

    metric: str
    value: float
    p_value: float
    n_ref: int
    n_cur: int
    min_effect: float
    detail: str = ""

    def alert(self, config: DriftConfig) -> bool:
        """Both significant and large enough to matter."""
        return self.p_value < config.alpha and self.value >= self.min_effect


# -- TFDV-compatible ----------------------------------------------------------------------
def linf_distance(counts_a: Mapping[str, float],
                  counts_b: Mapping[str, float]) -> tuple[str, float]:
    """TFDV's L-infinity distance of two value-count maps, with the value that attains it.

    >>> linf_distance({"Cash": 50, "Card": 50}, {"Cash": 30, "Card": 60, "Bitcoin": 10})
    ('Cash', 0.2)
    """
    ta, tb = sum(counts_a.values()), sum(counts_b.values())
    best = ("", 0.0)
    for key in sorted(set(counts_a) | set(counts_b)):
        pa_ = counts_a.get(key, 0.0) / ta if ta else 0.0
        pb_ = counts_b.get(key, 0.0) / tb if tb else 0.0
        d = abs(pa_ - pb_)
        if d >= best[1]:
            best = (key, d)
    return best


def _strip(h: Histogram) -> tuple[list[Bucket], dict[float, float], float]:
    regular: list[Bucket] = []
    points: dict[float, float] = {}
    inf = 0.0
    for b in h.buckets:
        if not (math.isfinite(b.low) and math.isfinite(b.high)):
            inf += b.count
        elif b.low == b.high:
            points[b.low] = points.get(b.low, 0.0) + b.count
        else:
            regular.append(b)
    return regular, points, inf


def _rebucket(bounds: Sequence[float], buckets: list[Bucket]) -> list[float]:
    """Counts of ``buckets`` spread uniformly onto ``bounds`` (which contain their edges)."""
    out = np.zeros(max(len(bounds) - 1, 0))
    edges = np.asarray(bounds)
    for b in buckets:
        lo, hi = np.searchsorted(edges, b.low), np.searchsorted(edges, b.high)
        widths = np.diff(edges[lo:hi + 1])
        out[lo:hi] += widths / (b.high - b.low) * b.count
    return out.tolist()


def align_histograms(h1: Histogram, h2: Histogram) -> tuple[np.ndarray, np.ndarray]:
    """TFDV's ``AlignHistograms``: the two histograms as count vectors on common buckets."""
    r1, p1, inf1 = _strip(h1)
    r2, p2, inf2 = _strip(h2)
    e1 = {x for b in r1 for x in (b.low, b.high)}
    e2 = {x for b in r2 for x in (b.low, b.high)}
    bounds = sorted(e1 | e2)
    c1 = _rebucket(bounds, r1) if r1 else [0.0] * max(len(bounds) - 1, 0)
    c2 = _rebucket(bounds, r2) if r2 else [0.0] * max(len(bounds) - 1, 0)
    for point in sorted(set(p1) | set(p2)):
        c1.append(p1.get(point, 0.0))
        c2.append(p2.get(point, 0.0))
    if inf1:
        c1.append(inf1)
        c2.append(0.0)
    if inf2:
        c1.append(0.0)
        c2.append(inf2)
    if h1.num_nan or h2.num_nan:
        c1 += [0.0, float(h1.num_nan)]
        c2 += [float(h2.num_nan), 0.0]
    return np.asarray(c1, dtype=float), np.asarray(c2, dtype=float)


def _kl2(p: np.ndarray, q: np.ndarray) -> float:
    mask = (p > 0) & (q > 0)
    return float(np.sum(p[mask] * np.log2(p[mask] / q[mask])))


def jensen_shannon(h1: Histogram, h2: Histogram) -> float:
    """TFDV's numeric Jensen–Shannon divergence of two standard histograms (log2, ≤ 1).

    >>> h = lambda *c: Histogram(type="equal_width", buckets=[
    ...     Bucket(low=i, high=i + 1, count=x) for i, x in enumerate(c)])
    >>> jensen_shannon(h(1, 1), h(1, 1)), jensen_shannon(h(1, 0), h(0, 1))
    (0.0, 1.0)
    """
    c1, c2 = align_histograms(h1, h2)
    if c1.sum() == 0 or c2.sum() == 0:
        raise ValueError("unable to normalize an empty histogram")
    p, q = c1 / c1.sum(), c2 / c2.sum()
    m = (p + q) / 2
    return min((_kl2(p, m) + _kl2(q, m)) / 2, 1.0)


def equal_width_histogram(values: np.ndarray, buckets: int = 10) -> Histogram:
    """TFDV's standard histogram of raw values (for tests and batch use).

    >>> [b.count for b in equal_width_histogram(np.array([0.0, 1.0, 1.0]), 2).buckets]
    [1.0, 2.0]
    """
    nan = int(np.count_nonzero(np.isnan(values)))
    finite = values[np.isfinite(values)]
    lo, hi = float(finite.min()), float(finite.max())
    if lo == hi:
        return Histogram(type="equal_width", num_nan=nan,
                         buckets=[Bucket(low=lo, high=hi, count=finite.size)])
    counts, edges = np.histogram(finite, bins=buckets, range=(lo, hi))
    return Histogram(type="equal_width", num_nan=nan, buckets=[
        Bucket(low=float(a), high=float(b), count=float(c))
        for a, b, c in zip(edges[:-1], edges[1:], counts, strict=True)])


# -- PSI ----------------------------------------------------------------------------------
def psi(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray,
        eps: float = 1e-4) -> float:
    """Population stability index of two count (or frequency) vectors.

    >>> round(psi([50, 50], [50, 50]), 6), round(psi([50, 50], [90, 10]), 3)
    (0.0, 0.879)
    """
    p = np.asarray(expected, dtype=float)
    q = np.asarray(actual, dtype=float)
    p = np.maximum(p / p.sum(), eps)
    q = np.maximum(q / q.sum(), eps)
    return float(np.sum((q - p) * np.log(q / p)))


def _cdf(sketch: KLLSketch, xs: np.ndarray) -> np.ndarray:
    items, weights = sketch.weighted_items()
    cum = np.cumsum(weights)
    idx = np.searchsorted(items, xs, side="right")
    out = np.where(idx > 0, cum[np.maximum(idx - 1, 0)], 0)
    return out / cum[-1]


def numeric_psi(ref: KLLSketch, cur: KLLSketch, buckets: int = 10) -> float:
    """PSI over the reference's quantile buckets (outlier-robust)."""
    edges = np.unique(ref.quantiles(np.linspace(0, 1, buckets + 1))[1:-1])
    fr = np.diff(np.concatenate(([0.0], _cdf(ref, edges), [1.0])))
    fc = np.diff(np.concatenate(([0.0], _cdf(cur, edges), [1.0])))
    return psi(fr, fc)


# -- default tests ------------------------------------------------------------------------
def _sketch_error(sketch: KLLSketch, rank_error: float) -> float:
    _, weights = sketch.weighted_items()
    return 0.0 if weights.size == 0 or int(weights.max()) == 1 else rank_error


def ks_test(ref: KLLSketch, cur: KLLSketch, rank_error: float = 0.01,
            min_effect: float | None = None) -> TestResult:
    """Two-sample KS from two KLL sketches (see module docs).

    >>> import numpy as np
    >>> a, b = KLLSketch(), KLLSketch()
    >>> a.update(np.arange(100.0)); b.update(np.arange(100.0) + 50)
    >>> r = ks_test(a, b); r.value, r.p_value < 1e-6
    (0.5, True)
    """
    effect = DriftConfig().min_ks if min_effect is None else min_effect
    if ref.n == 0 or cur.n == 0:
        return TestResult("ks", 0.0, 1.0, ref.n, cur.n, effect)
    xs = np.union1d(ref.weighted_items()[0], cur.weighted_items()[0])
    diff = np.abs(_cdf(ref, xs) - _cdf(cur, xs))
    i = int(np.argmax(diff))
    d = float(diff[i])
    d_adj = max(0.0, d - _sketch_error(ref, rank_error) - _sketch_error(cur, rank_error))
    n_eff = ref.n * cur.n / (ref.n + cur.n)
    p = float(stats.kstwo.sf(d_adj, max(1, round(n_eff)))) if d_adj > 0 else 1.0
    return TestResult("ks", d, min(max(p, 0.0), 1.0), ref.n, cur.n, effect,
                      detail=f"largest CDF gap at {float(xs[i]):g}")


def chi2_test(ref: Mapping[str, float], cur: Mapping[str, float],
              min_effect: float | None = None, min_expected: float = 5.0) -> TestResult:
    """Chi-square test of homogeneity of two value-count maps (see module docs).

    >>> r = chi2_test({"Cash": 500, "Card": 500}, {"Cash": 480, "Card": 520})
    >>> r.p_value > 0.1, round(r.value, 3)
    (True, 0.02)
    >>> r = chi2_test({"Cash": 500, "Card": 500}, {"Cash": 300, "Card": 500, "Coin": 200})
    >>> r.p_value < 1e-50
    True
    """
    effect = DriftConfig().min_linf if min_effect is None else min_effect
    na, nb = float(sum(ref.values())), float(sum(cur.values()))
    if na == 0 or nb == 0:
        return TestResult("chi2", 0.0, 1.0, int(na), int(nb), effect)
    keys = sorted(set(ref) | set(cur))
    a = np.array([ref.get(k, 0.0) for k in keys], dtype=float)
    b = np.array([cur.get(k, 0.0) for k in keys], dtype=float)
    total = a + b
    small = np.minimum(total * na, total * nb) / (na + nb) < min_expected
    names = [k for k, s in zip(keys, small, strict=True) if not s]
    if small.any():
        a = np.append(a[~small], a[small].sum())
        b = np.append(b[~small], b[small].sum())
        names.append("<pooled rare values>")
    keep = (a + b) > 0
    a, b = a[keep], b[keep]
    names = [n for n, k in zip(names, keep, strict=True) if k]
    fa, fb = a / na, b / nb
    gaps = np.abs(fa - fb)
    i = int(np.argmax(gaps))
    if len(a) < 2:
        return TestResult("chi2", float(gaps[i]), 1.0, int(na), int(nb), effect)
    exp_a, exp_b = (a + b) * na / (na + nb), (a + b) * nb / (na + nb)
    stat = float(np.sum((a - exp_a) ** 2 / exp_a) + np.sum((b - exp_b) ** 2 / exp_b))
    p = float(stats.chi2.sf(stat, len(a) - 1))
    return TestResult("chi2", float(gaps[i]), p, int(na), int(nb), effect,
                      detail=f"largest frequency change: {names[i]!r} "
                             f"{fa[i]:.3f} -> {fb[i]:.3f}")


def presence_test(ref_present: int, ref_total: int, cur_present: int, cur_total: int,
                  min_effect: float | None = None) -> TestResult:
    """One-sided two-proportion z-test that the present fraction dropped.

    >>> presence_test(990, 1000, 700, 1000).p_value < 1e-10
    True
    """
    effect = DriftConfig().min_presence_drop if min_effect is None else min_effect
    if ref_total == 0 or cur_total == 0:
        return TestResult("presence", 0.0, 1.0, ref_total, cur_total, effect)
    p1, p2 = ref_present / ref_total, cur_present / cur_total
    pooled = (ref_present + cur_present) / (ref_total + cur_total)
    se = math.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / ref_total + 1 / cur_total))
    p = float(stats.norm.sf((p1 - p2) / se))
    return TestResult("presence", p1 - p2, p, ref_total, cur_total, effect,
                      detail=f"present fraction {p1:.3f} -> {p2:.3f}")
