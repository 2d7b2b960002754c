"""Evaluator decisions and drift actions; Pusher signing, chunking, tampering, dedupe."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from river import linear_model

from streamml.learning.artifact import (
    ArtifactError,
    artifact_bytes,
    dump_model,
    inline_artifact,
    load_release_model,
)
from streamml.learning.drift import DriftPolicy
from streamml.learning.evaluator import Evaluator
from streamml.learning.gate import GateConfig, MetricThreshold
from streamml.learning.pusher import Pusher
from streamml.payloads.artifacts import ChunkedArtifact, InlineArtifact, ModelSignature
from streamml.payloads.candidates import Candidate
from streamml.payloads.evaluations import Evaluation
from streamml.payloads.models import ModelChunk, ModelRecord, ModelRelease
from streamml.processors.base import Emit, Message

KEY = b"k"


class Fixed:
    """A picklable regressor ``y = slope * x`` (no learning), to steer the gate exactly."""

    def __init__(self, slope: float) -> None:
        self.slope = slope

    def predict_one(self, x: dict) -> float:
        return self.slope * float(x.get("x") or 0.0)


def regressor(slope: float) -> Fixed:
    return Fixed(slope)


def candidate(cid: str, model: object, *, blob: bytes | None = None) -> dict:
    name, seq = cid.split("@")
    return Candidate(
        id=cid, pipeline="p", model=name, sequence=int(seq), algorithm="lr",
        signature=ModelSignature(task="regression", inputs=[], label="y"), examples_seen=1,
        trained_on=[], created_at=0,
        artifact=inline_artifact(blob if blob is not None else dump_model(model))).to_json()


def cmsg(value: dict, off: int = 0) -> Message:
    return Message("p.candidates", 0, off, 0, value["id"], value)


def eval_examples(n: int, start: int = 0, slope: float = 2.0) -> list[Message]:
    rng = random.Random(start)
    out = []
    for i in range(start, start + n):
        x = rng.uniform(-1, 1)
        out.append(Message("p.examples", 0, i, i, str(i), {
            "id": str(i), "split": "eval", "event_time": 1000 * i,
            "features": {"x": x, "k": "ab"[i % 2]}, "label": slope * x}))
    return out


def decisions(out: list[Emit]) -> list[Evaluation]:
    return [Evaluation.model_validate(e.value) for e in out if e.topic == "p.evaluations"]


GATE = GateConfig(min_examples=50, thresholds=[
    MetricThreshold(metric="mae", upper=0.5),
    MetricThreshold(metric="mae", change_absolute=0.0)])


def test_evaluator_first_value_only_then_change_against_baseline() -> None:
    ev = Evaluator("p", GATE, window=100, slice_features=["k"], min_slice_examples=5)
    out = list(ev.process([cmsg(candidate("m@1", regressor(1.8)))]))  # waits: empty window
    assert out == [] and "m" in ev.pending
    [first] = decisions(list(ev.process(eval_examples(60))))
    assert first.blessed and first.baseline is None
    assert [c.kind for c in first.checks] == ["value"] and {s.value for s in first.slices} == {
        "a", "b"}
    [worse] = decisions(list(ev.process([cmsg(candidate("m@2", regressor(1.5)))])))
    assert not worse.blessed and worse.baseline == "p:1"
    assert any("improvement" in r for r in worse.reasons)
    assert worse.baseline_metrics["mae"] < worse.metrics["mae"]
    [better] = decisions(list(ev.process([cmsg(candidate("m@3", regressor(2.0)))])))
    assert better.blessed and better.metrics["mae"] == pytest.approx(0.0)
    assert list(ev.process([cmsg(candidate("m@3", regressor(2.0)))])) == []  # replay


def test_evaluator_fails_closed_without_thresholds() -> None:
    ev = Evaluator("p", GateConfig(min_examples=10), window=20)
    ev.process(eval_examples(20))
    [d] = decisions(list(ev.process([cmsg(candidate("m@1", regressor(2.0)))])))
    assert not d.blessed and d.reasons == ["no thresholds configured: failing closed"]


def test_evaluator_refuses_tampered_candidate_and_supersedes() -> None:
    ev = Evaluator("p", GATE, window=100)
    bad = candidate("m@1", regressor(2.0))
    bad["artifact"]["data"] = inline_artifact(b"evil").data
    [d] = decisions(list(ev.process([cmsg(bad)])))
    assert not d.blessed and "sha256" in d.reasons[0]
    ev.process([cmsg(candidate("m@2", regressor(2.0)))])
    [d2] = decisions(list(ev.process([cmsg(candidate("m@3", regressor(2.0)))])))
    assert d2.id == "m@2" and "superseded by m@3" in d2.reasons[0]


def test_evaluator_snapshot_restore() -> None:
    ev = Evaluator("p", GATE, window=100)
    ev.process(eval_examples(60) + [cmsg(candidate("m@1", regressor(2.0)))])
    ev2 = ev.clone()
    ev2.restore(ev.snapshot())
    assert ev2.blessings == 1 and len(ev2.window) == 60


def test_concept_drift_triggers_recorded_action() -> None:
    policy = DriftPolicy(on_concept_drift="new_challenger", detector="page_hinkley", cooldown=50)
    ev = Evaluator("p", GATE, window=100, policy=policy)
    ev.process(eval_examples(60) + [cmsg(candidate("m@1", regressor(2.0)))])
    assert list(ev.process(eval_examples(200, start=60))) == []  # stable: no action
    out = list(ev.process(eval_examples(300, start=260, slope=-3.0)))  # the concept flips
    actions = [e.value for e in out if e.topic == "p.metadata"]
    assert actions and actions[0]["kind"] == "action"
    assert actions[0]["properties"]["action"] == "new_challenger"
    assert actions[0]["properties"]["model"] == "m"
    assert actions[0]["id"] == "p/Evaluator/action/1"


def test_validation_alerts_map_to_actions() -> None:
    ev = Evaluator("p", GATE, policy=DriftPolicy(on_alert={"DRIFT": "reset", "*": "alert"}))
    alert = {"id": "a1", "status": "open", "type": "DRIFT", "severity": "error",
             "message": "fare drifted"}
    out = list(ev.process([Message("p.anomalies", 0, 0, 0, "a1", alert),
                           Message("p.anomalies", 0, 1, 0, "a1", {**alert, "status": "update"}),
                           Message("p.anomalies", 0, 2, 0, "a2", {**alert, "id": "a2",
                                                                  "type": "SKEW"})]))
    assert [e.value["properties"]["action"] for e in out] == ["reset", "alert"]
    assert out[0].value["properties"]["trigger"] == "alert:a1"


# -- Pusher -------------------------------------------------------------------
def blessed_eval(cid: str, t: int = 5) -> dict:
    return {
        "id": cid, "pipeline": "p", "candidate_id": cid, "model": cid.split("@")[0],
        "examples": 100, "min_examples": 10, "metrics": {"mae": 0.1}, "blessed": True,
        "reasons": [], "decided_at": t, "checks": [
            {"metric": "mae", "kind": "value", "direction": "lower", "threshold": 0.5,
             "value": 0.1, "passed": True}]}


def emsg(value: dict, off: int = 0) -> Message:
    return Message("p.evaluations", 0, off, 0, value["id"], value)


def test_pusher_publishes_signed_versions_once() -> None:
    p = Pusher("p", KEY, key_id="k1", model_name="tipper", schema_version=3)
    out = list(p.process([emsg(blessed_eval("m@1"))]))  # evaluation before its candidate
    assert out == [] and "m@1" in p.waiting
    out = list(p.process([cmsg(candidate("m@1", regressor(2.0)))]))
    out += list(p.process([cmsg(candidate("m@2", regressor(2.1))), emsg(blessed_eval("m@2"))]))
    out += list(p.process([emsg(blessed_eval("m@2"))]))  # duplicate: ignored
    releases = [ModelRecord.model_validate(e.value).root for e in out]
    assert [(r.version, r.parent_version, r.candidate_id) for r in releases] == [
        (1, None, "m@1"), (2, 1, "m@2")]
    assert all(isinstance(r, ModelRelease) and r.verify(KEY) and r.key_id == "k1"
               for r in releases)
    assert [e.key for e in out] == ["tipper", "tipper"] and releases[0].schema_version == 3
    assert releases[1].created_at == 5
    p2 = p.clone()
    p2.restore(p.snapshot())
    assert p2.version == 2 and list(p2.process([emsg(blessed_eval("m@2"))])) == []


def test_pusher_stamps_the_latest_schema_version_it_read() -> None:
    p = Pusher("p", KEY, schema_topic="p.schema")
    assert p.inputs == ("p.candidates", "p.evaluations", "p.schema")

    def schema(version: int, off: int) -> Message:
        return Message("p.schema", 0, off, off, "default",
                       {"pipeline": "p", "name": "default", "version": version})

    out = list(p.process([cmsg(candidate("m@1", regressor(2.0))), schema(1, 0),
                          emsg(blessed_eval("m@1"))]))
    out += list(p.process([schema(2, 1), cmsg(candidate("m@2", regressor(2.0))),
                           emsg(blessed_eval("m@2"))]))
    releases = [ModelRecord.model_validate(e.value).root for e in out]
    assert [(r.candidate_id, r.schema_version) for r in releases] == [("m@1", 1), ("m@2", 2)]
    p2 = p.clone()
    p2.restore(p.snapshot())
    assert p2.current_schema == 2
    # a configured version wins; junk on the schema topic changes nothing
    fixed = Pusher("p", KEY, schema_topic="p.schema", schema_version=7)
    out = list(fixed.process([schema(1, 0), Message("p.schema", 0, 1, 1, "x", "junk"),
                              cmsg(candidate("m@1", regressor(2.0))),
                              emsg(blessed_eval("m@1"))]))
    assert ModelRecord.model_validate(out[0].value).root.schema_version == 7
    assert fixed.current_schema == 1


def test_pusher_skips_rejected_and_tampered() -> None:
    p = Pusher("p", KEY)
    bad = candidate("m@1", regressor(2.0))
    bad["artifact"]["sha256"] = "0" * 64
    assert list(p.process([cmsg(bad), emsg(blessed_eval("m@1"))])) == []
    assert p.refused == 1
    rejected = {**blessed_eval("m@2"), "blessed": False, "checks": [], "reasons": ["no"]}
    assert list(p.process([cmsg(candidate("m@2", regressor(2.0))), emsg(rejected)])) == []
    assert "m@2" not in p.candidates


def test_tampered_release_fails_verification() -> None:
    p = Pusher("p", KEY)
    [e] = p.process([cmsg(candidate("m@1", regressor(2.0))), emsg(blessed_eval("m@1"))])
    rel = ModelRelease.model_validate(e.value)
    assert rel.verify(KEY) and not rel.verify(b"other")
    assert isinstance(rel.artifact, InlineArtifact)
    evil = inline_artifact(dump_model(regressor(-9.0)))
    forged = rel.model_copy(update={"artifact": evil})
    assert not forged.verify(KEY)
    with pytest.raises(ArtifactError):
        load_release_model(forged, KEY)
    unsigned = rel.model_copy(update={"hmac_sha256": None})
    assert not unsigned.verify(KEY)
    bumped = rel.model_copy(update={"version": 99})
    assert not bumped.verify(KEY)


def test_chunked_publish_round_trip(tmp_path: Path) -> None:
    big = linear_model.LinearRegression()
    big.learn_one({f"f{i}": float(i) for i in range(3000)}, 1.0)  # a ~100 kB artifact
    p = Pusher("p", KEY, model_name="tipper", max_message_bytes=20_000,
               export_dir=str(tmp_path / "base"))
    out = list(p.process([cmsg(candidate("m@1", big)), emsg(blessed_eval("m@1"))]))
    records = [ModelRecord.model_validate(e.value).root for e in out]
    chunks = [r for r in records if isinstance(r, ModelChunk)]
    [release] = [r for r in records if isinstance(r, ModelRelease)]
    assert out[-1].key == "tipper" and len(chunks) >= 5
    assert [e.key for e in out[:-1]] == [f"tipper@1/{i}" for i in range(len(chunks))]
    assert all(len(e.value["data"]) < 20_000 for e in out[:-1])
    assert isinstance(release.artifact, ChunkedArtifact) and release.verify(KEY)
    model = load_release_model(release, KEY, chunks)
    assert model.weights == big.weights
    with pytest.raises(ArtifactError, match="missing"):
        artifact_bytes(release.artifact, chunks[1:])
    tampered = chunks[0].model_copy(update={"data": chunks[1].data})
    with pytest.raises(ArtifactError, match="sha256"):
        artifact_bytes(release.artifact, [tampered, *chunks[1:]])
    exported = tmp_path / "base" / "1"
    assert (exported / "model.pkl").read_bytes() == artifact_bytes(release.artifact, chunks)
    assert not [d for d in (tmp_path / "base").iterdir() if d.name.startswith(".tmp")]
