"""Payload of ``<pipeline>.models`` (compacted): the Pusher's signed model releases.

Two record kinds share the topic, told apart by ``kind``:

* :class:`ModelRelease`, keyed by model ``name``: compaction keeps the latest
  release per model;
* :class:`ModelChunk`, keyed ``<name>@<version>/<index>``: pieces of an artifact too
  big for one record, published *before* the release that refers to them. The
  Pusher tombstones the chunks of superseded versions.

:data:`ModelRecord` (a root model) validates either. The HMAC-SHA256 signature
covers :meth:`ModelRelease.signing_bytes`: the canonical JSON of the release
without its ``hmac_sha256`` field, which includes the artifact's SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Annotated, Literal

import orjson
from pydantic import ConfigDict, Field, RootModel

from streamml.payloads.artifacts import ArtifactRef, ModelSignature, Sha256Hex
from streamml.payloads.base import (
    EpochMs,
    Name,
    OffsetRange,
    Payload,
    TimeRange,
    schema_without_doctests,
)


class ModelRelease(Payload):
    """One blessed, published model version.

    >>> from streamml import serde
    >>> from streamml.payloads.artifacts import InlineArtifact, ModelSignature, FeatureSignature
    >>> m = ModelRelease(
    ...     pipeline="demo", name="tipper", version=3, parent_version=2,
    ...     candidate_id="tipper-logreg@7", evaluation_id="tipper-logreg@7", schema_version=1,
    ...     signature=ModelSignature(task="classification", label="big_tipper",
    ...                              inputs=[FeatureSignature(name="fare", type="float")]),
    ...     metrics={"roc_auc": 0.93}, examples_seen=70_000,
    ...     trained_on=[OffsetRange(topic="demo.examples", partition=0, start=0, end=70_000)],
    ...     artifact=InlineArtifact.from_bytes(b"...", format="river-pickle"),
    ...     created_at=1_700_000_000_000).signed(b"secret", key_id="k1")
    >>> m.verify(b"secret"), m.verify(b"wrong")
    (True, False)
    >>> ModelRecord.model_validate(serde.decode(serde.encode(m.to_json()))).root == m
    True
    """

    kind: Literal["release"] = "release"
    pipeline: Name
    name: Name
    """Model name; the record key."""
    version: Annotated[int, Field(ge=1)]
    """Monotonic per model name."""
    parent_version: Annotated[int, Field(ge=1)] | None = None
    """The version this one replaces (``None`` for the first)."""
    candidate_id: str
    evaluation_id: str | None = None
    """The evaluation that blessed it."""
    schema_version: Annotated[int, Field(ge=1)] | None = None
    signature: ModelSignature
    """Inputs and output (TF Serving's signature, not the HMAC)."""
    metrics: dict[str, float] = Field(default_factory=dict)
    """The evaluator's metrics at blessing."""
    examples_seen: Annotated[int, Field(ge=0)] = 0
    trained_on: list[OffsetRange] = Field(default_factory=list)
    """Input offset ranges trained on, per partition."""
    event_time: TimeRange | None = None
    """Event-time range of the examples trained on."""
    artifact: ArtifactRef
    created_at: EpochMs
    hmac_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    """HMAC-SHA256 (hex) of :meth:`signing_bytes`; ``None`` = unsigned (servers refuse)."""
    key_id: str | None = None
    """Which signing key (from settings) made ``hmac_sha256``, for key rotation."""
    component: Name = "Pusher"

    def signing_bytes(self) -> bytes:
        """Canonical JSON (sorted keys) of the release without ``hmac_sha256``."""
        data = self.model_dump(mode="json", exclude={"hmac_sha256"})
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)

    def signed(self, key: bytes, *, key_id: str | None = None) -> ModelRelease:
        """A copy signed with ``key`` (HMAC-SHA256)."""
        unsigned = self.model_copy(update={"key_id": key_id, "hmac_sha256": None})
        digest = hmac.new(key, unsigned.signing_bytes(), hashlib.sha256).hexdigest()
        return unsigned.model_copy(update={"hmac_sha256": digest})

    def verify(self, key: bytes) -> bool:
        """Whether ``hmac_sha256`` is a valid signature by ``key`` (constant time)."""
        if self.hmac_sha256 is None:
            return False
        expected = hmac.new(key, self.signing_bytes(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.hmac_sha256)


class ModelChunk(Payload):
    """One piece of a chunked artifact.

    >>> ch = ModelChunk.from_bytes(b"abc", name="tipper", version=3, index=0, count=2)
    >>> ch.data_bytes(), ch.key
    (b'abc', 'tipper@3/0')
    """

    kind: Literal["chunk"] = "chunk"
    name: Name
    version: Annotated[int, Field(ge=1)]
    index: Annotated[int, Field(ge=0)]
    count: Annotated[int, Field(ge=1)]
    data: str
    """Base64 of this chunk's bytes."""
    sha256: Sha256Hex
    """SHA-256 of this chunk's bytes (the release holds the whole artifact's)."""

    @classmethod
    def from_bytes(
        cls, data: bytes, *, name: str, version: int, index: int, count: int
    ) -> ModelChunk:
        """Wrap one chunk's raw bytes, computing its checksum."""
        return cls(
            name=name,
            version=version,
            index=index,
            count=count,
            data=base64.b64encode(data).decode("ascii"),
            sha256=hashlib.sha256(data).hexdigest(),
        )

    @property
    def key(self) -> str:
        """The record key: ``<name>@<version>/<index>`` (see ``ChunkedArtifact.chunk_key``)."""
        return f"{self.name}@{self.version}/{self.index}"

    def data_bytes(self) -> bytes:
        """This chunk's raw bytes."""
        return base64.b64decode(self.data)


class ModelRecord(RootModel[Annotated[ModelRelease | ModelChunk, Field(discriminator="kind")]]):
    """Any record of the models topic; ``.root`` is a :class:`ModelRelease` or :class:`ModelChunk`.

    >>> chunk = ModelChunk.from_bytes(b"", name="m", version=1, index=0, count=1)
    >>> ModelRecord.model_validate(chunk.to_json()).root.kind
    'chunk'
    """

    model_config = ConfigDict(json_schema_extra=schema_without_doctests)
