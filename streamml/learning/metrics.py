"""Evaluation metrics over a window of scored examples, overall and per slice.

Scoring and measuring are separate: :func:`predict` turns a model and features
into a prediction (a probability dict for classifiers, a number for regressors),
and :func:`measure` computes the metrics of a window of ``(y, prediction)``
pairs with River's metrics. Classification: ``accuracy``, ``log_loss``,
``roc_auc`` and ``f1`` (binary, positive class ``pos_label``; macro F1 and no
AUC for multiclass). Regression: ``mae``, ``rmse``, ``r2``.

>>> measure("classification", [(True, {True: 0.9, False: 0.1}), (False, {True: 0.2, False: 0.8})])
{'examples': 2.0, 'accuracy': 1.0, 'log_loss': 0.164252033486018, 'roc_auc': 1.0, 'f1': 1.0}
>>> measure("regression", [(1.0, 2.0), (3.0, 3.0)])["mae"]
0.5
>>> [(s.feature, s.value, s.examples) for s in measure_slices(
...     "regression", [(1.0, 1.0), (2.0, 2.5)], [{"k": "a"}, {"k": "b"}], ["k"])]
[('k', 'a', 1), ('k', 'b', 1)]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from river import metrics as rmetrics
from scipy import integrate

from streamml.payloads.evaluations import SliceMetrics

#: Which way is better, per metric (for change thresholds without an explicit direction).
HIGHER_IS_BETTER = {"accuracy": True, "roc_auc": True, "f1": True, "r2": True,
                    "log_loss": False, "mae": False, "rmse": False}


def predict(model: Any, task: str, x: Mapping[str, Any]) -> Any:
    """A probability dict (classification) or a number (regression); ``None`` on failure."""
    try:
        if task == "classification":
            return model.predict_proba_one(dict(x))
        return model.predict_one(dict(x))
    except (ValueError, TypeError, KeyError, ZeroDivisionError, ArithmeticError):
        return None


def error_of(task: str, y: Any, pred: Any, pos_label: Any = True) -> float:
    """Per-example error for drift detectors: 0/1 misclassification, or absolute error."""
    if pred is None:
        return 1.0 if task == "classification" else 0.0
    if task == "classification":
        guess = max(pred, key=pred.get) if pred else None
        return 0.0 if guess == y else 1.0
    try:
        return abs(float(y) - float(pred))
    except (TypeError, ValueError):
        return 0.0


def _binary(pairs: Sequence[tuple[Any, Any]]) -> bool:
    return {y for y, _ in pairs} <= {True, False}


def measure(task: str, pairs: Sequence[tuple[Any, Any]],
            pos_label: Any = True) -> dict[str, float]:
    """Metrics of ``(y_true, prediction)`` pairs; a failed prediction counts as a miss."""
    out: dict[str, float] = {"examples": float(len(pairs))}
    if task == "classification" and _binary(pairs):
        out.update(_binary_metrics(pairs, pos_label))
    elif task == "classification":
        acc, f1 = rmetrics.Accuracy(), rmetrics.MacroF1()
        for y, proba in pairs:
            proba = proba or {}
            guess: Any = max(proba, key=lambda c: proba[c]) if proba else None
            acc.update(y, guess)
            f1.update(y, guess)
        out["accuracy"] = acc.get()
        out["f1"] = f1.get()
    else:
        mae, rmse, r2 = rmetrics.MAE(), rmetrics.RMSE(), rmetrics.R2()
        for y, pred in pairs:
            value = float(pred) if pred is not None else 0.0
            for m in (mae, rmse, r2):
                m.update(float(y), value)
        out.update(mae=mae.get(), rmse=rmse.get(), r2=r2.get() if len(pairs) > 1 else math.nan)
    return {k: float(v) for k, v in out.items() if math.isfinite(float(v))}


#: River's ROCAUC thresholds (``n_thresholds=10``), so the figures are River's own.
_AUC_THRESHOLDS = np.array([-1e-7, *(i / 9 for i in range(1, 9)), 1.0 + 1e-7])


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def _binary_metrics(pairs: Sequence[tuple[Any, Any]], pos_label: Any) -> dict[str, float]:
    """Accuracy, log loss, ROC AUC and F1 of a binary window in one pass.

    The same figures as River's ``Accuracy``, ``LogLoss``, ``ROCAUC`` (10 thresholds)
    and ``F1`` updated pair by pair (the tests compare them), without River's ten
    confusion-matrix updates per example for the AUC.
    """
    n = len(pairs)
    probs = np.empty(n)
    truth = np.empty(n, dtype=bool)
    correct = tp = fp = fn = 0
    ll_n, ll_mean = 0.0, 0.0
    lo, hi = 1e-15, 1 - 1e-15
    for i, (y, proba) in enumerate(pairs):
        proba = proba or {}
        guess = max(proba, key=proba.__getitem__) if proba else None
        positive = y == pos_label
        guessed = guess == pos_label
        correct += y == guess
        tp += positive and guessed
        fp += guessed and not positive
        fn += positive and not guessed
        p = float(proba.get(pos_label, 0.0))
        probs[i], truth[i] = p, positive
        q = lo if p < lo else hi if p > hi else p
        loss = -math.log(q) if positive else -math.log(1 - q)
        ll_n += 1.0
        ll_mean += (1.0 / ll_n) * (loss - ll_mean)  # River's incremental mean, bit for bit
    out = {"accuracy": _ratio(correct, n)}
    if n:
        above = probs[None, :] > _AUC_THRESHOLDS[:, None]
        tps = np.count_nonzero(above & truth, axis=1)
        fps = np.count_nonzero(above & ~truth, axis=1)
        pos = int(np.count_nonzero(truth))
        tprs = [_ratio(float(t), float(pos)) for t in tps]
        fprs = [_ratio(float(f), float(n - pos)) for f in fps]
        out["log_loss"] = ll_mean
        out["roc_auc"] = float(-integrate.trapezoid(x=fprs, y=tprs))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    out["f1"] = _ratio(2 * precision * recall, precision + recall)
    return out


def slice_key(feature: str, value: Any) -> str:
    """The ``feature=value`` slice name used by checks and reports."""
    return f"{feature}={value}"


def measure_slices(task: str, pairs: Sequence[tuple[Any, Any]],
                   slice_values: Sequence[Mapping[str, Any]], features: Iterable[str],
                   pos_label: Any = True, min_examples: int = 1) -> list[SliceMetrics]:
    """Metrics per value of each categorical ``features`` (missing is ``None``)."""
    out = []
    for feature in features:
        groups: dict[str, list[tuple[Any, Any]]] = {}
        for pair, values in zip(pairs, slice_values, strict=True):
            groups.setdefault(str(values.get(feature)), []).append(pair)
        for value, group in sorted(groups.items()):
            if len(group) >= min_examples:
                m = measure(task, group, pos_label)
                m.pop("examples", None)
                out.append(SliceMetrics(feature=feature, value=value, examples=len(group),
                                        metrics=m))
    return out
