"""unsplit_dicts: pickled models get combined instance dicts back, values untouched."""

from __future__ import annotations

import pickle
import sys
import types

import pytest
from river import compose, linear_model, preprocessing

from streamml.fastattrs import NEEDED, unsplit_dicts
from streamml.learning.artifact import dump_model, inline_artifact, load_model

needs_split_dicts = pytest.mark.skipif(not NEEDED, reason="CPython >= 3.13 keeps inline values")

# classes importable by pickle
mod = types.ModuleType("fastattrs_fixture")
sys.modules[mod.__name__] = mod
exec(  # noqa: S102 - a fixture module
    "class Node:\n"
    "    def __init__(self, value, child=None):\n"
    "        self.value, self.child, self.items = value, child, []\n",
    mod.__dict__)
Node = mod.Node


def combined(obj: object) -> bool:
    """Whether ``obj.__dict__`` is a combined table: a split one (its keys shared with
    the class) reports a different size than a fresh combined copy of itself."""
    d = obj.__dict__
    return sys.getsizeof(d) == sys.getsizeof({**d})


def data(n: int = 300) -> list[tuple[dict[str, float], bool]]:
    return [({"a": float(i % 7), "b": float((i * 3) % 11)}, (i * 5) % 3 == 0) for i in range(n)]


def model() -> compose.Pipeline:
    return preprocessing.StandardScaler() | linear_model.LogisticRegression()


@needs_split_dicts
def test_pickling_splits_dicts_and_unsplit_restores_combined_ones() -> None:
    leaf = Node(1)
    root = Node(0, leaf)
    root.items.append(Node(2))
    root.items.append(root)  # a cycle
    pickle.dumps(root)
    assert not combined(root) and not combined(leaf)  # what pickling did
    assert unsplit_dicts(root) == 3  # root, leaf, the one in the list; the cycle once
    assert combined(root) and combined(leaf) and combined(root.items[0])
    assert (root.value, root.child is leaf, leaf.value, root.items[1] is root) == (0, True, 1, True)


def test_values_are_untouched_and_learning_continues_identically() -> None:
    rows = data()
    a, b = model(), model()
    for x, y in rows[:150]:
        a.learn_one(x, y)
        b.learn_one(x, y)
    dump_model(a)  # pickles, then unsplits a
    for x, y in rows[150:]:
        a.learn_one(x, y)
        b.learn_one(x, y)
    assert [a.predict_proba_one(x) for x, _ in rows] == [b.predict_proba_one(x) for x, _ in rows]


@needs_split_dicts
def test_dump_and_load_leave_every_model_object_combined() -> None:
    m = model()
    for x, y in data(50):
        m.learn_one(x, y)
    art = inline_artifact(dump_model(m))
    loaded = load_model(art.data_bytes(), art.sha256)
    for obj in (m, loaded):
        objects = [obj, *obj.steps.values()]
        assert all(combined(o) for o in objects)


def test_classes_and_modules_are_not_walked() -> None:
    class Holder:
        pass

    h = Holder()
    h.module, h.cls, h.fn = types, Holder, test_classes_and_modules_are_not_walked
    before = dict(vars(types))
    assert unsplit_dicts(h) == (1 if NEEDED else 0)
    assert vars(types) == before and h.module is types and h.cls is Holder


def test_limit_bounds_the_walk() -> None:
    chain = Node(0)
    for i in range(1, 50):
        chain = Node(i, chain)
    changed = unsplit_dicts(chain, limit=10)
    assert changed <= 10


@needs_split_dicts
def test_trainer_models_stay_combined_across_snapshot_and_restore() -> None:
    from streamml.learning.trainer import Trainer
    from streamml.processors.base import Message

    t = Trainer("p", {"lin": {"numeric": ["x"], "model": "linear_regression"}}, snapshot_every=7)
    t.process([Message("p.examples", 0, i, i, str(i), {
        "id": str(i), "split": "train", "event_time": i, "features": {"x": float(i)},
        "label": 2.0 * i}) for i in range(20)])  # two candidates pickled the model
    state = t.snapshot()
    t2 = t.clone()
    t2.restore(state)
    for trainer in (t, t2):
        m = trainer.learners["lin"].model
        assert all(combined(o) for o in (m, *m.steps.values()))
