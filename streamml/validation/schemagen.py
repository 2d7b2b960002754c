"""``SchemaGen``: infer the schema from the first N examples, publish versions, evolve safely.

Reads ``<p>.examples``. Until a schema exists it accumulates statistics of the
first ``infer_from`` examples, then publishes version 1 (origin ``inferred``)
to the compacted ``<p>.schema`` topic, keyed by the schema name. With an
``initial`` schema (e.g. a curated file from :func:`~streamml.validation.schema.load_schema`)
that one is published first instead.

Afterwards every micro-batch is compared with the current version
(:func:`~streamml.validation.schema.schema_changes`). Evolution never crashes
the pipeline: a new column, a new category or a type change raises one alert
per cause on ``<p>.anomalies`` (``SCHEMA_NEW_COLUMN``,
``ENUM_TYPE_UNEXPECTED_STRING_VALUES``, ``UNEXPECTED_DATA_TYPE``; severity
``warning``), updated while it lasts. With ``auto_evolve=True`` the schema is
bumped to the next version that accepts the change, and the alert is resolved
with the version that accepted it.

>>> from streamml.processors.base import Message
>>> gen = SchemaGen("demo.examples", "demo.schema", "demo.anomalies", infer_from=2,
...                 auto_evolve=True)
>>> msg = lambda i, f: Message("demo.examples", 0, i, 100 + i, f"e{i}",
...                            {"id": f"e{i}", "event_time": 100 + i, "features": f})
>>> [(e.topic, e.key) for e in gen.process([msg(0, {"x": 1.0}), msg(1, {"x": 2.0})])]
[('demo.schema', 'default')]
>>> out = gen.process([msg(2, {"x": 3.0, "y": "a"})])
>>> [(e.topic, e.value.get("status"), e.value.get("version")) for e in out]
[('demo.anomalies', 'open', None), ('demo.anomalies', 'resolved', None), ('demo.schema', None, 2)]
>>> gen.schema.features["y"].presence
'optional'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from streamml.payloads.schema import SchemaVersion
from streamml.processors.base import Emit, Message, Processor, State
from streamml.processors.deadletter import dead_letter_emit
from streamml.statistics.columns import Column
from streamml.statistics.dataset import StatisticsAccumulator
from streamml.statistics.rawbatch import decode_examples
from streamml.validation.alerts import AlertBook
from streamml.validation.schema import evolve, infer_schema, schema_changes


class SchemaGen(Processor):
    """Schema inference and evolution over a stream of examples (see module docs)."""

    name = "schema_gen"
    raw_values = True  # examples are decoded a micro-batch at a time (rawbatch)

    def __init__(self, examples_topic: str, schema_topic: str, anomalies_topic: str,
                 pipeline: str | None = None, infer_from: int = 1000,
                 initial: SchemaVersion | None = None, auto_evolve: bool = False,
                 schema_name: str = "default", max_domain_size: int = 100) -> None:
        if infer_from < 1:
            raise ValueError("infer_from must be >= 1")
        self.examples_topic = examples_topic
        self.schema_topic = schema_topic
        self.anomalies_topic = anomalies_topic
        self.pipeline = pipeline or examples_topic.rsplit(".", 1)[0]
        self.deadletter_topic = f"{self.pipeline}.deadletter"
        self.infer_from = infer_from
        self.initial = initial
        self.auto_evolve = auto_evolve
        self.schema_name = schema_name
        self.max_domain_size = max_domain_size
        self.inputs = (examples_topic,)
        self.outputs = (schema_topic, anomalies_topic, self.deadletter_topic)
        self.schema: SchemaVersion | None = None
        self.published = False
        self.buffer = StatisticsAccumulator()
        self.alerts = AlertBook(self.pipeline, component="SchemaGen")

    def _emit_schema(self, schema: SchemaVersion) -> Emit:
        self.schema = schema
        return Emit(self.schema_topic, schema.to_json(), key=schema.name,
                    timestamp_ms=schema.created_at)

    def process(self, batch: Sequence[Message]) -> Iterable[Emit]:
        b, _, invalid = decode_examples(batch)  # shared with StatisticsGen and the validator
        out = [dead_letter_emit(m, reason="invalid_json", detail=why,
                                component=self.processor_name, pipeline=self.pipeline,
                                topic=self.deadletter_topic) for m, why in invalid]
        if not b.n:
            return out
        now, event_ms = int(b.log_ms.max()), int(b.event_ms.max())
        if not self.published and self.initial is not None:
            out.append(self._emit_schema(self.initial.model_copy(
                update={"pipeline": self.pipeline, "name": self.schema_name})))
            self.published = True
        start = 0
        if self.schema is None:
            start = min(self.infer_from - self.buffer.num_examples, b.n)
            self.buffer.add_columns(b.columns(np.arange(start)), start)
            if self.buffer.num_examples >= self.infer_from:
                out.append(self._emit_schema(infer_schema(
                    self.buffer, pipeline=self.pipeline, name=self.schema_name,
                    created_at=now, max_domain_size=self.max_domain_size)))
                self.published = True
                self.buffer = StatisticsAccumulator()
        if self.schema is not None and start < b.n:
            rest = None if start == 0 else np.arange(start, b.n)
            out.extend(self._check(b.columns(rest), event_ms, now))
        return out

    def _check(self, columns: Mapping[str, Column], event_ms: int, now: int) -> list[Emit]:
        assert self.schema is not None
        changes = schema_changes(self.schema, columns)
        version = self.schema.version
        for ch in changes:
            self.alerts.hit(f"schema/{ch.kind}/{ch.feature}/v{version}", type=ch.kind,
                            severity="warning", scope="dataset", feature=ch.feature,
                            message=f"{ch.detail} (schema version {version})",
                            time_ms=event_ms, opened_in=f"schema:{self.schema_name}:v{version}",
                            count=1, schema_version=version, reference=f"schema:{version}")
        out = [Emit(self.anomalies_topic, a.to_json(), key=a.id, timestamp_ms=now)
               for a in self.alerts.flush()]
        new = evolve(self.schema, changes, created_at=now) if changes and self.auto_evolve \
            else None
        if new is not None and new.features != self.schema.features:  # else nothing to accept
            for cause in self.alerts.causes("schema/"):
                if cause.endswith(f"/v{version}"):
                    r = self.alerts.resolve(cause, event_ms,
                                            f"accepted in schema version {new.version}")
                    if r is not None:
                        out.append(Emit(self.anomalies_topic, r.to_json(), key=r.id,
                                        timestamp_ms=now))
            out.append(self._emit_schema(new))
        return out

    def snapshot(self) -> State:
        return {"schema": self.schema.to_json() if self.schema else None,
                "published": self.published, "buffer": self.buffer.to_dict(),
                "alerts": self.alerts.to_dict()}

    def restore(self, state: State) -> None:
        assert isinstance(state, dict)
        self.schema = (SchemaVersion.model_validate(state["schema"])
                       if state["schema"] is not None else None)
        self.published = bool(state["published"])
        self.buffer = StatisticsAccumulator.from_dict(state["buffer"])
        self.alerts.restore(state["alerts"])
