"""Model artifacts and signatures, shared by candidates and published models.

An artifact (the serialized River pipeline: preprocessing + model) travels

* ``inline``: base64 in the record itself, when it fits the topic's message limit;
* ``chunked``: split into :class:`~streamml.payloads.models.ModelChunk` records on
  the same topic, keyed ``<key_prefix>/<index>``, published before the release;
* ``stored``: in an artifact store, referenced by URI and checked by SHA-256.

The ``sha256`` always covers the whole artifact, whatever the transport.

>>> import hashlib
>>> art = InlineArtifact.from_bytes(b"model-bytes", format="river-pickle")
>>> art.data_bytes(), art.sha256 == hashlib.sha256(b"model-bytes").hexdigest()
(b'model-bytes', True)
"""

from __future__ import annotations

import base64
import hashlib
from typing import Annotated, Literal

from pydantic import Field

from streamml.payloads.base import FeatureType, Name, Payload

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class _Artifact(Payload):
    format: Name
    """Serialization format, e.g. ``river-pickle`` (with its version, if versioned)."""
    size: Annotated[int, Field(ge=0)]
    """Size of the whole artifact in bytes."""
    sha256: Sha256Hex
    """SHA-256 of the whole artifact (hex)."""


class InlineArtifact(_Artifact):
    """The artifact's bytes, base64, inside the record."""

    kind: Literal["inline"] = "inline"
    data: str
    """Base64 of the artifact bytes."""

    @classmethod
    def from_bytes(cls, data: bytes, *, format: str) -> InlineArtifact:
        """Wrap raw bytes, computing size and checksum."""
        return cls(
            format=format,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            data=base64.b64encode(data).decode("ascii"),
        )

    def data_bytes(self) -> bytes:
        """The raw artifact bytes (not verified; compare with ``sha256`` before use)."""
        return base64.b64decode(self.data)


class ChunkedArtifact(_Artifact):
    """The artifact split into ``chunks`` records of at most ``chunk_size`` bytes each.

    >>> ChunkedArtifact(format="river-pickle", size=10, sha256="0" * 64, chunks=2,
    ...                 chunk_size=8, key_prefix="tipper@3").chunk_key(1)
    'tipper@3/1'
    """

    kind: Literal["chunked"] = "chunked"
    chunks: Annotated[int, Field(ge=1)]
    chunk_size: Annotated[int, Field(ge=1)]
    key_prefix: Annotated[str, Field(min_length=1)]
    """Chunk ``i`` is the record keyed ``<key_prefix>/<i>`` on the same topic."""

    def chunk_key(self, index: int) -> str:
        return f"{self.key_prefix}/{index}"


class StoredArtifact(_Artifact):
    """The artifact in an artifact store (a directory, object storage...)."""

    kind: Literal["stored"] = "stored"
    uri: Annotated[str, Field(min_length=1)]


#: Where an artifact's bytes are; discriminated by ``kind``.
ArtifactRef = Annotated[
    InlineArtifact | ChunkedArtifact | StoredArtifact, Field(discriminator="kind")
]


class FeatureSignature(Payload):
    """One input a model expects (served by ``GET /v1/models/{name}/metadata``)."""

    name: Name
    type: FeatureType
    valency: Literal["scalar", "list"] = "scalar"
    required: bool = False
    """``False``: a missing value is imputed by the model's preprocessing."""


class ModelSignature(Payload):
    """Inputs and output of a model, in TF Serving's ``signature_def`` spirit.

    >>> sig = ModelSignature(task="classification", label="big_tipper",
    ...                      inputs=[FeatureSignature(name="fare", type="float")],
    ...                      classes=[False, True])
    >>> sig.output
    'probability'
    """

    task: Literal["classification", "regression"]
    inputs: list[FeatureSignature]
    label: str
    output: Literal["probability", "class", "value"] = "probability"
    """What ``:predict`` returns per instance by default."""
    classes: list[str | int | bool] | None = None
    """Known classes of a classifier."""
