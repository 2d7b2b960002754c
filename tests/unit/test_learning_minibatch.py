"""Mini-batch learning: learn_many on pyarrow Tables, test-then-train, exact and batching-free."""

from __future__ import annotations

import math
import random

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import preprocessing, stats

from streamml.errors import ConfigError
from streamml.learning.minibatch import supports_many
from streamml.learning.trainer import Trainer
from streamml.learning.transform import Coerce, MeanImputer, build_from_spec, resolve_builder
from streamml.processors.base import Message

SPEC = {"numeric": ["x1", "x2"], "categorical": ["c"], "model": "logistic_regression",
        "model_params": {}}
PROBES = [{"x1": v / 3, "x2": -v / 5, "c": "abc"[v % 3]} for v in range(-6, 7)]


def example(i: int) -> Message:
    rng = random.Random(i)
    x1 = None if i % 11 == 0 else rng.gauss(0, 1)
    x2, c = rng.gauss(0, 1), rng.choice("abc")
    y = ((x1 or 0.0) + 0.5 * x2 + (c == "a")) > 0.3
    value = {"id": f"s:{i}", "split": "train", "event_time": 1000 * i,
             "features": {"x1": x1, "x2": x2, "c": c}, "label": y}
    return Message("p.examples", 0, i, 1000 * i, f"s:{i}", value)


def run(t: Trainer, msgs: list[Message], poll: int) -> list[dict]:
    return [e.value for k in range(0, len(msgs), poll) for e in t.process(msgs[k:k + poll])]


def probe(t: Trainer, name: str = "a") -> list[float]:
    return [t.learners[name].model.predict_proba_one(x).get(True, 0.0) for x in PROBES]


def summary(cands: list[dict]) -> list[tuple]:
    return [(c["id"], c["examples_seen"], c["metrics"], c["trained_on"]) for c in cands]


def test_spec_models_support_learn_many_and_module_functions_resolve() -> None:
    assert supports_many(build_from_spec(SPEC))
    bucketized = {**SPEC, "numeric": ["x1"], "bucketize": {"x2": [0.0]}}
    assert not supports_many(build_from_spec(bucketized))
    batch = resolve_builder("streamml.examples.taxi_module:build_batch_model")()
    plain = resolve_builder("streamml.examples.taxi_module")()
    assert supports_many(batch) and not supports_many(plain)
    with pytest.raises(ConfigError, match="no function nope"):
        resolve_builder("streamml.examples.taxi_module:nope")
    with pytest.raises(ConfigError, match="mini_batch"):
        Trainer("p", {"a": SPEC}, mini_batch=0)


@settings(max_examples=15, deadline=None)
@given(poll=st.integers(1, 60), mini=st.sampled_from([1, 7, 25]))
def test_output_does_not_depend_on_poll_batching(poll: int, mini: int) -> None:
    msgs = [example(i) for i in range(160)]
    ref = Trainer("p", {"a": SPEC}, snapshot_every=50, mini_batch=mini)
    got = Trainer("p", {"a": SPEC}, snapshot_every=50, mini_batch=mini)
    assert summary(run(got, msgs, poll)) == summary(run(ref, msgs, 160))
    assert probe(got) == probe(ref)


def test_learns_exactly_like_a_bare_learn_many_loop() -> None:
    msgs = [example(i) for i in range(120)]
    t = Trainer("p", {"a": SPEC}, snapshot_every=1000, mini_batch=40)
    run(t, msgs, 17)
    bare = build_from_spec(SPEC)
    rows = [(dict(m.value["features"]), m.value["label"]) for m in msgs]
    for k in range(0, 120, 40):
        chunk = rows[k:k + 40]
        bare.learn_many(pa.Table.from_pylist([x for x, _ in chunk]),
                        pa.chunked_array([pa.array([y for _, y in chunk])]))
    assert t.learners["a"].batches == 3
    assert probe(t) == [bare.predict_proba_one(x).get(True, 0.0) for x in PROBES]


@pytest.mark.parametrize("as_int", [False, True])  # 0/1 labels match the classes True/False
def test_progressive_metrics_of_a_batch_match_one_at_a_time_predictions(as_int: bool) -> None:
    msgs = [example(i) for i in range(80)]
    if as_int:
        for m in msgs:
            m.value["label"] = int(m.value["label"])
    t = Trainer("p", {"a": SPEC}, snapshot_every=1000, mini_batch=40)
    run(t, msgs[:40], 40)  # the first batch: predicted one at a time, learned at once
    model = t.learners["a"].model
    before = dict(t.learners["a"].metrics)
    correct, loss = 0.0, 0.0
    for m in msgs[40:]:
        proba = model.predict_proba_one(dict(m.value["features"]))
        y = m.value["label"]
        correct += max(proba, key=proba.get) == y
        loss -= math.log(min(max(proba.get(y, 0.0), 1e-15), 1.0))
    run(t, msgs[40:], 40)
    after = t.learners["a"].metrics
    assert after["correct"] - before["correct"] == correct
    assert after["log_loss"] - before["log_loss"] == pytest.approx(loss, rel=1e-9)


