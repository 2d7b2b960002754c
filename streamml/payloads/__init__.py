"""Pydantic models of every topic payload; ``topics/<role>.yaml`` names each role's model.

One module per role (``examples``, ``deadletter``, ``statistics``, ``schema``,
``anomalies``, ``candidates``, ``evaluations``, ``models``, ``metadata``,
``labels``, ``checkpoints``, ``predictions``), shared pieces in ``base`` and
``artifacts``. Conventions (epoch
milliseconds, non-finite floats as strings, half-open offset ranges) are in
:mod:`streamml.payloads.base`. ``topics/schemas/`` holds the JSON Schema of each.

>>> from streamml.payloads import Example
>>> Example.model_fields["split"].description.split(",")[0]
'Deterministic hash split of the key'
"""

from __future__ import annotations

from streamml.payloads.anomalies import Alert
from streamml.payloads.artifacts import (
    ArtifactRef,
    ChunkedArtifact,
    FeatureSignature,
    InlineArtifact,
    ModelSignature,
    StoredArtifact,
)
from streamml.payloads.base import OffsetRange, Payload, TimeRange
from streamml.payloads.candidates import Candidate
from streamml.payloads.checkpoints import Checkpoint, TopicOffset
from streamml.payloads.deadletter import DeadLetter
from streamml.payloads.evaluations import Evaluation, SliceMetrics, ThresholdCheck
from streamml.payloads.examples import Example
from streamml.payloads.labels import Label
from streamml.payloads.metadata import ArtifactInfo, MetadataEvent
from streamml.payloads.models import ModelChunk, ModelRecord, ModelRelease
from streamml.payloads.predictions import Prediction
from streamml.payloads.schema import FeatureSpec, SchemaVersion
from streamml.payloads.statistics import FeatureStatistics, StatisticsWindow, Window

__all__ = [
    "Alert",
    "ArtifactInfo",
    "ArtifactRef",
    "Candidate",
    "Checkpoint",
    "ChunkedArtifact",
    "DeadLetter",
    "Evaluation",
    "Example",
    "FeatureSignature",
    "FeatureSpec",
    "FeatureStatistics",
    "InlineArtifact",
    "Label",
    "MetadataEvent",
    "ModelChunk",
    "ModelRecord",
    "ModelRelease",
    "ModelSignature",
    "OffsetRange",
    "Payload",
    "Prediction",
    "SchemaVersion",
    "SliceMetrics",
    "StatisticsWindow",
    "StoredArtifact",
    "ThresholdCheck",
    "TimeRange",
    "TopicOffset",
    "Window",
]
