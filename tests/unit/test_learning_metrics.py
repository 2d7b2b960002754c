"""The Evaluator's one-pass binary metrics against River's metrics updated pair by pair."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from river import metrics as rmetrics

from streamml.learning.metrics import measure


def river_binary(pairs: list[tuple[Any, Any]], pos_label: Any = True) -> dict[str, float]:
    """The reference: River's own metrics, as the Evaluator computed them before."""
    acc, ll = rmetrics.Accuracy(), rmetrics.LogLoss()
    auc, f1 = rmetrics.ROCAUC(pos_val=pos_label), rmetrics.F1(pos_val=pos_label)
    for y, proba in pairs:
        proba = proba or {}
        guess = max(proba, key=lambda c: proba[c]) if proba else None
        acc.update(y, guess)
        f1.update(y, guess)
        p = float(proba.get(pos_label, 0.0))
        ll.update(y == pos_label, min(max(p, 1e-15), 1 - 1e-15))
        auc.update(y, {pos_label: p, not pos_label: 1.0 - p})
    out = {"examples": float(len(pairs)), "accuracy": acc.get()}
    if pairs:
        out["log_loss"] = ll.get()
        out["roc_auc"] = auc.get()
    out["f1"] = f1.get()
    return {k: float(v) for k, v in out.items() if math.isfinite(float(v))}


probas = st.one_of(
    st.none(),
    st.just({}),
    st.floats(0.0, 1.0).map(lambda p: {True: p, False: 1.0 - p}),
    st.sampled_from([0.0, 1.0, 1 / 9, 2 / 9, 0.5, 1e-16]).map(lambda p: {True: p, False: 1 - p}),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), probas), max_size=60))
def test_binary_metrics_equal_rivers(pairs: list[tuple[bool, Any]]) -> None:
    assert measure("classification", pairs) == river_binary(pairs)


def test_binary_metrics_on_a_realistic_window() -> None:
    import random

    rng = random.Random(3)
    pairs = []
    for _ in range(2000):
        y = rng.random() < 0.4
        p = min(1.0, max(0.0, rng.gauss(0.65 if y else 0.35, 0.2)))
        pairs.append((y, {False: 1 - p, True: p}))
    ours, ref = measure("classification", pairs), river_binary(pairs)
    assert ours == ref
    assert 0.7 < ours["roc_auc"] < 0.95


def test_multiclass_keeps_accuracy_and_macro_f1() -> None:
    pairs = [("a", {"a": 0.7, "b": 0.2, "c": 0.1}), ("b", {"a": 0.6, "b": 0.3, "c": 0.1}),
             ("c", {"c": 0.9, "a": 0.1})]
    m = measure("classification", pairs)
    assert set(m) == {"examples", "accuracy", "f1"}
    assert m["accuracy"] == 2 / 3
