"""Transform: preprocessing that travels inside the model artifact.

A model is ONE River object, typically a ``compose.Pipeline`` of preprocessing
(coercion, imputation, scaling, one-hot encoding, bucketizing) and an estimator.
The Trainer pickles that whole object into the artifact, so the server applies
exactly what training applied: no training/serving skew by construction.

A model comes from

* a **user module** (TFX's ``module_file``): a Python file or importable module
  exposing ``build_model()`` and optionally ``label(example) -> y`` and
  ``features(example) -> x``; see :func:`load_module_file`;
* a **declarative spec**, a small dict turned into a River pipeline by
  :func:`build_from_spec`;
* any zero-argument callable returning a River estimator.

Preprocessing steps that ship inside artifacts must be importable wherever the
artifact is loaded: River's own transformers, or the ones here
(:class:`Coerce`, :class:`Bucketize`), never functions of the user module.

>>> model = build_from_spec({"numeric": ["fare"], "categorical": ["payment_type"],
...                          "model": "logistic_regression"})
>>> model.learn_one({"fare": "7.5", "payment_type": "Cash"}, True)
>>> round(model.predict_proba_one({"fare": None, "payment_type": None})[True], 3)
0.501
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from river import base, compose, linear_model, preprocessing, stats, tree

from streamml.errors import ConfigError
from streamml.usercode import import_user_module

#: What the Trainer accepts as a model source.
ModelSource = str | Mapping[str, Any] | Callable[[], Any]

MISSING_CATEGORY = "(missing)"


def _to_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


_BIG = 2**1000  # ints below this convert to a finite float


class Coerce(base.MiniBatchTransformer):
    """Select and type features: numbers as ``float`` (``None`` when missing or not a number),
    categories as ``str`` (``"(missing)"`` when missing). Stateless; unknown features are dropped.

    ``transform_many`` does the same on a mini-batch (any dataframe River accepts) and
    returns a pyarrow Table, so the pipeline can learn with ``learn_many``.

    >>> Coerce(numeric=("fare",), categorical=("payment_type",)).transform_one(
    ...     {"fare": "7.25", "payment_type": None, "tips": 1.0})
    {'fare': 7.25, 'payment_type': '(missing)'}
    >>> import pyarrow as pa
    >>> Coerce(numeric=("fare",), categorical=("payment_type",)).transform_many(
    ...     pa.table({"fare": [7, None], "payment_type": [None, "Cash"]})).to_pylist()
    [{'fare': 7.0, 'payment_type': '(missing)'}, {'fare': None, 'payment_type': 'Cash'}]
    """

    def __init__(self, numeric: Sequence[str] = (), categorical: Sequence[str] = ()) -> None:
        self.numeric = tuple(numeric)
        self.categorical = tuple(categorical)

    def transform_one(self, x: dict) -> dict:
        out: dict[str, Any] = {}
        get = x.get
        for f in self.numeric:  # fast paths for what examples hold: floats and ints
            v: Any = get(f)
            kind = type(v)
            if kind is float:
                out[f] = v if v - v == 0.0 else None  # NaN and ±inf are missing
            elif kind is int and -_BIG < v < _BIG:
                out[f] = float(v)
            else:
                out[f] = _to_float(v)
        for f in self.categorical:
            v = x.get(f)
            out[f] = MISSING_CATEGORY if v is None else str(v)
        return out

    def learn_many(self, X: Any) -> None:
        """Stateless: nothing to learn."""

    def transform_many(self, X: Any) -> pa.Table:
        table = as_arrow(X)
        n = table.num_rows
        names = set(table.column_names)
        cols: dict[str, pa.Array] = {}
        for f in self.numeric:
            col = table.column(f).combine_chunks() if f in names else pa.nulls(n, pa.float64())
            t = col.type
            if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t):
                col = pc.cast(col, pa.float64(), safe=False)  # big ints round, as float()
                cols[f] = pc.if_else(pc.is_finite(col), col, None)  # NaN and ±inf: missing
            else:  # text, bools, mixed: value by value, as transform_one
                cols[f] = pa.array([_to_float(v) for v in col.to_pylist()], pa.float64())
        for f in self.categorical:
            col = table.column(f).combine_chunks() if f in names else pa.nulls(n, pa.string())
            if pa.types.is_string(col.type) or pa.types.is_null(col.type):
                cols[f] = pc.fill_null(pc.cast(col, pa.string()), MISSING_CATEGORY)
            else:  # str() of each value, as transform_one (pyarrow writes bools lower-case)
                cols[f] = pa.array([MISSING_CATEGORY if v is None else str(v)
                                    for v in col.to_pylist()], pa.string())
        return pa.table(cols) if cols else pa.table({}).slice(0, 0)


class SelectInOrder(compose.Select):
    """River's ``Select``, but the features come out in the order they were named.

    River's ``Select`` iterates a set, whose order depends on the process's string
    hash seed; the order in which features reach a linear model is the order of its
    float sums, so a model restarted in another process (another seed) would learn
    differently by an ulp and drift. With a fixed order, restarts are bit-exact.

    >>> SelectInOrder("b", "a").transform_one({"a": 1, "b": 2, "c": 3})
    {'b': 2, 'a': 1}
    """

    def __init__(self, *keys: str) -> None:
        super().__init__(*keys)
        self.order = tuple(dict.fromkeys(keys))

    def _get_params(self) -> dict[str, Any]:
        return {"_POSITIONAL_ARGS": self.order}  # clone() keeps the order

    def transform_one(self, x: dict) -> dict:
        return {k: x[k] for k in self.order}

    def transform_many(self, X: Any) -> Any:
        from river.utils.dataframe import into_frame

        return into_frame(X).select(list(self.order)).to_native()


def as_arrow(X: Any) -> pa.Table:
    """A mini-batch (pyarrow, pandas, polars... any frame River accepts) as a pyarrow Table."""
    if isinstance(X, pa.Table):
        return X
    from river.utils.dataframe import into_frame

    return into_frame(X).to_arrow()


class MeanImputer(base.MiniBatchTransformer):
    """Replace missing numbers by the running mean of the values seen so far (0 before any).

    One at a time it is River's ``StatImputer`` with ``stats.Mean``; it also learns and
    transforms mini-batches (pyarrow Tables), which ``StatImputer`` does not.

    >>> imp = MeanImputer("x")
    >>> imp.learn_one({"x": 2.0}); imp.learn_one({"x": None}); imp.learn_one({"x": 4.0})
    >>> imp.transform_one({"x": None})
    {'x': 3.0}
    >>> import pyarrow as pa
    >>> imp.learn_many(pa.table({"x": [6.0, None]}))
    >>> imp.transform_many(pa.table({"x": [None, 1.0]})).column("x").to_pylist()
    [4.0, 1.0]
    """

    def __init__(self, *features: str) -> None:
        self.features = tuple(features)
        self.means = {f: stats.Mean() for f in self.features}

    def learn_one(self, x: dict) -> None:
        for f, mean in self.means.items():
            v = x.get(f)
            if v is not None:
                mean.update(v)

    def transform_one(self, x: dict) -> dict:
        out = dict(x)
        for f, mean in self.means.items():
            if out.get(f) is None:
                out[f] = mean.get()
        return out

    def learn_many(self, X: Any) -> None:
        table = as_arrow(X)
        for f, mean in self.means.items():
            if f in table.column_names:
                col = pc.cast(table.column(f), pa.float64(), safe=False).drop_null()
                if len(col):  # the batch's mean, weighted by its count
                    mean.update(pc.mean(col).as_py(), w=len(col))

    def transform_many(self, X: Any) -> pa.Table:
        table = as_arrow(X)
        for f, mean in self.means.items():
            if f in table.column_names:  # a missing column is all missing, as in transform_one
                i = table.column_names.index(f)
                col = pc.cast(table.column(f), pa.float64(), safe=False)
                table = table.set_column(i, f, pc.fill_null(col, mean.get()))
            else:
                table = table.append_column(f, pa.array([mean.get()] * table.num_rows,
                                                        pa.float64()))
        return table


class Bucketize(base.Transformer):
    """Replace numeric features by the index of their bucket (as a category), TFT-style.

    ``boundaries`` maps a feature to sorted edges; ``k`` edges make ``k + 1`` buckets.

    >>> Bucketize({"hour": [6, 12, 18]}).transform_one({"hour": 13.0, "fare": 2.0})
    {'hour': 'b2', 'fare': 2.0}
    >>> Bucketize({"hour": [6]}).transform_one({"hour": None})
    {'hour': '(missing)'}
    """

    def __init__(self, boundaries: Mapping[str, Sequence[float]]) -> None:
        self.boundaries = {k: sorted(float(e) for e in v) for k, v in boundaries.items()}

    def transform_one(self, x: dict) -> dict:
        out = dict(x)
        for f, edges in self.boundaries.items():
            v = _to_float(x.get(f))
            out[f] = MISSING_CATEGORY if v is None else f"b{sum(v >= e for e in edges)}"
        return out


_ESTIMATORS: dict[str, Callable[..., Any]] = {
    "logistic_regression": linear_model.LogisticRegression,
    "linear_regression": linear_model.LinearRegression,
    "hoeffding_tree_classifier": tree.HoeffdingTreeClassifier,
    "hoeffding_tree_regressor": tree.HoeffdingTreeRegressor,
}


def _estimator(name: str, params: Mapping[str, Any]) -> Any:
    if name in _ESTIMATORS:
        return _ESTIMATORS[name](**params)
    module_name, _, attr = name.rpartition(".")
    if not module_name.startswith("river."):
        raise ConfigError(f"unknown estimator {name!r}: use one of {sorted(_ESTIMATORS)} "
                          "or a dotted river.* class path")
    return getattr(importlib.import_module(module_name), attr)(**params)


def build_from_spec(spec: Mapping[str, Any]) -> Any:
    """Build a River pipeline from a declarative spec.

    Keys: ``numeric`` (imputed with the running mean, then standard-scaled),
    ``categorical`` (one-hot, missing is its own category), ``bucketize``
    (feature → edges; bucketized features become categorical), ``model`` (a short
    name such as ``logistic_regression`` or a ``river.*`` class path) and
    ``model_params``.

    >>> m = build_from_spec({"numeric": ["x"], "bucketize": {"h": [12]},
    ...                      "model": "linear_regression"})
    >>> type(m).__name__, list(m.steps)[0]
    ('Pipeline', 'Coerce')
    """
    unknown = set(spec) - {"numeric", "categorical", "bucketize", "model", "model_params"}
    if unknown:
        raise ConfigError(f"unknown transform spec keys: {sorted(unknown)}")
    numeric = [str(f) for f in spec.get("numeric", [])]
    buckets = {str(k): list(v) for k, v in dict(spec.get("bucketize", {})).items()}
    categorical = [str(f) for f in spec.get("categorical", [])]
    if not numeric and not categorical and not buckets:
        raise ConfigError("a transform spec needs numeric, categorical or bucketize features")
    # Bucketized features are read as numbers, then become categories.
    prep: Any = Coerce(numeric=numeric + list(buckets), categorical=categorical)
    if buckets:
        prep = prep | Bucketize(buckets)
    parts = []
    if numeric:
        parts.append(SelectInOrder(*numeric) | MeanImputer(*numeric)
                     | preprocessing.StandardScaler())
    cats = categorical + list(buckets)
    if cats:
        parts.append(SelectInOrder(*cats) | preprocessing.OneHotEncoder())
    union = parts[0] if len(parts) == 1 else compose.TransformerUnion(*parts)
    model = _estimator(str(spec.get("model", "logistic_regression")),
                       dict(spec.get("model_params", {})))
    return prep | union | model


def event_time_of(value: Any, default: int) -> int:
    """An example's ``event_time`` in ms; ``default`` when missing or not a number.

    >>> event_time_of("12", 0), event_time_of(None, 5), event_time_of("soon", 5)
    (12, 5, 5)
    """
    try:
        return default if value is None else int(value)
    except (TypeError, ValueError, OverflowError):
        return default


def default_label(example: Mapping[str, Any]) -> Any:
    """The example's ``label`` field."""
    return example.get("label")


