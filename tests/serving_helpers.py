"""Build tiny real River models and publish signed releases to a models topic (tests, bench)."""

from __future__ import annotations

import base64
import hashlib
import pickle
import time
from collections.abc import Callable, Sequence
from typing import Any

from river import linear_model

from streamml import serde
from streamml.catalog import load_catalog
from streamml.log import Log
from streamml.payloads.artifacts import (
    ChunkedArtifact,
    FeatureSignature,
    InlineArtifact,
    ModelSignature,
)
from streamml.payloads.models import ModelChunk, ModelRelease

KEY = b"test-signing-key"
PIPELINE = "demo"
TOPIC = f"{PIPELINE}.models"
SIGNATURE = ModelSignature(
    task="classification",
    label="big_tipper",
    inputs=[
        FeatureSignature(name="fare", type="float", required=True),
        FeatureSignature(name="trip_miles", type="float"),
        FeatureSignature(name="passengers", type="int"),
    ],
    classes=[False, True],
)
INSTANCE = {"fare": 12.5, "trip_miles": 3.0, "passengers": 1}


def train(version: int) -> linear_model.LogisticRegression:
    """A small logistic regression; each version has learned a little more (different weights)."""
    model = linear_model.LogisticRegression()
    for i in range(5 + version):
        x = {"fare": float(i % 7) * 3.0, "trip_miles": float(i % 5), "passengers": i % 3}
        model.learn_one(x, i % 2 == 0)
    return model


def create_topic(log: Log, pipeline: str = PIPELINE) -> str:
    spec = load_catalog().spec(pipeline, "models")
    log.create_topic(spec)
    return spec.name


def release(
    version: int,
    model: Any = None,
    *,
    name: str = "tipper",
    pipeline: str = PIPELINE,
    key: bytes | None = KEY,
    chunk_size: int | None = None,
) -> tuple[ModelRelease, list[ModelChunk]]:
    """A (signed unless ``key`` is None) release of ``model`` (default ``train(version)``)."""
    data = pickle.dumps(train(version) if model is None else model)
    chunks: list[ModelChunk] = []
    if chunk_size is None:
        artifact: Any = InlineArtifact.from_bytes(data, format="river-pickle")
    else:
        pieces = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
        artifact = ChunkedArtifact(
            format="river-pickle", size=len(data), sha256=hashlib.sha256(data).hexdigest(),
            chunks=len(pieces), chunk_size=chunk_size, key_prefix=f"{name}@{version}",
        )
        chunks = [
            ModelChunk.from_bytes(p, name=name, version=version, index=i, count=len(pieces))
            for i, p in enumerate(pieces)
        ]
    rel = ModelRelease(
        pipeline=pipeline, name=name, version=version,
        parent_version=version - 1 if version > 1 else None,
        candidate_id=f"{name}-logreg@{version}", signature=SIGNATURE,
        metrics={"roc_auc": 0.9 + version / 1000}, examples_seen=100 * version,
        artifact=artifact, created_at=1_700_000_000_000 + version,
    )
    return (rel.signed(key, key_id="test") if key is not None else rel), chunks


def publish(log: Log, rel: ModelRelease, chunks: Sequence[ModelChunk] = (),
            *, topic: str = TOPIC, value: dict[str, Any] | None = None) -> None:
    """Send the chunks, then the release (``value`` overrides the release's JSON)."""
    with log.producer() as producer:
        for ch in chunks:
            producer.send(topic, serde.encode(ch.to_json()), ch.key.encode())
        body = rel.to_json() if value is None else value
        producer.send(topic, serde.encode(body), rel.name.encode())
        producer.flush()


def flip_data_byte(rel: ModelRelease) -> dict[str, Any]:
    """The release's JSON with one byte of its inline artifact flipped (signature kept)."""
    body = rel.to_json()
    raw = bytearray(base64.b64decode(body["artifact"]["data"]))
    raw[len(raw) // 2] ^= 0x01
    body["artifact"]["data"] = base64.b64encode(bytes(raw)).decode()
    return body


def wait_for(predicate: Callable[[], Any], timeout_s: float = 20.0, what: str = "") -> Any:
    """Poll ``predicate`` until truthy; fail after ``timeout_s`` (a hang guard only)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.02)
