"""Per-window checks: one window's statistics against a reference, or against the schema.

:func:`compare_statistics` compares two
:class:`~streamml.statistics.StatisticsAccumulator` (rebuilt from
``StatisticsWindow`` payloads published with sketches) feature by feature:

* **distribution** — numeric features by KS on the quantile sketches, strings
  and bools by chi-square on value counts (:mod:`~streamml.validation.drift`),
  reported as ``kind`` (``DRIFT`` against the previous window or training
  statistics, ``SKEW`` for serving against training); with the TFDV
  thresholds configured, also ``COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH`` /
  ``COMPARATOR_L_INFTY_HIGH``, and PSI (``DRIFT``/``SKEW`` with metric ``psi``);
* **presence drop** — ``FEATURE_TYPE_LOW_FRACTION_PRESENT`` by a one-sided
  two-proportion test; ``SCHEMA_MISSING_COLUMN`` when a feature present in the
  reference has no value at all in a window of at least ``min_count`` examples
  (whether its key is absent or its values are all missing);
* **dataset size** — ``DATASET_HIGH_NUM_EXAMPLES``/``DATASET_LOW_NUM_EXAMPLES``
  when the window is ``size_ratio`` times larger/smaller (for time windows;
  count windows have a fixed size) and a binomial test agrees.

:func:`check_presence_against_schema` tests a window's present fraction
against the schema's ``min_fraction`` (one-sided binomial test).

>>> import numpy as np
>>> ref, same, shifted = StatisticsAccumulator(), StatisticsAccumulator(), StatisticsAccumulator()
>>> rng = np.random.default_rng(1)
>>> ref.add_batch([{"x": float(v)} for v in rng.normal(size=1000)])
>>> same.add_batch([{"x": float(v)} for v in rng.normal(size=1000)])
>>> shifted.add_batch([{"x": float(v)} for v in rng.normal(1, 1, size=1000)])
>>> compare_statistics(ref, same, DriftConfig())
[]
>>> [(f.kind, f.feature, f.metric) for f in compare_statistics(ref, shifted, DriftConfig())]
[('DRIFT', 'x', 'ks')]
"""

from __future__ import annotations

from dataclasses import dataclass

from scipy import stats

from streamml.payloads.schema import SchemaVersion
from streamml.statistics.dataset import StatisticsAccumulator
from streamml.validation.drift import (
    DriftConfig,
    chi2_test,
    jensen_shannon,
    ks_test,
    linf_distance,
    numeric_psi,
    presence_test,
    psi,
)


@dataclass(frozen=True)
class WindowFinding:
    """One window-level anomaly."""

    kind: str
    feature: str | None
    metric: str
    value: float
    threshold: float
    message: str
    severity: str = "warning"
    p_value: float | None = None


def _counts(acc: StatisticsAccumulator, name: str) -> dict[str, float]:
    cat = acc.features[name].categorical
    return {k: float(v) for k, v in cat.top_k.counts.items()} if cat is not None else {}


