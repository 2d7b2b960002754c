"""Per-example checks of one example's features against a schema.

Each finding names the example id, the feature and a TFDV-style type:

=====================================  ==============================================
``FEATURE_TYPE_NOT_PRESENT``           a required feature is missing (``None``/absent)
``UNEXPECTED_DATA_TYPE``               value not of the schema type, or list vs scalar
``ENUM_TYPE_UNEXPECTED_STRING_VALUES`` string outside the schema domain
``INT_TYPE_SMALL_INT``/``BIG_INT``     int below ``min`` / above ``max``
``FLOAT_TYPE_SMALL_FLOAT``/``BIG_FLOAT`` float below ``min`` / above ``max``
``FLOAT_TYPE_HAS_NAN``/``HAS_INF``     NaN / ±Inf where the schema disallows them
``SCHEMA_NEW_COLUMN``                  a feature the schema does not know
=====================================  ==============================================

Integral floats (``5.0``) are valid ints and ints are valid floats, so files
that write integers as floats do not raise type anomalies.

>>> from streamml.payloads.schema import FeatureSpec, SchemaVersion
>>> s = SchemaVersion(pipeline="p", version=1, origin="curated", created_at=0, features={
...     "fare": FeatureSpec(type="float", min=0.0), "hour": FeatureSpec(type="int", max=23),
...     "pay": FeatureSpec(type="string", domain=["Cash"])})
>>> [(f.kind, f.feature) for f in check_example("e1", {"fare": -1.0, "hour": 24.0,
...                                                     "pay": "Coin", "x": 1}, s)]
[('FLOAT_TYPE_SMALL_FLOAT', 'fare'), ('INT_TYPE_BIG_INT', 'hour'), \
('ENUM_TYPE_UNEXPECTED_STRING_VALUES', 'pay'), ('SCHEMA_NEW_COLUMN', 'x')]
>>> check_example("e2", {"fare": "NaN", "hour": 3.0, "pay": "Cash"}, s)[0].kind
'FLOAT_TYPE_HAS_NAN'
>>> check_example("e3", {"fare": 1.0, "hour": 3, "pay": "Cash"}, s)
[]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamml.payloads.base import NONFINITE_TOKENS
from streamml.payloads.schema import FeatureSpec, SchemaVersion
from streamml.statistics.batch import ExampleBatch

_NONE = type(None)
_NUMBERS = frozenset({int, float, _NONE})
_STRINGS = frozenset({str, _NONE})
_BOOLS = frozenset({bool, _NONE})
_TOKEN_SET = frozenset(NONFINITE_TOKENS)


def _null_mask(arr: pa.Array) -> np.ndarray | None:
    """Rows of ``arr`` that are null, from its validity bitmap; None if there are none.

    >>> _null_mask(pa.array([1, None, 3])).tolist(), _null_mask(pa.array(["a"]))
    ([False, True, False], None)
    """
    if not arr.null_count:
        return None
    validity = arr.buffers()[0]
    if validity is None:  # a null-typed array
        return np.ones(len(arr), dtype=bool)
    bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little",
                         count=arr.offset + len(arr))
    return bits[arr.offset:] == 0

#: Severity of each per-example anomaly kind.
SEVERITY: dict[str, str] = {
    "FEATURE_TYPE_NOT_PRESENT": "error",
    "UNEXPECTED_DATA_TYPE": "error",
    "ENUM_TYPE_UNEXPECTED_STRING_VALUES": "warning",
    "INT_TYPE_SMALL_INT": "error",
    "INT_TYPE_BIG_INT": "error",
    "FLOAT_TYPE_SMALL_FLOAT": "error",
    "FLOAT_TYPE_BIG_FLOAT": "error",
    "FLOAT_TYPE_HAS_NAN": "error",
    "FLOAT_TYPE_HAS_INF": "error",
    "SCHEMA_NEW_COLUMN": "warning",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One per-example anomaly."""

    kind: str
    feature: str
    example_id: str
    detail: str

    @property
    def severity(self) -> str:
        return SEVERITY.get(self.kind, "error")


