"""Payload of ``<pipeline>.candidates``: Trainer's model snapshots, awaiting the Evaluator.

The Trainer snapshots each challenger every N examples or T seconds. A candidate
id is deterministic (``<model>@<sequence>``) and is the record key, so a
restarted Trainer republishing a snapshot produces a duplicate, not a new one.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, JsonValue

from streamml.payloads.artifacts import ArtifactRef, ModelSignature
from streamml.payloads.base import EpochMs, Name, OffsetRange, Payload, TimeRange


class Candidate(Payload):
    """One snapshot of one challenger model.

    >>> from streamml import serde
    >>> from streamml.payloads.artifacts import InlineArtifact, ModelSignature, FeatureSignature
    >>> c = Candidate(
    ...     id="tipper-logreg@7", pipeline="demo", model="tipper-logreg", sequence=7,
    ...     algorithm="river.linear_model.LogisticRegression", params={"l2": 0.0},
    ...     signature=ModelSignature(task="classification", label="big_tipper",
    ...                              inputs=[FeatureSignature(name="fare", type="float")]),
    ...     examples_seen=70_000, trained_on=[], created_at=1_700_000_000_000,
    ...     metrics={"progressive_roc_auc": 0.93},
    ...     artifact=InlineArtifact.from_bytes(b"...", format="river-pickle"))
    >>> Candidate.model_validate(serde.decode(serde.encode(c.to_json()))) == c
    True
    """

    id: Annotated[str, Field(min_length=1, max_length=512)]
    """``<model>@<sequence>``; the record key."""
    pipeline: Name
    model: Name
    """Challenger name (several train side by side)."""
    sequence: Annotated[int, Field(ge=0)]
    """Monotonic snapshot number per challenger."""
    parent: str | None = None
    """Id of the previous snapshot this one continued from (``None`` after a reset)."""
    algorithm: Name
    """Dotted path of the estimator, e.g. ``river.linear_model.LogisticRegression``."""
    params: dict[str, JsonValue] = Field(default_factory=dict)
    """Hyper-parameters as JSON (River's ``_get_params()``, made JSON-able)."""
    signature: ModelSignature
    schema_version: Annotated[int, Field(ge=1)] | None = None
    examples_seen: Annotated[int, Field(ge=0)]
    trained_on: list[OffsetRange]
    """Input offsets learned from, per partition (cumulative since the first snapshot)."""
    event_time: TimeRange | None = None
    """Event-time range of the examples learned from."""
    metrics: dict[str, float] = Field(default_factory=dict)
    """Training-side progressive metrics (the Evaluator's judgement is separate)."""
    artifact: ArtifactRef
    hmac_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    """Optional HMAC-SHA256 (hex) of the artifact, as on published models."""
    created_at: EpochMs
    component: Name = "Trainer"
