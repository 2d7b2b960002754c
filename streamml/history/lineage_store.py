"""The DuckDB lineage store: ``<pipeline>.metadata`` events as tables and views.

Tables hold events as received, upserted by event id, so redelivery and
replays are harmless: ``events`` (one row per event, artifact fields
flattened), ``event_inputs`` (offset ranges), ``event_artifacts`` (``role`` =
input/output), ``offsets`` (next offset of ``<p>.metadata`` per partition,
written in the same transaction as the events: state and offsets together).
Views derive the graph: ``artifacts``, ``executions``, ``inputs``, ``edges``
(src → dst artifact), ``produced`` (artifact → execution), ``deployments``,
``alerts``. The questions (:func:`~streamml.history.lineage_query.lineage_answer`)
live in :mod:`streamml.history.lineage_query`.

>>> import tempfile
>>> from pathlib import Path
>>> store = LineageStore(Path(tempfile.mkdtemp()) / "lineage.duckdb")
>>> ev = MetadataEvent(id="e1", pipeline="p", kind="action", component="c", time=5)
>>> store.apply([ev], {TopicPartition("p.metadata", 0): 1}), store.offsets("p.metadata")
(1, {0: 1})
>>> store.close()
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from pydantic import ValidationError

from streamml.errors import ConfigError
from streamml.log.base import Log, TopicPartition
from streamml.payloads.metadata import MetadataEvent

_TABLES = """
CREATE TABLE IF NOT EXISTS events (
  id VARCHAR PRIMARY KEY, pipeline VARCHAR, kind VARCHAR, component VARCHAR,
  execution_id VARCHAR, artifact_id VARCHAR, artifact_type VARCHAR, artifact_topic VARCHAR,
  artifact_partition INTEGER, artifact_offset BIGINT, artifact_key VARCHAR,
  artifact_version INTEGER, artifact_uri VARCHAR, host VARCHAR,
  event_start_ms BIGINT, event_end_ms BIGINT, time BIGINT, properties JSON);
CREATE TABLE IF NOT EXISTS event_inputs (
  event_id VARCHAR, execution_id VARCHAR, topic VARCHAR, "partition" INTEGER,
  start_offset BIGINT, end_offset BIGINT);
CREATE TABLE IF NOT EXISTS event_artifacts (
  event_id VARCHAR, execution_id VARCHAR, artifact_id VARCHAR, role VARCHAR);
CREATE TABLE IF NOT EXISTS offsets (
  topic VARCHAR, "partition" INTEGER, next_offset BIGINT, PRIMARY KEY (topic, "partition"));
"""

_VIEWS = """
CREATE OR REPLACE VIEW artifacts AS
  SELECT artifact_id AS id, any_value(artifact_type ORDER BY time) AS type,
         any_value(pipeline) AS pipeline, any_value(artifact_key ORDER BY time) AS key,
         any_value(artifact_version ORDER BY time) AS version,
         any_value(artifact_topic ORDER BY time) AS topic,
         any_value(artifact_partition ORDER BY time) AS "partition",
         any_value(artifact_offset ORDER BY time) AS "offset",
         any_value(artifact_uri ORDER BY time) AS uri,
         any_value(component ORDER BY time) AS component,
         any_value(execution_id ORDER BY time) AS execution_id,
         min(time) AS created_ms, any_value(properties ORDER BY time) AS properties
  FROM events WHERE kind = 'artifact' GROUP BY artifact_id;
CREATE OR REPLACE VIEW executions AS
  SELECT coalesce(execution_id, id) AS id, pipeline, component, time,
         event_start_ms, event_end_ms, properties
  FROM events WHERE kind = 'execution';
CREATE OR REPLACE VIEW inputs AS SELECT * FROM event_inputs;
CREATE OR REPLACE VIEW edges AS
  SELECT DISTINCT i.artifact_id AS src, o.artifact_id AS dst, o.execution_id
  FROM event_artifacts i JOIN event_artifacts o
    ON i.event_id = o.event_id AND i.role = 'input' AND o.role = 'output';