def _value_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    return "string"


def _check_value(eid: str, name: str, v: Any, spec: FeatureSpec, out: list[Finding]) -> None:
    if isinstance(v, str) and v in NONFINITE_TOKENS:
        v = NONFINITE_TOKENS[v]
    kind = _value_kind(v)
    t = spec.type
    if t in ("int", "float"):
        if kind not in ("int", "float"):
            out.append(Finding("UNEXPECTED_DATA_TYPE", name, eid,
                               f"{kind} value {v!r} in {t} feature {name!r}"))
            return
        x = float(v)
        if math.isnan(x):
            if not spec.allow_nan:
                out.append(Finding("FLOAT_TYPE_HAS_NAN", name, eid, f"NaN in {name!r}"))
            return
        if math.isinf(x):
            if not spec.allow_inf:
                out.append(Finding("FLOAT_TYPE_HAS_INF", name, eid, f"{v} in {name!r}"))
            return
        if t == "int" and kind == "float" and not x.is_integer():
            out.append(Finding("UNEXPECTED_DATA_TYPE", name, eid,
                               f"non-integral value {v!r} in int feature {name!r}"))
            return
        prefix = "INT_TYPE" if t == "int" else "FLOAT_TYPE"
        unit = "INT" if t == "int" else "FLOAT"
        if spec.min is not None and x < spec.min:
            out.append(Finding(f"{prefix}_SMALL_{unit}", name, eid,
                               f"{v!r} < min {spec.min:g} in {name!r}"))
        elif spec.max is not None and x > spec.max:
            out.append(Finding(f"{prefix}_BIG_{unit}", name, eid,
                               f"{v!r} > max {spec.max:g} in {name!r}"))
    elif t == "string":
        if kind != "string":
            out.append(Finding("UNEXPECTED_DATA_TYPE", name, eid,
                               f"{kind} value {v!r} in string feature {name!r}"))
        elif spec.domain is not None and v not in spec.domain:
            out.append(Finding("ENUM_TYPE_UNEXPECTED_STRING_VALUES", name, eid,
                               f"value {v!r} outside the domain of {name!r}"))
    elif kind != "bool":
        out.append(Finding("UNEXPECTED_DATA_TYPE", name, eid,
                           f"{kind} value {v!r} in bool feature {name!r}"))