def test_a_model_without_learn_many_learns_one_at_a_time_with_the_same_results() -> None:
    spec = {**SPEC, "numeric": ["x1"], "bucketize": {"x2": [0.0]}}
    msgs = [example(i) for i in range(150)]
    batched = Trainer("p", {"a": spec}, snapshot_every=50, mini_batch=32)
    single = Trainer("p", {"a": spec}, snapshot_every=50)
    assert summary(run(batched, msgs, 9)) == summary(run(single, msgs, 9))
    assert probe(batched) == probe(single) and batched.learners["a"].batches == 0


def test_restart_mid_buffer_is_exact() -> None:
    msgs = [example(i) for i in range(200)]
    whole = Trainer("p", {"a": SPEC}, snapshot_every=60, mini_batch=25)
    expected = run(whole, msgs, 13)
    first = Trainer("p", {"a": SPEC}, snapshot_every=60, mini_batch=25)
    got = run(first, msgs[:100], 13)  # a candidate at 60 flushed a batch: 15 wait
    assert len(first._buffer) == 15
    second = first.clone()
    second.restore(first.snapshot())
    got += run(second, msgs[100:], 13)
    assert summary(got) == summary(expected) and probe(second) == probe(whole)


values = st.one_of(st.none(), st.floats(-1e6, 1e6), st.integers(-1000, 1000))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(values, values), min_size=1, max_size=40), st.integers(1, 9))
def test_mean_imputer_is_stat_imputer_one_at_a_time_and_batches_agree(rows: list, cut: int) -> None:
    river_imp = preprocessing.StatImputer(("a", stats.Mean()), ("b", stats.Mean()))
    ours, batched = MeanImputer("a", "b"), MeanImputer("a", "b")
    xs = [{"a": None if a is None else float(a), "b": None if b is None else float(b)}
          for a, b in rows]
    for x in xs:
        assert ours.transform_one(x) == river_imp.transform_one(x)
        ours.learn_one(x)
        river_imp.learn_one(x)
    for k in range(0, len(xs), cut):
        batched.learn_many(pa.Table.from_pylist(xs[k:k + cut], schema=pa.schema(
            [("a", pa.float64()), ("b", pa.float64())])))
    for f in ("a", "b"):
        assert batched.means[f].n == ours.means[f].n
        assert batched.means[f].get() == pytest.approx(ours.means[f].get(), rel=1e-9, abs=1e-9)
    filled = batched.transform_many(pa.Table.from_pylist(
        [{"a": None, "b": 1.0}], schema=pa.schema([("a", pa.float64()), ("b", pa.float64())])))
    assert filled.to_pylist() == [{"a": batched.means["a"].get(), "b": 1.0}]


def test_coerce_many_matches_coerce_one() -> None:
    rows = [{"n": 1, "f": 2.5, "s": "7.5", "c": "x", "b": True},
            {"n": None, "f": float("nan"), "s": "oops", "c": None, "b": False},
            {"n": 3, "f": float("inf"), "s": None, "c": "y", "b": None}]
    coerce = Coerce(numeric=("n", "f", "s", "absent"), categorical=("c", "b", "gone"))
    many = coerce.transform_many(pa.Table.from_pylist(rows)).to_pylist()
    assert many == [coerce.transform_one(r) for r in rows]


def test_big_ints_and_rows_missing_keys_learn_as_one_at_a_time() -> None:
    spec = {"numeric": ["x", "z"], "model": "linear_regression"}
    rows = [({"x": 2**53 + 1}, 1.0), ({"x": 1, "z": 2.0}, 2.0), ({"x": 3}, 3.0),
            ({"x": 2**64, "z": 1.0}, 4.0)]  # beyond int64: that batch learns one at a time
    msgs = [Message("p.examples", 0, i, i, str(i), {"id": str(i), "split": "train",
                    "event_time": i, "features": x, "label": y})
            for i, (x, y) in enumerate(rows)]
    batched = Trainer("p", {"a": spec}, snapshot_every=100, mini_batch=2)
    run(batched, msgs, 4)
    assert batched.learners["a"].examples_seen == 4 and batched.learners["a"].batches == 1
    coerce = Coerce(numeric=("x", "z"))
    table = pa.Table.from_pylist([{"x": 2**53 + 1, "z": None}, {"x": -(2**60), "z": 2.0}])
    assert coerce.transform_many(table).to_pylist() == [
        coerce.transform_one(r) for r in table.to_pylist()]


def test_select_in_order_keeps_its_order_through_clone_and_pickle() -> None:
    import pickle

    from streamml.learning.transform import SelectInOrder

    sel = SelectInOrder("e", "b", "a", "d", "c")
    for other in (sel.clone(), pickle.loads(pickle.dumps(sel))):
        assert other.order == ("e", "b", "a", "d", "c")
        assert list(other.transform_one(dict.fromkeys("abcde", 0))) == list("ebadc")
