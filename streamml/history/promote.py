"""Promote: copy a backfill's schema version and/or model release to the live pipeline.

``promote(log, namespace, pipeline, schema=True, model="tipper")`` takes the
latest record per key on ``<namespace>.schema`` / ``<namespace>.models`` and
appends it to ``<pipeline>.schema`` / ``<pipeline>.models`` (the live compacted
topics), so the live pipeline, servers and subscribers pick it up.

**Schemas** (not signed): the promoted version keeps its number when it is
above the live latest of the same schema name, else takes the next one (live
latest + 1); ``parent`` is the live latest, ``pipeline`` the live pipeline, and
``reason`` says where it came from. Promoting content identical to the live
latest (same features and label) is a no-op.

**Models stay signed.** The HMAC signature covers the whole release, version
included. When the backfilled version is above the live latest, the release
(and its chunks) are re-published **byte for byte**: no key needed, the
signature stays the Pusher's. Its ``pipeline`` field keeps the namespace it
was trained in (provenance; servers verify the signature, not the name). When
the version must change (live latest >= backfilled version), promotion needs
the signing key (``settings.signing_key`` / ``STREAMML_SIGNING_KEY``): the
original signature is verified with it first, then the release gets version
``live latest + 1``, ``parent_version`` = live latest, chunk keys
``<name>@<new version>/<i>``, and is re-signed with the same ``key_id``.
Promoting a release whose artifact (SHA-256) and candidate are already the
live latest is a no-op.

Both kinds also emit a lineage ``artifact`` event to ``<pipeline>.metadata``
(when that topic exists) whose ``input_artifacts`` name the backfilled artifact.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from streamml import serde
from streamml.errors import ConfigError
from streamml.log.base import Headers, Log, Record, TopicPartition
from streamml.payloads.artifacts import ChunkedArtifact
from streamml.payloads.metadata import ArtifactInfo, MetadataEvent
from streamml.payloads.models import ModelChunk, ModelRecord, ModelRelease
from streamml.payloads.schema import SchemaVersion

PROMOTED_HEADER = "streamml-promoted-from"


@dataclass
class Promoted:
    """One promoted (or skipped) artifact."""

    kind: str
    """``schema`` or ``model``."""
    name: str
    from_version: int
    version: int | None
    """Version on the live topic; ``None`` when skipped."""
    resigned: bool = False
    chunks: int = 0
    note: str = ""


@dataclass
class PromoteResult:
    """What :func:`promote` did."""

    promoted: list[Promoted] = field(default_factory=list)


def latest_records(log: Log, topic: str) -> dict[bytes, Record]:
    """The last record per key of a (compacted) topic; tombstoned keys are left out."""
    if not log.topic_exists(topic):
        return {}
    tps = [TopicPartition(topic, p.partition) for p in log.describe_topic(topic).partitions]
    latest: dict[bytes, Record] = {}
    with log.consumer() as consumer:
        consumer.assign(tps)
        consumer.seek_to_beginning(tps)
        ends = consumer.end_offsets(tps)
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for r in consumer.poll(timeout_s=0.5):
                if r.key is None:
                    continue
                if r.value is None:
                    latest.pop(r.key, None)
                else:
                    latest[r.key] = r
    return latest


def _headers(record: Record, namespace: str) -> Headers:
    return (*[(k, v) for k, v in record.headers if k != PROMOTED_HEADER],
            (PROMOTED_HEADER, namespace.encode()))


def _ensure(log: Log, pipeline: str, role: str) -> str:
    from streamml.catalog import load_catalog

    spec = load_catalog().spec(pipeline, role)
    log.create_topic(spec, exist_ok=True)
    return spec.name


def promote_schema(log: Log, namespace: str, pipeline: str) -> list[Promoted]:
    """Promote the latest version of every schema name on ``<namespace>.schema``."""
    from streamml.catalog import load_catalog

    catalog = load_catalog()
    src = catalog.topic_name(namespace, "schema")
    backfilled = latest_records(log, src)
    if not backfilled:
        raise ConfigError(f"no schema version on {src} to promote")
    dst = _ensure(log, pipeline, "schema")
    live = latest_records(log, dst)
    out = []
    with log.producer() as producer:
        for key, record in sorted(backfilled.items()):
            new = SchemaVersion.model_validate_json(record.value or b"")
            current = (SchemaVersion.model_validate_json(live[key].value or b"")
                       if key in live else None)
            if current is not None and (current.features, current.label) == (
                    new.features, new.label):
                out.append(Promoted("schema", new.name, new.version, None,
                                    note=f"identical to live version {current.version}"))
                continue
            last = current.version if current is not None else 0
            version = new.version if new.version > last else last + 1
            reason = f"promoted from {namespace} v{new.version}" + (
                f": {new.reason}" if new.reason else "")
            promoted = new.model_copy(update={"pipeline": pipeline, "version": version,
                                              "parent": last or None, "reason": reason})
            producer.send(dst, serde.encode(promoted.to_json()), key,
                          timestamp_ms=record.timestamp_ms, headers=_headers(record, namespace))
            out.append(Promoted("schema", new.name, new.version, version))
        producer.flush()
    return out


def promote_model(log: Log, namespace: str, pipeline: str, model: str, *,
                  signing_key: bytes | None = None) -> Promoted:
    """Promote the latest release of ``model`` on ``<namespace>.models`` (see the module doc)."""
    from streamml.catalog import load_catalog

    catalog = load_catalog()
    src = catalog.topic_name(namespace, "models")
    backfilled = latest_records(log, src)
    record = backfilled.get(model.encode())
    if record is None:
        raise ConfigError(f"no release of model {model!r} on {src} to promote")
    release = ModelRecord.model_validate_json(record.value or b"").root
    if not isinstance(release, ModelRelease):
        raise ConfigError(f"{src}: the record keyed {model!r} is not a release")
    chunks: list[Record] = []
    if isinstance(release.artifact, ChunkedArtifact):
        art = release.artifact
        for i in range(art.chunks):
            chunk = backfilled.get(art.chunk_key(i).encode())
            if chunk is None:
                raise ConfigError(f"{src}: chunk {art.chunk_key(i)} of {model} "
                                  f"v{release.version} is missing")
            chunks.append(chunk)
    dst = _ensure(log, pipeline, "models")
    live = latest_records(log, dst)
    current = None
    if model.encode() in live:
        parsed = ModelRecord.model_validate_json(live[model.encode()].value or b"").root
        current = parsed if isinstance(parsed, ModelRelease) else None
    if current is not None and (current.artifact.sha256, current.candidate_id) == (
            release.artifact.sha256, release.candidate_id):
        return Promoted("model", model, release.version, None,
                        note=f"already live as version {current.version}")
    last = current.version if current is not None else 0
    out_chunks: list[tuple[bytes, bytes, Record]] = []
    if release.version > last:  # unchanged: the Pusher's signature still holds
        value = record.value or b""
        out_chunks = [(c.key or b"", c.value or b"", c) for c in chunks]
        result = Promoted("model", model, release.version, release.version, chunks=len(chunks))
    else:
        if not signing_key:
            raise ConfigError(
                f"live {pipeline}.models already has {model} v{last} >= backfilled "
                f"v{release.version}: the version must change, which needs the signing key "
                "(settings signing_key / STREAMML_SIGNING_KEY) to re-sign the release")
        if not release.verify(signing_key):
            raise ConfigError(f"{model} v{release.version} on {src} does not verify with the "
                              "signing key: refusing to re-sign it")
        version = last + 1
        update: dict[str, object] = {"version": version, "parent_version": last}
        if isinstance(release.artifact, ChunkedArtifact):
            update["artifact"] = release.artifact.model_copy(
                update={"key_prefix": f"{model}@{version}"})
            for c in chunks:
                piece = ModelChunk.model_validate_json(c.value or b"")
                moved = piece.model_copy(update={"version": version})
                out_chunks.append((moved.key.encode(), serde.encode(moved.to_json()), c))
        resigned = release.model_copy(update=update).signed(signing_key,
                                                            key_id=release.key_id)
        value = serde.encode(resigned.to_json())
        result = Promoted("model", model, release.version, version, resigned=True,
                          chunks=len(chunks))
    with log.producer() as producer:
        for key, data, origin in out_chunks:  # chunks first: the release refers to them
            producer.send(dst, data, key, timestamp_ms=origin.timestamp_ms,
                          headers=_headers(origin, namespace))
        producer.send(dst, value, model.encode(), timestamp_ms=record.timestamp_ms,
                      headers=_headers(record, namespace))
        producer.flush()
    return result


def _lineage(log: Log, namespace: str, pipeline: str, items: list[Promoted]) -> None:
    from streamml.catalog import load_catalog

    topic = load_catalog().topic_name(pipeline, "metadata")
    if not log.topic_exists(topic):
        return
    with log.producer() as producer:
        for p in items:
            if p.version is None:
                continue
            role = "schema" if p.kind == "schema" else "models"
            info = ArtifactInfo(id=f"{pipeline}/{p.kind}/{p.name}@{p.version}", type=p.kind,
                                topic=f"{pipeline}.{role}", key=p.name, version=p.version)
            event = MetadataEvent(
                id=f"{pipeline}/promote/{p.kind}/{p.name}@{p.version}", pipeline=pipeline,
                kind="artifact", component="promote", artifact=info,
                input_artifacts=[f"{namespace}/{p.kind}/{p.name}@{p.from_version}"],
                properties={"promoted_from": namespace, "resigned": p.resigned},
                time=int(time.time() * 1000))
            producer.send(topic, serde.encode(event.to_json()), event.id.encode())
        producer.flush()


def promote(log: Log, namespace: str, pipeline: str, *, schema: bool = False,
            model: str | None = None, signing_key: bytes | None = None) -> PromoteResult:
    """Promote the backfilled schema (``schema=True``) and/or ``model`` to ``pipeline``."""
    from streamml.catalog import validate_pipeline

    validate_pipeline(namespace)
    validate_pipeline(pipeline)
    if namespace == pipeline:
        raise ConfigError("--namespace and --pipeline must differ")
    if not schema and model is None:
        raise ConfigError("nothing to promote: use --schema and/or --model NAME")
    result = PromoteResult()
    if schema:
        result.promoted += promote_schema(log, namespace, pipeline)
    if model is not None:
        result.promoted.append(promote_model(log, namespace, pipeline, model,
                                             signing_key=signing_key))
    _lineage(log, namespace, pipeline, result.promoted)
    return result


__all__ = ["PROMOTED_HEADER", "PromoteResult", "Promoted", "latest_records", "promote",
           "promote_model", "promote_schema"]