class SchemaChecker:
    """Checks examples against one schema (domains pre-hashed as sets).

    >>> from streamml.payloads.schema import FeatureSpec, SchemaVersion
    >>> s = SchemaVersion(pipeline="p", version=1, origin="curated", created_at=0,
    ...                   features={"tags": FeatureSpec(type="string", valency="list")})
    >>> [f.kind for f in SchemaChecker(s).check("e", {"tags": "a"})]
    ['UNEXPECTED_DATA_TYPE']
    """

    def __init__(self, schema: SchemaVersion) -> None:
        self.schema = schema
        self.specs = dict(schema.features)
        self.domains = {n: frozenset(s.domain) for n, s in schema.features.items()
                        if s.domain is not None}
        #: scalar int/float features, screened together as one matrix (:meth:`_suspect_numbers`)
        self._numeric = [n for n, s in self.specs.items()
                         if s.valency == "scalar" and s.type in ("int", "float")]
        self._bounds_of: dict[tuple[str, ...], tuple[np.ndarray, ...]] = {}

    def _check_feature(self, example_id: str, name: str, spec: FeatureSpec, v: Any,
                       out: list[Finding]) -> None:
        if v is None:
            if spec.presence == "required":
                out.append(Finding("FEATURE_TYPE_NOT_PRESENT", name, example_id,
                                   f"required feature {name!r} is missing"))
            return
        if isinstance(v, list) != (spec.valency == "list"):
            shape = "list" if isinstance(v, list) else "scalar"
            out.append(Finding("UNEXPECTED_DATA_TYPE", name, example_id,
                               f"{shape} value in {spec.valency} feature {name!r}"))
            return
        domain = self.domains.get(name)
        for item in (v if isinstance(v, list) else (v,)):
            if item is None:
                continue
            if domain is not None and isinstance(item, str) and item in domain:
                continue
            _check_value(example_id, name, item, spec, out)

    def check(self, example_id: str, features: Mapping[str, Any]) -> list[Finding]:
        """All findings of one example, in schema order then unknown features."""
        out: list[Finding] = []
        for name, spec in self.specs.items():
            self._check_feature(example_id, name, spec, features.get(name), out)
        for name in features:
            if name not in self.specs and features[name] is not None:
                out.append(Finding("SCHEMA_NEW_COLUMN", name, example_id,
                                   f"feature {name!r} is not in schema version "
                                   f"{self.schema.version}"))
        return out

    # -- vectorized -----------------------------------------------------------------
    def _suspect_feature(self, b: ExampleBatch, name: str, spec: FeatureSpec) -> np.ndarray:
        """Rows whose value of ``name`` may have a finding (a superset, never fewer)."""
        n = b.n
        if name not in b.names:
            return np.full(n, spec.presence == "required")
        kinds = b.kinds(name)
        if kinds == {_NONE}:  # missing in every example of the batch
            return np.full(n, spec.presence == "required")
        arr = b.array(name) if spec.valency == "scalar" else None
        t = spec.type
        simple = arr is not None and (
            (t in ("int", "float") and kinds <= _NUMBERS)
            or (t == "string" and kinds <= _STRINGS)
            or (t == "bool" and kinds <= _BOOLS))
        if not simple:  # mixed types, lists, type mismatches: the exact check per value
            found: list[Finding] = []
            bad = np.zeros(n, dtype=bool)
            for i, v in enumerate(b.values(name)):
                self._check_feature("", name, spec, v, found)
                if found:
                    bad[i] = True
                    found.clear()
            return bad
        assert arr is not None
        nulls = _null_mask(arr)
        bad = np.zeros(n, dtype=bool)
        if nulls is not None and spec.presence == "required":
            bad |= nulls
        if t in ("int", "float"):
            x = arr.to_numpy(zero_copy_only=False)  # nulls become NaN
            x = x if x.dtype == np.float64 else x.astype(np.float64)
            with np.errstate(invalid="ignore"):
                finite = np.isfinite(x)
                if not (spec.allow_nan and spec.allow_inf) and not finite.all():
                    if not spec.allow_nan:
                        bad |= np.isnan(x) if nulls is None else np.isnan(x) & ~nulls
                    if not spec.allow_inf:
                        bad |= np.isinf(x)
                if t == "int" and float in kinds:
                    bad |= finite & (x != np.floor(x))
                if spec.min is not None:
                    bad |= x < spec.min
                if spec.max is not None:
                    bad |= x > spec.max
        elif t == "string":  # screen the batch's distinct values, not every row
            seen = set(arr.unique().to_pylist())
            seen.discard(None)
            domain = self.domains.get(name)
            odd = seen & _TOKEN_SET
            if domain is not None:
                odd |= seen - domain
            if odd:
                hit = pc.is_in(arr, value_set=pa.array(sorted(odd), arr.type))
                bad |= np.asarray(hit.fill_null(False).to_numpy(zero_copy_only=False), bool)
        return bad

    def _bounds(self, names: tuple[str, ...]) -> tuple[np.ndarray, ...]:
        """Per feature of ``names``: min, max (±inf if none), NaN and Inf allowed, required."""
        got = self._bounds_of.get(names)
        if got is None:
            specs = [self.specs[n] for n in names]
            got = self._bounds_of[names] = (
                np.array([-np.inf if s.min is None else s.min for s in specs], dtype=np.float64),
                np.array([np.inf if s.max is None else s.max for s in specs], dtype=np.float64),
                np.array([s.allow_nan for s in specs], dtype=bool),
                np.array([s.allow_inf for s in specs], dtype=bool),
                np.array([s.presence == "required" for s in specs], dtype=bool),
                np.array([j for j, s in enumerate(specs) if s.type == "int"], dtype=np.intp))
        return got

    def _suspect_numbers(self, b: ExampleBatch, names: tuple[str, ...]) -> np.ndarray:
        """:meth:`_suspect_feature` of simple numeric columns, as one (features × rows) matrix.

        One numpy pass per check for all of them instead of one per feature: with
        18 features in micro-batches of 500, the per-call overhead was most of it.
        """
        lo, hi, allow_nan, allow_inf, required, int_specs = self._bounds(names)
        x = np.empty((len(names), b.n), dtype=np.float64)
        bad = np.zeros(b.n, dtype=bool)
        nulls_of: dict[int, np.ndarray] = {}
        arrays: list[pa.Array] = [b.array(name) for name in names]  # simple: never None
        for j, arr in enumerate(arrays):
            x[j] = arr.to_numpy(zero_copy_only=False)  # nulls become NaN
            nulls = _null_mask(arr) if arr.null_count else None
            if nulls is not None:
                nulls_of[j] = nulls
                if required[j]:
                    bad |= nulls
        integral = [j for j in int_specs.tolist() if float in b.kinds(names[j])]
        with np.errstate(invalid="ignore"):
            hits = (x < lo[:, None]) | (x > hi[:, None])
            if not allow_nan.all():
                nan = np.isnan(x) & ~allow_nan[:, None]
                for j, nulls in nulls_of.items():  # a null is missing, not NaN
                    nan[j] &= ~nulls
                hits |= nan
            if not allow_inf.all():
                hits |= np.isinf(x) & ~allow_inf[:, None]
            for j in integral:
                hits[j] |= np.isfinite(x[j]) & (x[j] != np.floor(x[j]))
        return bad | hits.any(axis=0)

    def _simple_number(self, b: ExampleBatch, name: str) -> bool:
        if name not in b.names:
            return False
        kinds = b.kinds(name)
        return kinds != {_NONE} and kinds <= _NUMBERS and b.array(name) is not None

    def suspects(self, b: ExampleBatch) -> np.ndarray:
        """Boolean mask of the examples of ``b`` that may have a finding (vectorized)."""
        bad = np.zeros(b.n, dtype=bool)
        together = tuple(name for name in self._numeric if self._simple_number(b, name))
        if together:
            bad |= self._suspect_numbers(b, together)
        fused = set(together)
        for name, spec in self.specs.items():
            if name not in fused:
                bad |= self._suspect_feature(b, name, spec)
        for name in b.names:
            if name not in self.specs:
                arr = b.array(name)
                if arr is not None:
                    bad |= np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
                else:
                    bad |= np.fromiter((v is not None for v in b.values(name)), bool, b.n)
        return bad

    def check_batch(self, b: ExampleBatch) -> dict[int, list[Finding]]:
        """Findings by row index of every example of ``b`` that has any.

        Columns are screened with pyarrow/numpy (:meth:`suspects`); only the
        suspect rows go through :meth:`check`, so the findings are exactly those of
        checking each example alone.

        >>> from streamml.payloads.schema import FeatureSpec, SchemaVersion
        >>> s = SchemaVersion(pipeline="p", version=1, origin="curated", created_at=0,
        ...                   features={"fare": FeatureSpec(type="float", min=0.0)})
        >>> b = ExampleBatch([{"fare": 1.0}, {"fare": -1.0}, {"fare": "x"}], ["a", "b", "c"])
        >>> {i: [f.kind for f in fs] for i, fs in SchemaChecker(s).check_batch(b).items()}
        {1: ['FLOAT_TYPE_SMALL_FLOAT'], 2: ['UNEXPECTED_DATA_TYPE']}
        """
        out: dict[int, list[Finding]] = {}
        for i in np.nonzero(self.suspects(b))[0].tolist():
            found = self.check(b.id_at(i), b.row(i))
            if found:
                out[i] = found
        return out


def check_example(example_id: str, features: Mapping[str, Any],
                  schema: SchemaVersion) -> list[Finding]:
    """Findings of one example against ``schema`` (see module docs)."""
    return SchemaChecker(schema).check(example_id, features)
