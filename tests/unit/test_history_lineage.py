"""Lineage: a model trained across a drift alert, from synthetic metadata events (issue 7)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson

from streamml.catalog import load_catalog
from streamml.history.lineage import LineageStore
from streamml.log.embedded import EmbeddedLog
from streamml.payloads.base import OffsetRange, TimeRange
from streamml.payloads.metadata import ArtifactInfo, MetadataEvent
from tests.unit.test_history_archive import run_history

H = 3_600_000
T0 = 1_767_225_600_000
P = "shop"


def art(id_: str, type_: str, t: int, *, key: str | None = None, version: int | None = None,
        inputs: list[str] | None = None, execution_id: str | None = None,
        props: dict[str, object] | None = None, event_start: int | None = None,
        comp: str = "c") -> MetadataEvent:
    return MetadataEvent(
        id=f"ev/{id_}/{props.get('status', '') if props else ''}", pipeline=P, kind="artifact",
        component=comp, artifact=ArtifactInfo(id=id_, type=type_, key=key, version=version),
        input_artifacts=inputs or [], execution_id=execution_id, properties=props or {},
        event_time=None if event_start is None else TimeRange(start_ms=event_start,
                                                              end_ms=event_start),
        time=t)


def train(exec_id: str, ranges: list[tuple[int, int, int]], start: int, end: int,
          inputs: list[str], output: str, t: int) -> MetadataEvent:
    return MetadataEvent(
        id=f"ev/{exec_id}", pipeline=P, kind="execution", component="Trainer",
        execution_id=exec_id,
        inputs=[OffsetRange(topic=f"{P}.examples", partition=p, start=s, end=e)
                for p, s, e in ranges],
        event_time=TimeRange(start_ms=start, end_ms=end), input_artifacts=inputs,
        output_artifacts=[output], time=t)


def events() -> list[MetadataEvent]:
    schema, c1, c2 = f"{P}/schema@1", f"{P}/candidate/tipper@1", f"{P}/candidate/tipper@2"
    ev2, model = f"{P}/evaluation/tipper@2", f"{P}/model/tipper@2"
    return [
        art(schema, "schema", T0, version=1, comp="SchemaGen"),
        art("alert/old", "alert", T0, props={"status": "open"}, event_start=T0 - 10 * H),
        art("alert/old", "alert", T0, props={"status": "resolved"}, event_start=T0 - 5 * H),
        art("alert/drift-fare", "alert", T0 + 2 * H, props={"status": "open", "feature": "fare"},
            event_start=T0 + 2 * H),
        train("exec/1", [(0, 0, 500), (1, 0, 400)], T0, T0 + 3 * H, [schema], c1, T0 + 3 * H),
        art(c1, "candidate", T0 + 3 * H, key="tipper", version=1, execution_id="exec/1"),
        art("alert/drift-fare", "alert", T0 + 5 * H, props={"status": "resolved"},
            event_start=T0 + 5 * H),
        train("exec/2", [(0, 500, 900), (1, 400, 800)], T0 + 3 * H, T0 + 6 * H, [schema, c1],
              c2, T0 + 6 * H),
        art(c2, "candidate", T0 + 6 * H, key="tipper", version=2, execution_id="exec/2"),
        art(ev2, "evaluation", T0 + 6 * H, inputs=[c2], comp="Evaluator",
            props={"blessed": True, "metrics": {"auc": 0.91}}),
        art(model, "model", T0 + 6 * H, key="tipper", version=2, inputs=[c2, ev2],
            comp="Pusher"),
        art("alert/late", "alert", T0 + 9 * H, props={"status": "open"}, event_start=T0 + 9 * H),
        *[MetadataEvent(id=f"ev/deploy/{h}", pipeline=P, kind="deployment", component="server",
                        host=h, input_artifacts=[model], properties={"action": "loaded"},
                        time=T0 + 7 * H) for h in ("server-a", "server-b")],
    ]


def check_answer(answer: dict) -> None:  # type: ignore[type-arg]
    up, down = answer["upstream"], answer["downstream"]
    assert answer["model"]["id"] == f"{P}/model/tipper@2"
    assert [(r["partition"], r["start"], r["end"], r["records"]) for r in up["examples"]] == [
        (0, 0, 900, 900), (1, 0, 800, 800)]
    assert up["event_time"] == {"start_ms": T0, "end_ms": T0 + 6 * H}
    assert [s["version"] for s in up["schemas"]] == [1]
    assert [e["id"] for e in up["evaluations"]] == [f"{P}/evaluation/tipper@2"]
    assert up["blessed"] is True
    assert [a["id"] for a in up["alerts_open_while_training"]] == ["alert/drift-fare"]
    assert [x["id"] for x in up["executions"]] == ["exec/1", "exec/2"]
    assert [d["host"] for d in down["deployments"]] == ["server-a", "server-b"]


def test_model_trained_across_a_drift_alert(tmp_path: Path) -> None:
    store = LineageStore(tmp_path / "l.duckdb")
    try:
        store.apply(events())
        check_answer(store.lineage("tipper:2"))
        check_answer(store.lineage("tipper"))  # latest version
        store.apply(events()[3:])  # redelivery changes nothing
        check_answer(store.lineage("tipper"))
        # the candidate has no evaluation of its own and one training run
        c1 = store.lineage(f"{P}/candidate/tipper@1")
        assert c1["upstream"]["blessed"] is None
        assert [r["end"] for r in c1["upstream"]["examples"]] == [500, 400]
        assert [a["id"] for a in c1["downstream"]["artifacts"]][:1] == [
            f"{P}/candidate/tipper@2"]
    finally:
        store.close()


def test_expiry_is_recorded_and_replayable(tmp_path: Path) -> None:
    store = LineageStore(tmp_path / "l.duckdb")
    try:
        store.apply(events())
        deleted, marker = store.expire(T0 + 4 * H, P, now_ms=T0 + 10 * H)
        assert deleted == 6
        assert store.con.execute("SELECT count(*) FROM events WHERE time < ? "
                                 "AND kind <> 'expired'", [T0 + 4 * H]).fetchall() == [(0,)]
    finally:
        store.close()
    rebuilt = LineageStore(tmp_path / "rebuilt.duckdb")
    try:  # rebuilding from the topic (events then marker) expires the same events
        rebuilt.apply([*events(), marker])
        assert rebuilt.con.execute("SELECT count(*) FROM events").fetchall() == [(9,)]
    finally:
        rebuilt.close()


def test_cli_syncs_from_the_log_and_prints(tmp_path: Path) -> None:
    broker = f"embedded://{tmp_path / 'log'}"
    with EmbeddedLog(tmp_path / "log") as log:
        log.create_topic(load_catalog().spec(P, "metadata"))
        with log.producer() as producer:
            for ev in events():
                producer.send(f"{P}.metadata", orjson.dumps(ev.to_json()), ev.id.encode())
    hist = str(tmp_path / "hist")
    proc = run_history("lineage", "tipper:2", "-p", P, "--json", "--dir", hist, broker=broker)
    assert proc.returncode == 0, proc.stderr
    check_answer(json.loads(proc.stdout))
    proc = run_history("lineage", "tipper", "-p", P, "--no-sync", "--dir", hist, broker=broker)
    assert proc.returncode == 0, proc.stderr
    assert "gate decision: BLESSED" in proc.stdout
    assert "alert/drift-fare" in proc.stdout and "loaded by server-b" in proc.stdout
    proc = run_history("lineage", "nope", "-p", P, "--dir", hist, broker=broker)
    assert proc.returncode == 2 and proc.stderr.startswith("streamml: error: no model 'nope'")
    # the archive query command sees the lineage store
    proc = run_history("query", "SELECT count(*) AS n FROM lineage.artifacts", "--json",
                       "--dir", hist, broker=broker)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"n": 8}
