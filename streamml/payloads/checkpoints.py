"""Payload of ``<pipeline>.checkpoints`` (internal, compacted): processor state + offsets.

A host (the embedded runner or the faust host, see
:mod:`streamml.runtime.checkpoint`) writes one :class:`Checkpoint` per
processor and input partition after flushing outputs and before committing
input offsets, keyed ``<processor>/<partition>`` (``<processor>/-`` when one
state covers every input partition) so compaction keeps the latest. State and
the next offsets to read are in the same record, so they always agree.

The record is exactly the JSON envelope the runtime writes::

    {"format": 1, "processor": "count", "partition": 0,
     "offsets": {"p.examples": {"0": 42}}, "state_encoding": "json",
     "state": {...}, "created_ms": 1767225600000,
     "integrity": {"sha256": "<hex>", "hmac": "<hex>" | null}}

``integrity.sha256`` is the SHA-256 of the *canonical JSON* of every other
field: the object without ``integrity``, keys sorted at every level, no
whitespace (``orjson.dumps(doc, option=OPT_SORT_KEYS)``). It covers the
offsets and the metadata, not only the state. ``integrity.hmac`` is the
HMAC-SHA256 of the same bytes under the configured checkpoint key
(``STREAMML_CHECKPOINT_KEY``), ``null`` when none is configured. Never a pickle.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self, cast

import orjson
from pydantic import Field, JsonValue, model_validator

from streamml.payloads.base import EpochMs, Name, Payload

FORMAT_VERSION: Literal[1] = 1

Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
#: A partition number as a JSON object key (``"0"``, ``"12"``).
PartitionKey = Annotated[str, Field(pattern=r"^(0|[1-9][0-9]*)$")]
Offset = Annotated[int, Field(ge=0)]


class TopicOffset(Payload):
    """The next offset to read on one input partition (a committed offset)."""

    topic: str
    partition: Annotated[int, Field(ge=0)]
    offset: Offset


class CheckpointIntegrity(Payload):
    """Digests of the canonical JSON of every other field of the checkpoint."""

    sha256: Hex64
    """SHA-256 of the canonical JSON (sorted keys, no spaces) of the envelope without
    ``integrity``."""
    hmac: Hex64 | None
    """HMAC-SHA256 of the same bytes under the checkpoint key; ``null`` when unkeyed."""


def canonical_json(body: Mapping[str, Any]) -> bytes:
    """The bytes the digests cover: JSON, keys sorted at every level, no whitespace."""
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def integrity_of(body: Mapping[str, Any], hmac_key: bytes | None = None) -> CheckpointIntegrity:
    """The integrity block of an envelope ``body`` (the envelope without ``integrity``)."""
    raw = canonical_json(body)
    mac = hmac.new(hmac_key, raw, hashlib.sha256).hexdigest() if hmac_key else None
    return CheckpointIntegrity(sha256=hashlib.sha256(raw).hexdigest(), hmac=mac)


class Checkpoint(Payload):
    """A processor's state snapshot together with the input offsets it reflects.

    ``state`` is JSON when the processor's ``snapshot()`` returns a dict
    (``state_encoding="json"``), else base64 of its bytes (``"base64"``).

    >>> from streamml import serde
    >>> cp = Checkpoint.of({"n": 3}, processor="StatisticsGen", partition=0,
    ...                    offsets={"demo.examples": {0: 3}}, created_ms=1_700_000_000_000)
    >>> cp.key, cp.restore_state(), cp.topic_offsets()
    ('StatisticsGen/0', {'n': 3}, [TopicOffset(topic='demo.examples', partition=0, offset=3)])
    >>> Checkpoint.model_validate(serde.decode(serde.encode(cp.to_json()))) == cp
    True
    >>> signed = Checkpoint.of(b"\\x00", processor="Trainer", offsets={}, created_ms=0,
    ...                        hmac_key=b"k")
    >>> signed.restore_state(), signed.verify_hmac(b"k"), signed.verify_hmac(b"other")
    (b'\\x00', True, False)
    """

    format: Literal[1]
    """Envelope format version."""
    processor: Name
    """The processor (component) whose state this is."""
    partition: Annotated[int, Field(ge=0)] | None
    """The input partition number this state covers; ``null`` for one state over all."""
    offsets: dict[str, dict[PartitionKey, Offset]]
    """Next offsets to read, ``{topic: {partition: offset}}``, agreeing with ``state``."""
    state_encoding: Literal["json", "base64"]
    state: JsonValue
    """The snapshot: a JSON object, or base64 of opaque bytes."""
    created_ms: EpochMs
    integrity: CheckpointIntegrity

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.state_encoding == "base64":
            if not isinstance(self.state, str):
                raise ValueError("base64 state must be a string")
            try:
                base64.b64decode(self.state, validate=True)
            except ValueError as exc:
                raise ValueError(f"state is not valid base64: {exc}") from None
        if self.state_encoding == "json" and not isinstance(self.state, dict):
            raise ValueError("json state must be an object")
        if integrity_of(self.body()).sha256 != self.integrity.sha256:
            raise ValueError("envelope does not match integrity.sha256 (corrupt checkpoint)")
        return self

    def body(self) -> dict[str, Any]:
        """The envelope without ``integrity``: what the digests cover."""
        return self.model_dump(mode="json", exclude={"integrity"})

    def verify_hmac(self, hmac_key: bytes) -> bool:
        """Whether ``integrity.hmac`` is the HMAC of this envelope under ``hmac_key``."""
        expected = integrity_of(self.body(), hmac_key).hmac
        return self.integrity.hmac is not None and expected is not None and (
            hmac.compare_digest(self.integrity.hmac, expected)
        )

    @classmethod
    def of(cls, state: dict[str, Any] | bytes, *, processor: str,
           offsets: Mapping[str, Mapping[int, int]], created_ms: int,
           partition: int | None = None, hmac_key: bytes | None = None) -> Checkpoint:
        """Build a checkpoint from a processor's ``snapshot()``, computing its digests."""
        encoding: Literal["json", "base64"]
        value: JsonValue
        if isinstance(state, bytes | bytearray):
            encoding, value = "base64", base64.b64encode(bytes(state)).decode("ascii")
        else:
            encoding, value = "json", orjson.loads(orjson.dumps(state))
        body: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "processor": processor,
            "partition": partition,
            "offsets": {t: {str(p): int(o) for p, o in ps.items()} for t, ps in offsets.items()},
            "state_encoding": encoding,
            "state": value,
            "created_ms": created_ms,
        }
        return cls(**body, integrity=integrity_of(body, hmac_key))

    @property
    def key(self) -> str:
        """The record key: ``<processor>/<partition>`` (``<processor>/-`` when unpartitioned)."""
        return f"{self.processor}/{'-' if self.partition is None else self.partition}"

    def topic_offsets(self) -> list[TopicOffset]:
        """The offsets as a flat list, sorted by topic and partition."""
        return sorted(
            (TopicOffset(topic=t, partition=int(p), offset=o)
             for t, ps in self.offsets.items() for p, o in ps.items()),
            key=lambda x: (x.topic, x.partition),
        )

    def restore_state(self) -> dict[str, Any] | bytes:
        """The state to pass to ``Processor.restore``."""
        if self.state_encoding == "base64":
            return base64.b64decode(cast(str, self.state))
        return cast(dict[str, Any], self.state)
