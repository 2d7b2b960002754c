"""Payload of ``<pipeline>.statistics``: StatisticsGen's per-window feature statistics.

Field names follow TFDV's ``FeatureNameStatistics`` where one maps (``num_missing``,
``std_dev`` as the population figure, ``num_zeros``, ``avg_length``, ``top_values``),
so users can read them the way they read TFDV output. Sketch states travel
base64-encoded in ``sketches`` so that windows read back from the topic can be
merged (TFDV's create/add/merge/extract accumulators).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from streamml.payloads.base import EpochMs, FeatureType, Name, OffsetRange, Payload, TimeRange

Count = Annotated[int, Field(ge=0)]


class Window(Payload):
    """Which examples a statistics window (or an alert) covers.

    ``kind`` is ``count`` (tumbling every ``size`` examples), ``time`` (tumbling
    by event time, ``size`` in ms) or ``cumulative`` (since the start, or since
    ``since_schema_version``).

    >>> Window(id="count:10000:3", kind="count", size=10_000, index=3).kind
    'count'
    """

    id: Annotated[str, Field(min_length=1)]
    """Deterministic window id, e.g. ``time:60000:1700000040000``; part of the record key."""
    kind: Literal["count", "time", "cumulative"]
    size: Annotated[int, Field(ge=1)] | None = None
    """Examples per window (``count``) or window length in ms (``time``)."""
    index: Annotated[int, Field(ge=0)] | None = None
    """Sequence number of a count window."""
    event_time: TimeRange | None = None
    """Event-time bounds of the window (``time``) or of the examples seen in it."""
    since_schema_version: Annotated[int, Field(ge=1)] | None = None
    """For ``cumulative`` windows restarted at a schema version."""


class Bucket(Payload):
    """One histogram bucket ``[low, high]`` holding ``count`` values (weights allowed)."""

    low: float
    high: float
    count: Annotated[float, Field(ge=0)]


class Histogram(Payload):
    """An equal-width or quantile histogram (TFDV's ``STANDARD``/``QUANTILES``).

    >>> Histogram(type="equal_width", buckets=[Bucket(low=0, high=1, count=3)]).buckets[0].count
    3.0
    """

    type: Literal["equal_width", "quantiles"]
    buckets: list[Bucket]
    num_nan: Count = 0
    num_undefined: Count = 0


class NumericStatistics(Payload):
    """Statistics of an int or float feature; NaN and Inf are counted, not folded in."""

    mean: float | None = None
    std_dev: float | None = None
    """Population standard deviation (ddof=0), as TFDV reports it."""
    min: float | None = None
    max: float | None = None
    median: float | None = None
    """From the quantile sketch."""
    num_zeros: Count = 0
    num_nan: Count = 0
    num_inf: Count = 0
    quantiles: dict[str, float] = Field(default_factory=dict)
    """Quantile value by rank as text (``"0.25"`` → value), from a bounded sketch."""
    quantile_rank_error: Annotated[float, Field(ge=0, le=1)] | None = None
    """Documented rank error bound of the quantile sketch (e.g. 0.01)."""
    histograms: list[Histogram] = Field(default_factory=list)
    distinct: Count | None = None
    """Distinct finite values, from a HyperLogLog sketch (about 1.6% relative error)."""


class ValueCount(Payload):
    """One of the top-k values and its (sketched) count."""

    value: str
    count: Annotated[float, Field(ge=0)]


class CategoricalStatistics(Payload):
    """Statistics of a string or bool feature (bools as ``"true"``/``"false"``)."""

    distinct: Count | None = None
    """Distinct count (exact or from a sketch, see ``distinct_exact``)."""
    distinct_exact: bool = False
    top_values: list[ValueCount] = Field(default_factory=list)
    avg_length: float | None = None
    """Average string length in characters."""
    top_values_max_error: Annotated[float, Field(ge=0)] = 0.0
    """Bound of the under-count of every ``top_values`` count (0 when the counts are exact)."""


class ValuesPerExample(Payload):
    """How many values a list feature has per example (TFDV's ``num_values``)."""

    min: Count
    max: Count
    mean: float


class FeatureStatistics(Payload):
    """Statistics of one feature over one window.

    >>> f = FeatureStatistics(type="float", count=9, num_missing=1,
    ...                       numeric=NumericStatistics(mean=2.0, std_dev=0.5, min=1.0, max=3.0))
    >>> f.numeric.std_dev
    0.5
    """

    type: FeatureType | None = None
    """Observed type (``None`` when every value was missing)."""
    count: Count
    """Examples where the feature is present (not missing)."""
    num_missing: Count = 0
    type_counts: dict[str, Count] = Field(default_factory=dict)
    """Values seen by type (``int``, ``float``, ``string``, ``bool``); more than one
    key means the feature mixes types."""
    values_per_example: ValuesPerExample | None = None
    """For list features only."""
    numeric: NumericStatistics | None = None
    categorical: CategoricalStatistics | None = None
    sketches: dict[str, str] = Field(default_factory=dict)
    """Packed accumulator states by name, for merging windows read back from the topic.

    StatisticsGen writes one entry, ``accumulator``: the feature accumulator's JSON
    state (exact moments and counts, KLL, HyperLogLog and Misra–Gries sketches),
    LZ4-compressed with its arrays as raw bytes, as ``lz4:<size>:<crc32>:<base64>`` (the
    older zlib format is still read; ``streamml.statistics._codec.pack_state``)."""


class StatisticsWindow(Payload):
    """Statistics of every feature over one window of one split; keyed ``<split>/<window id>``.

    A window may be published more than once (``final=False`` progress updates);
    the last record for a key is the one that counts.

    >>> from streamml import serde
    >>> sw = StatisticsWindow(
    ...     pipeline="demo", split="train", window=Window(id="cumulative", kind="cumulative"),
    ...     num_examples=10, created_at=1_700_000_000_000,
    ...     features={"fare": FeatureStatistics(type="float", count=10,
    ...                                         numeric=NumericStatistics(max=float("inf")))})
    >>> sw.to_json()["features"]["fare"]["numeric"]["max"]
    'Infinity'
    >>> StatisticsWindow.model_validate(serde.decode(serde.encode(sw.to_json()))) == sw
    True
    """

    pipeline: Name
    split: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    """Split or dataset the window covers: ``train``, ``eval``, ``serving``, ``all``..."""
    window: Window
    num_examples: Count
    features: dict[str, FeatureStatistics]
    schema_version: Annotated[int, Field(ge=1)] | None = None
    """Schema version in force when the window closed, if any."""
    inputs: list[OffsetRange] = Field(default_factory=list)
    """Input offsets the window covers, for lineage and replay."""
    final: bool = True
    """``False`` for a progress update of a window still open."""
    created_at: EpochMs
    component: Name = "StatisticsGen"
