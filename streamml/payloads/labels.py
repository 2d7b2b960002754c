"""Payload of ``<pipeline>.labels``: labels that arrive after their example (delayed labels).

The Trainer joins a :class:`Label` to the unlabelled train-split example with the
same ``id`` (the example id, also the record key), within a time-to-live counted
in event time. A label for an example the Trainer never saw, or saw too long ago,
is counted and dropped.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from streamml.payloads.base import EpochMs, Name, Payload, Scalar, nonfinite_from_tokens


class Label(Payload):
    """The label of one example, published after the example itself.

    >>> from streamml import serde
    >>> lab = Label(id="taxi.csv:12", label=True, event_time=1_700_000_060_000)
    >>> Label.model_validate(serde.decode(serde.encode(lab.to_json()))) == lab
    True
    """

    id: Annotated[str, Field(min_length=1, max_length=1024)]
    """Id of the example this label belongs to; the record key."""
    label: Scalar | list[Scalar]
    """The label value (same type as ``Example.label``)."""
    event_time: EpochMs | None = None
    """When the label became known (event time); ``None``: unknown."""
    source: Name | None = None
    """Who produced the label (a connector, a feedback service...)."""

    @field_validator("label", mode="before")
    @classmethod
    def _nonfinite_label(cls, value: object) -> object:
        return nonfinite_from_tokens(value)