CREATE OR REPLACE VIEW produced AS
  SELECT DISTINCT artifact_id, execution_id FROM event_artifacts
  WHERE role = 'output' AND execution_id IS NOT NULL;
CREATE OR REPLACE VIEW deployments AS
  SELECT e.id AS event_id, coalesce(e.artifact_id, a.artifact_id) AS model_id, e.host,
         coalesce(e.properties->>'$.action', 'loaded') AS action, e.time, e.pipeline
  FROM events e LEFT JOIN event_artifacts a ON a.event_id = e.id AND a.role = 'input'
  WHERE e.kind = 'deployment';
CREATE OR REPLACE VIEW alerts AS
  SELECT artifact_id AS id, any_value(pipeline) AS pipeline,
         min(coalesce(event_start_ms, time))
           FILTER (WHERE coalesce(properties->>'$.status', 'open') <> 'resolved') AS opened_ms,
         min(coalesce(event_start_ms, time))
           FILTER (WHERE properties->>'$.status' = 'resolved') AS resolved_ms,
         any_value(properties ORDER BY time) AS properties
  FROM events WHERE kind = 'artifact' AND artifact_type = 'alert' GROUP BY artifact_id;
"""

_EVENT_SCHEMA = pa.schema([
    ("id", pa.string()), ("pipeline", pa.string()), ("kind", pa.string()),
    ("component", pa.string()), ("execution_id", pa.string()), ("artifact_id", pa.string()),
    ("artifact_type", pa.string()), ("artifact_topic", pa.string()),
    ("artifact_partition", pa.int32()), ("artifact_offset", pa.int64()),
    ("artifact_key", pa.string()), ("artifact_version", pa.int32()),
    ("artifact_uri", pa.string()), ("host", pa.string()), ("event_start_ms", pa.int64()),
    ("event_end_ms", pa.int64()), ("time", pa.int64()), ("properties", pa.string()),
])


def execution_of(event: MetadataEvent) -> str | None:
    """The execution an event belongs to: ``execution_id``, or its own id for executions."""
    if event.execution_id is not None:
        return event.execution_id
    return event.id if event.kind == "execution" else None


def decode_event(value: bytes | dict[str, Any] | None) -> MetadataEvent | None:
    """A metadata record's event; ``None`` for a tombstone. Invalid events raise."""
    if value is None:
        return None
    data = orjson.loads(value) if isinstance(value, bytes | bytearray) else value
    return MetadataEvent.model_validate(data)


def try_decode(value: bytes | dict[str, Any] | None) -> MetadataEvent | None:
    """:func:`decode_event`, with ``None`` for an invalid event too (logged by the caller)."""
    try:
        return decode_event(value)
    except (ValidationError, orjson.JSONDecodeError):
        return None


