"""Payload of ``<pipeline>.checkpoints`` (internal, compacted): processor state + offsets.

A host writes one :class:`Checkpoint` per component and input partition group
after flushing outputs and before committing input offsets, keyed
``<component>/<partition>`` so compaction keeps the latest. State and offsets
are in the same record, so they always agree. Each checkpoint carries a format
version, a SHA-256 of its state and optionally an HMAC, never a bare pickle.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Annotated, Any, Literal, Self, cast

import orjson
from pydantic import Field, JsonValue, model_validator

from streamml.payloads.base import EpochMs, Name, Payload

FORMAT_VERSION: Literal[1] = 1


class TopicOffset(Payload):
    """The next offset to read on one input partition (a committed offset)."""

    topic: str
    partition: Annotated[int, Field(ge=0)]
    offset: Annotated[int, Field(ge=0)]


class Checkpoint(Payload):
    """A processor's state snapshot together with the input offsets it reflects.

    ``state`` is JSON when the processor's ``snapshot()`` returns a dict
    (``state_encoding="json"``), else base64 of its bytes (``"base64"``).
    ``sequence`` grows by one per checkpoint: a restore refuses one that moves back.

    >>> from streamml import serde
    >>> cp = Checkpoint.of({"n": 3}, component="StatisticsGen", partition=0, sequence=1,
    ...                    offsets=[TopicOffset(topic="demo.examples", partition=0, offset=3)],
    ...                    created_at=1_700_000_000_000)
    >>> cp.key, cp.restore_state()
    ('StatisticsGen/0', {'n': 3})
    >>> Checkpoint.model_validate(serde.decode(serde.encode(cp.to_json()))) == cp
    True
    >>> Checkpoint.of(b"\\x00", component="Trainer", sequence=2, offsets=[],
    ...               created_at=0).restore_state()
    b'\\x00'
    """

    format_version: Literal[1] = FORMAT_VERSION
    component: Name
    partition: Annotated[int, Field(ge=0)] | None = None
    """The input partition (group) this state covers; ``None`` for a single-instance state."""
    sequence: Annotated[int, Field(ge=0)]
    offsets: list[TopicOffset]
    """Next offsets to read, per input partition, agreeing with ``state``."""
    state_encoding: Literal["json", "base64"]
    state: JsonValue
    state_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    """SHA-256 of the state's bytes (canonical JSON with sorted keys, or the raw bytes)."""
    hmac_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    """Optional HMAC-SHA256 of the same bytes, when a checkpoint key is configured."""
    host: str | None = None
    """Which worker wrote it (diagnostics)."""
    created_at: EpochMs

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.state_encoding == "base64" and not isinstance(self.state, str):
            raise ValueError("base64 state must be a string")
        if self.state_encoding == "json" and not isinstance(self.state, dict):
            raise ValueError("json state must be an object")
        if hashlib.sha256(self._state_bytes()).hexdigest() != self.state_sha256:
            raise ValueError("state does not match state_sha256 (corrupt checkpoint)")
        return self

    def _state_bytes(self) -> bytes:
        if self.state_encoding == "base64":
            return base64.b64decode(cast(str, self.state))
        return orjson.dumps(self.state, option=orjson.OPT_SORT_KEYS)

    @classmethod
    def of(cls, state: dict[str, Any] | bytes, **fields: Any) -> Checkpoint:
        """Build a checkpoint from a processor's ``snapshot()``, computing the checksum."""
        encoding: Literal["json", "base64"]
        value: JsonValue
        if isinstance(state, bytes | bytearray):
            raw = bytes(state)
            encoding, value = "base64", base64.b64encode(raw).decode("ascii")
        else:
            raw = orjson.dumps(state, option=orjson.OPT_SORT_KEYS)
            encoding, value = "json", orjson.loads(raw)
        digest = hashlib.sha256(raw).hexdigest()
        return cls(state_encoding=encoding, state=value, state_sha256=digest, **fields)

    @property
    def key(self) -> str:
        """The record key: ``<component>/<partition>`` (``<component>/-`` when unpartitioned)."""
        return f"{self.component}/{'-' if self.partition is None else self.partition}"

    def restore_state(self) -> dict[str, Any] | bytes:
        """The state to pass to ``Processor.restore``."""
        if self.state_encoding == "base64":
            return self._state_bytes()
        return cast(dict[str, Any], self.state)
