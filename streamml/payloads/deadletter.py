"""Payload of ``<pipeline>.deadletter``: input refused with its reason, nothing lost.

ExampleGen sends unparsable, badly encoded, oversize and key-less records here;
ExampleValidator may quarantine examples here by policy.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator

from streamml.payloads.base import EpochMs, Name, Payload
from streamml.payloads.examples import SourcePosition

#: Reasons ExampleGen and ExampleValidator use (others may be added by components).
DEADLETTER_REASONS = (
    "unparsable",  # not valid CSV/JSON/Parquet for its declared format
    "bad_encoding",  # bytes that are not valid in the declared text encoding
    "oversize",  # larger than the connector's record size limit
    "missing_key",  # the configured key column is absent or empty
    "invalid_type",  # the event time is not a time, or the label not of its column's type
    "quarantined",  # an example refused by ExampleValidator's policy
)


class DeadLetter(Payload):
    """One refused input record, with its reason and its original bytes.

    ``original`` is the text when it is valid UTF-8 (``encoding="utf-8"``),
    else base64 (``encoding="base64"``). Originals longer than a limit are cut
    (``truncated``); ``original_size`` and ``original_sha256`` describe the whole.

    >>> from streamml import serde
    >>> dl = DeadLetter.from_bytes(b"\\xff\\xfe,1", id="f.csv:3", pipeline="demo",
    ...                            component="ExampleGen", reason="bad_encoding", detail="bad byte",
    ...                            source="f", position={"line": 3}, time=1_700_000_000_000)
    >>> dl.encoding, dl.original, dl.original_bytes()
    ('base64', '//4sMQ==', b'\\xff\\xfe,1')
    >>> DeadLetter.model_validate(serde.decode(serde.encode(dl.to_json()))) == dl
    True
    """

    id: Annotated[str, Field(min_length=1, max_length=1024)]
    """Deterministic id (source and position); the record key."""
    pipeline: Name
    component: Name
    """The component that refused the record (``ExampleGen``, ``ExampleValidator``...)."""
    reason: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    """Machine-readable reason, one of ``DEADLETTER_REASONS`` or a component's own."""
    detail: str = ""
    """Human-readable explanation (parser message, offending column...)."""
    source: Name
    position: SourcePosition = Field(default_factory=dict)
    topic: str | None = None
    """The topic the record came from or was headed to, if any."""
    example_id: str | None = None
    """The example id, when one could be derived."""
    original: str
    encoding: Literal["utf-8", "base64"]
    original_size: Annotated[int, Field(ge=0)]
    """Size in bytes of the whole original record."""
    original_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    """SHA-256 of the whole original record (hex)."""
    truncated: bool = False
    time: EpochMs
    """When the record was dead-lettered."""

    @model_validator(mode="after")
    def _check_encoding(self) -> Self:
        if self.encoding == "base64":
            try:
                base64.b64decode(self.original, validate=True)
            except ValueError as exc:
                raise ValueError(f"original is not valid base64: {exc}") from exc
        return self

    @classmethod
    def from_bytes(cls, data: bytes, *, limit: int = 1 << 20, **fields: Any) -> DeadLetter:
        """Build a dead letter from raw bytes, cut to ``limit`` bytes and base64 if binary."""
        kept = data[:limit]
        encoding: Literal["utf-8", "base64"]
        try:
            text, encoding = kept.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(kept).decode("ascii"), "base64"
        return cls(
            original=text,
            encoding=encoding,
            original_size=len(data),
            original_sha256=hashlib.sha256(data).hexdigest(),
            truncated=len(kept) < len(data),
            **fields,
        )

    def original_bytes(self) -> bytes:
        """The kept original bytes (all of them unless ``truncated``)."""
        if self.encoding == "base64":
            return base64.b64decode(self.original)
        return self.original.encode("utf-8")
