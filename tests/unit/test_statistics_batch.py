"""``ExampleBatch``: its columns equal a per-row computation, whole, picked and concatenated."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streamml.statistics.batch import ExampleBatch
from streamml.statistics.columns import Column, columns_from_rows

values_st = st.one_of(
    st.none(),
    st.integers(-1000, 1000),
    st.floats(-1e6, 1e6),
    st.sampled_from([float("nan"), "NaN", "Infinity"]),
    st.sampled_from(["a", "bb", "Cash"]),
    st.booleans(),
    st.lists(st.integers(-5, 5), max_size=3),
)
# rows with the same keys (the fast transposed path) or not
uniform_rows_st = st.integers(1, 30).flatmap(lambda n: st.lists(
    st.fixed_dictionaries({"a": values_st, "b": values_st, "c": values_st}), min_size=n,
    max_size=n))
ragged_rows_st = st.lists(st.dictionaries(st.sampled_from(["a", "b", "c"]), values_st,
                                          max_size=3), max_size=30)
# one type per column (int64, float64 with NaN, strings; nulls anywhere): the arrow paths
clean_rows_st = st.integers(1, 30).flatmap(lambda n: st.lists(st.fixed_dictionaries({
    "a": st.none() | st.integers(-1000, 1000),
    "b": st.none() | st.floats(allow_nan=True, allow_infinity=True),
    "c": st.none() | st.sampled_from(["a", "bb"])}), min_size=n, max_size=n))
rows_st = st.one_of(uniform_rows_st, ragged_rows_st, clean_rows_st)


def _view(cols: dict[str, Column]) -> dict[str, Any]:
    return {name: (c.present, c.missing, c.type_counts,
                   sorted(np.nan_to_num(c.numbers, nan=1e300).tolist()),
                   sorted(c.strings.to_pylist()), sorted(c.bools.to_pylist()),
                   sorted(c.list_lengths.tolist()))
            for name, c in cols.items()}


@settings(max_examples=300, deadline=None)
@given(rows_st, st.data())
def test_columns_equal_the_per_row_columns(rows: list[dict[str, Any]], data: st.DataObject) -> None:
    b = ExampleBatch(rows)
    assert _view(b.columns()) == _view(columns_from_rows(rows))
    picked = sorted(set(data.draw(st.lists(st.integers(0, max(len(rows) - 1, 0)),
                                           max_size=len(rows))))) if rows else []
    idx = np.array(picked, dtype=np.int64)
    if len(idx):
        assert _view(ExampleBatch(rows).columns(idx)) == _view(
            columns_from_rows([rows[i] for i in picked]))


@settings(max_examples=300, deadline=None)
@given(rows_st, st.lists(st.integers(1, 10), min_size=1, max_size=4))
def test_concat_of_batches_equals_the_whole(rows: list[dict[str, Any]],
                                            cuts: list[int]) -> None:
    parts, start = [], 0
    for c in cuts + [len(rows)]:
        parts.append(rows[start:start + c])
        start += c
    parts = [p for p in parts if p]
    if not parts:
        return
    batches = [ExampleBatch(p) for p in parts]
    for b in batches[::2]:  # some batches built their arrays already, some not
        for name in b.names:
            b.array(name)
    block = ExampleBatch.concat(batches)
    assert block.n == len(rows) and block.names == ExampleBatch(rows).names
    assert _view(block.columns()) == _view(columns_from_rows(rows))
    half = np.arange(0, len(rows), 2, dtype=np.int64)
    assert _view(block.columns(half)) == _view(columns_from_rows(rows[::2]))
