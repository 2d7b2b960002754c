"""Deployment lineage: a model server (or client) records each model version it loads.

:class:`DeploymentRecorder` appends one ``kind="deployment"`` event per loaded
version to ``<p>.metadata`` (created from the catalog if missing), keyed
``<p>/deployment/<host>/<name>@<version>``, so ``streamml lineage MODEL``
lists the servers that loaded it. Recording never breaks serving: a failure
is logged and the model keeps serving.

>>> import tempfile
>>> from streamml.log import open_log
>>> from streamml.payloads.artifacts import InlineArtifact, ModelSignature
>>> from streamml.payloads.models import ModelRelease
>>> log = open_log("embedded://" + tempfile.mkdtemp())
>>> rel = ModelRelease(pipeline="p", name="m", version=2, candidate_id="c@1",
...     signature=ModelSignature(task="regression", inputs=[], label="y"),
...     artifact=InlineArtifact.from_bytes(b"x", format="raw"), created_at=0)
>>> rec = DeploymentRecorder(log, "p", host="server-a:8501")
>>> ev = rec.loaded(rel, time_ms=5)
>>> ev.id, ev.input_artifacts, log.describe_topic("p.metadata").records
('p/deployment/server-a:8501/m@2', ['p/model/m@2'], 1)
>>> rec.close(); log.close()
"""

from __future__ import annotations

import logging
import socket
import time

from streamml import serde
from streamml.history.recorder import model_id
from streamml.log import Log
from streamml.log.base import Producer
from streamml.payloads.metadata import MetadataEvent
from streamml.payloads.models import ModelRelease

logger = logging.getLogger("streamml.history")


def default_host(port: int | None = None) -> str:
    """``<hostname>:<port>`` (or the hostname alone), naming a server in lineage."""
    name = socket.gethostname() or "localhost"
    return f"{name}:{port}" if port is not None else name


class DeploymentRecorder:
    """Emit deployment events for ``pipeline`` on ``log`` (the caller's; never closed here)."""

    def __init__(self, log: Log, pipeline: str, *, host: str,
                 component: str = "server") -> None:
        self._log = log
        self.pipeline = pipeline
        self.host = host
        self.component = component
        self.topic = f"{pipeline}.metadata"
        self._producer: Producer | None = None

    def event(self, release: ModelRelease, time_ms: int | None = None) -> MetadataEvent:
        """The deployment event for ``release`` loaded now (or at ``time_ms``)."""
        mid = model_id(release.pipeline, release.name, release.version)
        return MetadataEvent(
            id=f"{self.pipeline}/deployment/{self.host}/{release.name}@{release.version}",
            pipeline=self.pipeline, kind="deployment", component=self.component,
            host=self.host, input_artifacts=[mid],
            properties={"action": "loaded", "model": release.name, "version": release.version},
            time=time_ms if time_ms is not None else int(time.time() * 1000))

    def loaded(self, release: ModelRelease, time_ms: int | None = None) -> MetadataEvent | None:
        """Record that ``release`` was loaded; ``None`` (and a warning) if that failed."""
        try:
            ev = self.event(release, time_ms)
            producer = self._open()
            producer.send(self.topic, serde.encode(ev.to_json()), ev.id.encode(),
                          timestamp_ms=ev.time)
            producer.flush()
            return ev
        except Exception as exc:  # lineage must never stop serving
            logger.warning("could not record the deployment of %s v%s: %s", release.name,
                           release.version, exc)
            return None

    def _open(self) -> Producer:
        if self._producer is None:
            if not self._log.topic_exists(self.topic):
                from streamml.runtime.runner import topic_spec

                self._log.create_topic(topic_spec(self.pipeline, self.topic), exist_ok=True)
            self._producer = self._log.producer()
        return self._producer

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
            self._producer = None
