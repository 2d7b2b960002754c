"""Payload of ``<pipeline>.examples``: ExampleGen's clean, typed examples.

Hot paths (ExampleGen at 100k+ examples/s) may build the JSON dicts directly;
this model defines what is valid, and consumers may validate with it.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator

from streamml.payloads.base import (
    EpochMs,
    FeatureValue,
    Name,
    Payload,
    Scalar,
    features_from_tokens,
    nonfinite_from_tokens,
)

#: Split names: lowercase words. ExampleGen's default splits are ``train`` and ``eval`` (2:1).
SplitName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]

#: Where a record sat in its source: file identity and offset or line, SQL high-water
#: mark, Kafka topic/partition/offset... Flat, JSON-scalar values only.
SourcePosition = dict[str, int | str]


class Example(Payload):
    """One typed example, keyed on the topic by its ``id``.

    ``features`` maps a feature name to an int, float, string, bool, a list of
    those, or ``None`` (missing: an empty CSV cell is missing, never ``""``).
    Non-finite floats travel as ``"NaN"``/``"Infinity"``/``"-Infinity"``; those
    three exact strings are therefore read back as floats.

    >>> from streamml import serde
    >>> ex = Example(id="taxi.csv:12", source="taxi-file",
    ...              position={"file": "taxi.csv", "line": 12}, split="train",
    ...              event_time=1_700_000_000_000, ingest_time=1_700_000_000_500,
    ...              features={"fare": 7.25, "trips": 1, "payment_type": "Cash", "tips": None},
    ...              label=False)
    >>> Example.model_validate(serde.decode(serde.encode(ex.to_json()))) == ex
    True
    >>> ex.features["trips"], ex.features["fare"]
    (1, 7.25)
    """

    id: Annotated[str, Field(min_length=1, max_length=1024)]
    """Stable id: ``<source>:<position>`` or the configured user key. The record key."""
    source: Name
    """Name of the connector that read the record."""
    position: SourcePosition = Field(default_factory=dict)
    """The record's position in its source, for lineage and exact resume."""
    event_time: EpochMs
    """When the event happened (a configured column), else the ingest time."""
    ingest_time: EpochMs
    """When ExampleGen read the record."""
    split: SplitName
    """Deterministic hash split of the key, ``train``/``eval`` by default."""
    features: dict[str, FeatureValue]
    """Typed feature values; ``None`` is a missing value."""
    label: Scalar | list[Scalar] = None
    """The label, when the source carries one (may also arrive later on a labels topic)."""

    _nonfinite = field_validator("features", mode="before")(features_from_tokens)

    @field_validator("label", mode="before")
    @classmethod
    def _nonfinite_label(cls, value: Any) -> Any:
        return nonfinite_from_tokens(value)
