"""``streamml promote``: backfilled schema and signed model (with chunks) to the live pipeline."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from streamml.errors import ConfigError
from streamml.history.promote import latest_records, promote
from streamml.log.base import Log
from streamml.log.embedded import EmbeddedLog
from streamml.payloads.artifacts import ChunkedArtifact, ModelSignature
from streamml.payloads.models import ModelChunk, ModelRecord, ModelRelease
from streamml.payloads.schema import FeatureSpec, SchemaVersion
from tests.unit.test_history_replay_cli import cli

KEY = b"signing-secret"
DATA = b"model-bytes-" * 10


def release(pipeline: str, version: int, *, chunked: bool = False) -> list[tuple[bytes, bytes]]:
    """(key, value) records a Pusher would publish for one version."""
    import hashlib

    from streamml.learning.artifact import inline_artifact

    out = []
    artifact = inline_artifact(DATA)
    if chunked:
        pieces = [DATA[:60], DATA[60:]]
        for i, piece in enumerate(pieces):
            ch = ModelChunk.from_bytes(piece, name="tipper", version=version, index=i, count=2)
            out.append((ch.key.encode(), orjson.dumps(ch.to_json())))
        artifact = ChunkedArtifact(format=artifact.format, size=len(DATA),
                                   sha256=hashlib.sha256(DATA).hexdigest(), chunks=2,
                                   chunk_size=60, key_prefix=f"tipper@{version}")
    rel = ModelRelease(pipeline=pipeline, name="tipper", version=version,
                       candidate_id=f"{pipeline}-cand@{version}",
                       signature=ModelSignature(task="classification", inputs=[], label="y"),
                       artifact=artifact, created_at=1_000 + version).signed(KEY, key_id="k1")
    out.append((b"tipper", orjson.dumps(rel.to_json())))
    return out


def publish(log: Log, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    from streamml.catalog import load_catalog

    pipeline, role = topic.split(".")
    log.create_topic(load_catalog().spec(pipeline, role), exist_ok=True)
    with log.producer() as p:
        for key, value in records:
            p.send(topic, value, key, timestamp_ms=5_000)
        p.flush()


def schema(pipeline: str, version: int, fmax: float) -> list[tuple[bytes, bytes]]:
    s = SchemaVersion(pipeline=pipeline, version=version, origin="inferred", created_at=7,
                      features={"fare": FeatureSpec(type="float", min=0.0, max=fmax)})
    return [(b"default", orjson.dumps(s.to_json()))]


def live_release(log: Log) -> ModelRelease:
    root = ModelRecord.model_validate_json(latest_records(log, "live.models")[b"tipper"].value
                                           or b"").root
    assert isinstance(root, ModelRelease)
    return root


def test_promote_newer_version_unchanged_and_schema(tmp_path: Path) -> None:
    with EmbeddedLog(tmp_path / "log") as log:
        publish(log, "live.models", release("live", 1))
        publish(log, "live.schema", schema("live", 3, 10.0))
        backfill = release("bf", 2, chunked=True)
        publish(log, "bf.models", backfill)
        publish(log, "bf.schema", schema("bf", 1, 99.0))
        result = promote(log, "bf", "live", schema=True, model="tipper")
        assert [(p.kind, p.from_version, p.version, p.resigned) for p in result.promoted] == [
            ("schema", 1, 4, False), ("model", 2, 2, False)]
        latest = latest_records(log, "live.models")
        # byte for byte: the Pusher's signature still holds, chunks came along
        assert {k: r.value for k, r in latest.items() if k != b"tipper"} == dict(backfill[:2])
        assert latest[b"tipper"].value == backfill[-1][1]
        assert live_release(log).verify(KEY)
        sv = SchemaVersion.model_validate_json(latest_records(log, "live.schema")[b"default"]
                                               .value or b"")
        assert (sv.version, sv.parent, sv.pipeline, sv.features["fare"].max) == (4, 3, "live",
                                                                                99.0)
        # promoting again is a no-op
        again = promote(log, "bf", "live", schema=True, model="tipper")
        assert [p.version for p in again.promoted] == [None, None]


def test_promote_older_version_needs_the_key_and_re_signs(tmp_path: Path) -> None:
    with EmbeddedLog(tmp_path / "log") as log:
        publish(log, "live.models", release("live", 1) + release("live", 2))
        publish(log, "bf.models", release("bf", 1, chunked=True))
        with pytest.raises(ConfigError, match="needs the signing key"):
            promote(log, "bf", "live", model="tipper")
        with pytest.raises(ConfigError, match="does not verify"):
            promote(log, "bf", "live", model="tipper", signing_key=b"wrong")
        [done] = promote(log, "bf", "live", model="tipper", signing_key=KEY).promoted
        assert (done.version, done.resigned, done.chunks) == (3, True, 2)
        rel = live_release(log)
        assert rel.verify(KEY) and (rel.version, rel.parent_version, rel.key_id) == (3, 2, "k1")
        assert isinstance(rel.artifact, ChunkedArtifact)
        latest = latest_records(log, "live.models")
        data = b"".join(ModelChunk.model_validate_json(latest[rel.artifact.chunk_key(i)
                                                              .encode()].value or b"")
                        .data_bytes() for i in range(rel.artifact.chunks))
        assert data == DATA


def test_promote_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                     monkeypatch: pytest.MonkeyPatch) -> None:
    with EmbeddedLog(tmp_path / "log") as log:
        publish(log, "live.models", release("live", 4))
        publish(log, "bf.models", release("bf", 2))
    broker = f"embedded://{tmp_path / 'log'}"
    code, _, err = cli(capsys, "promote", "--namespace", "bf", "--pipeline", "live",
                       "--model", "tipper", broker=broker)
    assert code == 2 and "needs the signing key" in err
    monkeypatch.setenv("STREAMML_SIGNING_KEY", KEY.decode())
    code, _, err = cli(capsys, "promote", "--namespace", "bf", "--pipeline", "live",
                       "--model", "tipper", broker=broker)
    assert code == 0, err
    assert "promoted model tipper v2 from bf to live as v5 (re-signed)" in err
    with EmbeddedLog(tmp_path / "log") as log:
        assert live_release(log).verify(KEY)
