"""Model artifacts and opaque processor state: serialize, checksum, verify, load.

An artifact is the pickle of one River object (preprocessing + estimator),
format ``river-pickle/1``. Pickle runs code on load, so bytes are only ever
unpickled **after** their SHA-256 (and, for published models, the release's
HMAC-SHA256) has been checked: :func:`load_model` and :func:`load_release_model`
are the only load sites.

Processor state (Trainer, Evaluator) is packed the same way by
:func:`pack_state`: a magic header, the SHA-256 of the payload, the payload. The
runtime's checkpoint envelope adds its own sha256 (and HMAC when keyed) on top.

>>> from river import linear_model
>>> data = dump_model(linear_model.LinearRegression())
>>> art = inline_artifact(data)
>>> type(load_model(art.data_bytes(), art.sha256)).__name__
'LinearRegression'
>>> load_model(data + b"x", art.sha256)
Traceback (most recent call last):
...
streamml.learning.artifact.ArtifactError: artifact fails its sha256 check
>>> unpack_state(pack_state({"n": 1}))
{'n': 1}
"""

from __future__ import annotations

import hashlib
import hmac
import pickle  # noqa: S403 - loads happen only after sha256/HMAC verification (see below)
from collections.abc import Mapping, Sequence
from typing import Any

from streamml.errors import StreamMLError
from streamml.payloads.artifacts import ChunkedArtifact, InlineArtifact, StoredArtifact
from streamml.payloads.models import ModelChunk, ModelRelease
from streamml.settle import settle

FORMAT = "river-pickle/1"
_STATE_MAGIC = b"streamml-state/1\n"


class ArtifactError(StreamMLError):
    """An artifact or state blob is malformed, tampered with, or unsigned."""


def dump_model(model: Any) -> bytes:
    """Serialize a River object (pipeline included); the live model stays fast (see
    :mod:`~streamml.settle`)."""
    data = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    settle(model)
    return data


def inline_artifact(data: bytes) -> InlineArtifact:
    """Wrap artifact bytes for a record (base64 + size + sha256)."""
    return InlineArtifact.from_bytes(data, format=FORMAT)


def load_model(data: bytes, sha256: str) -> Any:
    """Unpickle ``data`` after checking it against the expected ``sha256`` (hex)."""
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), sha256):
        raise ArtifactError("artifact fails its sha256 check")
    model = pickle.loads(data)  # noqa: S301 - sha256 verified just above
    settle(model)
    return model


def artifact_bytes(
    artifact: InlineArtifact | ChunkedArtifact | StoredArtifact,
    chunks: Mapping[int, ModelChunk] | Sequence[ModelChunk] | None = None,
) -> bytes:
    """The whole artifact's bytes (inline, or reassembled and checksummed from chunks)."""
    if isinstance(artifact, InlineArtifact):
        data = artifact.data_bytes()
    elif isinstance(artifact, ChunkedArtifact):
        by_index = (dict(chunks) if isinstance(chunks, Mapping)
                    else {c.index: c for c in chunks or ()})
        parts = []
        for i in range(artifact.chunks):
            chunk = by_index.get(i)
            if chunk is None:
                raise ArtifactError(f"chunk {artifact.chunk_key(i)} is missing")
            piece = chunk.data_bytes()
            if hashlib.sha256(piece).hexdigest() != chunk.sha256:
                raise ArtifactError(f"chunk {artifact.chunk_key(i)} fails its sha256 check")
            parts.append(piece)
        data = b"".join(parts)
    else:
        raise ArtifactError(f"stored artifacts ({artifact.uri}) are not fetched here")
    if len(data) != artifact.size or hashlib.sha256(data).hexdigest() != artifact.sha256:
        raise ArtifactError("artifact fails its size/sha256 check")
    return data


def load_release_model(
    release: ModelRelease, key: bytes, chunks: Sequence[ModelChunk] | None = None
) -> Any:
    """Verify a release's HMAC with ``key``, then its artifact's sha256, then load the model.

    >>> from river import linear_model
    >>> from streamml.payloads.artifacts import ModelSignature
    >>> rel = ModelRelease(pipeline="p", name="m", version=1, candidate_id="m@1",
    ...                    signature=ModelSignature(task="regression", inputs=[], label="y"),
    ...                    artifact=inline_artifact(dump_model(linear_model.LinearRegression())),
    ...                    created_at=0).signed(b"k")
    >>> type(load_release_model(rel, b"k")).__name__
    'LinearRegression'
    >>> load_release_model(rel, b"other")
    Traceback (most recent call last):
    ...
    streamml.learning.artifact.ArtifactError: release m v1 is unsigned or fails its HMAC check
    """
    if not release.verify(key):
        raise ArtifactError(
            f"release {release.name} v{release.version} is unsigned or fails its HMAC check")
    data = artifact_bytes(release.artifact, chunks)
    return load_model(data, release.artifact.sha256)


def pack_state(state: Any) -> bytes:
    """Opaque processor state: magic header + sha256 + pickle."""
    payload = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    return _STATE_MAGIC + hashlib.sha256(payload).digest() + payload


def unpack_state(blob: bytes) -> Any:
    """Inverse of :func:`pack_state`; refuses anything whose checksum does not match."""
    if not isinstance(blob, bytes | bytearray) or not blob.startswith(_STATE_MAGIC):
        raise ArtifactError("not a streamml state blob")
    digest = blob[len(_STATE_MAGIC):len(_STATE_MAGIC) + 32]
    payload = bytes(blob[len(_STATE_MAGIC) + 32:])
    if not hmac.compare_digest(hashlib.sha256(payload).digest(), digest):
        raise ArtifactError("state blob fails its sha256 check")
    return pickle.loads(payload)  # noqa: S301 - checksum verified; the checkpoint is HMAC-able


def algorithm_of(model: Any) -> str:
    """Dotted class path of the estimator (the last step of a pipeline).

    >>> from river import compose, linear_model, preprocessing
    >>> algorithm_of(preprocessing.StandardScaler() | linear_model.LogisticRegression())
    'river.linear_model.log_reg.LogisticRegression'
    """
    steps = getattr(model, "steps", None)
    est = list(steps.values())[-1] if steps else model
    return f"{type(est).__module__}.{type(est).__qualname__}"


def task_of(model: Any) -> str:
    """``classification`` or ``regression``, from River's estimator tags."""
    from river import base

    steps = getattr(model, "steps", None)
    est = list(steps.values())[-1] if steps else model
    return "classification" if isinstance(est, base.Classifier) else "regression"


def jsonable(value: Any) -> Any:
    """River ``_get_params()`` made JSON-able: classes become dotted paths, sets sorted lists.

    >>> from river import optim
    >>> jsonable({"lr": (optim.schedulers.Constant, {"learning_rate": 0.01}), "s": {"b", "a"}})
    {'lr': ['river.optim.schedulers.Constant', {'learning_rate': 0.01}], 's': ['a', 'b']}
    """
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((jsonable(v) for v in value), key=repr)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    return repr(value)
