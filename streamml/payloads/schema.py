"""Payload of ``<pipeline>.schema`` (compacted): SchemaGen's schema versions.

A :class:`SchemaVersion` is also the human-editable schema file
(``streamml schema infer FILE -o schema.yaml``): the same fields, in YAML or JSON,
curated and loaded back as TFX's ImportSchemaGen does. The topic is keyed by
schema ``name`` (``default`` unless a pipeline keeps several), so compaction keeps
the latest version per name; every version also goes to ``<pipeline>.metadata``.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from streamml.payloads.base import EpochMs, FeatureType, Name, OffsetRange, Payload


class FeatureSpec(Payload):
    """What a valid value of one feature looks like.

    >>> FeatureSpec(type="string", domain=["Cash", "Credit Card"]).presence
    'required'
    >>> FeatureSpec(type="float", min=0.0, max=1.0, presence="optional", min_fraction=0.9).max
    1.0
    """

    type: FeatureType
    valency: Literal["scalar", "list"] = "scalar"
    presence: Literal["required", "optional"] = "required"
    min_fraction: Annotated[float, Field(ge=0, le=1)] | None = None
    """For ``optional`` features: the minimum fraction of examples carrying it."""
    domain: list[str] | None = None
    """Allowed values of a string feature (``None``: any string)."""
    min: float | None = None
    """Smallest allowed value of a numeric feature (observed range when inferred)."""
    max: float | None = None
    allow_nan: bool = False
    allow_inf: bool = False
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        if self.domain is not None and self.type != "string":
            raise ValueError(f"a domain applies to string features, not {self.type}")
        return self


class SchemaVersion(Payload):
    """One version of a pipeline's schema.

    >>> from streamml import serde
    >>> s = SchemaVersion(pipeline="demo", version=1, origin="inferred",
    ...                   created_at=1_700_000_000_000, label="tips",
    ...                   features={"fare": FeatureSpec(type="float", min=0.0),
    ...                             "tips": FeatureSpec(type="float")})
    >>> SchemaVersion.model_validate(serde.decode(serde.encode(s.to_json()))) == s
    True
    """

    pipeline: Name
    name: Name = "default"
    """Schema name, the record key."""
    version: Annotated[int, Field(ge=1)]
    """Monotonic version number, starting at 1."""
    parent: Annotated[int, Field(ge=1)] | None = None
    """The version this one evolved from."""
    origin: Literal["inferred", "imported", "evolved", "curated"]
    reason: str = ""
    """Why this version exists (e.g. ``new column: tolls``)."""
    features: dict[str, FeatureSpec]
    label: str | None = None
    """Name of the label feature, if the pipeline learns."""
    inferred_from: list[OffsetRange] = Field(default_factory=list)
    """Examples the inference read (empty when imported)."""
    num_examples: Annotated[int, Field(ge=0)] | None = None
    created_at: EpochMs

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.parent is not None and self.parent >= self.version:
            raise ValueError(f"parent version {self.parent} must be < version {self.version}")
        if self.label is not None and self.label not in self.features:
            raise ValueError(f"label {self.label!r} is not a feature of the schema")
        return self
