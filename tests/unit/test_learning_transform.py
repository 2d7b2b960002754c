"""Coerce's fast paths give exactly what the general conversion gives."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streamml.learning.transform import MISSING_CATEGORY, Coerce, _to_float

values = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True),
    st.integers(), st.integers(min_value=2**1000, max_value=2**1100), st.text(max_size=6),
    st.sampled_from(["7.25", "nan", "inf", "-1e400", " 3 ", "x"]), st.lists(st.integers()),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), values))
def test_coerce_equals_the_general_conversion(x: dict[str, Any]) -> None:
    got = Coerce(numeric=("a", "b", "c"), categorical=("d",)).transform_one(x)
    want = {f: _to_float(x.get(f)) for f in ("a", "b", "c")}
    want["d"] = MISSING_CATEGORY if x.get("d") is None else str(x.get("d"))
    assert list(got) == list(want)
    for f in ("a", "b", "c"):
        g, w = got[f], want[f]
        assert (g is None and w is None) or (type(g) is float and g == w and math.isfinite(g))
    assert got["d"] == want["d"]
