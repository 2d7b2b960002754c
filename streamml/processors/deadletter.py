"""A processor's dead letter for an input it refuses (not JSON, an invalid payload...).

Processors put such a record on ``<p>.deadletter`` instead of raising, so the
pipeline keeps running and records in = records out + dead letters. The
dead letter keeps the original bytes (raw values as they came, decoded values
re-encoded), where they came from, and why.

>>> from streamml.processors.base import Message
>>> e = dead_letter_emit(Message("p.schema", 0, 7, 5, None, b"{oops"), reason="invalid_json",
...                      detail="not valid JSON", component="x", pipeline="p",
...                      topic="p.deadletter")
>>> e.key, e.value["reason"], e.value["original"]
('p.schema:0:7', 'invalid_json', '{oops')
"""

from __future__ import annotations

import time

from streamml.log.base import Record
from streamml.payloads.deadletter import DeadLetter
from streamml.processors.base import Emit, Message
from streamml.serde import encode

RAW_TYPES = (bytes, bytearray, memoryview)


def dead_letter_emit(message: Message, *, reason: str, detail: str, component: str,
                     pipeline: str, topic: str, key: str | None = None) -> Emit:
    """The dead letter of ``message`` on ``topic``, stamped with the record's log time.

    ``key`` defaults to ``<topic>:<partition>:<offset>`` of the refused record.
    """
    ident = key or f"{message.topic}:{message.partition}:{message.offset}"
    value = message.value
    original = bytes(value) if isinstance(value, RAW_TYPES) else encode(value)
    letter = DeadLetter.from_bytes(
        original, id=ident, pipeline=pipeline, component=component, reason=reason,
        detail=detail[:4000], source=message.topic,
        position={"partition": message.partition, "offset": message.offset},
        topic=message.topic, time=message.timestamp_ms)
    return Emit(topic, letter.to_json(), key=ident, timestamp_ms=message.timestamp_ms)


def dead_letter(reason: str, record: Record, processor: str, pipeline: str) -> tuple[bytes, bytes]:
    """Key and JSON value of a host's dead letter for ``record`` (not JSON; stamped now).

    >>> key, value = dead_letter("bad", Record("p.raw", 0, 7, 1, None, b"\\xff"), "x", "p")
    >>> from streamml.serde import decode
    >>> key, decode(value)["original"], decode(value)["reason"]
    (b'p.raw:0:7', '/w==', 'invalid_json')
    """
    now = Message(record.topic, record.partition, record.offset, int(time.time() * 1000),
                  None, record.value or b"")
    emit = dead_letter_emit(now, reason="invalid_json", detail=reason, component=processor,
                            pipeline=pipeline, topic="")
    return str(emit.key).encode(), encode(emit.value)
