"""A Trainer's learners: one challenger's model and what it learned, and the
per-micro-batch bookkeeping the Trainer applies to them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


@dataclass(slots=True)
class PendingBatch:
    """Bookkeeping of the examples learned since the Trainer last flushed it to its learners."""

    n: int = 0
    ranges: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    first: int | None = None
    last: int | None = None


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
