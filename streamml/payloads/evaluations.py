"""Payload of ``<pipeline>.evaluations``: the Evaluator's gate decisions, with reasons.

The gate follows TFMA: value thresholds, and change thresholds against the
blessed baseline, each checked overall or on a slice. It fails closed: with no
thresholds, ``blessed`` is ``False`` and ``reasons`` says so.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from streamml.payloads.base import EpochMs, Name, Payload, TimeRange


class ThresholdCheck(Payload):
    """One threshold and its outcome.

    >>> ThresholdCheck(metric="roc_auc", kind="value", direction="higher", threshold=0.9,
    ...                value=0.93, passed=True).passed
    True
    """

    metric: Name
    kind: Literal["value", "change"]
    """``value``: compare the metric itself; ``change``: compare it with the baseline's."""
    direction: Literal["higher", "lower"]
    """Which way is better."""
    threshold: float
    relative: bool = False
    """For ``change`` checks: ``threshold`` is a fraction of the baseline value."""
    slice: str | None = None
    """``feature=value`` when checked on a slice, ``None`` overall."""
    value: float | None = None
    """The candidate's value (``None`` when it could not be computed)."""
    baseline: float | None = None
    """The blessed baseline's value, for ``change`` checks."""
    passed: bool


class SliceMetrics(Payload):
    """Metrics on the examples where one categorical feature has one value."""

    feature: Name
    value: str
    examples: Annotated[int, Field(ge=0)]
    metrics: dict[str, float]


class Evaluation(Payload):
    """One gate decision on one candidate; the record key is ``id``.

    >>> from streamml import serde
    >>> e = Evaluation(id="tipper-logreg@7", pipeline="demo", candidate_id="tipper-logreg@7",
    ...                model="tipper-logreg", examples=5000, min_examples=1000,
    ...                metrics={"roc_auc": 0.93}, blessed=False,
    ...                reasons=["no thresholds configured: failing closed"],
    ...                decided_at=1_700_000_000_000)
    >>> Evaluation.model_validate(serde.decode(serde.encode(e.to_json()))) == e
    True
    """

    id: Annotated[str, Field(min_length=1, max_length=512)]
    """Deterministic decision id (the candidate id, plus a window id if re-judged)."""
    pipeline: Name
    candidate_id: str
    model: Name
    """Challenger name of the candidate."""
    baseline: str | None = None
    """The blessed model compared against, ``<name>:<version>``; ``None`` for the first."""
    task: Literal["classification", "regression"] | None = None
    window: TimeRange | None = None
    """Event-time range of the eval-split examples the metrics come from."""
    examples: Annotated[int, Field(ge=0)]
    """Eval-split examples scored (prequentially: test, then train)."""
    min_examples: Annotated[int, Field(ge=0)] = 0
    metrics: dict[str, float]
    """Overall metrics (``accuracy``, ``log_loss``, ``roc_auc``, ``f1``, ``mae``, ``rmse``...)."""
    baseline_metrics: dict[str, float] = Field(default_factory=dict)
    slices: list[SliceMetrics] = Field(default_factory=list)
    checks: list[ThresholdCheck] = Field(default_factory=list)
    blessed: bool
    reasons: list[str]
    """Why: one line per failed check, or why nothing could be blessed."""
    decided_at: EpochMs
    component: Name = "Evaluator"

    @model_validator(mode="after")
    def _fail_closed(self) -> Self:
        if self.blessed and not self.checks:
            raise ValueError("a candidate cannot be blessed without threshold checks")
        if self.blessed and not all(c.passed for c in self.checks):
            raise ValueError("a candidate cannot be blessed with a failed check")
        if not self.blessed and not self.reasons:
            raise ValueError("a rejection needs at least one reason")
        return self