def compare_statistics(ref: StatisticsAccumulator, cur: StatisticsAccumulator,
                       config: DriftConfig, kind: str = "DRIFT",
                       rank_error: float = 0.01) -> list[WindowFinding]:
    """Findings of ``cur`` against ``ref`` (see module docs): dropped columns first, then
    the other features sorted by name."""
    out: list[WindowFinding] = []
    opts = cur.options
    for name in sorted(set(ref.features) - set(cur.features)):  # the column was dropped
        fr = ref.features[name]
        if fr.present >= config.min_count and cur.num_examples >= config.min_count:
            out.append(WindowFinding("SCHEMA_MISSING_COLUMN", name, "presence", 0.0,
                                     fr.present / ref.num_examples,
                                     f"{name!r} is absent from the window", "error"))
    for name in sorted(set(ref.features) & set(cur.features)):
        fr, fc = ref.features[name], cur.features[name]
        # presence
        if fr.present >= config.min_count and cur.num_examples >= config.min_count:
            if fc.present == 0:
                out.append(WindowFinding("SCHEMA_MISSING_COLUMN", name, "presence", 0.0,
                                         fr.present / ref.num_examples,
                                         f"{name!r} has no value in the window", "error"))
                continue
            t = presence_test(fr.present, ref.num_examples, fc.present, cur.num_examples,
                              config.min_presence_drop)
            if t.alert(config):
                out.append(WindowFinding("FEATURE_TYPE_LOW_FRACTION_PRESENT", name, "presence",
                                         t.value, config.min_presence_drop,
                                         f"{name!r} present fraction dropped: {t.detail}",
                                         "warning", t.p_value))
        # distribution
        if (fr.numeric is not None and fc.numeric is not None
                and min(fr.numeric.n, fc.numeric.n) >= config.min_count):
            t = ks_test(fr.numeric.quantiles, fc.numeric.quantiles, rank_error, config.min_ks)
            if t.alert(config):
                out.append(WindowFinding(kind, name, "ks", t.value, config.min_ks,
                                         f"{name!r} distribution changed (KS D={t.value:.3f}, "
                                         f"p={t.p_value:.2g}, {t.detail})", "warning",
                                         t.p_value))
            if config.psi_threshold is not None:
                v = numeric_psi(fr.numeric.quantiles, fc.numeric.quantiles)
                if v > config.psi_threshold:
                    out.append(WindowFinding(kind, name, "psi", v, config.psi_threshold,
                                             f"{name!r} PSI {v:.3f}"))
            if config.jsd_threshold is not None:
                hr, hc = fr.numeric.extract(opts).histograms, fc.numeric.extract(opts).histograms
                v = jensen_shannon(hr[0], hc[0])
                if v > config.jsd_threshold:
                    out.append(WindowFinding("COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH", name,
                                             "jsd", v, config.jsd_threshold,
                                             f"{name!r} Jensen-Shannon divergence {v:.3f}"))
        if (fr.categorical is not None and fc.categorical is not None
                and min(fr.categorical.n, fc.categorical.n) >= config.min_count):
            cr, cc = _counts(ref, name), _counts(cur, name)
            t = chi2_test(cr, cc, config.min_linf)
            if t.alert(config):
                out.append(WindowFinding(kind, name, "chi2", t.value, config.min_linf,
                                         f"{name!r} value frequencies changed ({t.detail}, "
                                         f"p={t.p_value:.2g})", "warning", t.p_value))
            if config.linf_threshold is not None:
                key, v = linf_distance(cr, cc)
                if v > config.linf_threshold:
                    out.append(WindowFinding("COMPARATOR_L_INFTY_HIGH", name, "linf", v,
                                             config.linf_threshold,
                                             f"{name!r} L-infinity {v:.3f} (value {key!r})"))
            if config.psi_threshold is not None:
                keys = sorted(set(cr) | set(cc))
                v = psi([cr.get(k, 0) for k in keys], [cc.get(k, 0) for k in keys])
                if v > config.psi_threshold:
                    out.append(WindowFinding(kind, name, "psi", v, config.psi_threshold,
                                             f"{name!r} PSI {v:.3f}"))
    return out


def check_size(prev_examples: int, cur_examples: int,
               config: DriftConfig) -> WindowFinding | None:
    """Dataset size change between two windows of the same kind and split.

    >>> check_size(1000, 100, DriftConfig()).kind, check_size(1000, 900, DriftConfig())
    ('DATASET_LOW_NUM_EXAMPLES', None)
    """
    total = prev_examples + cur_examples
    if total == 0 or max(prev_examples, cur_examples) < config.min_count:
        return None
    ratio = cur_examples / prev_examples if prev_examples else float("inf")
    if ratio >= config.size_ratio:
        p = float(stats.binom.sf(cur_examples - 1, total, 0.5))
        kind = "DATASET_HIGH_NUM_EXAMPLES"
    elif ratio <= 1 / config.size_ratio:
        p = float(stats.binom.cdf(cur_examples, total, 0.5))
        kind = "DATASET_LOW_NUM_EXAMPLES"
    else:
        return None
    if p >= config.alpha:
        return None
    return WindowFinding(kind, None, "count", ratio, config.size_ratio,
                         f"window has {cur_examples} examples, previous {prev_examples}",
                         "warning", p)


def check_presence_against_schema(schema: SchemaVersion, cur: StatisticsAccumulator,
                                  config: DriftConfig) -> list[WindowFinding]:
    """``FEATURE_TYPE_LOW_FRACTION_PRESENT`` when significantly below ``min_fraction``."""
    out: list[WindowFinding] = []
    n = cur.num_examples
    if n < config.min_count:
        return out
    for name, spec in sorted(schema.features.items()):
        need = 1.0 if spec.presence == "required" else (spec.min_fraction or 0.0)
        if need <= 0 or spec.presence == "required":
            continue  # required features are checked per example
        present = cur.features[name].present if name in cur.features else 0
        p = float(stats.binom.cdf(present, n, need))
        if present / n < need and p < config.alpha:
            out.append(WindowFinding("FEATURE_TYPE_LOW_FRACTION_PRESENT", name, "presence",
                                     present / n, need,
                                     f"{name!r} present in {present / n:.3f} of the window, "
                                     f"schema min_fraction {need:g}", "warning", p))
    return out
