"""Pusher: publish blessed candidates as signed, versioned releases on ``<p>.models``.

Inputs: ``<p>.candidates`` and ``<p>.evaluations``; output: ``<p>.models``
(compacted, keyed by model name). For every *blessed* evaluation the Pusher takes
the candidate it names (whichever of the two arrives first waits for the other,
in a bounded buffer) and publishes a :class:`ModelRelease` with the next
monotonic version, the evaluator's metrics, the offsets and event times trained
on, the schema version (``schema_version`` if given, else the candidate's, else
the latest version read on ``schema_topic`` when the Pusher listens to
``<p>.schema``), the parent version and the artifact, signed with
HMAC-SHA256 (:meth:`ModelRelease.signed`). ``created_at`` is the evaluation's
decision time, so a replay republishes byte-identical records (with
``schema_topic``, as long as the schema records are read before the same
evaluations, which holds when the schema is inferred long before the first
model is blessed), and an evaluation already published is never published
twice. Records are stamped with their write time (retention counts from
publication); the release's ``event_time`` is the event-time range trained on.

When the release would exceed the topic's message limit (``max.message.bytes``
of the catalog, or ``max_message_bytes``), the artifact is split into
:class:`ModelChunk` records keyed ``<name>@<version>/<i>``, published first, and
the release carries a :class:`ChunkedArtifact` that references them. Once a
newer version is published (its chunks, then its release), the chunk keys of
the versions before it are deleted with tombstones (``None`` values), so
compaction does not keep superseded artifacts forever; only the latest release
and its chunks are needed to resume (subscribers and the model server read the
topic from its start and ignore tombstones of chunks they no longer need).

With ``export_dir``, each release is also written to ``<export_dir>/<version>/``
(``model.pkl`` + ``release.json``), atomically: a temporary directory renamed
into place. (The one side effect a processor has; replays skip existing versions.)

>>> p = Pusher("p", b"key")
>>> p.outputs
('p.models',)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from streamml import serde
from streamml.errors import ConfigError
from streamml.learning.artifact import ArtifactError, artifact_bytes, inline_artifact
from streamml.payloads.artifacts import ChunkedArtifact
from streamml.payloads.candidates import Candidate
from streamml.payloads.evaluations import Evaluation
from streamml.payloads.models import ModelChunk, ModelRelease
from streamml.processors.base import Emit, Message, Processor, State

_OVERHEAD = 4096  # bytes kept free in each record for the JSON around the data


def _default_limit(pipeline: str) -> int:
    try:
        from streamml.runtime.runner import topic_spec

        spec = topic_spec(pipeline, f"{pipeline}.models")
        return int(spec.config.get("max.message.bytes", 1_048_576))
    except (ConfigError, ValueError, OSError):
        return 1_048_576


class Pusher(Processor):
    """Publisher of blessed models; see the module docstring."""

    name = "pusher"

    def __init__(
        self,
        pipeline: str,
        signing_key: bytes,
        *,
        key_id: str | None = None,
        model_name: str | None = None,
        max_message_bytes: int | None = None,
        export_dir: str | None = None,
        schema_version: int | None = None,
        schema_topic: str | None = None,
        max_buffered: int = 32,
    ) -> None:
        if not signing_key:
            raise ConfigError("the Pusher needs a signing key (settings: STREAMML_SIGNING_KEY)")
        self.pipeline = pipeline
        self.signing_key = signing_key
        self.key_id = key_id
        self.model_name = model_name or pipeline
        self.max_message_bytes = max_message_bytes
        self.export_dir = export_dir
        self.schema_version = schema_version
        self.max_buffered = max_buffered
        self.limit = max_message_bytes or _default_limit(pipeline)
        if self.limit <= 2 * _OVERHEAD:
            raise ConfigError(f"max_message_bytes {self.limit} is too small")
        self.candidates_topic = f"{pipeline}.candidates"
        self.evaluations_topic = f"{pipeline}.evaluations"
        self.models_topic = f"{pipeline}.models"
        self.schema_topic = schema_topic
        self.inputs = (self.candidates_topic, self.evaluations_topic) + (
            (schema_topic,) if schema_topic else ())
        self.current_schema: int | None = None
        """The latest version read on ``schema_topic``: stamped on the releases."""
        self.outputs = (self.models_topic,)
        self.candidates: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.waiting: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.published: list[str] = []
        self.version = 0
        self.refused = 0
        self.chunked: list[list[int]] = []
        """``[version, chunk count]`` of published chunked versions not tombstoned yet."""

    def snapshot(self) -> State:
        return {"candidates": dict(self.candidates), "waiting": dict(self.waiting),
                "published": self.published, "version": self.version, "refused": self.refused,
                "chunked": [list(c) for c in self.chunked], "schema": self.current_schema}

    def restore(self, state: State) -> None:
        if not isinstance(state, dict):
            raise TypeError("Pusher state is a dict")
        self.candidates = OrderedDict(state["candidates"])
        self.waiting = OrderedDict(state["waiting"])
        self.published = list(state["published"])
        self.version = int(state["version"])
        self.refused = int(state["refused"])
        self.chunked = [[int(v), int(n)] for v, n in state.get("chunked", [])]
        self.current_schema = state.get("schema")

    def process(self, batch: Sequence[Message]) -> Iterable[Emit]:
        out: list[Emit] = []
        for msg in batch:
            v = msg.value
            if msg.topic == self.schema_topic:
                version = v.get("version") if isinstance(v, dict) else None
                if type(version) is int and version >= 1:
                    self.current_schema = version
                continue
            if not isinstance(v, dict) or "id" not in v:
                continue
            cid = str(v.get("candidate_id", v["id"]))
            if msg.topic == self.candidates_topic:
                self._bounded(self.candidates, str(v["id"]), v)
            elif msg.topic == self.evaluations_topic:
                if not v.get("blessed"):
                    self.candidates.pop(cid, None)
                    continue
                if str(v["id"]) not in self.published:
                    self._bounded(self.waiting, str(v["id"]), v)
            for eid, ev in list(self.waiting.items()):
                cand = self.candidates.get(str(ev.get("candidate_id")))
                if cand is not None:
                    del self.waiting[eid]
                    out.extend(self._publish(ev, cand))
        return out

    def _bounded(self, buffer: OrderedDict[str, dict[str, Any]], key: str,
                 value: dict[str, Any]) -> None:
        buffer[key] = value
        buffer.move_to_end(key)
        while len(buffer) > self.max_buffered:
            buffer.popitem(last=False)

    def _publish(self, ev_json: dict[str, Any], cand_json: dict[str, Any]) -> list[Emit]:
        try:
            ev = Evaluation.model_validate(ev_json)
            cand = Candidate.model_validate(cand_json)
            data = artifact_bytes(cand.artifact)
        except (ValidationError, ArtifactError) as exc:
            self.refused += 1
            del exc  # a malformed or tampered candidate is never published
            return []
        self.candidates.pop(cand.id, None)
        version = self.version + 1
        release = ModelRelease(
            pipeline=self.pipeline, name=self.model_name, version=version,
            parent_version=self.version or None, candidate_id=cand.id, evaluation_id=ev.id,
            schema_version=self.schema_version or cand.schema_version or self.current_schema,
            signature=cand.signature, metrics=ev.metrics, examples_seen=cand.examples_seen,
            trained_on=cand.trained_on, event_time=cand.event_time,
            artifact=inline_artifact(data), created_at=ev.decided_at,
        ).signed(self.signing_key, key_id=self.key_id)
        out: list[Emit] = []
        chunks = 0
        if len(serde.encode(release.to_json())) > self.limit:
            chunk_size = (self.limit - _OVERHEAD) * 3 // 4
            count = chunks = -(-len(data) // chunk_size)
            for i in range(count):
                chunk = ModelChunk.from_bytes(data[i * chunk_size:(i + 1) * chunk_size],
                                              name=self.model_name, version=version,
                                              index=i, count=count)
                out.append(Emit(self.models_topic, chunk.to_json(), key=chunk.key))
            chunked = ChunkedArtifact(format=release.artifact.format, size=len(data),
                                      sha256=release.artifact.sha256, chunks=count,
                                      chunk_size=chunk_size,
                                      key_prefix=f"{self.model_name}@{version}")
            release = release.model_copy(update={"artifact": chunked}).signed(
                self.signing_key, key_id=self.key_id)
        out.append(Emit(self.models_topic, release.to_json(), key=self.model_name))
        # Version `version` is now complete on the topic: delete the older versions' chunks.
        for old, n in self.chunked:
            out.extend(Emit.tombstone(self.models_topic, f"{self.model_name}@{old}/{i}")
                       for i in range(n))
        self.chunked = [[version, chunks]] if chunks else []
        self.version = version
        self.published = [*self.published[-999:], ev.id]
        if self.export_dir:
            export(release, data, self.export_dir)
        return out


def export(release: ModelRelease, data: bytes, base: str | os.PathLike[str]) -> Path:
    """Write ``<base>/<version>/{model.pkl,release.json}`` atomically (temp dir + rename).

    >>> import tempfile
    >>> from streamml.payloads.artifacts import ModelSignature
    >>> rel = ModelRelease(pipeline="p", name="m", version=4, candidate_id="m@1",
    ...     signature=ModelSignature(task="regression", inputs=[], label="y"),
    ...     artifact=inline_artifact(b"x"), created_at=0)
    >>> d = tempfile.mkdtemp()
    >>> sorted(p.name for p in export(rel, b"x", d).iterdir())
    ['model.pkl', 'release.json']
    """
    root = Path(base)
    root.mkdir(parents=True, exist_ok=True)
    final = root / str(release.version)
    if final.exists():
        return final
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{release.version}-", dir=root))
    try:
        (tmp / "model.pkl").write_bytes(data)
        (tmp / "release.json").write_bytes(serde.encode(release.to_json()))
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
