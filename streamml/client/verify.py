"""Verification of model releases: signature, artifact checksum, then (only then) unpickling.

Order of checks, each refusing the release with a :class:`Refused` reason:

1. a signing key is configured (``no_key``: fail closed, nothing loads without one);
2. the release carries an HMAC (``unsigned``) and it verifies with the key
   (``bad_signature``): this covers every field, the artifact's SHA-256 included;
3. the artifact's bytes are all there (``missing_chunks``, ``unavailable``) and
   their size and SHA-256 match the signed ones (``checksum``);
4. the format is a pickle (``format``), it unpickles to an object with
   ``predict_one`` (``load_error``);
5. one warm-up prediction on a sample built from the signature succeeds
   (``warmup``), as TF Serving fails a load whose warm-up requests fail.

``pickle.loads`` runs only after steps 1-3, on bytes whose digest the key holder
signed.

>>> import pickle
>>> from streamml.payloads.artifacts import InlineArtifact, ModelSignature
>>> from streamml.payloads.models import ModelRelease
>>> data = pickle.dumps({"not": "a model"})
>>> release = ModelRelease(pipeline="p", name="m", version=1, candidate_id="c",
...     signature=ModelSignature(task="regression", label="y", inputs=[]),
...     artifact=InlineArtifact.from_bytes(data, format="river-pickle"), created_at=0)
>>> try:
...     load_verified(release, data, None)
... except Refused as exc:
...     print(exc.reason, "|", exc)
no_key | no signing key configured: refusing every model (fail closed)
>>> try:
...     load_verified(release.signed(b"k"), data + b"x", b"k")
... except Refused as exc:
...     print(exc.reason)
checksum
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

from streamml.client.served import ServedModel
from streamml.payloads.artifacts import StoredArtifact
from streamml.payloads.models import ModelRelease
from streamml.settle import settle

RefusalReason = Literal[
    "no_key",
    "unsigned",
    "bad_signature",
    "missing_chunks",
    "unavailable",
    "checksum",
    "format",
    "load_error",
    "warmup",
    "invalid_record",
]


class Refused(Exception):
    """A release that was not loaded, and why (``reason`` is a :data:`RefusalReason`)."""

    def __init__(self, reason: RefusalReason, message: str) -> None:
        super().__init__(message)
        self.reason: RefusalReason = reason


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused release, as the subscriber records and the server reports it."""

    name: str | None
    version: int | None
    reason: RefusalReason
    message: str
    offset: int | None = None


def check_signature(release: ModelRelease, key: bytes | None) -> None:
    """Raise :class:`Refused` unless ``release`` is signed with ``key``."""
    if key is None:
        raise Refused("no_key", "no signing key configured: refusing every model (fail closed)")
    if release.hmac_sha256 is None:
        raise Refused("unsigned", "release is unsigned")
    if not release.verify(key):
        raise Refused(
            "bad_signature",
            "HMAC signature does not verify (tampered, or signed with another key)",
        )


def check_artifact(release: ModelRelease, data: bytes) -> None:
    """Raise :class:`Refused` unless ``data`` has the signed size and SHA-256."""
    art = release.artifact
    if len(data) != art.size or hashlib.sha256(data).hexdigest() != art.sha256:
        raise Refused(
            "checksum",
            f"artifact bytes do not match the signed SHA-256 ({len(data)} bytes, "
            f"{art.size} expected)",
        )


def read_stored(artifact: StoredArtifact) -> bytes:
    """Default fetcher of stored artifacts: ``file://`` URIs and plain paths."""
    parsed = urlparse(artifact.uri)
    if parsed.scheme not in ("", "file"):
        raise Refused("unavailable", f"unsupported artifact store URI {artifact.uri!r}")
    path = Path(unquote(parsed.path) if parsed.scheme else artifact.uri)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise Refused("unavailable", f"cannot read artifact {artifact.uri}: {exc}") from exc


def load_verified(release: ModelRelease, data: bytes, key: bytes | None) -> ServedModel:
    """Verify ``release`` and its artifact ``data``, unpickle, warm up; :class:`Refused` if not."""
    check_signature(release, key)
    check_artifact(release, data)
    if "pickle" not in release.artifact.format:
        raise Refused("format", f"unsupported artifact format {release.artifact.format!r}")
    try:
        # Safe to unpickle: the HMAC (checked above with the configured key) signs this
        # digest, and the bytes match it, so they come from the key holder unmodified.
        model = pickle.loads(data)  # noqa: S301
        settle(model)  # attribute access as fast as a never-pickled model's
    except Exception as exc:
        reason = f"cannot unpickle artifact: {type(exc).__name__}: {exc}"
        raise Refused("load_error", reason) from exc
    if not callable(getattr(model, "predict_one", None)):
        raise Refused("load_error", f"artifact is a {type(model).__name__}, not a model")
    served = ServedModel(release, model)
    try:
        served.warm_up()
    except Exception as exc:
        raise Refused("warmup", f"warm-up prediction failed: {exc}") from exc
    return served
