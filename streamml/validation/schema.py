"""Schema inference, the human-editable schema file, and schema evolution.

**Inference** (:func:`infer_schema`) reads feature statistics
(:class:`~streamml.statistics.StatisticsAccumulator`, from the first N examples
or a reference CSV/Parquet file via :func:`read_table`):

* ``type`` — the dominant value type (``int``, ``float``, ``string``, ``bool``);
  ``valency`` ``list`` when any value was a list;
* ``presence`` — ``required`` when never missing, else ``optional`` with
  ``min_fraction`` = the observed present fraction less ``presence_margin``
  (relative, default 20%), rounded down to 2 decimals;
* ``domain`` — for string features with at most ``max_domain_size`` (100, as
  TFDV) distinct values, counted exactly; larger ones stay free strings;
* numeric ``min``/``max`` — the *enforced* range: the observed range widened by
  ``range_margin`` × its span on each side (1.0), except that a feature never
  seen negative keeps ``min = 0`` and integer features with at most
  ``max_domain_size`` distinct values, each seen :data:`MIN_PER_VALUE` times on
  average (hours, months, codes), keep their exact observed range. A feature
  with fewer than :data:`MIN_RANGE_VALUES` values gets no range at all: one
  census tract seen once says nothing about the others. The raw observed range
  is recorded in ``description``.

**File** (:func:`save_schema`/:func:`load_schema`): YAML (or JSON by suffix),
the fields of :class:`~streamml.payloads.schema.SchemaVersion`; curate it and
load it back (origin ``curated``), like TFX's ImportSchemaGen.

**Evolution** (:func:`schema_changes`, :func:`evolve`): the typed columns of
new data (:func:`~streamml.statistics.columns.columns_from_rows`, or a
micro-batch's shared :class:`~streamml.statistics.batch.ExampleBatch`) against a
schema give *changes* (new column, new category, type change); each becomes an
anomaly, and :func:`evolve` returns the next version that accepts them (new
column optional, domain extended, type widened int → float → string). Only value
types and distinct strings are looked at: no statistics are computed.

>>> acc = StatisticsAccumulator()
>>> acc.add_batch([{"fare": 7.5, "pay": "Cash", "hour": 3},
...                {"fare": 2.0, "pay": "Card", "hour": 5, "tips": 1.0}] * 60)
>>> s = infer_schema(acc, pipeline="demo", created_at=0)
>>> s.features["pay"].domain, s.features["fare"].min, s.features["hour"].max
(['Card', 'Cash'], 0.0, 5.0)
>>> s.features["tips"].presence, s.features["tips"].min_fraction
('optional', 0.4)
>>> from streamml.statistics.columns import columns_from_rows
>>> new = columns_from_rows([{"fare": "x", "pay": "Coin", "km": 1}])
>>> [(c.kind, c.feature) for c in schema_changes(s, new)]
[('UNEXPECTED_DATA_TYPE', 'fare'), ('SCHEMA_NEW_COLUMN', 'km'), \
('ENUM_TYPE_UNEXPECTED_STRING_VALUES', 'pay')]
>>> v2 = evolve(s, schema_changes(s, new), created_at=1)
>>> v2.version, v2.features["fare"].type, "Coin" in v2.features["pay"].domain
(2, 'string', True)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from streamml.errors import ConfigError
from streamml.payloads.base import FeatureType
from streamml.payloads.schema import FeatureSpec, SchemaVersion
from streamml.payloads.statistics import FeatureStatistics
from streamml.statistics.columns import Column
from streamml.statistics.dataset import StatisticsAccumulator
from streamml.statistics.feature import dominant_type
from streamml.validation.files import file_batch, read_table

#: A numeric feature needs this many values for an enforced ``min``/``max``.
MIN_RANGE_VALUES = 100
#: An int feature with few distinct values keeps its exact range only when each was seen
#: this many times on average (else its range is widened like any other).
MIN_PER_VALUE = 10
#: Type widening order of evolution: a value of a later type does not fit an earlier one.
_WIDEN: dict[str, int] = {"bool": 0, "int": 1, "float": 2, "string": 3}


def statistics_of(source: StatisticsAccumulator | pa.Table | str | Path) -> StatisticsAccumulator:
    """An accumulator over ``source`` (an accumulator is returned as is)."""
    if isinstance(source, StatisticsAccumulator):
        return source
    table = source if isinstance(source, pa.Table) else read_table(source)
    acc = StatisticsAccumulator()
    acc.add_columns(file_batch(table, None, "file").columns(), table.num_rows)
    return acc


def _exact_values(acc: StatisticsAccumulator, name: str) -> dict[str, int] | None:
    cat = acc.features[name].categorical
    if cat is None or not cat.top_k.exact:
        return None
    return dict(cat.top_k.counts)


def infer_feature(fs: FeatureStatistics, values: dict[str, int] | None, num_examples: int,
                  max_domain_size: int = 100, range_margin: float = 1.0,
                  presence_margin: float = 0.2, integral: bool = False) -> FeatureSpec | None:
    """The spec of one feature from its statistics (``None`` if it never had a value).

    ``integral``: every number was integral (no fractional part, no NaN or Inf),
    so a float feature is an int one written as ``180.0`` (or ``180``/``180.0``).
    """
    if fs.type is None:
        return None
    spec: dict[str, Any] = {"type": "int" if fs.type == "float" and integral else fs.type}
    if fs.values_per_example is not None:
        spec["valency"] = "list"
    if fs.num_missing:
        spec["presence"] = "optional"
        frac = fs.count / num_examples if num_examples else 0.0
        spec["min_fraction"] = math.floor(frac * (1 - presence_margin) * 100) / 100
    if fs.type == "string" and values is not None and len(values) <= max_domain_size:
        spec["domain"] = sorted(values)
    num = fs.numeric
    if fs.type in ("int", "float") and num is not None and num.min is not None:
        lo, hi = float(num.min), float(num.max if num.max is not None else num.min)
        spec["description"] = f"observed range [{lo:g}, {hi:g}]"
        if fs.count >= MIN_RANGE_VALUES:  # enough evidence for an enforced range
            distinct = num.distinct or 0
            small_int = (spec["type"] == "int" and distinct <= max_domain_size
                         and fs.count >= MIN_PER_VALUE * distinct)
            pad = 0.0 if small_int else range_margin * (hi - lo)
            spec["min"] = 0.0 if lo >= 0 else lo - pad
            spec["max"] = hi + pad
        if num.num_nan:
            spec["allow_nan"] = True
        if num.num_inf:
            spec["allow_inf"] = True
    return FeatureSpec(**spec)


def infer_schema(source: StatisticsAccumulator | pa.Table | str | Path, *, pipeline: str,
                 created_at: int, name: str = "default", label: str | None = None,
                 max_domain_size: int = 100, range_margin: float = 1.0,
                 presence_margin: float = 0.2) -> SchemaVersion:
    """Version 1 of a schema inferred from statistics, a table or a CSV/Parquet file."""
    acc = statistics_of(source)
    features: dict[str, FeatureSpec] = {}
    for fname, fs in acc.extract().items():
        num = acc.features[fname].numeric
        integral = num is not None and num.n > 0 and num.fractional == 0 and not (
            num.nan or num.inf)
        spec = infer_feature(fs, _exact_values(acc, fname), acc.num_examples, max_domain_size,
                             range_margin, presence_margin, integral=integral)
        if spec is not None:
            features[fname] = spec
    return SchemaVersion(pipeline=pipeline, name=name, version=1, origin="inferred",
                         features=features, label=label, num_examples=acc.num_examples,
                         created_at=created_at)


def save_schema(schema: SchemaVersion, path: str | Path) -> None:
    """Write the schema as YAML (or JSON for a ``.json`` path), defaults left out."""
    data = schema.model_dump(mode="json", exclude_defaults=True)
    data["version"], data["origin"] = schema.version, schema.origin
    p = Path(path)
    if p.suffix.lower() == ".json":
        p.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    else:
        p.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def load_schema(path: str | Path, *, curated: bool = False) -> SchemaVersion:
    """Read a schema file back; ``curated=True`` marks it as edited by a human.

    Any failure (no file, not YAML/JSON, not a schema) is one :class:`ConfigError` line:

    >>> try:
    ...     load_schema("/nonexistent.yaml")
    ... except ConfigError as exc:
    ...     print(exc)
    invalid schema /nonexistent.yaml: [Errno 2] No such file or directory: '/nonexistent.yaml'
    """
    try:
        text = Path(path).read_text()
        data = json.loads(text) if Path(path).suffix.lower() == ".json" else yaml.safe_load(text)
        schema = SchemaVersion.model_validate(data)
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ValidationError is a ValueError
        raise ConfigError(f"invalid schema {path}: {str(exc).splitlines()[0]}") from None
    return schema.model_copy(update={"origin": "curated"}) if curated else schema


@dataclass
class SchemaChange:
    """One way new data does not fit the schema (an anomaly; an evolution step)."""

    kind: str
    feature: str
    detail: str
    new_type: FeatureType | None = None
    new_values: list[str] = field(default_factory=list)


def schema_changes(schema: SchemaVersion, columns: Mapping[str, Column],
                   max_new_values: int = 20) -> list[SchemaChange]:
    """New columns, type changes and new categories of a batch's ``columns`` against ``schema``.

    A feature no example has a value of (only missing) is no change.
    """
    out: list[SchemaChange] = []
    for fname in sorted(columns):
        col = columns[fname]
        kind = dominant_type(col.type_counts)
        if kind is None:
            continue
        spec = schema.features.get(fname)
        if spec is None:
            out.append(SchemaChange("SCHEMA_NEW_COLUMN", fname,
                                    f"new column {fname!r} of type {kind}", new_type=kind))
            continue
        # The column changes type when most of its values no longer fit (a few tokens,
        # ``N/A`` among numbers, are per-example anomalies: the validator's), and a wider
        # type would take them (numbers in a string column stay a string column).
        wider = max([spec.type, kind], key=lambda t: _WIDEN.get(t, 3))
        if not _fits(spec.type, {kind: 1}) and wider != spec.type:
            counts = dict(sorted(col.type_counts.items()))
            out.append(SchemaChange("UNEXPECTED_DATA_TYPE", fname,
                                    f"{fname!r} has {counts} values, schema says "
                                    f"{spec.type}", new_type=wider))
        if spec.type == "string" and spec.domain is not None and len(col.strings):
            seen = pc.unique(col.strings).to_pylist()
            new = sorted(set(seen) - set(spec.domain))[:max_new_values]
            if new:
                out.append(SchemaChange("ENUM_TYPE_UNEXPECTED_STRING_VALUES", fname,
                                        f"new values of {fname!r}: {new}", new_values=new))
    return out


def _fits(schema_type: str, type_counts: dict[str, int]) -> bool:
    allowed = {"bool": {"bool"}, "int": {"int"}, "float": {"int", "float"},
               "string": {"string"}}[schema_type]
    if schema_type == "int":
        allowed = {"int", "float"}  # integral floats (5.0) are checked per example
    return set(type_counts) <= allowed


def evolve(schema: SchemaVersion, changes: list[SchemaChange], *, created_at: int) -> SchemaVersion:
    """The next schema version, accepting ``changes`` (origin ``evolved``)."""
    features = {k: v.model_copy() for k, v in schema.features.items()}
    reasons = []
    for ch in changes:
        reasons.append(f"{ch.kind.lower()}: {ch.feature}")
        if ch.kind == "SCHEMA_NEW_COLUMN" and ch.new_type is not None:
            features[ch.feature] = FeatureSpec(type=ch.new_type, presence="optional")
        elif ch.kind == "UNEXPECTED_DATA_TYPE" and ch.new_type is not None:
            old = features[ch.feature]
            keep_range = ch.new_type in ("int", "float")
            features[ch.feature] = FeatureSpec(
                type=ch.new_type, valency=old.valency, presence=old.presence,
                min_fraction=old.min_fraction, min=old.min if keep_range else None,
                max=old.max if keep_range else None, allow_nan=old.allow_nan,
                allow_inf=old.allow_inf, description=old.description)
        elif ch.kind == "ENUM_TYPE_UNEXPECTED_STRING_VALUES":
            old = features[ch.feature]
            domain = sorted(set(old.domain or []) | set(ch.new_values))
            features[ch.feature] = old.model_copy(update={"domain": domain})
    return SchemaVersion(pipeline=schema.pipeline, name=schema.name, version=schema.version + 1,
                         parent=schema.version, origin="evolved", reason="; ".join(reasons),
                         features=features, label=schema.label, created_at=created_at)
