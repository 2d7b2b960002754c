"""Payload of ``<pipeline>.anomalies``: ExampleValidator's alerts.

One :class:`Alert` per *cause*, never one per example: an alert is published
with ``status="open"`` when a cause first shows, again with ``"update"`` while
it lasts (counts, latest value) and a last time with ``"resolved"``. The record
key is the alert ``id``, deterministic from the cause (type, feature, opening window),
so all records of one alert stay ordered on one partition.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from streamml.payloads.base import EpochMs, Name, Payload
from streamml.payloads.statistics import Window

#: TFDV anomaly type names used where one maps; streamml adds its own in the same style.
KNOWN_ALERT_TYPES = (
    "SCHEMA_MISSING_COLUMN",
    "SCHEMA_NEW_COLUMN",
    "UNEXPECTED_DATA_TYPE",
    "ENUM_TYPE_UNEXPECTED_STRING_VALUES",
    "FLOAT_TYPE_BIG_FLOAT",
    "FLOAT_TYPE_SMALL_FLOAT",
    "INT_TYPE_BIG_INT",
    "INT_TYPE_SMALL_INT",
    "FLOAT_TYPE_HAS_NAN",
    "FLOAT_TYPE_HAS_INF",
    "FEATURE_TYPE_NOT_PRESENT",
    "FEATURE_TYPE_LOW_FRACTION_PRESENT",
    "COMPARATOR_L_INFTY_HIGH",
    "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH",
    "DATASET_HIGH_NUM_EXAMPLES",
    "DATASET_LOW_NUM_EXAMPLES",
    "DRIFT",
    "SKEW",
)


class Alert(Payload):
    """One anomaly or drift alert, at one step of its open → update → resolved life.

    >>> from streamml import serde
    >>> a = Alert(id="demo/ENUM_TYPE_UNEXPECTED_STRING_VALUES/payment_type/count:1000:4",
    ...           pipeline="demo", status="open", type="ENUM_TYPE_UNEXPECTED_STRING_VALUES",
    ...           severity="error", scope="example", feature="payment_type",
    ...           message="value 'Bitcoin' outside the domain", example_ids=["taxi.csv:4012"],
    ...           count=1, first_seen=1_700_000_000_000, last_seen=1_700_000_000_000)
    >>> Alert.model_validate(serde.decode(serde.encode(a.to_json()))) == a
    True
    """

    id: Annotated[str, Field(min_length=1, max_length=1024)]
    """Deterministic id of the cause; the record key."""
    pipeline: Name
    status: Literal["open", "update", "resolved"]
    type: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")]
    """TFDV-style type name, see ``KNOWN_ALERT_TYPES``."""
    severity: Literal["info", "warning", "error"]
    scope: Literal["example", "window", "dataset"]
    """``example``: per-example check; ``window``: drift/skew/presence over a window."""
    feature: str | None = None
    """The feature concerned (``None`` for dataset-level alerts such as size change)."""
    message: str
    """One human-readable sentence: what changed, how, since when."""
    window: Window | None = None
    """Window the measurement was made on (latest one for updates)."""
    metric: str | None = None
    """``linf``, ``jsd``, ``psi``, ``ks``, ``chi2``, ``presence``, ``count``..."""
    value: float | None = None
    """Measured value of ``metric``."""
    threshold: float | None = None
    reference: str | None = None
    """What was compared against: ``schema:3``, ``window:<id>``, ``training``..."""
    p_value: Annotated[float, Field(ge=0, le=1)] | None = None
    """For sample-size-aware statistical tests."""
    example_ids: list[str] = Field(default_factory=list, max_length=100)
    """A bounded sample of offending example ids (per-example alerts)."""
    count: Annotated[int, Field(ge=0)] = 0
    """Examples (``example`` scope) or windows (``window`` scope) affected so far."""
    schema_version: Annotated[int, Field(ge=1)] | None = None
    first_seen: EpochMs
    """Event time the cause was first seen (the alert opened)."""
    last_seen: EpochMs
    resolved_at: EpochMs | None = None
    component: Name = "ExampleValidator"

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.last_seen < self.first_seen:
            raise ValueError("last_seen is before first_seen")
        if (self.status == "resolved") != (self.resolved_at is not None):
            raise ValueError("resolved_at is set exactly when status is 'resolved'")
        return self
