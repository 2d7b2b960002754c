"""Helpers of the replay-determinism tests (embedded and Kafka): topic contents to compare."""

from __future__ import annotations

from typing import Any

from streamml import serde
from streamml.log.base import Log, Record
from streamml.log.read import read_to_end


def records(log: Log, topic: str) -> list[Record]:
    """Every record of ``topic`` to its end offsets, by (partition, offset)."""
    return sorted(read_to_end(log, topic, timeout_s=120), key=lambda r: (r.partition, r.offset))


def contents(log: Log, ns: str, role: str) -> list[Any]:
    """Decoded values of ``<ns>.<role>`` by (partition, offset), ``ns`` renamed to ``NS``.

    A release's HMAC signs its pipeline name, which is the namespace: left out
    here and checked apart. Namespace names contain ``-``, never in base64.
    """
    values = [serde.decode(r.value) if r.value is not None else None
              for r in records(log, f"{ns}.{role}")]
    values = [{k: x for k, x in v.items() if k != "hmac_sha256"} if isinstance(v, dict) else v
              for v in values]
    return list(serde.decode(serde.encode(values).decode().replace(ns, "NS")))