def default_features(example: Mapping[str, Any]) -> dict[str, Any]:
    """The example's ``features`` dict, as is (the model's own preprocessing selects)."""
    return dict(example.get("features") or {})


@dataclass(frozen=True)
class UserModule:
    """What a user module provides; missing functions fall back to the defaults.

    >>> um = UserModule(name="inline", build_model=lambda: None)
    >>> um.label({"label": 1}), um.features({"features": {"a": 1}})
    (1, {'a': 1})
    """

    name: str
    build_model: Callable[[], Any]
    label: Callable[[Mapping[str, Any]], Any] = default_label
    features: Callable[[Mapping[str, Any]], dict[str, Any]] = default_features


def load_module_file(path_or_module: str | Path) -> UserModule:
    """Load a user module from a ``.py`` path or a dotted module name (TFX ``module_file``).

    >>> um = load_module_file("examples/taxi_module.py")
    >>> um.label({"features": {"fare": 10.0, "tips": 3.0}})
    True
    """
    text = str(path_or_module)
    module = import_user_module(path_or_module, what="user module")
    build = getattr(module, "build_model", None)
    if not callable(build):
        raise ConfigError(f"user module {text!r} has no build_model() function")
    return UserModule(
        name=text,
        build_model=build,
        label=getattr(module, "label", default_label),
        features=getattr(module, "features", default_features),
    )


def resolve_builder(source: ModelSource) -> Callable[[], Any]:
    """A zero-argument model factory from a module path, a spec dict or a callable.

    A string names a user module (its ``build_model``) or ``module:function``.

    >>> resolve_builder({"numeric": ["x"], "model": "linear_regression"})().__class__.__name__
    'Pipeline'
    >>> resolve_builder("streamml.examples.taxi_module:build_batch_model")().__class__.__name__
    'Pipeline'
    """
    if isinstance(source, str):
        path, sep, function = source.rpartition(":")
        if sep and path and function.isidentifier():  # "module_or_file:function"
            module = import_user_module(path, what="model source")
            build = getattr(module, function, None)
            if not callable(build):
                raise ConfigError(f"model source {path!r} has no function {function}()")
            return build
        return load_module_file(source).build_model
    if isinstance(source, Mapping):
        spec = dict(source)
        return lambda: build_from_spec(spec)
    if callable(source):
        return source
    raise ConfigError(f"not a model source: {source!r}")
