"""Per-example anomalies, schema file round trip, inference and evolution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamml.payloads.base import NONFINITE_TOKENS
from streamml.payloads.schema import FeatureSpec, SchemaVersion
from streamml.statistics.batch import ExampleBatch
from streamml.statistics.columns import columns_from_rows
from streamml.validation.checks import SchemaChecker, check_example
from streamml.validation.schema import (
    evolve,
    infer_schema,
    load_schema,
    save_schema,
    schema_changes,
)

TAXI = Path(__file__).resolve().parents[2] / "streamml" / "data" / "taxi.csv"

SCHEMA = SchemaVersion(pipeline="p", version=1, origin="curated", created_at=0, features={
    "fare": FeatureSpec(type="float", min=0.0, max=1000.0),
    "trips": FeatureSpec(type="int", min=1, max=10),
    "pay": FeatureSpec(type="string", domain=["Cash", "Credit Card"]),
    "tips": FeatureSpec(type="float", presence="optional", min_fraction=0.5),
    "flag": FeatureSpec(type="bool", presence="optional"),
})
GOOD = {"fare": 7.25, "trips": 2, "pay": "Cash", "tips": None, "flag": True}


@pytest.mark.parametrize(("change", "kind", "feature"), [
    ({"fare": None}, "FEATURE_TYPE_NOT_PRESENT", "fare"),
    ({"pay": None}, "FEATURE_TYPE_NOT_PRESENT", "pay"),
    ({"fare": "abc"}, "UNEXPECTED_DATA_TYPE", "fare"),
    ({"trips": 2.5}, "UNEXPECTED_DATA_TYPE", "trips"),
    ({"pay": 3}, "UNEXPECTED_DATA_TYPE", "pay"),
    ({"flag": "yes"}, "UNEXPECTED_DATA_TYPE", "flag"),
    ({"fare": [1.0]}, "UNEXPECTED_DATA_TYPE", "fare"),
    ({"pay": "Bitcoin"}, "ENUM_TYPE_UNEXPECTED_STRING_VALUES", "pay"),
    ({"fare": -1.0}, "FLOAT_TYPE_SMALL_FLOAT", "fare"),
    ({"fare": 1e6}, "FLOAT_TYPE_BIG_FLOAT", "fare"),
    ({"trips": 0}, "INT_TYPE_SMALL_INT", "trips"),
    ({"trips": 11}, "INT_TYPE_BIG_INT", "trips"),
    ({"fare": float("nan")}, "FLOAT_TYPE_HAS_NAN", "fare"),
    ({"fare": "NaN"}, "FLOAT_TYPE_HAS_NAN", "fare"),
    ({"tips": float("inf")}, "FLOAT_TYPE_HAS_INF", "tips"),
    ({"tolls": 1.0}, "SCHEMA_NEW_COLUMN", "tolls"),
])
def test_each_per_example_anomaly_kind(change: dict, kind: str, feature: str) -> None:
    findings = check_example("ex:7", {**GOOD, **change}, SCHEMA)
    assert [(f.kind, f.feature, f.example_id) for f in findings] == [(kind, feature, "ex:7")]


def test_clean_examples_and_integral_floats_pass() -> None:
    assert check_example("a", GOOD, SCHEMA) == []
    assert check_example("b", {**GOOD, "trips": 3.0, "fare": 7}, SCHEMA) == []


def test_infer_from_taxi_file_and_yaml_json_round_trip(tmp_path: Path) -> None:
    schema = infer_schema(TAXI, pipeline="taxi", created_at=1)
    f = schema.features
    assert f["fare"].type == "float" and f["trip_start_hour"].type == "int"
    assert f["payment_type"].domain is not None and "Cash" in f["payment_type"].domain
    assert f["company"].type == "string"
    assert f["trip_start_hour"].min == 0 and f["trip_start_hour"].max == 23
    assert f["fare"].presence == "required" or f["fare"].min_fraction is not None
    assert f["pickup_census_tract"].presence == "optional"
    # one value seen (pickup_census_tract is present once in 15,002 rows): no range is
    # enforced; the tract next door is not an anomaly. Many values, many distinct: padded.
    assert (f["pickup_census_tract"].min, f["pickup_census_tract"].max) == (None, None)
    assert f["dropoff_census_tract"].max is not None and f["dropoff_census_tract"].max > (
        17032000000)
    assert check_example("t", {**{k: None for k in f}, "pickup_census_tract": 17031320100},
                         schema) == check_example("t", {k: None for k in f}, schema)
    for name in ("schema.yaml", "schema.json"):
        save_schema(schema, tmp_path / name)
        assert load_schema(tmp_path / name) == schema
    # every taxi row is valid against the schema inferred from the file
    import pyarrow.csv as pcsv
    table = pcsv.read_csv(TAXI, convert_options=pcsv.ConvertOptions(strings_can_be_null=True))
    bad = [check_example(str(i), row, schema) for i, row in enumerate(table.to_pylist())]
    assert sum(map(len, bad)) == 0


def test_curated_schema_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    save_schema(SCHEMA, path)
    text = path.read_text().replace("- Credit Card", "- Credit Card\n    - Mobile")
    path.write_text(text)
    curated = load_schema(path, curated=True)
    assert curated.origin == "curated"
    assert curated.features["pay"].domain == ["Cash", "Credit Card", "Mobile"]
    assert check_example("x", {**GOOD, "pay": "Mobile"}, curated) == []


def test_evolution_new_column_category_and_type_change() -> None:
    acc = columns_from_rows([{**GOOD, "tolls": 1.5, "pay": "Mobile", "trips": "two"}])
    changes = schema_changes(SCHEMA, acc)
    assert {(c.kind, c.feature) for c in changes} == {
        ("SCHEMA_NEW_COLUMN", "tolls"), ("ENUM_TYPE_UNEXPECTED_STRING_VALUES", "pay"),
        ("UNEXPECTED_DATA_TYPE", "trips")}
    v2 = evolve(SCHEMA, changes, created_at=5)
    assert (v2.version, v2.parent, v2.origin) == (2, 1, "evolved")
    assert v2.features["tolls"].presence == "optional"
    assert v2.features["trips"].type == "string"
    assert "Mobile" in (v2.features["pay"].domain or [])
    assert schema_changes(v2, acc) == []


_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-20, 2000),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from(["Cash", "Credit Card", "Bitcoin", "NaN", "Infinity", "x", ""]),
    st.lists(st.one_of(st.integers(0, 5), st.sampled_from(["Cash", "y"])), max_size=2),
)
_ROWS = st.lists(st.dictionaries(st.sampled_from([*SCHEMA.features, "tolls"]), _VALUES),
                 min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(rows=_ROWS, uniform=st.sampled_from([None, "fare", "trips", "pay", "flag"]))
def test_vectorized_batch_check_equals_checking_each_example(rows: list[dict],
                                                             uniform: str | None) -> None:
    if uniform is not None:  # make one column clean-typed, so the arrow fast path is taken
        fill = {"fare": 1.5, "trips": 3, "pay": "Cash", "flag": False}[uniform]
        for i, r in enumerate(rows):
            r[uniform] = None if i % 3 == 0 else (fill if i % 2 else r.get(uniform, fill))
    ids = [f"e{i}" for i in range(len(rows))]
    checker = SchemaChecker(SCHEMA)
    expected = {i: f for i, r in enumerate(rows) if (f := checker.check(ids[i], r))}
    assert checker.check_batch(ExampleBatch(rows, ids)) == expected


def _reference_changes(schema: SchemaVersion, rows: list[dict]) -> set[tuple]:
    """Schema changes of ``rows``, one value at a time (lists flattened, JSON tokens floats)."""
    types: dict[str, dict[str, int]] = {}
    strings: dict[str, set[str]] = {}
    for r in rows:
        for name, v in r.items():
            for x in v if isinstance(v, list) else [v]:
                if x is None:
                    continue
                kind = ("bool" if isinstance(x, bool) else "int" if isinstance(x, int)
                        else "float" if isinstance(x, float) or x in NONFINITE_TOKENS
                        else "string")
                types.setdefault(name, {}).setdefault(kind, 0)
                types[name][kind] += 1
                if kind == "string":
                    strings.setdefault(name, set()).add(x)
    out = set()
    for name, counts in types.items():
        spec = schema.features.get(name)
        if spec is None:
            out.add(("SCHEMA_NEW_COLUMN", name))
            continue
        allowed = {"bool": {"bool"}, "int": {"int", "float"}, "float": {"int", "float"},
                   "string": {"string"}}[spec.type]
        # a type change: most values (numbers, text, bools; ties to text, then numbers)
        # have a type the schema's does not take, and a wider one would
        numbers = counts.get("int", 0) + counts.get("float", 0)
        _, _, most = max((numbers, 1, "float" if counts.get("float") else "int"),
                         (counts.get("string", 0), 2, "string"), (counts.get("bool", 0), 0, "bool"))
        order = {"bool": 0, "int": 1, "float": 2, "string": 3}
        if most not in allowed and order[most] > order[spec.type]:
            out.add(("UNEXPECTED_DATA_TYPE", name))
        new_values = strings.get(name, set()) - set(spec.domain or [])
        if spec.type == "string" and spec.domain is not None and new_values:
            out.add(("ENUM_TYPE_UNEXPECTED_STRING_VALUES", name))
    return out


@settings(max_examples=150, deadline=None)
@given(rows=_ROWS)
def test_schema_changes_of_a_batch_equal_a_value_by_value_reference(rows: list[dict]) -> None:
    expected = _reference_changes(SCHEMA, rows)
    for columns in (columns_from_rows(rows), ExampleBatch(rows).columns()):
        got = schema_changes(SCHEMA, columns)
        assert {(c.kind, c.feature) for c in got} == expected


NUMERIC = SchemaVersion(pipeline="p", version=1, origin="curated", created_at=0, features={
    "a": FeatureSpec(type="float", min=0.0, max=10.0),
    "b": FeatureSpec(type="float", presence="optional", allow_nan=True, allow_inf=True),
    "c": FeatureSpec(type="int", min=1, max=5),
    "d": FeatureSpec(type="int", presence="optional"),
    "e": FeatureSpec(type="float", presence="optional", allow_inf=True, max=100.0),
})
_NUMBER = st.one_of(st.none(), st.integers(-3, 12), st.sampled_from([0.5, 2.0, 7.0, 1e300]),
                    st.floats(allow_nan=True, allow_infinity=True, width=64))


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.fixed_dictionaries({k: _NUMBER for k in "abcde"}), min_size=1,
                     max_size=30))
def test_numeric_columns_screened_together_equal_checking_each_example(rows: list[dict]) -> None:
    """Several clean numeric columns at once (the matrix screen), nulls, ints among floats."""
    ids = [f"e{i}" for i in range(len(rows))]
    checker = SchemaChecker(NUMERIC)
    expected = {i: f for i, r in enumerate(rows) if (f := checker.check(ids[i], r))}
    assert checker.check_batch(ExampleBatch(rows, ids)) == expected
    table_batch = ExampleBatch.from_table(pa.table({k: pa.array([r[k] for r in rows],
                                                                pa.float64()) for k in "abcde"}))
    flagged = {i for i, r in enumerate(rows)
               if checker.check(ids[i], {k: None if v is None else float(v) for k, v in r.items()})}
    assert set(checker.check_batch(table_batch)) == flagged
    # on clean float columns the screen is exact, not just a superset
    assert set(np.flatnonzero(checker.suspects(table_batch)).tolist()) == flagged
