"""Drift → action: what the Evaluator does when the world changes.

Two triggers:

* **concept drift** on the blessed model's error stream (0/1 misclassification or
  absolute error of every eval-split example), watched by River's ``ADWIN`` or
  ``PageHinkley`` (:class:`DriftMonitor`);
* **validation alerts** from ExampleValidator on ``<p>.anomalies`` (an
  :class:`~streamml.payloads.anomalies.Alert` opening), matched by alert type.

Three actions: ``alert`` (record it, nothing else), ``new_challenger`` (the
Trainer starts a fresh challenger beside the current ones, which competes at the
gate) and ``reset`` (the Trainer replaces the learner by a fresh one). Every
action, including ``alert``, is recorded as a ``MetadataEvent`` of kind
``action`` on ``<p>.metadata``, which the Trainer listens to; see
:meth:`DriftPolicy.for_alert`.

>>> policy = DriftPolicy(on_alert={"DRIFT": "new_challenger"})
>>> policy.for_alert({"status": "open", "type": "DRIFT", "severity": "warning"})
'new_challenger'
>>> policy.for_alert({"status": "update", "type": "DRIFT", "severity": "warning"}) is None
True
>>> mon = DriftMonitor("page_hinkley")
>>> any(mon.update(0.0) for _ in range(200)), any(mon.update(5.0) for _ in range(200))
(False, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from river import drift

Action = Literal["alert", "new_challenger", "reset"]
_SEVERITY = {"info": 0, "warning": 1, "error": 2}


class DriftPolicy(BaseModel):
    """Which action each trigger takes (``None`` ignores the trigger)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    on_concept_drift: Action | None = "new_challenger"
    detector: Literal["adwin", "page_hinkley"] = "adwin"
    on_alert: dict[str, Action] = Field(
        default_factory=lambda: dict[str, Action]({"DRIFT": "alert", "SKEW": "alert"}))
    """Alert type → action; ``"*"`` matches any other type."""
    min_severity: Literal["info", "warning", "error"] = "warning"
    cooldown: int = Field(default=500, ge=0)
    """Eval examples to ignore the detector for after it fired (let the new model settle)."""

    def for_alert(self, alert: Mapping[str, Any]) -> Action | None:
        """The action for an alert record, or ``None`` (only opening alerts act)."""
        if alert.get("status") != "open":
            return None
        if _SEVERITY.get(str(alert.get("severity")), 0) < _SEVERITY[self.min_severity]:
            return None
        kind = str(alert.get("type"))
        return self.on_alert.get(kind, self.on_alert.get("*"))


class DriftMonitor:
    """A River drift detector over an error stream, with a cooldown after each detection."""

    def __init__(self, detector: str = "adwin", cooldown: int = 0) -> None:
        self.detector_name = detector
        self.cooldown = cooldown
        self.detector: Any = self._new()
        self.quiet = 0
        self.detections = 0

    def _new(self) -> Any:
        return drift.ADWIN() if self.detector_name == "adwin" else drift.PageHinkley()

    def update(self, error: float) -> bool:
        """Feed one error; ``True`` when drift is detected (then the detector restarts)."""
        if self.quiet > 0:
            self.quiet -= 1
            return False
        self.detector.update(error)
        if self.detector.drift_detected:
            self.detections += 1
            self.detector = self._new()
            self.quiet = self.cooldown
            return True
        return False

    def reset(self) -> None:
        self.detector = self._new()
        self.quiet = 0
