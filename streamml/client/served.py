"""A verified, loaded, ready-to-predict model version.

:class:`ServedModel` wraps the River object unpickled from a verified
:class:`~streamml.payloads.models.ModelRelease` and predicts on lists of
instances (dicts of feature values), checking each instance against the
release's :class:`~streamml.payloads.artifacts.ModelSignature` first.

What one instance's prediction is (``signature.output``):

* ``"probability"`` (classification, the default): for a binary classifier the
  probability of the *positive* class, a float. The positive class is the second
  of ``signature.classes`` (``[False, True]`` → ``True``), or ``True`` when
  ``classes`` is not given. With more than two classes: a dict class → probability
  (classes as strings, since JSON object keys are strings);
* ``"class"``: the predicted class (``predict_one``);
* ``"value"`` (regression): a float (``predict_one``).

Input checks, per feature of ``signature.inputs``:

* a missing (or ``null``) feature is an error only if the feature is ``required``;
  otherwise it is left out and the model's preprocessing imputes it;
* a present value must have the declared type: ``float`` accepts numbers (not
  booleans), ``int`` accepts integers and integral floats, ``string`` strings,
  ``bool`` booleans; ``valency="list"`` wants a list of those;
* features the signature does not name are dropped, so clients may send whole
  rows (ids, labels...). A signature with no inputs disables the checks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from streamml.client.errors import InvalidInstance, PredictionFailed
from streamml.payloads.artifacts import FeatureSignature, ModelSignature
from streamml.payloads.models import ModelRelease

_Check = Callable[[Any], Any]  # returns the (possibly coerced) value or raises ValueError

_SAMPLES: dict[str, Any] = {"float": 0.0, "int": 0, "string": "", "bool": False}


def _check_float(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError("a number")
    return v


def _check_int(v: Any) -> Any:
    if isinstance(v, bool):
        raise ValueError("an integer")
    if isinstance(v, int):
        return v
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return int(v)
    raise ValueError("an integer")


def _check_string(v: Any) -> Any:
    if not isinstance(v, str):
        raise ValueError("a string")
    return v


def _check_bool(v: Any) -> Any:
    if not isinstance(v, bool):
        raise ValueError("a boolean")
    return v


_CHECKS: dict[str, _Check] = {
    "float": _check_float,
    "int": _check_int,
    "string": _check_string,
    "bool": _check_bool,
}


def _feature_check(feature: FeatureSignature) -> _Check:
    scalar = _CHECKS[feature.type]
    if feature.valency == "scalar":
        return scalar

    def check_list(v: Any) -> Any:
        if not isinstance(v, list):
            raise ValueError(f"a list of {feature.type}")
        return [scalar(item) for item in v]

    return check_list


def _jsonable(value: Any) -> Any:
    """Plain Python for JSON: numpy scalars become Python scalars."""
    item = getattr(value, "item", None)
    if item is not None and not isinstance(value, int | float | str | bool):
        return item()
    return value


class ServedModel:
    """One verified model version, ready to predict.

    Built by :class:`~streamml.client.ModelSubscriber` after the release's HMAC
    signature and the artifact's SHA-256 were checked; ``model`` is the River
    object itself.

    >>> from river import linear_model
    >>> from streamml.payloads.artifacts import (FeatureSignature, InlineArtifact,
    ...                                          ModelSignature)
    >>> from streamml.payloads.models import ModelRelease
    >>> lr = linear_model.LogisticRegression()
    >>> for i in range(10):
    ...     lr.learn_one({"fare": float(i)}, i >= 5)
    >>> release = ModelRelease(
    ...     pipeline="demo", name="tipper", version=1, candidate_id="c1",
    ...     signature=ModelSignature(task="classification", label="big_tipper",
    ...         inputs=[FeatureSignature(name="fare", type="float", required=True)]),
    ...     artifact=InlineArtifact.from_bytes(b"", format="river-pickle"), created_at=0)
    >>> served = ServedModel(release, lr)
    >>> p = served.predict([{"fare": 9.0}, {"fare": 0.0, "id": "ignored"}])
    >>> p[0] > 0.5 > p[1]
    True
    >>> served.predict([{"fare": "cheap"}])
    Traceback (most recent call last):
    ...
    streamml.client.errors.InvalidInstance: instance 0: feature 'fare' must be a number, not 'cheap'
    """

    __slots__ = (
        "name",
        "version",
        "release",
        "model",
        "signature",
        "metrics",
        "_checks",
        "_required",
        "_predict_one",
        "_positive",
        "_binary",
    )

    def __init__(self, release: ModelRelease, model: Any) -> None:
        self.name: str = release.name
        self.version: int = release.version
        self.release = release
        self.model = model
        self.signature: ModelSignature = release.signature
        self.metrics: dict[str, float] = dict(release.metrics)
        sig = release.signature
        self._checks: dict[str, _Check] = {f.name: _feature_check(f) for f in sig.inputs}
        self._required = tuple(f.name for f in sig.inputs if f.required)
        classes = sig.classes
        self._binary = classes is None or len(classes) == 2
        self._positive: Any = classes[1] if classes is not None and len(classes) == 2 else True
        self._predict_one: Callable[[dict[str, Any]], Any] = self._choose_predictor(model, sig)

    def __repr__(self) -> str:
        return f"ServedModel(name={self.name!r}, version={self.version})"

    # -- prediction -----------------------------------------------------------
    def _choose_predictor(
        self, model: Any, sig: ModelSignature
    ) -> Callable[[dict[str, Any]], Any]:
        if sig.task == "classification" and sig.output == "probability" and hasattr(
            model, "predict_proba_one"
        ):
            proba = model.predict_proba_one
            if self._binary:
                positive = self._positive

                def binary(x: dict[str, Any]) -> Any:
                    return float(proba(x).get(positive, 0.0))

                return binary
            return lambda x: {str(k): float(v) for k, v in proba(x).items()}
        predict = model.predict_one
        if sig.task == "regression" or sig.output == "value":
            return lambda x: float(predict(x))
        return lambda x: _jsonable(predict(x))

    def check_instance(self, instance: Any, index: int = 0) -> dict[str, Any]:
        """The features the model gets for ``instance``; ``InvalidInstance`` if it is bad."""
        if not isinstance(instance, Mapping):
            raise InvalidInstance(
                f"instance {index}: must be an object of feature values, "
                f"not {type(instance).__name__}"
            )
        checks = self._checks
        if not checks:
            return dict(instance)
        for name in self._required:
            if instance.get(name) is None:
                raise InvalidInstance(f"instance {index}: missing required feature {name!r}")
        x: dict[str, Any] = {}
        for name, value in instance.items():
            check = checks.get(name)
            if check is None or value is None:
                continue
            try:
                x[name] = check(value)
            except ValueError as exc:
                raise InvalidInstance(
                    f"instance {index}: feature {name!r} must be {exc}, not {value!r}"
                ) from None
        return x

    def predict(self, instances: Sequence[Any]) -> list[Any]:
        """Predictions for ``instances`` (see the module doc for what one prediction is).

        Every instance is checked before any is predicted. ``InvalidInstance`` for a
        bad instance, ``PredictionFailed`` if the model itself raises.
        """
        xs = [self.check_instance(inst, i) for i, inst in enumerate(instances)]
        predict_one = self._predict_one
        out: list[Any] = []
        for i, x in enumerate(xs):
            try:
                out.append(predict_one(x))
            except Exception as exc:  # a model bug must not become a 500
                raise PredictionFailed(
                    f"model {self.name!r} version {self.version} failed on instance {i}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        return out

    def predict_one(self, instance: Mapping[str, Any]) -> Any:
        """The prediction for one instance."""
        return self.predict([instance])[0]

    # -- metadata -------------------------------------------------------------
    def sample_instance(self) -> dict[str, Any] | None:
        """A well-typed instance built from the signature (for warm-up); ``None`` if no inputs."""
        if not self.signature.inputs:
            return None
        return {
            f.name: [_SAMPLES[f.type]] if f.valency == "list" else _SAMPLES[f.type]
            for f in self.signature.inputs
        }

    def warm_up(self) -> None:
        """Predict once on :meth:`sample_instance` (no-op without a signature's inputs)."""
        sample = self.sample_instance()
        if sample is not None:
            self.predict([sample])

    def features(self) -> dict[str, dict[str, Any]]:
        """Feature name → ``{"type", "valency", "required"}``, from the signature."""
        return {
            f.name: {"type": f.type, "valency": f.valency, "required": f.required}
            for f in self.signature.inputs
        }
