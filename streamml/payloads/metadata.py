"""Payload of ``<pipeline>.metadata``: lineage events, ML Metadata style, as a stream.

Every component emits one :class:`MetadataEvent` per artifact it creates
(schema versions, statistics windows, candidates, evaluations, blessings, pushed
models, alerts), per execution (with its input offset ranges), per deployment
(a server loaded a model) and per action (a drift policy reset a learner). A
materializer keeps them in DuckDB for ``streamml lineage``. The record key is
the event ``id``, deterministic, so replays and retries deduplicate.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, JsonValue, model_validator

from streamml.payloads.base import EpochMs, Name, OffsetRange, Payload, TimeRange

#: Artifact types components record (extend as components land).
ARTIFACT_TYPES = (
    "schema",
    "statistics",
    "candidate",
    "evaluation",
    "blessing",
    "model",
    "alert",
    "checkpoint",
)


class ArtifactInfo(Payload):
    """Where an artifact lives: its id, type and record coordinates.

    >>> ArtifactInfo(id="demo/schema/default@3", type="schema", topic="demo.schema", version=3).type
    'schema'
    """

    id: Annotated[str, Field(min_length=1)]
    """Globally unique, deterministic artifact id."""
    type: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    """One of ``ARTIFACT_TYPES`` (or a component's own)."""
    topic: str | None = None
    partition: Annotated[int, Field(ge=0)] | None = None
    offset: Annotated[int, Field(ge=0)] | None = None
    key: str | None = None
    version: Annotated[int, Field(ge=1)] | None = None
    uri: str | None = None
    """For artifacts kept outside the log (archive files, exported models)."""


class MetadataEvent(Payload):
    """One lineage event.

    ``kind`` says what happened: an ``artifact`` was created (``artifact`` set),
    an ``execution`` ran (``inputs``/``input_artifacts`` → ``output_artifacts``),
    a ``deployment`` (a server or subscriber ``host`` loaded a model) or an
    ``action`` (e.g. a drift policy started a challenger), or an ``expired``
    marker for lineage deleted on purpose.

    >>> from streamml import serde
    >>> ev = MetadataEvent(
    ...     id="demo/Trainer/exec/7", pipeline="demo", kind="execution", component="Trainer",
    ...     inputs=[OffsetRange(topic="demo.examples", partition=0, start=0, end=70_000)],
    ...     input_artifacts=["demo/schema/default@1"], output_artifacts=["demo/candidate/tipper@7"],
    ...     time=1_700_000_000_000)
    >>> MetadataEvent.model_validate(serde.decode(serde.encode(ev.to_json()))) == ev
    True
    """

    id: Annotated[str, Field(min_length=1, max_length=1024)]
    """Deterministic event id; the record key."""
    pipeline: Name
    kind: Literal["artifact", "execution", "deployment", "action", "expired"]
    component: Name
    """Who emitted the event: ``ExampleGen``, ``StatisticsGen``, ``Pusher``, ``server``..."""
    execution_id: str | None = None
    """Groups the events of one execution (e.g. one snapshot interval of the Trainer)."""
    artifact: ArtifactInfo | None = None
    inputs: list[OffsetRange] = Field(default_factory=list)
    """Input records consumed, as offset ranges."""
    event_time: TimeRange | None = None
    """Event-time range of those inputs."""
    input_artifacts: list[str] = Field(default_factory=list)
    """Ids of artifacts used (schema version, baseline model, reference statistics...)."""
    output_artifacts: list[str] = Field(default_factory=list)
    host: str | None = None
    """For deployments: the server or client that loaded the model."""
    properties: dict[str, JsonValue] = Field(default_factory=dict)
    """Free-form details (gate decision, action taken, reasons...)."""
    time: EpochMs
    """When the event happened (wall clock of the component)."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.kind == "artifact" and self.artifact is None:
            raise ValueError("an 'artifact' event needs the artifact field")
        return self
