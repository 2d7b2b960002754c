"""Shared building blocks of every payload model.

Wire conventions, common to every topic (see ``topics/README.md``):

* every value is one JSON object, the ``model_dump(mode="json")`` of its model;
* times are **milliseconds since the Unix epoch** (``int``), like log timestamps;
* non-finite floats, which JSON cannot express, travel as the strings
  ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` and decode back to floats;
* offset ranges are half-open, ``[start, end)``, like committed offsets.

>>> from streamml import serde
>>> r = OffsetRange(topic="demo.examples", partition=0, start=0, end=10)
>>> r.count
10
>>> OffsetRange.model_validate(serde.decode(serde.encode(r.to_json()))) == r
True
>>> finite_json({"max": float("inf"), "values": [1.0, float("nan")]})
{'max': 'Infinity', 'values': [1.0, 'NaN']}
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

#: Milliseconds since the Unix epoch (UTC).
EpochMs = Annotated[int, Field(ge=0, description="milliseconds since the Unix epoch (UTC)")]

#: Names of things (features, components, models): printable, no control characters.
Name = Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[^\x00-\x1f]+$")]

#: A value type of a feature, as ExampleGen types it and SchemaGen infers it.
FeatureType = Literal["int", "float", "string", "bool"]

Scalar = int | float | str | bool | None
#: One feature value: a scalar, a list of scalars, or ``None`` when missing.
FeatureValue = Scalar | list[Scalar]

NONFINITE_TOKENS: dict[str, float] = {
    "NaN": math.nan,
    "Infinity": math.inf,
    "-Infinity": -math.inf,
}


def _token(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    return "Infinity" if x > 0 else "-Infinity"


def finite_json(value: Any) -> Any:
    """Replace non-finite floats, recursively, by their string tokens.

    >>> finite_json([1.5, float("-inf")])
    [1.5, '-Infinity']
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else _token(value)
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def nonfinite_from_tokens(value: Any) -> Any:
    """Turn the tokens ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` back into floats.

    Only a scalar or the items of a list are converted (feature values).

    >>> nonfinite_from_tokens(["NaN", "x", 2])
    [nan, 'x', 2]
    """
    if isinstance(value, str):
        return NONFINITE_TOKENS.get(value, value)
    if isinstance(value, list):
        return [NONFINITE_TOKENS.get(v, v) if isinstance(v, str) else v for v in value]
    return value


def features_from_tokens(value: Any) -> Any:
    """:func:`nonfinite_from_tokens` over every value of a features mapping (a pydantic
    ``before`` validator of ``features`` fields); anything else is left as it is.

    >>> features_from_tokens({"fare": "Infinity", "tags": ["NaN"]})
    {'fare': inf, 'tags': [nan]}
    """
    if isinstance(value, dict):
        return {k: nonfinite_from_tokens(v) for k, v in value.items()}
    return value


def schema_without_doctests(schema: dict[str, Any], cls: type) -> None:
    """JSON Schema hook: keep a model's docstring prose, drop its doctest examples."""
    description = schema.get("description")
    if isinstance(description, str) and ">>>" in description:
        schema["description"] = description.split(">>>", 1)[0].rstrip()


class Payload(BaseModel):
    """Base of every payload: unknown fields are refused, JSON output is always valid JSON.

    ``to_json()`` gives the dict that goes on the wire (encode it with
    :func:`streamml.serde.encode`); ``Model.model_validate(decoded)`` reads it back.

    >>> class Ping(Payload):
    ...     at: EpochMs
    ...     value: float
    >>> Ping(at=1, value=float("nan")).to_json()
    {'at': 1, 'value': 'NaN'}
    >>> from pydantic import ValidationError
    >>> try:
    ...     Ping.model_validate({"at": 1, "value": 2.5, "extra": 1})
    ... except ValidationError as exc:
    ...     print(exc.errors()[0]["type"])
    extra_forbidden
    """

    model_config = ConfigDict(
        extra="forbid",
        ser_json_inf_nan="strings",
        validate_default=False,
        use_attribute_docstrings=True,
        json_schema_extra=schema_without_doctests,
    )

    @model_serializer(mode="wrap")
    def _finite_json(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        data = handler(self)
        return finite_json(data) if info.mode_is_json() else data

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dict of this payload (what goes on the topic)."""
        return self.model_dump(mode="json")


class OffsetRange(Payload):
    """A half-open range ``[start, end)`` of offsets of one topic partition.

    >>> OffsetRange(topic="demo.examples", partition=1, start=5, end=5).count
    0
    """

    topic: str
    partition: Annotated[int, Field(ge=0)]
    start: Annotated[int, Field(ge=0)]
    """First offset in the range."""
    end: Annotated[int, Field(ge=0)]
    """One past the last offset in the range (a committed-offset style bound)."""

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end < self.start:
            raise ValueError(f"offset range end {self.end} < start {self.start}")
        return self

    @property
    def count(self) -> int:
        """Upper bound of records in the range (compaction may leave gaps)."""
        return self.end - self.start


class TimeRange(Payload):
    """A half-open range ``[start_ms, end_ms)`` of event times.

    >>> TimeRange(start_ms=0, end_ms=60_000).duration_ms
    60000
    """

    start_ms: EpochMs
    end_ms: EpochMs

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end_ms < self.start_ms:
            raise ValueError(f"time range end {self.end_ms} < start {self.start_ms}")
        return self

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms
