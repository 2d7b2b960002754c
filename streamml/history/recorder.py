"""LineageRecorder: derive ``<p>.metadata`` lineage events from the artifact topics.

Components publish artifacts on their own topics; this processor reads them
(``<p>.schema``, ``<p>.statistics``, ``<p>.candidates``, ``<p>.evaluations``,
``<p>.models``, ``<p>.anomalies``) and writes the lineage events documented in
:mod:`streamml.history.lineage` to ``<p>.metadata``. Nothing is read from the
clock: ids and times come from the payloads, so redelivery after a crash and
replays of the same history give the same events (same keys: consumers dedupe).

=================  ========================================================================
input record       events
=================  ========================================================================
schema version     artifact ``<p>/schema/<name>@<v>`` (parent version as input artifact)
statistics window  artifact ``<p>/statistics/<split>/<window id>`` (inputs = its offsets)
candidate          execution ``<p>/execution/train/<cid>`` (inputs = offsets trained on,
                   event time, input artifacts = schema version, parent candidate) and
                   artifact ``<p>/candidate/<cid>`` (key = challenger, version = sequence)
evaluation         artifact ``<p>/evaluation/<id>`` (input = the candidate; ``blessed``,
                   ``metrics``, ``reasons``, ``baseline`` in properties)
model release      artifact ``<p>/model/<name>@<v>`` (inputs = candidate, evaluation)
alert              artifact ``<p>/alert/<alert id>``, one event per status (``open``,
                   latest ``update``, ``resolved``), event time = when it opened/resolved
=================  ========================================================================

The candidate's ``trained_on`` ranges are cumulative since the learner started,
so every training execution lists all the examples its model has learned from.
Invalid payloads go to ``<p>.deadletter`` (reason ``invalid_payload``).

>>> r = LineageRecorder("p")
>>> alert = {"id": "p/DRIFT/fare/count:1000:3", "pipeline": "p", "status": "open",
...          "type": "DRIFT", "severity": "warning", "scope": "window", "feature": "fare",
...          "message": "fare drifted", "first_seen": 5000, "last_seen": 5000}
>>> [(e.key, e.value["properties"]["status"])
...  for e in r.process([Message("p.anomalies", 0, 7, 5000, alert["id"], alert)])]
[('p/alert/p/DRIFT/fare/count:1000:3/open', 'open')]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from streamml.payloads.anomalies import Alert
from streamml.payloads.base import TimeRange
from streamml.payloads.candidates import Candidate
from streamml.payloads.evaluations import Evaluation
from streamml.payloads.metadata import ArtifactInfo, MetadataEvent
from streamml.payloads.models import ModelRelease
from streamml.payloads.schema import SchemaVersion
from streamml.payloads.statistics import StatisticsWindow
from streamml.processors.base import Emit, Message, Processor, State
from streamml.processors.deadletter import dead_letter_emit

#: Artifact topics the recorder reads, by role.
ROLES = ("schema", "statistics", "candidates", "evaluations", "models", "anomalies")


def schema_id(pipeline: str, version: int, name: str = "default") -> str:
    """``<p>/schema/<name>@<version>``.

    >>> schema_id("taxi", 2)
    'taxi/schema/default@2'
    """
    return f"{pipeline}/schema/{name}@{version}"


def candidate_id(pipeline: str, cid: str) -> str:
    return f"{pipeline}/candidate/{cid}"


def evaluation_id(pipeline: str, eid: str) -> str:
    return f"{pipeline}/evaluation/{eid}"


def model_id(pipeline: str, name: str, version: int) -> str:
    """``<p>/model/<name>@<version>``, the id ``streamml lineage NAME:VERSION`` finds."""
    return f"{pipeline}/model/{name}@{version}"


def alert_id(pipeline: str, aid: str) -> str:
    return f"{pipeline}/alert/{aid}"


class LineageRecorder(Processor):
    """Processor: artifact topics of ``pipeline`` → lineage events (see the module docstring)."""

    name = "lineage_recorder"

    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self.topics = {f"{pipeline}.{role}": role for role in ROLES}
        self.metadata_topic = f"{pipeline}.metadata"
        self.deadletter_topic = f"{pipeline}.deadletter"
        self.inputs = tuple(self.topics)
        self.outputs = (self.metadata_topic, self.deadletter_topic)
        self.recorded = 0
        self.refused = 0
        self._handlers: dict[str, tuple[type[BaseModel], Callable[[Any, Message],
                                                                   list[MetadataEvent]]]] = {
            "schema": (SchemaVersion, self._schema),
            "statistics": (StatisticsWindow, self._statistics),
            "candidates": (Candidate, self._candidate),
            "evaluations": (Evaluation, self._evaluation),
            "models": (ModelRelease, self._model),
            "anomalies": (Alert, self._alert),
        }

    # -- state ------------------------------------------------------------------------------
    def snapshot(self) -> State:
        return {"recorded": self.recorded, "refused": self.refused}

    def restore(self, state: State) -> None:
        if isinstance(state, dict):
            self.recorded = int(state.get("recorded", 0))
            self.refused = int(state.get("refused", 0))

    # -- processing -------------------------------------------------------------------------
    def process(self, batch: Sequence[Message]) -> Iterable[Emit]:
        out: list[Emit] = []
        for msg in batch:
            role = self.topics.get(msg.topic)
            if role is None or msg.value is None:
                continue  # tombstones (deleted model chunks) carry no lineage
            if role == "models" and isinstance(msg.value, dict) \
                    and msg.value.get("kind") == "chunk":
                continue
            model, handler = self._handlers[role]
            try:
                payload = model.model_validate(msg.value)
            except ValidationError as exc:
                out.append(self._dead_letter(msg, str(exc).splitlines()[0]))
                continue
            for event in handler(payload, msg):
                self.recorded += 1
                out.append(Emit(self.metadata_topic, event.to_json(), key=event.id,
                                timestamp_ms=msg.timestamp_ms))
        return out

    def _dead_letter(self, msg: Message, detail: str) -> Emit:
        self.refused += 1
        return dead_letter_emit(msg, reason="invalid_payload", detail=detail,
                                component="LineageRecorder", pipeline=self.pipeline,
                                topic=self.deadletter_topic,
                                key=f"{msg.topic}/{msg.partition}/{msg.offset}")

    def _art(self, msg: Message, id_: str, type_: str, *, key: str | None = None,
             version: int | None = None) -> ArtifactInfo:
        return ArtifactInfo(id=id_, type=type_, topic=msg.topic, partition=msg.partition,
                            offset=msg.offset, key=key, version=version or None)

    def _event(self, id_: str, component: str, time: int, **fields: Any) -> MetadataEvent:
        return MetadataEvent(id=id_, pipeline=self.pipeline, component=component,
                             time=time, **fields)

    # -- one handler per artifact topic ------------------------------------------------------
    def _schema(self, s: SchemaVersion, msg: Message) -> list[MetadataEvent]:
        aid = schema_id(self.pipeline, s.version, s.name)
        parents = [schema_id(self.pipeline, s.parent, s.name)] if s.parent else []
        return [self._event(
            aid, "SchemaGen", s.created_at, kind="artifact",
            artifact=self._art(msg, aid, "schema", key=s.name, version=s.version),
            inputs=s.inferred_from, input_artifacts=parents,
            event_time=TimeRange(start_ms=s.created_at, end_ms=s.created_at),
            properties={"origin": s.origin, "reason": s.reason,
                        "features": len(s.features)})]

    def _statistics(self, w: StatisticsWindow, msg: Message) -> list[MetadataEvent]:
        aid = f"{self.pipeline}/statistics/{w.split}/{w.window.id}"
        schemas = ([schema_id(self.pipeline, w.schema_version)] if w.schema_version else [])
        return [self._event(
            aid, w.component, w.created_at, kind="artifact",
            artifact=self._art(msg, aid, "statistics", key=w.split), inputs=w.inputs,
            event_time=w.window.event_time, input_artifacts=schemas,
            properties={"window": w.window.id, "examples": w.num_examples, "final": w.final})]

    def _candidate(self, c: Candidate, msg: Message) -> list[MetadataEvent]:
        cid = candidate_id(self.pipeline, c.id)
        exec_id = f"{self.pipeline}/execution/train/{c.id}"
        used = [schema_id(self.pipeline, c.schema_version)] if c.schema_version else []
        if c.parent:
            used.append(candidate_id(self.pipeline, c.parent))
        return [
            self._event(exec_id, c.component, c.created_at, kind="execution",
                        execution_id=exec_id, inputs=c.trained_on, event_time=c.event_time,
                        input_artifacts=used, output_artifacts=[cid],
                        properties={"examples_seen": c.examples_seen, "model": c.model,
                                    "algorithm": c.algorithm, "cumulative": True}),
            self._event(cid, c.component, c.created_at, kind="artifact", execution_id=exec_id,
                        artifact=self._art(msg, cid, "candidate", key=c.model,
                                           version=c.sequence),
                        properties={"metrics": dict(c.metrics), "sha256": c.artifact.sha256}),
        ]

    def _evaluation(self, e: Evaluation, msg: Message) -> list[MetadataEvent]:
        aid = evaluation_id(self.pipeline, e.id)
        return [self._event(
            aid, e.component, e.decided_at, kind="artifact",
            artifact=self._art(msg, aid, "evaluation", key=e.model),
            input_artifacts=[candidate_id(self.pipeline, e.candidate_id)],
            event_time=e.window,
            properties={"blessed": e.blessed, "metrics": dict(e.metrics),
                        "reasons": list(e.reasons), "baseline": e.baseline,
                        "examples": e.examples})]

    def _model(self, m: ModelRelease, msg: Message) -> list[MetadataEvent]:
        aid = model_id(self.pipeline, m.name, m.version)
        used = [candidate_id(self.pipeline, m.candidate_id)]
        if m.evaluation_id:
            used.append(evaluation_id(self.pipeline, m.evaluation_id))
        if m.schema_version:
            used.append(schema_id(self.pipeline, m.schema_version))
        return [self._event(
            aid, m.component, m.created_at, kind="artifact",
            artifact=self._art(msg, aid, "model", key=m.name, version=m.version),
            input_artifacts=used, event_time=m.event_time,
            properties={"metrics": dict(m.metrics), "parent_version": m.parent_version,
                        "schema_version": m.schema_version, "examples_seen": m.examples_seen,
                        "sha256": m.artifact.sha256, "key_id": m.key_id})]

    def _alert(self, a: Alert, msg: Message) -> list[MetadataEvent]:
        aid = alert_id(self.pipeline, a.id)
        at = a.resolved_at if a.status == "resolved" and a.resolved_at is not None \
            else a.first_seen
        return [self._event(
            f"{aid}/{a.status}", a.component, a.last_seen, kind="artifact",
            artifact=self._art(msg, aid, "alert", key=a.feature),
            event_time=TimeRange(start_ms=at, end_ms=max(at, a.last_seen)),
            properties={"status": a.status,
                        "type": a.type, "feature": a.feature, "severity": a.severity,
                        "scope": a.scope, "message": a.message, "metric": a.metric,
                        "value": a.value, "count": a.count})]


def lineage_components(pipeline: str, settings: Any = None, *,
                       history_dir: str | None = None) -> list[Processor]:
    """The lineage steps of a pipeline: a :class:`LineageRecorder` and a materializer.

    The materializer keeps ``<history dir>/lineage.duckdb`` (``history_dir``, else
    the ``history_dir`` setting if there is one, else ``$STREAMML_HISTORY_DIR`` or
    ``.streamml-history``), the store ``streamml lineage`` reads.

    >>> [c.processor_name for c in lineage_components("p", history_dir="/tmp/h")]
    ['lineage_recorder', 'lineage']
    """
    from streamml.history.layout import LINEAGE_DB, resolve_dir
    from streamml.history.materializer import LineageMaterializer

    root = resolve_dir(history_dir or getattr(settings, "history_dir", None))
    return [LineageRecorder(pipeline), LineageMaterializer(pipeline, str(root / LINEAGE_DB))]
