"""Payload of ``<pipeline>.predictions``: what the model server predicted, one record per instance.

Written by ``streamml serve --log-predictions``. A record is *examples-shaped*:
it has the ``id``, ``source``, ``event_time``, ``split`` (``"serving"``) and
``features`` of an :class:`~streamml.payloads.examples.Example`, so StatisticsGen
reads this topic as it is and its windows (split ``serving``) feed
ExampleValidator's training/serving skew check (see
:mod:`streamml.validation.serving_skew`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from streamml.payloads.base import EpochMs, FeatureValue, Name, Payload, features_from_tokens
from streamml.payloads.examples import SplitName

#: One prediction: a probability or value (float), a class (any scalar), or, for
#: classifiers with more than two classes, class -> probability.
PredictionValue = float | int | str | bool | None | dict[str, float]


class Prediction(Payload):
    """One served instance and its prediction; the record key is ``id``.

    >>> from streamml import serde
    >>> p = Prediction(id="a1b2-7:0", request_id="a1b2-7", index=0, source="host:8501",
    ...                event_time=1_700_000_000_000, model="tipper", version=3,
    ...                features={"fare": 12.5, "passengers": 1}, prediction=0.81)
    >>> Prediction.model_validate(serde.decode(serde.encode(p.to_json()))) == p
    True
    >>> p.split
    'serving'
    """

    id: Annotated[str, Field(min_length=1, max_length=1024)]
    """``<request_id>:<index>``: deterministic, so a re-sent batch deduplicates. The record key."""
    request_id: Annotated[str, Field(min_length=1, max_length=256)]
    """The request's ``X-Request-Id`` header if the client sent one, else the server's own."""
    index: Annotated[int, Field(ge=0)]
    """Position of the instance in the request's ``instances``."""
    source: Name
    """The server that answered, ``<hostname>:<port>``."""
    event_time: EpochMs
    """When the server received the request."""
    split: SplitName = "serving"
    """Always ``serving`` for the server's records (the split StatisticsGen groups by)."""
    model: Name
    version: Annotated[int, Field(ge=1)]
    """The model version that answered."""
    features: dict[str, FeatureValue]
    """The instance as received (including features the model ignores). A value that is
    not a scalar or a list of scalars (a nested object) is kept as its JSON text."""
    prediction: PredictionValue
    """What ``:predict`` returned for this instance."""

    _nonfinite = field_validator("features", mode="before")(features_from_tokens)
