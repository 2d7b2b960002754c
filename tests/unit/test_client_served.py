"""ServedModel: signature checks and the shape of predictions."""

from __future__ import annotations

import pytest
from river import linear_model, tree

from streamml.client import InvalidInstance, PredictionFailed, ServedModel
from streamml.payloads.artifacts import FeatureSignature, ModelSignature
from tests.serving_helpers import INSTANCE, SIGNATURE, release, train


def served(model: object = None, signature: ModelSignature = SIGNATURE) -> ServedModel:
    rel, _ = release(1)
    return ServedModel(rel.model_copy(update={"signature": signature}), model or train(1))


@pytest.mark.parametrize(
    ("instance", "message"),
    [
        ({"trip_miles": 1.0}, "missing required feature 'fare'"),
        ({"fare": None}, "missing required feature 'fare'"),
        ({"fare": "12"}, "feature 'fare' must be a number, not '12'"),
        ({"fare": True}, "feature 'fare' must be a number"),
        ({"fare": 1.0, "passengers": 1.5}, "feature 'passengers' must be an integer"),
        ({"fare": 1.0, "passengers": [1]}, "feature 'passengers' must be an integer"),
        ([1, 2], "must be an object of feature values, not list"),
    ],
)
def test_bad_instances_are_refused(instance: object, message: str) -> None:
    with pytest.raises(InvalidInstance, match="instance 1: " + message.replace("(", r"\(")):
        served().predict([INSTANCE, instance])


def test_checks_coerce_and_drop_unknown_features() -> None:
    model = served()
    assert model.check_instance({"fare": 3, "passengers": 2.0, "id": "x", "trip_miles": None}) == {
        "fare": 3, "passengers": 2}
    one = model.predict_one(INSTANCE)
    assert model.predict([INSTANCE, {**INSTANCE, "label": True}]) == [one, one]
    assert model.sample_instance() == {"fare": 0.0, "trip_miles": 0.0, "passengers": 0}
    assert model.features()["fare"] == {"type": "float", "valency": "scalar", "required": True}


def test_binary_probability_is_of_the_positive_class() -> None:
    model = train(3)
    p = served(model).predict_one(INSTANCE)
    assert isinstance(p, float) and p == model.predict_proba_one(INSTANCE)[True]
    negative_first = SIGNATURE.model_copy(update={"classes": [True, False]})
    assert served(model, negative_first).predict_one(INSTANCE) == 1 - p


def test_multiclass_class_output_and_regression() -> None:
    sig = ModelSignature(task="classification", label="species",
                         inputs=[FeatureSignature(name="x", type="float")],
                         classes=["a", "b", "c"])
    clf = tree.HoeffdingTreeClassifier()
    for i in range(30):
        clf.learn_one({"x": float(i)}, "abc"[i % 3])
    probs = served(clf, sig).predict_one({"x": 1.0})
    assert set(probs) == {"a", "b", "c"} and sum(probs.values()) == pytest.approx(1.0)
    as_class = sig.model_copy(update={"output": "class"})
    assert served(clf, as_class).predict_one({"x": 1.0}) in {"a", "b", "c"}
    reg = linear_model.LinearRegression()
    reg.learn_one({"x": 1.0}, 3.0)
    value = served(reg, ModelSignature(task="regression", label="y", output="value",
                                       inputs=[FeatureSignature(name="x", type="float")]))
    assert isinstance(value.predict_one({"x": 2.0}), float)


def test_model_exception_becomes_prediction_failed() -> None:
    class Broken:
        def predict_proba_one(self, x: dict) -> dict:
            raise ZeroDivisionError("boom")

        def predict_one(self, x: dict) -> bool:
            return True

    with pytest.raises(PredictionFailed, match="failed on instance 0: ZeroDivisionError: boom"):
        served(Broken()).predict([INSTANCE])
