"""Trainer: exact restart, delayed-label joins with TTL, drift actions, deterministic output."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamml.learning.artifact import load_model
from streamml.learning.join import LabelJoin
from streamml.learning.trainer import Trainer
from streamml.payloads.candidates import Candidate
from streamml.processors.base import Message

SPEC = {"numeric": ["x1", "x2"], "categorical": ["c"], "model": "logistic_regression"}


def example(i: int, *, label: object = "auto", split: str = "train") -> Message:
    rng = random.Random(i)
    x1, x2, c = rng.gauss(0, 1), rng.gauss(0, 1), rng.choice("abc")
    y = (x1 + 0.5 * x2 + (c == "a")) > 0.3 if label == "auto" else label
    value = {"id": f"s:{i}", "split": split, "event_time": 1000 * i,
             "features": {"x1": x1, "x2": x2, "c": c}, "label": y}
    return Message("p.examples", i % 2, i // 2, 1000 * i, f"s:{i}", value)


def label_msg(i: int, y: object, t: int) -> Message:
    return Message("p.labels", 0, i, t, f"s:{i}", {"id": f"s:{i}", "label": y, "event_time": t})


def trainer(**kw: object) -> Trainer:
    return Trainer("p", {"a": SPEC, "b": {**SPEC, "model": "hoeffding_tree_classifier"}},
                   snapshot_every=50, **kw)  # type: ignore[arg-type]


PROBES = [{"x1": v / 3, "x2": -v / 5, "c": "abc"[v % 3]} for v in range(-6, 7)]


def predictions(t: Trainer) -> list[list[float]]:
    return [[lr.model.predict_proba_one(x).get(True, 0.0) for x in PROBES]
            for lr in t.learners.values()]


def test_exact_restart_matches_uninterrupted_run() -> None:
    msgs = [example(i) for i in range(400)]
    whole = trainer()
    emitted_whole = [e for k in range(0, 400, 37) for e in whole.process(msgs[k:k + 37])]

    first = trainer()
    emitted = [e for k in range(0, 185, 37) for e in first.process(msgs[k:k + 37])]
    state = first.snapshot()
    assert isinstance(state, bytes)
    second = first.clone()
    assert isinstance(second, Trainer) and second.learners["a"].examples_seen == 0
    second.restore(state)
    emitted += [e for k in range(185, 400, 37) for e in second.process(msgs[k:k + 37])]

    assert predictions(second) == predictions(whole)
    lr_a, lr_b = second.learners["a"].model, whole.learners["a"].model
    assert lr_a[-1].weights == lr_b[-1].weights
    # Same candidates (ids, ranges, metrics...). Pickle bytes may differ (memo sharing of
    # equal objects), so artifacts are compared by what the models they hold predict.
    def strip(value: dict) -> dict:
        return {k: v for k, v in value.items() if k != "artifact"}

    assert [(e.key, strip(e.value)) for e in emitted] == [
        (e.key, strip(e.value)) for e in emitted_whole]
    for got, want in zip(emitted[-2:], emitted_whole[-2:], strict=True):
        g, w = (Candidate.model_validate(e.value).artifact for e in (got, want))
        mg, mw = load_model(g.data_bytes(), g.sha256), load_model(w.data_bytes(), w.sha256)
        assert [mg.predict_proba_one(x) for x in PROBES] == [
            mw.predict_proba_one(x) for x in PROBES]


def test_candidates_are_deterministic_and_describe_training() -> None:
    t = trainer()
    out = [e for i in range(100) for e in t.process([example(i)])]
    assert [e.key for e in out] == ["a@1", "b@1", "a@2", "b@2"]
    cand = Candidate.model_validate(out[2].value)
    assert cand.parent == "a@1" and cand.examples_seen == 100 and cand.sequence == 2
    assert {(r.partition, r.start, r.end) for r in cand.trained_on} == {(0, 0, 50), (1, 0, 50)}
    assert cand.event_time is not None and cand.event_time.end_ms == 99_000
    assert cand.signature.task == "classification" and cand.signature.classes == [False, True]
    assert {f.name: f.type for f in cand.signature.inputs} == {"c": "string", "x1": "float",
                                                                "x2": "float"}
    assert 0.5 < cand.metrics["progressive_accuracy"] <= 1.0
    assert 0.0 < cand.metrics["progressive_log_loss"] < 0.7
    model = load_model(cand.artifact.data_bytes(), cand.artifact.sha256)  # pipeline inside
    assert set(model.predict_proba_one({"x1": 1.0})) == {False, True}
    assert out[0].timestamp_ms is None  # stamped with the write time by the host
    first = Candidate.model_validate(out[0].value)
    assert first.event_time is not None and first.event_time.end_ms == 49_000


def test_eval_split_and_junk_are_not_learned() -> None:
    t = trainer()
    t.process([example(i, split="eval") for i in range(10)])
    t.process([Message("p.examples", 0, 99, 0, None, "junk")])
    assert t.learners["a"].examples_seen == 0
    assert t.skipped == {"eval_split": 10, "not_an_example": 1}


def test_delayed_labels_are_joined_by_id() -> None:
    t = trainer()
    t.process([example(i, label=None) for i in range(5)])
    assert t.learners["a"].examples_seen == 0 and t.join.pending == 5
    t.process([label_msg(3, True, 5000), label_msg(1, False, 5000)])
    assert t.learners["a"].examples_seen == 2 and t.join.pending == 3
    r = t.learners["a"].ranges
    assert r == {("p.examples", 1): [0, 2]}  # offsets of examples 1 and 3 (partition 1)


def test_label_before_example_waits_too() -> None:
    t = trainer()
    t.process([label_msg(7, True, 6000)])
    t.process([example(7, label=None)])
    assert t.learners["a"].examples_seen == 1 and t.join.joined == 1


def test_delayed_labels_expire_after_ttl() -> None:
    t = trainer(label_ttl_ms=10_000)
    t.process([example(0, label=None), example(1, label=None)])
    # labelled examples move event time (the watermark) past the TTL of the first two
    t.process([example(i) for i in range(20, 25)])
    assert t.join.expired == 2 and t.join.pending == 0
    t.process([label_msg(0, True, 25_000)])  # too late: counted, not learned
    assert t.learners["a"].examples_seen == 5
    assert t.join.counters()["pending"] == 0


def test_label_buffer_is_bounded() -> None:
    j = LabelJoin(ttl_ms=10**9, max_pending=3)
    for i in range(5):
        j.add_example(str(i), {"id": str(i)}, i)
    assert j.pending == 3 and j.evicted == 2
    assert j.add_label("0", True, 10) == [] and j.add_label("4", True, 10) != []


def test_join_state_survives_snapshot() -> None:
    t = trainer()
    t.process([example(i, label=None) for i in range(3)])
    t2 = t.clone()
    t2.restore(t.snapshot())
    t2.process([label_msg(2, True, 3000)])
    assert t2.learners["a"].examples_seen == 1


def action(n: int, what: str, model: str | None = "a") -> Message:
    value = {"id": f"p/Evaluator/action/{n}", "pipeline": "p", "kind": "action",
             "component": "Evaluator", "properties": {"action": what, "model": model},
             "time": 0}
    return Message("p.metadata", 0, n, 0, value["id"], value)


def test_drift_actions_start_a_challenger_or_reset() -> None:
    t = trainer()
    t.process([example(i) for i in range(60)])
    t.process([action(1, "new_challenger"), action(1, "new_challenger")])  # deduplicated
    assert sorted(t.learners) == ["a", "a~1", "b"]
    assert t.learners["a~1"].examples_seen == 0
    t.process([action(2, "reset", "b")])
    assert t.learners["b"].examples_seen == 0 and t.learners["b"].sequence == 1
    out = [e for i in range(60, 110) for e in t.process([example(i)])]
    keys = sorted(e.key for e in out if e.key)
    assert keys == ["a@2", "a~1@1", "b@2"]
    assert Candidate.model_validate(next(e.value for e in out if e.key == "b@2")).parent is None
    t.process([action(3, "alert")])  # alert only: nothing changes
    assert sorted(t.learners) == ["a", "a~1", "b"]


def test_snapshot_every_event_time() -> None:
    t = Trainer("p", {"a": SPEC}, snapshot_every=10**6, snapshot_every_ms=10_000)
    out = [e for i in range(25) for e in t.process([example(i)])]
    assert [e.key for e in out] == ["a@1", "a@2"]


def test_restore_refuses_tampered_state() -> None:
    t = trainer()
    t.process([example(0)])
    blob = bytearray(t.snapshot())
    blob[-5] ^= 0xFF
    with pytest.raises(Exception, match="sha256"):
        t.clone().restore(bytes(blob))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 60), min_size=1, max_size=12), st.integers(0, 150))
def test_micro_batch_bookkeeping_equals_one_at_a_time(cuts: list[int], at: int) -> None:
    """Counts, offset ranges, event times and metrics are batched per micro-batch: the
    candidates and state must not depend on where the batches are cut, drift actions
    in mid-batch included (the spawned challenger learns only what follows)."""
    # every third example's label comes later on p.labels, a few records after its
    # example; some past the TTL (5 s of event time): those examples expire unlearned
    msgs: list[Message] = [example(i) if i % 3 else example(i, label=None)
                           for i in range(150)]
    for i in sorted((i for i in range(150) if i % 3 == 0 and i % 9), reverse=True):
        y, delay = example(i).value["label"], (1500 if i % 2 else 9000)
        msgs.insert(min(i + 1 + delay // 1000, len(msgs)), label_msg(i, y, 1000 * i + delay))
    msgs.insert(at, action(1, "new_challenger"))

    def run(sizes: list[int]) -> tuple[list[tuple[str | None, dict]], Trainer]:
        t = Trainer("p", {"a": SPEC}, snapshot_every=40, label_ttl_ms=5000)
        out, k, i = [], 0, 0
        while k < len(msgs):
            n = sizes[i % len(sizes)]
            out += [(e.key, {f: v for f, v in e.value.items() if f != "artifact"})
                    for e in t.process(msgs[k:k + n])]
            k, i = k + n, i + 1
        return out, t

    one, t1 = run([1])
    cut, t2 = run(cuts)
    assert cut == one
    for name, lr in t1.learners.items():
        other = t2.learners[name]
        assert (other.examples_seen, other.ranges, other.first_time, other.last_time,
                other.metrics) == (lr.examples_seen, lr.ranges, lr.first_time, lr.last_time,
                                   lr.metrics)
    assert t1.join.counters() == t2.join.counters()
    assert t1.join.joined and t1.join.expired  # the join and its TTL are exercised


def test_after_each_call_every_learner_has_learned_every_example_it_counts() -> None:
    from streamml.learning.transform import build_from_spec

    msgs = [example(i) for i in range(70)]  # no candidate is cut: nothing else learns them
    t = Trainer("p", {"a": SPEC}, snapshot_every=1000)
    bare = build_from_spec(SPEC)
    for k in range(0, 70, 23):
        t.process(msgs[k:k + 23])
        for m in msgs[k:k + 23]:
            bare.learn_one(dict(m.value["features"]), m.value["label"])
        assert t.learners["a"].examples_seen == min(k + 23, 70)
        assert [t.learners["a"].model.predict_proba_one(x) for x in PROBES] == [
            bare.predict_proba_one(x) for x in PROBES]


def test_a_label_function_failing_on_bad_data_skips_the_example_and_goes_on() -> None:
    """ExampleGen passes a token in a feature (``fare: "N/A"``) on for the validator to
    flag; a user label function computed from that feature (the taxi module's
    ``tips > 0.2 * fare``) raises on it: the Trainer and the Evaluator count and skip the
    example instead of stopping (and failing again at every restart)."""
    from streamml.learning import Evaluator, GateConfig

    taxi = "streamml.examples.taxi_module"

    def msg(i: int, split: str, fare: object) -> Message:
        return Message("p.examples", 0, i, i, f"e{i}", {
            "id": f"e{i}", "split": split, "event_time": i,
            "features": {"fare": fare, "tips": 3.0, "trip_miles": 1.0}})

    t = Trainer("p", {"logreg": taxi}, taxi, snapshot_every=10**6)
    t.process([msg(0, "train", 10.0), msg(1, "train", "N/A"), msg(2, "train", 5.0)])
    assert t.skipped["label_error"] == 1 and t.learners["logreg"].examples_seen == 2
    ev = Evaluator("p", GateConfig(min_examples=10), taxi, window=20)
    ev.process([msg(0, "eval", "N/A"), msg(1, "eval", 8.0)])
    assert ev.counters["label_error"] == 1 and ev.counters["eval_examples"] == 1