class LineageStore:
    """The DuckDB lineage store (one writer process at a time; ``read_only`` for readers)."""

    def __init__(self, path: Path, *, read_only: bool = False, wait_s: float = 0.0) -> None:
        """Open (or create) the store; ``wait_s``: how long to retry while another
        process (a running pipeline's materializer) holds the file lock."""
        import duckdb

        self.path = Path(path)
        if read_only and not self.path.is_file():
            raise ConfigError(f"no lineage store at {self.path}: run `streamml lineage` "
                              "against the log first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait_s
        delay = 0.05
        while True:
            try:
                self.con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.Error as exc:
                locked = "lock" in str(exc).lower()
                if not locked or time.monotonic() + delay > deadline:
                    raise ConfigError(f"cannot open lineage store {self.path}: "
                                      f"{str(exc).splitlines()[0]}") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        if not read_only:
            self.con.execute(_TABLES)
            self.con.execute(_VIEWS)

    def close(self) -> None:
        self.con.close()

    # -- writing ------------------------------------------------------------------------------
    def apply(self, events: Sequence[MetadataEvent],
              offsets: dict[TopicPartition, int] | None = None) -> int:
        """Upsert ``events`` (and record ``offsets``) in one transaction; return the count."""
        rows, ins, arts, expiries = [], [], [], []
        for ev in events:
            a, exec_id = ev.artifact, execution_of(ev)
            rows.append({
                "id": ev.id, "pipeline": ev.pipeline, "kind": ev.kind,
                "component": ev.component, "execution_id": exec_id,
                "artifact_id": a.id if a else None, "artifact_type": a.type if a else None,
                "artifact_topic": a.topic if a else None,
                "artifact_partition": a.partition if a else None,
                "artifact_offset": a.offset if a else None, "artifact_key": a.key if a else None,
                "artifact_version": a.version if a else None, "artifact_uri": a.uri if a else None,
                "host": ev.host,
                "event_start_ms": ev.event_time.start_ms if ev.event_time else None,
                "event_end_ms": ev.event_time.end_ms if ev.event_time else None,
                "time": ev.time, "properties": orjson.dumps(ev.properties).decode(),
            })
            ins += [{"event_id": ev.id, "execution_id": exec_id, "topic": r.topic,
                     "partition": r.partition, "start_offset": r.start, "end_offset": r.end}
                    for r in ev.inputs]
            outputs = list(ev.output_artifacts) + ([a.id] if a else [])
            arts += [{"event_id": ev.id, "execution_id": exec_id, "artifact_id": x,
                      "role": "input"} for x in ev.input_artifacts]
            arts += [{"event_id": ev.id, "execution_id": exec_id, "artifact_id": x,
                      "role": "output"} for x in dict.fromkeys(outputs)]
            if ev.kind == "expired":
                before = ev.properties.get("before_ms")
                if isinstance(before, int):
                    expiries.append(before)
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            if rows:
                new_events = pa.Table.from_pylist(rows, schema=_EVENT_SCHEMA)
                new_inputs = pa.Table.from_pylist(ins, schema=pa.schema([
                    ("event_id", pa.string()), ("execution_id", pa.string()),
                    ("topic", pa.string()), ("partition", pa.int32()),
                    ("start_offset", pa.int64()), ("end_offset", pa.int64())]))
                new_arts = pa.Table.from_pylist(arts, schema=pa.schema([
                    ("event_id", pa.string()), ("execution_id", pa.string()),
                    ("artifact_id", pa.string()), ("role", pa.string())]))
                con.register("new_events", new_events)
                con.register("new_inputs", new_inputs)
                con.register("new_arts", new_arts)
                for table in ("event_inputs", "event_artifacts"):
                    con.execute(f"DELETE FROM {table} WHERE event_id IN "  # noqa: S608 - fixed names
                                "(SELECT id FROM new_events)")
                con.execute("INSERT OR REPLACE INTO events SELECT * FROM new_events")
                con.execute("INSERT INTO event_inputs SELECT * FROM new_inputs")
                con.execute("INSERT INTO event_artifacts SELECT * FROM new_arts")
                for name in ("new_events", "new_inputs", "new_arts"):
                    con.unregister(name)
            for before in expiries:
                self._delete_events(self._EXPIRED, [before])
            for tp, offset in (offsets or {}).items():
                con.execute("INSERT OR REPLACE INTO offsets VALUES (?, ?, ?)",
                            [tp.topic, tp.partition, offset])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return len(rows)

    _EXPIRED = "time < ? AND kind <> 'expired'"  # what an expiry before ? deletes

    def _count(self, where: str, params: Sequence[Any]) -> int:
        n = self.con.execute(f"SELECT count(*) FROM events WHERE {where}", params).fetchone()  # noqa: S608
        return int(n[0]) if n else 0

    def _delete_events(self, where: str, params: Sequence[Any]) -> None:
        """Delete the events matching ``where`` (fixed SQL) with their inputs and artifacts."""
        doomed = f"SELECT id FROM events WHERE {where}"  # noqa: S608 - fixed SQL
        for table in ("event_inputs", "event_artifacts"):
            self.con.execute(f"DELETE FROM {table} WHERE event_id IN ({doomed})",  # noqa: S608
                             params)
        self.con.execute(f"DELETE FROM events WHERE id IN ({doomed})", params)  # noqa: S608

    def expire(self, before_ms: int, pipeline: str, now_ms: int | None = None
               ) -> tuple[int, MetadataEvent]:
        """Delete lineage recorded before ``before_ms``; return (deleted, the marker event).

        Emit the marker to ``<pipeline>.metadata`` too, so that rebuilding the
        store from the topic expires the same events.
        """
        n = self._count(self._EXPIRED, [before_ms])
        marker = MetadataEvent(
            id=f"{pipeline}/lineage/expired/{before_ms}", pipeline=pipeline, kind="expired",
            component="lineage", properties={"before_ms": before_ms},
            time=now_ms if now_ms is not None else int(time.time() * 1000),
        )
        self.apply([marker])
        return n, marker

    def offsets(self, topic: str) -> dict[int, int]:
        rows = self.con.execute(
            'SELECT "partition", next_offset FROM offsets WHERE topic = ?', [topic]).fetchall()
        return {int(p): int(o) for p, o in rows}

    def forget(self, pipeline: str, topic: str) -> int:
        """Delete ``pipeline``'s lineage and the stored offsets of ``topic`` (to rebuild it).

        For a ``<p>.metadata`` topic that was deleted and recreated (``streamml demo``,
        ``run --reset``): its offsets start again at 0, the old events are stale.
        """
        n = self._count("pipeline = ?", [pipeline])
        self.con.execute("BEGIN TRANSACTION")
        try:
            self._delete_events("pipeline = ?", [pipeline])
            self.con.execute("DELETE FROM offsets WHERE topic = ?", [topic])
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return n

    def sync(self, log: Log, pipeline: str, max_records: int | None = None) -> int:
        """Read ``<pipeline>.metadata`` from the stored offsets to its end; return events read.

        Stored offsets beyond the topic's end mean the topic was recreated: the
        pipeline's lineage is rebuilt from the start. Invalid events are skipped.
        """
        from streamml.catalog import load_catalog

        topic = load_catalog().topic_name(pipeline, "metadata")
        if not log.topic_exists(topic):
            return 0
        tps = [TopicPartition(topic, p.partition) for p in log.describe_topic(topic).partitions]
        stored = self.offsets(topic)
        applied = 0
        with log.consumer() as consumer:
            consumer.assign(tps)
            starts = consumer.beginning_offsets(tps)
            ends = consumer.end_offsets(tps)
            if any(stored.get(tp.partition, 0) > ends[tp] for tp in tps):
                self.forget(pipeline, topic)
                stored = {}
            for tp in tps:
                consumer.seek(tp, max(stored.get(tp.partition, 0), starts[tp]))
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                batch = consumer.poll(timeout_s=0.5)
                events = [try_decode(r.value) for r in batch if r.value is not None]
                applied += self.apply(
                    [e for e in events if e is not None],
                    {tp: consumer.position(tp) for tp in tps},
                )
                if max_records is not None and applied >= max_records:
                    break
        return applied

    # -- reading ------------------------------------------------------------------------------
    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read-only ``sql`` query (values bound from ``params``) as dicts."""
        result = self.con.execute(sql, list(params))
        names = [d[0] for d in result.description or []]
        out = []
        for values in result.fetchall():
            row = dict(zip(names, values, strict=True))
            for key in ("properties",):
                if isinstance(row.get(key), str):
                    row[key] = orjson.loads(row[key])
            out.append(row)
        return out

    def find_model(self, name: str, version: int | None) -> dict[str, Any] | None:
        """The model artifact (pushed model, else candidate) named ``name``, latest version."""
        for kind in ("model", "candidate"):
            rows = self.rows(
                "SELECT * FROM artifacts WHERE type = ? AND (key = ? OR id = ?) "
                "AND (? IS NULL OR version = ?) ORDER BY version DESC NULLS LAST, created_ms DESC "
                "LIMIT 1", [kind, name, name, version, version])
            if rows:
                return rows[0]
        return None

    def lineage(self, ref: str) -> dict[str, Any]:
        """Upstream and downstream of model ``MODEL[:VERSION]`` (``ConfigError`` if unknown)."""
        from streamml.history.lineage_query import lineage_answer

        return lineage_answer(self, ref)
