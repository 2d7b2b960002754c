"""Evaluator: judge candidates on a sliding window of eval-split examples, TFMA style.

Inputs: ``<p>.examples`` (eval split only), ``<p>.candidates`` and
``<p>.anomalies``. Outputs: one :class:`Evaluation` per candidate on
``<p>.evaluations`` (blessed or not, with every check and reason) and drift
actions on ``<p>.metadata``.

* The window holds the ``window`` most recent labelled eval-split examples.
  Eval examples are never trained on (the Trainer learns the train split only),
  so every score is out-of-sample: test-then-train across the two splits.
* A candidate is judged on the whole window as soon as it holds
  ``gate.min_examples`` examples (at once if it already does), and the blessed
  baseline is measured on the very same examples, so change thresholds compare
  like with like. A candidate superseded before it could be judged is rejected
  with that reason.
* The blessed model scores every eval example as it arrives (its predictions are
  kept in the window); its error stream feeds the concept-drift detector of the
  :class:`~streamml.learning.drift.DriftPolicy`.

The decision time (``decided_at``) is the newest event time in the window, so a
replay produces identical records; the event times judged on are the
evaluation's ``window``. Records are stamped with their write time, so Kafka's
retention counts from publication, not from the (possibly old) events.

>>> from streamml.processors.base import Message
>>> from streamml.learning.gate import GateConfig, MetricThreshold
>>> ev = Evaluator("p", GateConfig(thresholds=[MetricThreshold(metric="mae", upper=1.0)],
...                min_examples=2), window=2)
>>> ex = lambda i: Message("p.examples", 0, i, i, str(i), {"id": str(i), "split": "eval",
...     "event_time": i, "features": {"x": 1.0}, "label": 1.0})
>>> _ = ev.process([ex(0), ex(1)])
>>> len(ev.window)
2
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from streamml.errors import ConfigError
from streamml.learning.artifact import ArtifactError, artifact_bytes, load_model, pack_state
from streamml.learning.artifact import unpack_state as _unpack
from streamml.learning.drift import DriftMonitor, DriftPolicy
from streamml.learning.gate import GateConfig, judge
from streamml.learning.metrics import error_of, measure, measure_slices, predict
from streamml.learning.transform import (
    default_features,
    default_label,
    event_time_of,
    load_module_file,
)
from streamml.payloads.base import TimeRange
from streamml.payloads.candidates import Candidate
from streamml.payloads.evaluations import Evaluation
from streamml.payloads.metadata import MetadataEvent
from streamml.processors.base import Emit, Message, Processor, State
from streamml.settle import settle


@dataclass
class _Entry:
    """One eval example in the window."""

    event_time: int
    x: dict[str, Any]
    y: Any
    slices: dict[str, Any]
    blessed_pred: Any = None


@dataclass
class _Held:
    """A candidate loaded for judgement (or the blessed one)."""

    candidate: dict[str, Any]
    model: Any
    task: str


class Evaluator(Processor):
    """The gate; see the module docstring."""

    name = "evaluator"

    def __init__(
        self,
        pipeline: str,
        gate: GateConfig | Mapping[str, Any],
        module: str | None = None,
        *,
        model_name: str | None = None,
        window: int = 2000,
        slice_features: Sequence[str] = (),
        min_slice_examples: int = 20,
        policy: DriftPolicy | Mapping[str, Any] | None = None,
        pos_label: Any = True,
    ) -> None:
        self.pipeline = pipeline
        self.gate = gate if isinstance(gate, GateConfig) else GateConfig.model_validate(gate)
        if window < max(1, self.gate.min_examples):
            raise ConfigError(f"window ({window}) must hold min_examples "
                              f"({self.gate.min_examples})")
        self.module = module
        self.model_name = model_name or pipeline
        self.window_size = window
        self.slice_features = tuple(slice_features)
        self.min_slice_examples = min_slice_examples
        self.policy = (policy if isinstance(policy, DriftPolicy)
                       else DriftPolicy.model_validate(policy or {}))
        self.pos_label = pos_label
        self.examples_topic = f"{pipeline}.examples"
        self.candidates_topic = f"{pipeline}.candidates"
        self.anomalies_topic = f"{pipeline}.anomalies"
        self.evaluations_topic = f"{pipeline}.evaluations"
        self.metadata_topic = f"{pipeline}.metadata"
        self.inputs = (self.examples_topic, self.candidates_topic, self.anomalies_topic)
        self.outputs = (self.evaluations_topic, self.metadata_topic)
        user = load_module_file(module) if module else None
        self._label = user.label if user else default_label
        self._features = user.features if user else default_features
        self._reset_state()

    def clone(self) -> Evaluator:
        return Evaluator(self.pipeline, self.gate, self.module, model_name=self.model_name,
                         window=self.window_size, slice_features=self.slice_features,
                         min_slice_examples=self.min_slice_examples, policy=self.policy,
                         pos_label=self.pos_label)

    def _reset_state(self) -> None:
        self.window: deque[_Entry] = deque(maxlen=self.window_size)
        self.blessed: _Held | None = None
        self.blessings = 0
        self.pending: dict[str, _Held] = {}
        self.judged: deque[str] = deque(maxlen=10_000)
        self.monitor = DriftMonitor(self.policy.detector, self.policy.cooldown)
        self.actions = 0
        self.watermark = 0
        self.counters = {"eval_examples": 0, "unlabelled": 0, "rejected_artifacts": 0}
        self._base_cache: tuple[tuple[int, int, int], dict[str, float], list[Any]] | None = None

    def snapshot(self) -> State:
        state = pack_state({k: getattr(self, k) for k in (
            "window", "blessed", "blessings", "pending", "judged", "monitor", "actions",
            "watermark", "counters")})
        self._keep_models_fast()
        return state

    def _keep_models_fast(self) -> None:
        """Undo what pickling did to the held models (see :mod:`streamml.settle`)."""
        for held in [self.blessed, *self.pending.values()]:
            if held is not None:
                settle(held.model)

    def restore(self, state: State) -> None:
        if not isinstance(state, bytes | bytearray):
            raise TypeError("Evaluator state is an opaque blob")
        for k, v in _unpack(bytes(state)).items():
            setattr(self, k, v)
        self._base_cache = None
        self._keep_models_fast()

    # -- processing -----------------------------------------------------------
    def process(self, batch: Sequence[Message]) -> Iterable[Emit]:
        out: list[Emit] = []
        for msg in batch:
            v = msg.value
            if not isinstance(v, dict):
                continue
            if msg.topic == self.examples_topic:
                self._on_example(msg, v, out)
            elif msg.topic == self.candidates_topic:
                self._on_candidate(v, out)
            elif msg.topic == self.anomalies_topic:
                action = self.policy.for_alert(v)
                if action is not None:
                    out.append(self._action(action, None, f"alert:{v.get('id')}",
                                            str(v.get("message", ""))))
        return out

    def _on_example(self, msg: Message, ex: dict[str, Any], out: list[Emit]) -> None:
        if ex.get("split") != "eval":
            return
        try:
            y = self._label(ex)
        except (ValueError, TypeError, ArithmeticError, LookupError):  # a label function
            # failing on bad data (float("N/A"), a missing column)
            self.counters["label_error"] = self.counters.get("label_error", 0) + 1
            return
        if y is None:
            self.counters["unlabelled"] += 1
            return
        t = event_time_of(ex.get("event_time"), msg.timestamp_ms)
        self.watermark = max(self.watermark, t)
        x = self._features(ex)
        raw = ex.get("features") or {}
        entry = _Entry(t, x, y, {f: raw.get(f) for f in self.slice_features})
        self.counters["eval_examples"] += 1
        if self.blessed is not None:
            entry.blessed_pred = predict(self.blessed.model, self.blessed.task, x)
            err = error_of(self.blessed.task, y, entry.blessed_pred, self.pos_label)
            if self.policy.on_concept_drift and self.monitor.update(err):
                out.append(self._action(
                    self.policy.on_concept_drift, self.blessed.candidate["model"],
                    f"detector:{self.policy.detector}",
                    f"concept drift on the error stream of {self.blessed.candidate['id']}"))
        self.window.append(entry)
        if self.pending and len(self.window) >= self.gate.min_examples:
            for name in list(self.pending):
                out.append(self._judge(self.pending.pop(name)))

    def _on_candidate(self, value: dict[str, Any], out: list[Emit]) -> None:
        cid = str(value.get("id"))
        if cid in self.judged:
            return  # a replayed duplicate
        try:
            cand = Candidate.model_validate(value)
            model = load_model(artifact_bytes(cand.artifact), cand.artifact.sha256)
        except (ValidationError, ArtifactError, ValueError) as exc:
            self.counters["rejected_artifacts"] += 1
            out.append(self._reject(value, [f"candidate refused: {exc}".splitlines()[0]]))
            return
        previous = self.pending.pop(cand.model, None)
        if previous is not None:
            out.append(self._reject(previous.candidate, [
                f"superseded by {cid} before {self.gate.min_examples} eval examples arrived"]))
        held = _Held(value, model, cand.signature.task)
        if len(self.window) >= self.gate.min_examples:
            out.append(self._judge(held))
        else:
            self.pending[cand.model] = held

    # -- decisions ------------------------------------------------------------
    def _window_range(self) -> TimeRange | None:
        if not self.window:
            return None
        times = [e.event_time for e in self.window]
        return TimeRange(start_ms=min(times), end_ms=max(times))

    def _judge(self, held: _Held) -> Emit:
        cand, task = held.candidate, held.task
        entries = list(self.window)
        pairs = [(e.y, predict(held.model, task, e.x)) for e in entries]
        svals = [e.slices for e in entries]
        metrics = measure(task, pairs, self.pos_label)
        slices = measure_slices(task, pairs, svals, self.slice_features, self.pos_label,
                                self.min_slice_examples)
        base_metrics: dict[str, float] | None = None
        base_slices: list[Any] = []
        if self.blessed is not None:
            base_metrics, base_slices = self._baseline(entries, svals)
        n = int(metrics.pop("examples", 0))
        blessed, checks, reasons = judge(self.gate, metrics, base_metrics, examples=n,
                                         slices=slices, baseline_slices=base_slices)
        baseline = (f"{self.model_name}:{self.blessings}" if self.blessed is not None else None)
        evaluation = Evaluation(
            id=str(cand["id"]), pipeline=self.pipeline, candidate_id=str(cand["id"]),
            model=str(cand["model"]), baseline=baseline, task=task,  # type: ignore[arg-type]
            window=self._window_range(), examples=n, min_examples=self.gate.min_examples,
            metrics=metrics, baseline_metrics=base_metrics or {}, slices=slices, checks=checks,
            blessed=blessed, reasons=reasons, decided_at=self.watermark,
        )
        if blessed:
            self.blessed = held
            self.blessings += 1
            self.monitor.reset()
            for e, (_, pred) in zip(entries, pairs, strict=True):
                e.blessed_pred = pred  # the window just scored with this very model
        self.judged.append(evaluation.id)
        return Emit(self.evaluations_topic, evaluation.to_json(), key=evaluation.id)

    def _baseline(self, entries: list[_Entry], svals: list[dict[str, Any]]
                  ) -> tuple[dict[str, float], list[Any]]:
        """The blessed model's metrics on the window; cached while neither changes."""
        assert self.blessed is not None
        key = (self.blessings, self.counters["eval_examples"], len(entries))
        if self._base_cache is not None and self._base_cache[0] == key:
            return dict(self._base_cache[1]), list(self._base_cache[2])
        bpairs = [(e.y, e.blessed_pred) for e in entries]
        metrics = measure(self.blessed.task, bpairs, self.pos_label)
        metrics.pop("examples", None)
        slices = measure_slices(self.blessed.task, bpairs, svals, self.slice_features,
                                self.pos_label, self.min_slice_examples)
        self._base_cache = (key, metrics, slices)
        return dict(metrics), list(slices)

    def _reject(self, cand: Mapping[str, Any], reasons: list[str]) -> Emit:
        cid = str(cand.get("id") or "unknown")
        model = str(cand.get("model") or "unknown")
        evaluation = Evaluation(
            id=cid, pipeline=self.pipeline, candidate_id=cid, model=model,
            window=self._window_range(), examples=0, min_examples=self.gate.min_examples,
            metrics={}, blessed=False,
            reasons=reasons, decided_at=self.watermark)
        self.judged.append(cid)
        return Emit(self.evaluations_topic, evaluation.to_json(), key=cid)

    def _action(self, action: str, model: str | None, trigger: str, reason: str) -> Emit:
        self.actions += 1
        if action == "reset":
            self.monitor.reset()
        event = MetadataEvent(
            id=f"{self.pipeline}/Evaluator/action/{self.actions}", pipeline=self.pipeline,
            kind="action", component="Evaluator",
            input_artifacts=[str(self.blessed.candidate["id"])] if self.blessed else [],
            properties={"action": action, "model": model, "trigger": trigger,
                        "reason": reason, "eval_examples": self.counters["eval_examples"]},
            time=self.watermark)
        return Emit(self.metadata_topic, event.to_json(), key=event.id)
