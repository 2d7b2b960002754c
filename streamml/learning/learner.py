"""A Trainer's learners: one challenger's model and what it learned, the
per-micro-batch bookkeeping the Trainer applies to them, and the candidate payload."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streamml.learning.artifact import algorithm_of, dump_model, inline_artifact, jsonable
from streamml.payloads.artifacts import FeatureSignature, ModelSignature
from streamml.payloads.base import OffsetRange, TimeRange
from streamml.payloads.candidates import Candidate


@dataclass
class Learner:
    """One challenger: its model and everything that describes what it learned."""

    name: str
    source: str
    """Name of the challenger whose model source built it (itself, unless spawned)."""
    model: Any
    task: str
    sequence: int = 0
    parent: str | None = None
    examples_seen: int = 0
    since_snapshot: int = 0
    ranges: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    first_time: int | None = None
    last_time: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    """Running sums of the progressive (test-then-train) metrics."""
    batches: int = 0
    """Mini-batches learned with ``learn_many`` (``Trainer(mini_batch=...)``)."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"batches": 0, **state})  # checkpoints from before ``batches``


@dataclass(slots=True)
class PendingBatch:
    """Bookkeeping of the examples learned since the Trainer last flushed it to its learners."""

    n: int = 0
    ranges: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    first: int | None = None
    last: int | None = None

    def book(self, n: int, first: int | None, last: int | None) -> None:
        """Add a segment's example count and event-time range."""
        self.n += n
        if first is not None and (self.first is None or first < self.first):
            self.first = first
        if last is not None and (self.last is None or last > self.last):
            self.last = last

    def apply(self, learners: Iterable[Learner]) -> None:
        """Count these examples as learned by every learner (metrics' n, ranges, times)."""
        for learner in learners:
            if learner.metrics:
                learner.metrics["n"] += self.n
            learner.examples_seen += self.n
            learner.since_snapshot += self.n
            for tp, (lo, hi) in self.ranges.items():
                r = learner.ranges.get(tp)
                if r is None:
                    learner.ranges[tp] = [lo, hi]
                else:
                    r[0], r[1] = min(r[0], lo), max(r[1], hi)
            if self.first is not None and (learner.first_time is None
                                           or self.first < learner.first_time):
                learner.first_time = self.first
            if self.last is not None and (learner.last_time is None
                                          or self.last > learner.last_time):
                learner.last_time = self.last


def progressive_metrics(task: str) -> dict[str, float]:
    """Running sums (cheap, inline): the Evaluator computes the costly metrics (ROC AUC...)."""
    if task == "classification":
        return {"n": 0.0, "correct": 0.0, "log_loss": 0.0}
    return {"n": 0.0, "abs_error": 0.0}


def report_metrics(sums: dict[str, float]) -> dict[str, float]:
    """Progressive metrics from their running sums.

    >>> report_metrics({"n": 4.0, "correct": 3.0, "log_loss": 1.0})
    {'progressive_accuracy': 0.75, 'progressive_log_loss': 0.25}
    """
    n = sums.get("n", 0.0)
    if not n:
        return {}
    if "correct" in sums:
        return {"progressive_accuracy": sums["correct"] / n,
                "progressive_log_loss": sums["log_loss"] / n}
    return {"progressive_mae": sums["abs_error"] / n}


def feature_type(value: Any) -> tuple[str, str] | None:
    """``(type, valency)`` of a feature value, ``None`` when missing.

    >>> feature_type([None, 2.5]), feature_type(True), feature_type(None)
    (('float', 'list'), ('bool', 'scalar'), None)
    """
    valency = "scalar"
    if isinstance(value, list):
        valency = "list"
        value = next((v for v in value if v is not None), None)
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool", valency
    if isinstance(value, int):
        return "int", valency
    if isinstance(value, float):
        return "float", valency
    return "string", valency


def candidate_of(learner: Learner, cid: str, pipeline: str, *, classes: set[Any],
                 feature_types: dict[str, tuple[str, str]], label: str,
                 label_counters: dict[str, int]) -> Candidate:
    """The :class:`Candidate` payload of ``learner`` as it is now (pickled model included)."""
    data = dump_model(learner.model)
    steps = getattr(learner.model, "steps", None)
    est = list(steps.values())[-1] if steps else learner.model
    labels = None
    if learner.task == "classification":
        labels = sorted((c for c in classes if isinstance(c, str | int | bool)), key=repr)
    signature = ModelSignature(
        task="classification" if learner.task == "classification" else "regression",
        inputs=[FeatureSignature(name=n, type=t, valency=v)  # type: ignore[arg-type]
                for n, (t, v) in sorted(feature_types.items())],
        label=label,
        output="probability" if learner.task == "classification" else "value",
        classes=labels,
    )
    measured = report_metrics(learner.metrics)
    measured.update({f"labels_{k}": float(v) for k, v in label_counters.items()})
    return Candidate(
        id=cid, pipeline=pipeline, model=learner.name, sequence=learner.sequence,
        parent=learner.parent, algorithm=algorithm_of(learner.model),
        params=jsonable(est._get_params()) if hasattr(est, "_get_params") else {},
        signature=signature, examples_seen=learner.examples_seen,
        trained_on=[OffsetRange(topic=tp, partition=p, start=a, end=b)
                    for (tp, p), (a, b) in sorted(learner.ranges.items())],
        event_time=(TimeRange(start_ms=learner.first_time, end_ms=learner.last_time)
                    if learner.first_time is not None and learner.last_time is not None
                    else None),
        metrics={k: v for k, v in measured.items() if math.isfinite(v)},
        artifact=inline_artifact(data),
        created_at=learner.last_time if learner.last_time is not None
        else int(time.time() * 1000),
    )
