"""Checkpoints: a processor's state and its input offsets in ONE record.

A checkpoint is written to the compacted ``<pipeline>.checkpoints`` topic on
the log the processor reads (embedded or Kafka: one mechanism for both), keyed
by ``<processor>/<partition>`` (``<processor>/-`` when one state covers all
input partitions). Because state and the next offsets to read travel together, a
restart always resumes with a state that agrees exactly with its position.

The record value is a JSON envelope::

    {"format": 1, "processor": "count", "partition": null,
     "offsets": {"p.examples": {"0": 42}}, "state_encoding": "json",
     "state": {...}, "created_ms": 1767225600000,
     "integrity": {"sha256": "...", "hmac": "..."}}

``integrity.sha256`` covers the canonical JSON of every other field (offsets
included); ``integrity.hmac`` (HMAC-SHA256) is added when a key is configured
(``Settings.checkpoint_key``, env ``STREAMML_CHECKPOINT_KEY``), and required on
load when one is. Opaque ``bytes`` state is stored base64. The envelope is the
catalog payload :class:`streamml.payloads.checkpoints.Checkpoint` (its JSON
Schema is ``topics/schemas/checkpoints.schema.json``).

>>> cp = Checkpoint("count", {"p.in": {0: 42}}, {"n": 42}, created_ms=1)
>>> decode_checkpoint(encode_checkpoint(cp, hmac_key=b"k"), hmac_key=b"k") == cp
True
>>> decode_checkpoint(b'{"format": 1}')
Traceback (most recent call last):
...
streamml.errors.CheckpointError: checkpoint has no integrity block
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from streamml.errors import CheckpointError
from streamml.log.base import Log, Producer, TopicPartition, TopicSpec
from streamml.payloads.checkpoints import canonical_json
from streamml.processors.base import State
from streamml.settings import Settings

FORMAT_VERSION = 1
Offsets = dict[str, dict[int, int]]


@dataclass(frozen=True)
class Checkpoint:
    """State of ``processor`` (for one input ``partition``, or all) and its next offsets."""

    processor: str
    offsets: Offsets
    state: State
    partition: int | None = None
    created_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    @property
    def key(self) -> str:
        return checkpoint_key(self.processor, self.partition)

    def next_offset(self, tp: TopicPartition) -> int | None:
        return self.offsets.get(tp.topic, {}).get(tp.partition)


def checkpoint_key(processor: str, partition: int | None = None) -> str:
    """Deterministic record key, ``<component>/<partition>`` as the topic catalog documents.

    >>> checkpoint_key("count"), checkpoint_key("count", 3)
    ('count/-', 'count/3')
    """
    return f"{processor}/{'-' if partition is None else partition}"


def _digests(canonical: bytes, hmac_key: bytes | None) -> dict[str, str | None]:
    mac = hmac.new(hmac_key, canonical, hashlib.sha256).hexdigest() if hmac_key else None
    return {"sha256": hashlib.sha256(canonical).hexdigest(), "hmac": mac}


def encode_checkpoint(cp: Checkpoint, *, hmac_key: bytes | None = None) -> bytes:
    """The JSON envelope of ``cp``, with its sha256 (and HMAC when keyed)."""
    state: Any
    if isinstance(cp.state, bytes | bytearray):
        encoding, state = "base64", base64.b64encode(cp.state).decode("ascii")
    else:
        encoding, state = "json", cp.state
    body = {
        "format": FORMAT_VERSION,
        "processor": cp.processor,
        "partition": cp.partition,
        "offsets": {t: {str(p): int(o) for p, o in ps.items()} for t, ps in cp.offsets.items()},
        "state_encoding": encoding,
        "state": state,
        "created_ms": cp.created_ms,
    }
    try:
        # Round trip once so the digest covers exactly what a reader will parse.
        normal = orjson.loads(orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS))
    except TypeError as exc:
        raise CheckpointError(f"state of {cp.processor!r} is not JSON-able: {exc}") from exc
    normal["integrity"] = _digests(canonical_json(normal), hmac_key)
    return orjson.dumps(normal)


def decode_checkpoint(data: bytes, *, hmac_key: bytes | None = None) -> Checkpoint:
    """Parse and verify an envelope; any defect raises :class:`CheckpointError`."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise CheckpointError("checkpoint is not a JSON object")
    integrity = doc.pop("integrity", None)
    if not isinstance(integrity, dict):
        raise CheckpointError("checkpoint has no integrity block")
    if doc.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"unsupported checkpoint format {doc.get('format')!r}")
    expected = _digests(canonical_json(doc), hmac_key)
    if not hmac.compare_digest(str(integrity.get("sha256")), str(expected["sha256"])):
        raise CheckpointError(f"checkpoint of {doc.get('processor')!r} fails its sha256 check")
    if hmac_key is not None and not hmac.compare_digest(
        str(integrity.get("hmac")), str(expected["hmac"])
    ):
        raise CheckpointError(f"checkpoint of {doc.get('processor')!r} fails its HMAC check")
    try:
        state: State = (
            base64.b64decode(doc["state"]) if doc["state_encoding"] == "base64" else doc["state"]
        )
        offsets = {
            str(t): {int(p): int(o) for p, o in ps.items()} for t, ps in doc["offsets"].items()
        }
        partition = doc["partition"]
        return Checkpoint(
            processor=str(doc["processor"]),
            offsets=offsets,
            state=state,
            partition=None if partition is None else int(partition),
            created_ms=int(doc["created_ms"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint envelope is malformed: {exc!r}") from exc


def hmac_key_from(settings: Settings) -> bytes | None:
    """The checkpoint HMAC key of ``settings`` (``checkpoint_key``), or ``None`` when unset.

    >>> from streamml.settings import Settings
    >>> hmac_key_from(Settings(checkpoint_key="k")), hmac_key_from(Settings())
    (b'k', None)
    """
    if settings.checkpoint_key is None:
        return None
    value = settings.checkpoint_key.get_secret_value()
    return value.encode("utf-8") if value else None


def checkpoints_topic(pipeline: str) -> TopicSpec:
    """The compacted topic holding a pipeline's checkpoints (from the catalog when present)."""
    from streamml.catalog import load_catalog

    return load_catalog().spec(pipeline, "checkpoints")


def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2), so every writer puts a key in one partition."""
    from streamml.log.partitioner import kafka_partition

    return kafka_partition(key, partitions)


class CheckpointStore:
    """Writes and loads checkpoints on the compacted checkpoints topic of a log.

    ``write`` rejects offsets that move backwards relative to the last
    checkpoint this store wrote or loaded for the same key (as Quix Streams
    does): that would mean state was rolled back while offsets were not.
    """

    def __init__(self, log: Log, pipeline: str, *, hmac_key: bytes | None = None,
                 spec: TopicSpec | None = None) -> None:
        self.log = log
        self.spec = spec or checkpoints_topic(pipeline)
        self.topic = self.spec.name
        self.hmac_key = hmac_key
        self._last: dict[str, Offsets] = {}
        self._partitions: int | None = None

    def ensure_topic(self) -> None:
        if not self.log.topic_exists(self.topic):
            self.log.create_topic(self.spec, exist_ok=True)
        self._partitions = len(self.log.describe_topic(self.topic).partitions)

    def check_forward(self, cp: Checkpoint) -> None:
        """Raise :class:`CheckpointError` if any offset of ``cp`` is below the last one."""
        last = self._last.get(cp.key, {})
        for topic, parts in last.items():
            for partition, offset in parts.items():
                new = cp.offsets.get(topic, {}).get(partition)
                if new is not None and new < offset:
                    raise CheckpointError(
                        f"checkpoint {cp.key!r} moves {topic}[{partition}] backwards: "
                        f"{new} < {offset}"
                    )

    def remember(self, cp: Checkpoint) -> None:
        merged = {t: dict(ps) for t, ps in self._last.get(cp.key, {}).items()}
        for topic, parts in cp.offsets.items():
            merged.setdefault(topic, {}).update(parts)
        self._last[cp.key] = merged

    def encode(self, cp: Checkpoint) -> tuple[bytes, bytes, int]:
        """Check ``cp`` moves forward; return ``(key, value, partition)`` to append."""
        self.check_forward(cp)
        if self._partitions is None:
            self.ensure_topic()
        key = cp.key.encode()
        return key, encode_checkpoint(cp, hmac_key=self.hmac_key), partition_for(
            key, self._partitions or 1
        )

    def write(self, cp: Checkpoint, producer: Producer | None = None) -> None:
        """Append ``cp`` and flush: once this returns the checkpoint is durable.

        Pass the host's ``producer`` to reuse it (it is flushed, not closed).
        """
        key, value, partition = self.encode(cp)
        if producer is None:
            with self.log.producer() as own:
                own.send(self.topic, value, key, partition=partition)
                own.flush()
        else:
            producer.send(self.topic, value, key, partition=partition)
            producer.flush()
        self.remember(cp)

    def load_all(self, timeout_s: float = 30.0) -> dict[str, Checkpoint]:
        """Read the topic to its end; the last value per key wins (tombstones delete)."""
        if not self.log.topic_exists(self.topic):
            return {}
        info = self.log.describe_topic(self.topic)
        tps = [TopicPartition(self.topic, p.partition) for p in info.partitions]
        latest: dict[bytes, bytes | None] = {}
        deadline = time.monotonic() + timeout_s
        with self.log.consumer() as consumer:
            consumer.assign(tps)
            consumer.seek_to_beginning(tps)
            ends = consumer.end_offsets(tps)
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                if time.monotonic() > deadline:
                    raise CheckpointError(f"timed out reading {self.topic}")
                for record in consumer.poll(timeout_s=0.5):
                    if record.key is not None:
                        latest[record.key] = record.value
        out: dict[str, Checkpoint] = {}
        for key, value in latest.items():
            if value is None:
                continue
            cp = decode_checkpoint(value, hmac_key=self.hmac_key)
            if cp.key != key.decode("utf-8", "replace"):
                raise CheckpointError(f"checkpoint under key {key!r} is for {cp.key!r}")
            out[cp.key] = cp
            self.remember(cp)
        return out

    def load(self, processor: str, partition: int | None = None) -> Checkpoint | None:
        """The latest checkpoint of one processor (partition), or ``None``."""
        return self.load_all().get(checkpoint_key(processor, partition))
