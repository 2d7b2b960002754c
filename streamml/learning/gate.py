"""The blessing gate, TFMA style: value thresholds, change thresholds, minimum count.

A :class:`MetricThreshold` bounds one metric (overall, or on a ``feature=value``
slice) with

* a **value** threshold: ``lower`` and/or ``upper`` bounds on the metric itself;
* a **change** threshold against the blessed baseline measured on the *same*
  examples: ``change_absolute`` and/or ``change_relative`` is the minimum
  improvement in the better ``direction`` (``higher``/``lower``; by default the
  metric's natural one). Negative values tolerate a bounded degradation, as
  TFMA's ``-1e-10`` idiom does.

:func:`judge` **fails closed**: no thresholds → not blessed; too few evaluated
examples → not blessed; a metric that cannot be computed fails its check. The
first model (no baseline) is judged by value thresholds alone; if there are
none, it is not blessed.

>>> gate = GateConfig(thresholds=[MetricThreshold(metric="roc_auc", lower=0.9),
...                               MetricThreshold(metric="roc_auc", change_absolute=0.0)],
...                   min_examples=10)
>>> blessed, checks, reasons = judge(gate, {"roc_auc": 0.93}, None, examples=100)
>>> blessed, [c.kind for c in checks], reasons
(True, ['value'], ['first model: judged by value thresholds alone'])
>>> judge(gate, {"roc_auc": 0.93}, {"roc_auc": 0.95}, examples=100)[2]
['roc_auc improvement -0.02 < required 0 (higher is better, baseline 0.95)']
>>> judge(GateConfig(), {"roc_auc": 0.99}, None, examples=100)[:1]
(False,)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from streamml.learning.metrics import HIGHER_IS_BETTER, slice_key
from streamml.payloads.evaluations import SliceMetrics, ThresholdCheck


class MetricThreshold(BaseModel):
    """Thresholds on one metric; at least one bound must be set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str
    lower: float | None = None
    """Value threshold: the metric must be ``>= lower``."""
    upper: float | None = None
    """Value threshold: the metric must be ``<= upper``."""
    change_absolute: float | None = None
    """Change threshold: minimum improvement over the baseline, in metric units."""
    change_relative: float | None = None
    """Change threshold: minimum improvement as a fraction of ``|baseline|``."""
    direction: Literal["higher", "lower"] | None = None
    """Which way is better for change thresholds; default from the metric's name."""
    slice: str | None = None
    """``feature=value`` to check on a slice instead of overall."""

    @model_validator(mode="after")
    def _has_bound(self) -> Self:
        if all(v is None for v in (self.lower, self.upper, self.change_absolute,
                                   self.change_relative)):
            raise ValueError(f"threshold on {self.metric!r} sets no bound")
        return self

    def better(self) -> Literal["higher", "lower"]:
        if self.direction is not None:
            return self.direction
        return "higher" if HIGHER_IS_BETTER.get(self.metric, True) else "lower"


class GateConfig(BaseModel):
    """The gate: thresholds and the minimum number of evaluated examples."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    thresholds: list[MetricThreshold] = Field(default_factory=list)
    min_examples: int = Field(default=1000, ge=0)


def metrics_for(metrics: Mapping[str, float], slices: Sequence[SliceMetrics],
                where: str | None) -> Mapping[str, float] | None:
    """Overall metrics, or those of slice ``where`` (``None`` if that slice is absent)."""
    if where is None:
        return metrics
    for s in slices:
        if slice_key(s.feature, s.value) == where:
            return s.metrics
    return None


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.6g}"


def judge(
    config: GateConfig,
    metrics: Mapping[str, float],
    baseline: Mapping[str, float] | None,
    *,
    examples: int,
    slices: Sequence[SliceMetrics] = (),
    baseline_slices: Sequence[SliceMetrics] = (),
) -> tuple[bool, list[ThresholdCheck], list[str]]:
    """``(blessed, checks, reasons)``; ``baseline`` is ``None`` for the first model."""
    reasons: list[str] = []
    checks: list[ThresholdCheck] = []
    if not config.thresholds:
        return False, [], ["no thresholds configured: failing closed"]
    first = baseline is None
    for th in config.thresholds:
        cand = metrics_for(metrics, slices, th.slice)
        value = None if cand is None else cand.get(th.metric)
        where = f" on {th.slice}" if th.slice else ""
        bounds: tuple[tuple[str, float | None, Literal["higher", "lower"]], ...] = (
            ("lower", th.lower, "higher"), ("upper", th.upper, "lower"))
        for kind, bound, direction in bounds:
            if bound is None:
                continue
            ok = value is not None and math.isfinite(value) and (
                value >= bound if kind == "lower" else value <= bound)
            checks.append(ThresholdCheck(metric=th.metric, kind="value", direction=direction,
                                         threshold=bound, slice=th.slice, value=value, passed=ok))
            if not ok:
                op = ">=" if kind == "lower" else "<="
                reasons.append(f"{th.metric}{where} = {_num(value)}, required {op} {bound:g}")
        if first:
            continue
        base_src = metrics_for(baseline or {}, baseline_slices, th.slice)
        base = None if base_src is None else base_src.get(th.metric)
        better = th.better()
        for relative, bound in ((False, th.change_absolute), (True, th.change_relative)):
            if bound is None:
                continue
            ok, delta = False, None
            if value is not None and base is not None and math.isfinite(value) \
                    and math.isfinite(base):
                delta = (value - base) if better == "higher" else (base - value)
                if relative:
                    delta = delta / abs(base) if base != 0 else (math.inf if delta > 0 else 0.0)
                ok = delta >= bound
            checks.append(ThresholdCheck(metric=th.metric, kind="change", direction=better,
                                         threshold=bound, relative=relative, slice=th.slice,
                                         value=value, baseline=base, passed=ok))
            if not ok:
                unit = " (relative)" if relative else ""
                reasons.append(
                    f"{th.metric}{where} improvement{unit} {_num(delta)} < required {bound:g} "
                    f"({better} is better, baseline {_num(base)})")
    if first:
        reasons.insert(0, "first model: judged by value thresholds alone")
        if not checks:
            reasons.append("no value thresholds for a first model: failing closed")
    if examples < config.min_examples:
        reasons.append(f"only {examples} evaluated examples, {config.min_examples} required")
    blessed = bool(checks) and all(c.passed for c in checks) \
        and examples >= config.min_examples
    if not blessed and not reasons:
        reasons.append("not blessed")
    return blessed, checks, reasons
