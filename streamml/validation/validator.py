"""``ExampleValidator``: per-example anomalies and per-window drift, skew, presence and size.

Inputs: ``<p>.examples``, and optionally ``<p>.schema`` (the latest
``SchemaVersion`` replaces the current one) and ``<p>.statistics``
(``StatisticsWindow`` records published *with sketches* by StatisticsGen).

**Per example** every example is checked against the schema
(:mod:`~streamml.validation.checks`): each micro-batch is screened column by
column with pyarrow/numpy (:meth:`~streamml.validation.checks.SchemaChecker.check_batch`,
columns shared with StatisticsGen through
:class:`~streamml.statistics.batch.ExampleBatch`), and only failing examples —
and those closing an example window — are handled one by one. Policy ``flag``
lets it pass and raises alerts; policy ``quarantine`` also sends every example with a finding to
``<p>.deadletter`` (``DeadLetter`` with reason ``quarantined`` and the findings
as detail). ``passed`` + ``quarantined`` always equals the examples read; with
``validated_topic`` set, passed examples are forwarded there. Findings are
aggregated per cause (type, feature): one alert opened, one update per
micro-batch with counts and sample example ids, resolved after a whole
``example_window`` of examples without that cause.

**Per window** each final statistics window (count or time; cumulative ones
are skipped) is compared (:mod:`~streamml.validation.compare`)

* with the *reference* (training statistics given as ``reference``):
  ``SKEW`` for windows of ``serving_split``, ``DRIFT`` for the others;
* with the *previous* window of the same split and window kind: ``DRIFT``,
  and the dataset size change for time windows;
* with the schema's ``min_fraction``.

A window cause opens an alert, is updated by each window where it persists
and resolved by the first window of that comparison where it does not.

>>> from streamml.payloads.schema import FeatureSpec, SchemaVersion
>>> from streamml.processors.base import Message
>>> schema = SchemaVersion(pipeline="demo", version=1, origin="curated", created_at=0,
...                        features={"fare": FeatureSpec(type="float", min=0.0)})
>>> v = ExampleValidator("demo.examples", "demo.anomalies", schema=schema, policy="quarantine")
>>> msgs = [Message("demo.examples", 0, i, 10 + i, f"e{i}",
...                 {"id": f"e{i}", "source": "s", "event_time": 10 + i,
...                  "features": {"fare": fare}}) for i, fare in enumerate([1.0, -2.0, -3.0])]
>>> [(e.topic, e.key) for e in v.process(msgs)]
[('demo.deadletter', 'e1'), ('demo.deadletter', 'e2'), \
('demo.anomalies', 'demo/FLOAT_TYPE_SMALL_FLOAT/fare/examples:1000:0')]
>>> v.passed, v.quarantined
(1, 2)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Any, Literal

from pydantic import ValidationError

from streamml import serde
from streamml.errors import InvalidRecord
from streamml.payloads.deadletter import DeadLetter
from streamml.payloads.schema import SchemaVersion
from streamml.payloads.statistics import StatisticsWindow
from streamml.processors.base import Emit, Message, Processor, State
from streamml.processors.deadletter import dead_letter_emit
from streamml.statistics.dataset import StatisticsAccumulator
from streamml.statistics.feature import MissingSketch
from streamml.statistics.rawbatch import decode_examples, decoded
from streamml.validation.alerts import AlertBook
from streamml.validation.checks import Finding, SchemaChecker
from streamml.validation.compare import (
    WindowFinding,
    check_presence_against_schema,
    check_size,
    compare_statistics,
)
from streamml.validation.drift import DriftConfig

Policy = Literal["flag", "quarantine"]
_LOG_TIME = attrgetter("timestamp_ms")
_TOPIC = attrgetter("topic")


class ExampleValidator(Processor):
    """Per-example and per-window validation (see module docs)."""

    name = "example_validator"
    raw_values = True  # examples are decoded a micro-batch at a time (rawbatch)

    def __init__(self, examples_topic: str, anomalies_topic: str, pipeline: str | None = None,
                 schema: SchemaVersion | None = None, schema_topic: str | None = None,
                 statistics_topic: str | None = None, deadletter_topic: str | None = None,
                 validated_topic: str | None = None, policy: Policy = "flag",
                 reference: StatisticsWindow | None = None, compare_previous: bool = True,
                 serving_split: str = "serving", example_window: int = 1000,
                 drift: DriftConfig | None = None) -> None:
        if policy not in ("flag", "quarantine"):
            raise ValueError("policy must be 'flag' or 'quarantine'")
        self.examples_topic = examples_topic
        self.anomalies_topic = anomalies_topic
        self.pipeline = pipeline or examples_topic.rsplit(".", 1)[0]
        self.schema = schema
        self.schema_topic = schema_topic
        self.statistics_topic = statistics_topic
        self.deadletter_topic = deadletter_topic or f"{self.pipeline}.deadletter"
        self.validated_topic = validated_topic
        self.policy = policy
        self.reference = reference
        self.compare_previous = compare_previous
        self.serving_split = serving_split
        self.example_window = example_window
        self.drift = drift or DriftConfig()
        self.inputs = tuple(t for t in (examples_topic, schema_topic, statistics_topic) if t)
        self.outputs = tuple(t for t in (anomalies_topic, self.deadletter_topic,
                                         validated_topic) if t)
        self._ref_acc = StatisticsAccumulator.from_window(reference) if reference else None
        self._checker = SchemaChecker(schema) if schema is not None else None
        self.alerts = AlertBook(self.pipeline)
        self.current_schema: SchemaVersion | None = schema
        self.passed = 0
        self.quarantined = 0
        self.seen = 0
        self.window_hits: dict[str, int] = {}  # example cause -> example window index of last hit
        self.previous: dict[str, dict[str, Any]] = {}  # "<split>/<kind>:<size>" -> window JSON

    # -- examples -----------------------------------------------------------------
    def process(self, batch: Sequence[Message]) -> Iterable[Emit]:
        out: list[Emit] = []
        now = max(map(_LOG_TIME, batch), default=0)
        controls = {t for t in (self.schema_topic, self.statistics_topic) if t}
        if not controls or not controls.intersection(map(_TOPIC, batch)):  # examples only
            out.extend(self._examples(batch))
            out.extend(Emit(self.anomalies_topic, a.to_json(), key=a.id, timestamp_ms=now)
                       for a in self.alerts.flush())
            return out
        run: list[Message] = []
        for m in batch:
            if m.topic == self.schema_topic or m.topic == self.statistics_topic:
                out.extend(self._examples(run))
                run = []
                try:
                    m = decoded(m)
                except (InvalidRecord, UnicodeDecodeError) as exc:
                    out.append(self._dead_letter(m, str(exc)))
                    continue
                try:
                    if m.topic == self.schema_topic:
                        schema = SchemaVersion.model_validate(m.value)
                    else:
                        window = StatisticsWindow.model_validate(m.value)
                except ValidationError as exc:  # not ours, or damaged: refused, not fatal
                    out.append(self._dead_letter(m, str(exc).splitlines()[0],
                                                 reason="invalid_payload"))
                    continue
                if m.topic == self.schema_topic:
                    self.current_schema = schema
                    self._checker = SchemaChecker(schema)
                else:
                    out.extend(self._window(window, m))
            else:
                run.append(m)
        out.extend(self._examples(run if len(run) < len(batch) else batch))
        out.extend(Emit(self.anomalies_topic, a.to_json(), key=a.id, timestamp_ms=now)
                   for a in self.alerts.flush())
        return out

    def _examples(self, msgs: Sequence[Message]) -> list[Emit]:
        """Screen a run of examples column-wise; handle only failing and window-closing ones."""
        if not msgs:
            return []
        out: list[Emit] = []
        b, msgs, invalid = decode_examples(msgs)
        out.extend(self._dead_letter(m, why) for m, why in invalid)
        found = self._checker.check_batch(b) if self._checker is not None else {}
        ew = self.example_window
        closing = range(ew - 1 - self.seen % ew, b.n, ew)
        events = sorted(set(found).union(closing)) if found else list(closing)
        prev = 0
        for i in [*events, b.n]:
            if i > prev:  # clean examples, no example window closes among them
                self.passed += i - prev
                self.seen += i - prev
                if self.validated_topic:
                    out.extend(Emit(self.validated_topic, decoded(m).value, key=m.key,
                                    timestamp_ms=m.timestamp_ms) for m in msgs[prev:i])
            if i < b.n:
                m = msgs[i]
                out.extend(self._example(m, b.id_at(i), int(b.event_ms[i]), found.get(i, [])))
            prev = i + 1
        return out

    def _example(self, m: Message, eid: str, event_ms: int,
                 findings: list[Finding]) -> list[Emit]:
        value = decoded(m).value  # raw bytes were valid JSON (decode_examples)
        value = value if isinstance(value, dict) else {}
        index = self.seen // self.example_window
        self.seen += 1
        out: list[Emit] = []
        version = self.current_schema.version if self.current_schema else None
        for f in findings:
            cause = f"example/{f.kind}/{f.feature}"
            self.window_hits[cause] = index
            self.alerts.hit(cause, type=f.kind, severity=f.severity, scope="example",
                            feature=f.feature, message=f.detail, time_ms=event_ms,
                            opened_in=f"examples:{self.example_window}:{index}",
                            example_ids=[eid], schema_version=version,
                            reference=f"schema:{version}")
        if findings and self.policy == "quarantine":
            self.quarantined += 1
            letter = DeadLetter.from_bytes(
                serde.encode(value), id=eid, pipeline=self.pipeline,
                component="ExampleValidator", reason="quarantined",
                detail="; ".join(f"{f.kind}: {f.detail}" for f in findings)[:4000],
                source=str(value.get("source") or m.topic),
                position=value.get("position") or {"partition": m.partition,
                                                    "offset": m.offset},
                topic=m.topic, example_id=eid, time=m.timestamp_ms)
            out.append(Emit(self.deadletter_topic, letter.to_json(), key=eid,
                            timestamp_ms=m.timestamp_ms))
        else:
            self.passed += 1
            if self.validated_topic:
                out.append(Emit(self.validated_topic, value, key=m.key,
                                timestamp_ms=m.timestamp_ms))
        if self.seen % self.example_window == 0:  # an example window closed
            for cause in self.alerts.causes("example/"):
                if self.window_hits.get(cause, -1) < index:
                    r = self.alerts.resolve(cause, event_ms, "no longer seen in the last "
                                            f"{self.example_window} examples")
                    self.window_hits.pop(cause, None)
                    if r is not None:
                        out.append(Emit(self.anomalies_topic, r.to_json(), key=r.id,
                                        timestamp_ms=m.timestamp_ms))
        return out

    def _dead_letter(self, m: Message, detail: str, reason: str = "invalid_json") -> Emit:
        return dead_letter_emit(m, reason=reason, detail=detail,
                                component=self.processor_name, pipeline=self.pipeline,
                                topic=self.deadletter_topic)

    # -- windows ------------------------------------------------------------------
    def _window(self, w: StatisticsWindow, m: Message) -> list[Emit]:
        if not w.final or w.window.kind == "cumulative":
            return []
        try:
            cur = StatisticsAccumulator.from_window(w)
        except MissingSketch:  # published without sketches: nothing to test
            return []
        except ValueError as exc:  # sketches that do not decode: refused, not fatal
            return [self._dead_letter(m, str(exc), reason="invalid_payload")]
        out: list[Emit] = []
        when = w.window.event_time.end_ms if w.window.event_time else w.created_at
        if self._ref_acc is not None:
            kind = "SKEW" if w.split == self.serving_split else "DRIFT"
            found = compare_statistics(self._ref_acc, cur, self.drift, kind)
            out += self._window_alerts(w, "training", found, when, m.timestamp_ms)
        series = f"{w.split}/{w.window.kind}:{w.window.size}"
        prev = self.previous.get(series)
        if self.compare_previous and prev is not None:
            pw = StatisticsWindow.model_validate(prev)
            found = compare_statistics(StatisticsAccumulator.from_window(pw), cur, self.drift)
            if w.window.kind == "time":
                size = check_size(pw.num_examples, w.num_examples, self.drift)
                found += [size] if size is not None else []
            out += self._window_alerts(w, f"window:{pw.window.id}", found, when,
                                       m.timestamp_ms, against="previous")
        if self.current_schema is not None:
            found = check_presence_against_schema(self.current_schema, cur, self.drift)
            out += self._window_alerts(w, f"schema:{self.current_schema.version}", found, when,
                                       m.timestamp_ms, against="schema")
        if self.compare_previous:
            self.previous[series] = m.value
        return out

    def _window_alerts(self, w: StatisticsWindow, reference: str, found: list[WindowFinding],
                       when: int, ts: int, against: str = "training") -> list[Emit]:
        prefix = f"window/{w.split}/{against}/"
        causes = set()
        for f in found:
            cause = f"{prefix}{f.kind}/{f.feature}/{f.metric}"
            causes.add(cause)
            self.alerts.hit(cause, type=f.kind, severity=f.severity, scope="window",
                            feature=f.feature, message=f.message, time_ms=when,
                            opened_in=f"{w.split}/{w.window.id}/{against}", window=w.window,
                            metric=f.metric, value=f.value, threshold=f.threshold,
                            p_value=f.p_value, reference=reference,
                            schema_version=w.schema_version)
        out = []
        for cause in self.alerts.causes(prefix):
            if cause not in causes:
                r = self.alerts.resolve(cause, when, f"back to normal in window {w.window.id}")
                if r is not None:
                    out.append(Emit(self.anomalies_topic, r.to_json(), key=r.id, timestamp_ms=ts))
        return out

    # -- state --------------------------------------------------------------------
    def snapshot(self) -> State:
        return {"schema": self.current_schema.to_json() if self.current_schema else None,
                "passed": self.passed, "quarantined": self.quarantined, "seen": self.seen,
                "window_hits": dict(self.window_hits), "previous": dict(self.previous),
                "alerts": self.alerts.to_dict()}

    def restore(self, state: State) -> None:
        assert isinstance(state, dict)
        schema = state["schema"]
        self.current_schema = SchemaVersion.model_validate(schema) if schema else None
        self._checker = SchemaChecker(self.current_schema) if self.current_schema else None
        self.passed, self.quarantined = int(state["passed"]), int(state["quarantined"])
        self.seen = int(state["seen"])
        self.window_hits = {k: int(v) for k, v in state["window_hits"].items()}
        self.previous = dict(state["previous"])
        self.alerts.restore(state["alerts"])
