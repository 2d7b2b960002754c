"""How the Trainer's learners learn a run of examples, test-then-train: one at a
time, or in mini-batches with River's ``learn_many`` on pyarrow Tables.

The Trainer buffers labelled examples and calls :func:`learn_buffered` at a
candidate cut and at the end of each input batch; each learner then learns the
run in turn (:func:`learn_each`, the hot loop). Its ``mini_batch=N`` mode waits
for ``N`` examples instead and hands them to each challenger at once. A model
whose every step has ``learn_many`` and ``transform_many`` (the estimator
``predict_proba_many`` or ``predict_many``) learns the batch as one pyarrow
Table (River reads it through narwhals, no pandas needed); its progressive
metrics come from predicting the whole batch before learning it. Any other
model learns the same examples one at a time, in the same order, so its results
do not change. A batch whose features do not make a table (a column mixing
numbers and text, say) is learned one at a time.

>>> from river import linear_model, preprocessing
>>> supports_many(preprocessing.StandardScaler() | linear_model.LinearRegression())
True
>>> supports_many(preprocessing.StatImputer() | linear_model.LinearRegression())
False
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from streamml.learning.transform import as_arrow


def supports_many(model: Any) -> bool:
    """Whether every step of ``model`` (pipelines and unions walked) learns mini-batches."""
    steps = getattr(model, "steps", None)
    if isinstance(steps, dict) and steps:
        parts = list(steps.values())
        return all(_transformer_many(p) for p in parts[:-1]) and supports_many(parts[-1])
    if _is_union(model):
        return _transformer_many(model)
    return callable(getattr(model, "learn_many", None)) and (
        callable(getattr(model, "predict_proba_many", None))
        or callable(getattr(model, "predict_many", None)))


def _is_union(step: Any) -> bool:
    return isinstance(getattr(step, "transformers", None), dict)


def _transformer_many(step: Any) -> bool:
    steps = getattr(step, "steps", None)
    if isinstance(steps, dict):
        return all(_transformer_many(s) for s in steps.values())
    if _is_union(step):
        return all(_transformer_many(s) for s in step.transformers.values())
    return callable(getattr(step, "learn_many", None)) and callable(
        getattr(step, "transform_many", None))


def as_table(xs: Sequence[dict[str, Any]], ys: Sequence[Any]) -> tuple[pa.Table, Any] | None:
    """The batch as ``(X, y)`` for ``learn_many``; ``None`` if the features make no table.

    Columns are every key of any row (absent: null), each typed from all its values.

    >>> X, y = as_table([{"x": 1.0}, {"x": 2.0, "z": 5.0}], [True, False])
    >>> X.to_pylist(), y.to_pylist()
    ([{'x': 1.0, 'z': None}, {'x': 2.0, 'z': 5.0}], [True, False])
    >>> as_table([{"x": 1}, {"x": "a"}], [1, 2]) is None  # a column of numbers and text
    True
    """
    keys = dict.fromkeys(k for x in xs for k in x)
    try:
        table = pa.Table.from_pydict({str(k): [x.get(k) for x in xs] for k in keys})
        return table, pa.chunked_array([pa.array(list(ys))])
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None


def learn_each(predict: Callable[[dict], Any], learn: Callable[..., None], classification: bool,
               sums: dict[str, float], rows: Sequence[tuple[dict[str, Any], Any]]) -> None:
    """Test-then-train one example at a time: the Trainer's hot loop, per learner."""
    log = math.log
    for x, y in rows:
        if sums:
            if classification:
                proba = predict(x)
                if proba and max(proba, key=proba.get) == y:
                    sums["correct"] += 1.0
                p = proba.get(y, 0.0)
                sums["log_loss"] -= log(1e-15 if p < 1e-15 else 1.0 if p > 1.0 else p)
            else:
                sums["abs_error"] += abs(float(y) - float(predict(x) or 0.0))
        learn(x, y)


def learn_batch(model: Any, classification: bool, sums: dict[str, float], X: pa.Table, y: Any,
                xs: Sequence[dict[str, Any]], ys: Sequence[Any]) -> None:
    """Test-then-train one mini-batch with ``predict_*_many`` + ``learn_many``."""
    if sums:
        if classification:
            # the model's own class values (columns are named by their text): a label
            # matches its class as a dict key would (1 is True), not by its text
            classes = list(model.predict_proba_one(xs[0]))
            _score_probabilities(as_arrow(model.predict_proba_many(X)), classes, ys, sums)
        else:
            pred = np.asarray(_column(model.predict_many(X)), dtype=np.float64)
            truth = np.asarray([float(v) for v in ys], dtype=np.float64)
            sums["abs_error"] += float(np.abs(truth - np.nan_to_num(pred)).sum())
    model.learn_many(X, y)


def learn_buffered(plan: Sequence[tuple[Any, Any, Any, bool, dict[str, float]]],
                   rows: Sequence[tuple[dict[str, Any], Any]], many: bool) -> None:
    """Every learner of the Trainer's ``plan`` learns ``rows`` (``(x, y)``, in order).

    Learners are independent, so each learns the whole run in turn. With
    ``many`` (``mini_batch`` mode) a model that supports it learns them as one
    ``learn_many`` batch: its first batch's predictions are made one at a time
    (its ``*_many`` transforms need columns they have learned), later ones with
    ``predict_*_many``. Everything else learns one at a time.
    """
    xs: list[dict[str, Any]] | None = None
    table: tuple[pa.Table, Any] | None = None
    for lr, predict, learn, classification, sums in plan:
        if many and supports_many(lr.model):
            if xs is None:  # the table is built once, for the first learner that can use it
                xs, ys = [x for x, _ in rows], [y for _, y in rows]
                table = as_table(xs, ys)
            if table is not None:
                X, y = table
                if lr.batches:
                    learn_batch(lr.model, classification, sums, X, y, xs, ys)
                else:
                    learn_each(predict, _no_learning, classification, sums, rows)
                    lr.model.learn_many(X, y)
                lr.batches += 1
                continue
        learn_each(predict, learn, classification, sums, rows)


def _no_learning(x: Any, y: Any) -> None:
    """The learn step of a first mini-batch's one-at-a-time predictions (learned at once)."""


def _column(values: Any) -> list[Any]:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        return values.to_pylist()
    to_list = getattr(values, "to_list", None) or getattr(values, "tolist", None)
    return list(to_list()) if to_list else list(values)


def _score_probabilities(proba: pa.Table, classes: Sequence[Any], ys: Sequence[Any],
                         sums: dict[str, float]) -> None:
    """Accuracy and log-loss sums from a table of class probabilities (a column per class,
    named by the class's text; ``classes``: the class values)."""
    names = proba.column_names
    if not names:
        sums["log_loss"] -= len(ys) * math.log(1e-15)
        return
    m = np.column_stack([np.nan_to_num(proba.column(c).to_numpy(zero_copy_only=False))
                         for c in names])
    position = {name: j for j, name in enumerate(names)}
    col = {c: position[str(c)] for c in classes if str(c) in position}
    idx = np.array([col.get(v, -1) for v in ys], dtype=np.int64)
    known = idx >= 0
    rows = np.arange(len(ys))
    p = np.where(known, m[rows, np.maximum(idx, 0)], 0.0)
    sums["correct"] += float(np.count_nonzero(known & (m.argmax(axis=1) == idx)))
    sums["log_loss"] -= float(np.log(np.clip(p, 1e-15, 1.0)).sum())
