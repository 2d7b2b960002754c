"""The TFMA-style gate: every threshold kind, fail-closed, first model by value alone."""

from __future__ import annotations

import pytest

from streamml.learning.gate import GateConfig, MetricThreshold, judge
from streamml.payloads.evaluations import Evaluation, SliceMetrics


def gate(*thresholds: MetricThreshold, min_examples: int = 10) -> GateConfig:
    return GateConfig(thresholds=list(thresholds), min_examples=min_examples)


def test_no_thresholds_fails_closed() -> None:
    blessed, checks, reasons = judge(GateConfig(), {"roc_auc": 1.0}, None, examples=10_000)
    assert not blessed and checks == []
    assert reasons == ["no thresholds configured: failing closed"]


def test_threshold_without_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="sets no bound"):
        MetricThreshold(metric="roc_auc")


@pytest.mark.parametrize(("value", "ok"), [(0.91, True), (0.90, True), (0.89, False)])
def test_value_lower_bound(value: float, ok: bool) -> None:
    blessed, checks, _ = judge(gate(MetricThreshold(metric="roc_auc", lower=0.9)),
                               {"roc_auc": value}, None, examples=100)
    assert blessed is ok and checks[0].kind == "value" and checks[0].direction == "higher"


@pytest.mark.parametrize(("value", "ok"), [(0.3, True), (0.6, False)])
def test_value_upper_bound(value: float, ok: bool) -> None:
    blessed, checks, reasons = judge(gate(MetricThreshold(metric="log_loss", upper=0.5)),
                                     {"log_loss": value}, None, examples=100)
    assert blessed is ok and checks[0].direction == "lower"
    assert ok or "log_loss = 0.6, required <= 0.5" in reasons


def test_missing_metric_fails_its_check() -> None:
    blessed, checks, reasons = judge(gate(MetricThreshold(metric="roc_auc", lower=0.5)),
                                     {"accuracy": 0.99}, None, examples=100)
    assert not blessed and checks[0].value is None and "roc_auc = n/a" in reasons[-1]


def test_min_examples() -> None:
    blessed, _, reasons = judge(gate(MetricThreshold(metric="roc_auc", lower=0.5),
                                     min_examples=1000), {"roc_auc": 0.99}, None, examples=999)
    assert not blessed and "only 999 evaluated examples, 1000 required" in reasons


def test_first_model_value_only_skips_change() -> None:
    g = gate(MetricThreshold(metric="roc_auc", lower=0.8, change_absolute=0.05))
    blessed, checks, reasons = judge(g, {"roc_auc": 0.85}, None, examples=100)
    assert blessed and [c.kind for c in checks] == ["value"]
    assert reasons[0].startswith("first model")


def test_first_model_with_only_change_thresholds_fails_closed() -> None:
    g = gate(MetricThreshold(metric="roc_auc", change_relative=0.0))
    blessed, checks, reasons = judge(g, {"roc_auc": 0.99}, None, examples=100)
    assert not blessed and checks == []
    assert "no value thresholds for a first model: failing closed" in reasons


@pytest.mark.parametrize(("cand", "base", "threshold", "ok"), [
    (0.93, 0.92, 0.0, True),      # better
    (0.92, 0.92, 0.0, True),      # equal passes a zero threshold
    (0.91, 0.92, 0.0, False),     # worse
    (0.915, 0.92, -0.01, True),   # tolerated degradation
    (0.93, 0.92, 0.02, False),    # not better by enough
])
def test_change_absolute_higher_is_better(cand: float, base: float, threshold: float,
                                          ok: bool) -> None:
    g = gate(MetricThreshold(metric="roc_auc", change_absolute=threshold))
    blessed, checks, _ = judge(g, {"roc_auc": cand}, {"roc_auc": base}, examples=100)
    assert blessed is ok
    assert checks[0].kind == "change" and checks[0].baseline == base and not checks[0].relative


@pytest.mark.parametrize(("cand", "ok"), [(0.40, True), (0.45, False)])
def test_change_relative_lower_is_better(cand: float, ok: bool) -> None:
    # log_loss: lower is better; require a 10% improvement over the baseline 0.5
    g = gate(MetricThreshold(metric="log_loss", change_relative=0.1))
    blessed, checks, _ = judge(g, {"log_loss": cand}, {"log_loss": 0.5}, examples=100)
    assert blessed is ok and checks[0].direction == "lower" and checks[0].relative


def test_explicit_direction_overrides_default() -> None:
    g = gate(MetricThreshold(metric="custom", change_absolute=0.0, direction="lower"))
    assert judge(g, {"custom": 1.0}, {"custom": 2.0}, examples=100)[0]
    assert not judge(g, {"custom": 3.0}, {"custom": 2.0}, examples=100)[0]


def test_slice_thresholds() -> None:
    slices = [SliceMetrics(feature="payment_type", value="Cash", examples=50,
                           metrics={"accuracy": 0.7})]
    g = gate(MetricThreshold(metric="accuracy", lower=0.8, slice="payment_type=Cash"))
    blessed, checks, reasons = judge(g, {"accuracy": 0.95}, None, examples=100, slices=slices)
    assert not blessed and checks[0].slice == "payment_type=Cash"
    assert "accuracy on payment_type=Cash = 0.7, required >= 0.8" in reasons
    g2 = gate(MetricThreshold(metric="accuracy", lower=0.5, slice="payment_type=Bitcoin"))
    assert not judge(g2, {"accuracy": 0.95}, None, examples=100, slices=slices)[0]


def test_decisions_fit_the_fail_closed_payload() -> None:
    for metrics in ({"roc_auc": 0.95}, {"roc_auc": 0.5}):
        blessed, checks, reasons = judge(gate(MetricThreshold(metric="roc_auc", lower=0.9)),
                                         metrics, None, examples=100)
        Evaluation(id="m@1", pipeline="p", candidate_id="m@1", model="m", examples=100,
                   metrics=metrics, checks=checks, blessed=blessed, reasons=reasons,
                   decided_at=0)
