"""Trainer: online learning of several challengers, snapshotted as candidates.

Reads ``<p>.examples`` (train split only), ``<p>.labels`` (delayed labels, joined
by example id with an event-time TTL, see :class:`~streamml.learning.join.LabelJoin`)
and, when ``listen_actions``, the drift actions the Evaluator records on
``<p>.metadata`` (``new_challenger``, ``reset``). Every challenger (name → model
source) learns every labelled train example, test-then-train: its progressive
metrics come from predicting each example before learning it.

Every ``snapshot_every`` examples, or ``snapshot_every_ms`` of event time, each
challenger is published to ``<p>.candidates`` as a :class:`Candidate` with the
pickled River object (preprocessing included), its checksum, the offset ranges
and event times it learned from. Ids are ``<model>@<sequence>``; the output is a
pure function of the input, so a replay republishes the same candidates. Records
are stamped with their write time (Kafka's retention then counts from publication,
so a replay of old data keeps its candidates); ``event_time`` in the payload says
which event times they learned from.

State (models, metrics, counters, ranges, the label buffer) is
:meth:`snapshot`-ed as a checksummed blob, checkpointed with the input offsets by
the runtime: a restart neither re-learns nor skips an example.

>>> from streamml.processors.base import Message
>>> t = Trainer("p", {"lin": {"numeric": ["x"], "model": "linear_regression"}},
...             snapshot_every=2)
>>> ex = lambda i: Message("p.examples", 0, i, i, str(i), {"id": str(i), "split": "train",
...     "event_time": i, "features": {"x": float(i)}, "label": 2.0 * i})
>>> t.process([ex(0)])
[]
>>> [e.key for e in t.process([ex(1)])]
['lin@1']
>>> t2 = t.clone(); t2.restore(t.snapshot()); t2.learners["lin"].examples_seen
2
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from streamml.errors import ConfigError
from streamml.learning.artifact import (
    pack_state,
    task_of,
    unpack_state,
)
from streamml.learning.join import LabelJoin
from streamml.learning.learner import (
    Learner,
    PendingBatch,
    candidate_of,
    feature_type,
    progressive_metrics,
)
from streamml.learning.minibatch import learn_buffered
from streamml.learning.transform import (
    ModelSource,
    UserModule,
    default_features,
    default_label,
    event_time_of,
    load_module_file,
    resolve_builder,
)
from streamml.processors.base import Emit, Message, Processor, State
from streamml.settle import settle

ACTIONS = ("new_challenger", "reset")


class Trainer(Processor):
    """Online Trainer of several challengers; see the module docstring."""

    name = "trainer"

    def __init__(
        self,
        pipeline: str,
        challengers: Mapping[str, ModelSource],
        module: str | None = None,
        *,
        snapshot_every: int = 1000,
        snapshot_every_ms: int | None = None,
        label_ttl_ms: int = 3_600_000,
        max_pending_labels: int = 100_000,
        label_name: str = "label",
        progressive: bool = True,
        listen_actions: bool = True,
        max_challengers: int = 8,
        mini_batch: int | None = None,
    ) -> None:
        if not challengers:
            raise ConfigError("the Trainer needs at least one challenger")
        if snapshot_every < 1 or (snapshot_every_ms is not None and snapshot_every_ms < 1):
            raise ConfigError("snapshot intervals must be positive")
        if mini_batch is not None and mini_batch < 1:
            raise ConfigError("mini_batch must be >= 1 (or None to learn one at a time)")
        self.pipeline = pipeline
        self.challengers = dict(challengers)
        self.module = module
        self.snapshot_every = snapshot_every
        self.snapshot_every_ms = snapshot_every_ms
        self.label_ttl_ms = label_ttl_ms
        self.max_pending_labels = max_pending_labels
        self.label_name = label_name
        self.progressive = progressive
        self.listen_actions = listen_actions
        self.max_challengers = max_challengers
        self.mini_batch = mini_batch
        self.examples_topic = f"{pipeline}.examples"
        self.labels_topic = f"{pipeline}.labels"
        self.actions_topic = f"{pipeline}.metadata"
        self.candidates_topic = f"{pipeline}.candidates"
        self.inputs = (self.examples_topic, self.labels_topic) + (
            (self.actions_topic,) if listen_actions else ())
        self.outputs = (self.candidates_topic,)
        user: UserModule | None = load_module_file(module) if module else None
        self._label = user.label if user else default_label
        self._features = user.features if user else default_features
        self._builders = {name: resolve_builder(src) for name, src in self.challengers.items()}
        self._reset_state()

    # -- state ----------------------------------------------------------------
    def _reset_state(self) -> None:
        self.learners: dict[str, Learner] = {
            name: self._fresh(name, name) for name in self._builders}
        self.join = LabelJoin(self.label_ttl_ms, self.max_pending_labels)
        self.feature_types: dict[str, tuple[str, str]] = {}
        self.classes: set[Any] = set()
        self.skipped = {"eval_split": 0, "not_an_example": 0}
        self.last_snapshot_time: int | None = None
        self.since_snapshot = 0
        self.spawned: dict[str, int] = {}
        self.applied_actions: list[str] = []
        self._pending = PendingBatch()
        #: labelled examples (x, y) waiting for a full mini-batch (``mini_batch`` mode)
        self._buffer: list[tuple[dict[str, Any], Any]] = []
        self._hot: list[tuple[Learner, Any, Any, bool, dict[str, float]]] | None = None
        self._untyped: set[str] = set()
        self._seen_keys: set[str] = set()

    def _fresh(self, name: str, source: str) -> Learner:
        model = self._builders[source]()
        task = task_of(model)
        return Learner(name=name, source=source, model=model, task=task,
                       metrics=progressive_metrics(task) if self.progressive else {})

    def snapshot(self) -> State:
        self._flush()
        state = pack_state({
            "learners": self.learners, "join": self.join, "feature_types": self.feature_types,
            "classes": self.classes, "skipped": self.skipped,
            "last_snapshot_time": self.last_snapshot_time, "spawned": self.spawned,
            "since_snapshot": self.since_snapshot,
            "applied_actions": self.applied_actions, "buffer": self._buffer,
        })
        self._keep_models_fast()
        return state

    def _keep_models_fast(self) -> None:
        """Undo what pickling did to the learners' models (see :mod:`streamml.settle`)."""
        for lr in self.learners.values():
            settle(lr.model)

    def restore(self, state: State) -> None:
        if not isinstance(state, bytes | bytearray):
            raise TypeError("Trainer state is an opaque blob")
        s = unpack_state(bytes(state))
        self.learners, self.join = s["learners"], s["join"]
        self.feature_types, self.classes = s["feature_types"], s["classes"]
        self.skipped, self.last_snapshot_time = s["skipped"], s["last_snapshot_time"]
        self.spawned, self.applied_actions = s["spawned"], s["applied_actions"]
        self.since_snapshot = s["since_snapshot"]
        self._buffer = s.get("buffer", [])
        self._pending, self._hot = PendingBatch(), None
        self._untyped, self._seen_keys = set(), set(self.feature_types)
        self._keep_models_fast()

    # -- processing -----------------------------------------------------------
    def process(self, batch: Sequence[Message]) -> Iterable[Emit]:
        out: list[Emit] = []
        examples_topic, labels_topic = self.examples_topic, self.labels_topic
        label_of, join = self._label, self.join
        # Examples ready to learn, in input order: (example, label, topic, partition,
        # offset, event time), learned in one tight loop (_learn_all). They are learned
        # before anything changes the label join or the learners (a join call, an
        # expiry, an action), so a candidate cut among them sees the join counters
        # and learners as a one-at-a-time run would: outputs do not depend on batching.
        ready: list[tuple[dict[str, Any], Any, str, int, int, int]] = []
        for msg in batch:
            value = msg.value
            if not isinstance(value, dict):
                self.skipped["not_an_example"] += 1
                continue
            topic = msg.topic
            if topic == examples_topic:
                if value.get("split", "train") != "train":
                    self.skipped["eval_split"] += 1
                    continue
                t = value.get("event_time")
                if type(t) is not int:
                    t = event_time_of(t, msg.timestamp_ms)
                try:
                    y = label_of(value)
                except (ValueError, TypeError, ArithmeticError, LookupError):  # float("N/A")
                    self.skipped["label_error"] = self.skipped.get("label_error", 0) + 1
                    continue
                if y is None:
                    self._learn_all(ready, out)
                    example_id = str(value.get("id", msg.key))
                    meta = (topic, msg.partition, msg.offset, t)
                    ready = [(ex, label, *m) for ex, label, m in
                             join.add_example(example_id, value, t, meta)]
                    continue
                if t > join.watermark:
                    if join.examples or join.labels:  # something may expire
                        self._learn_all(ready, out)
                        ready = []
                        join.advance(t)
                    else:  # nothing to expire: the same as advance(t), cheaper
                        join.watermark = t
                ready.append((value, y, topic, msg.partition, msg.offset, t))
            elif topic == labels_topic:
                self._learn_all(ready, out)
                t = value.get("event_time")
                ready = [(ex, y, *m) for ex, y, m in join.add_label(
                    str(value.get("id", msg.key)), value.get("label"),
                    int(t) if t is not None else None)]
            elif topic == self.actions_topic:
                self._learn_all(ready, out)
                ready = []
                self._learn_buffer()
                self._flush()
                self._on_action(value)
        self._learn_all(ready, out)
        self._flush()
        return out

    def _plan(self) -> list[tuple[Learner, Any, Any, bool, dict[str, float]]]:
        """Per learner, the bound methods the hot loop calls (rebuilt when learners change)."""
        if self._hot is None:
            self._hot = [(lr, lr.model.predict_proba_one if lr.task == "classification"
                          else lr.model.predict_one, lr.model.learn_one,
                          lr.task == "classification", lr.metrics)
                         for lr in self.learners.values()]
        return self._hot

    def _learn_all(self, ready: Sequence[tuple[dict[str, Any], Any, str, int, int, int]],
                   out: list[Emit]) -> None:
        """Test-then-train every learner on each ready example, in order.

        Examples are buffered, then learned by ``minibatch.learn_buffered`` (each
        learner in turn over the run, in a tight loop) at a candidate cut and at
        the end, or every ``mini_batch`` examples. Per-example
        bookkeeping (counts, offset ranges, event times) is accumulated in
        :attr:`_pending` and applied to the learners by :meth:`_flush` (before a
        candidate is cut, at the end of the batch and before any state is read).
        Everything the loop needs is a local.
        """
        if not ready:
            return
        features_of, isfinite = self._features, math.isfinite
        classes = self.classes
        classify = any(lr.task == "classification" for lr in self.learners.values())
        by_count = self.snapshot_every_ms is None and self.last_snapshot_time is not None
        until = self.snapshot_every - self.since_snapshot  # examples before the next cut
        seen, untyped = self._seen_keys, self._untyped
        # examples wait in the buffer until a mini-batch is full (mini_batch mode), or
        # until a candidate is cut or the run ends (then learned each in turn)
        batched, buffer = self.mini_batch or len(ready) + 1, self._buffer
        # the current micro-batch segment's bookkeeping, in locals (see PendingBatch.book)
        n, first, last = 0, None, None
        cur_topic, cur_partition = None, -1
        r: list[int] = []  # the offset range of (cur_topic, cur_partition)
        for ex, y, topic, partition, offset, t in ready:
            if isinstance(y, float) and not isfinite(y):
                continue
            x = features_of(ex)
            if not seen >= x.keys():
                self._note_features(x)
                seen, untyped = self._seen_keys, self._untyped
            elif untyped:  # features seen only missing so far: typed once they have a value
                for k in untyped:
                    if x.get(k) is not None:
                        self._note_features(x)
                        seen, untyped = self._seen_keys, self._untyped
                        break
            if classify and y not in classes:
                classes.add(y)
            buffer.append((x, y))
            if len(buffer) >= batched:
                self._learn_buffer()
                buffer = self._buffer
            n += 1
            if partition != cur_partition or topic != cur_topic:
                cur_topic, cur_partition = topic, partition
                r = self._pending.ranges.setdefault((topic, partition), [offset, offset])
            if offset >= r[1]:
                r[1] = offset + 1
            elif offset < r[0]:
                r[0] = offset
            if first is None or t < first:
                first = t
            if last is None or t > last:
                last = t
            until -= 1
            if by_count and until > 0:
                continue
            self._pending.book(n, first, last)
            n, first, last = 0, None, None
            self.since_snapshot = self.snapshot_every - until
            if self._snapshot_due(t):
                self.last_snapshot_time = t
                self.since_snapshot = 0
                self._learn_buffer()  # a candidate holds every example counted in it
                buffer = self._buffer
                self._flush()
                cur_topic = None  # a new PendingBatch: look the range up again
                out.extend(self._candidates())
            by_count = self.snapshot_every_ms is None
            until = self.snapshot_every - self.since_snapshot
        self._pending.book(n, first, last)
        self.since_snapshot = self.snapshot_every - until
        if self.mini_batch is None:
            self._learn_buffer()  # before the label join or the learners change again

    def _learn_buffer(self) -> None:
        """Learn the buffered examples (``learn_many`` mini-batches in ``mini_batch`` mode)."""
        if self._buffer:
            rows, self._buffer = self._buffer, []
            learn_buffered(self._plan(), rows, many=self.mini_batch is not None)

    def _note_features(self, x: Mapping[str, Any]) -> None:
        """Record the type of every feature not typed yet (missing values have none).

        Features seen only missing so far are kept in ``_untyped`` (looked at
        again, cheaply, until they have a value), so the per-example check stays
        one set comparison.
        """
        known = self.feature_types
        for fname in x.keys() - known.keys():
            ft = feature_type(x[fname])
            if ft is not None:
                known[fname] = ft
                self._untyped.discard(fname)
            else:
                self._untyped.add(fname)
        self._seen_keys = set(known) | self._untyped

    def _flush(self) -> None:
        """Apply the micro-batch's pending bookkeeping to every learner."""
        if self._pending.n:
            self._pending.apply(self.learners.values())
            self._pending = PendingBatch()

    def _snapshot_due(self, t: int) -> bool:
        if self.last_snapshot_time is None:
            self.last_snapshot_time = t
        if self.since_snapshot >= self.snapshot_every:
            return True
        every = self.snapshot_every_ms
        return every is not None and t - self.last_snapshot_time >= every

    def _candidates(self) -> list[Emit]:
        out = []
        for learner in self.learners.values():
            if learner.since_snapshot == 0:
                continue
            learner.sequence += 1
            learner.since_snapshot = 0
            cid = f"{learner.name}@{learner.sequence}"
            cand = candidate_of(learner, cid, self.pipeline, classes=self.classes,
                                feature_types=self.feature_types, label=self.label_name,
                                label_counters=self.join.counters())
            learner.parent = cid
            out.append(Emit(self.candidates_topic, cand.to_json(), key=cid))
        return out

    # -- drift actions --------------------------------------------------------
    def _on_action(self, event: dict[str, Any]) -> None:
        props = event.get("properties") or {}
        action, event_id = props.get("action"), str(event.get("id"))
        if event.get("kind") != "action" or action not in ACTIONS:
            return
        if event_id in self.applied_actions:
            return
        self.applied_actions = [*self.applied_actions[-999:], event_id]
        target = props.get("model")
        names = [target] if target in self.learners else [
            n for n, lr in self.learners.items() if lr.source == n]
        self._hot = None
        for name in names:
            learner = self.learners[name]
            if action == "reset":
                fresh = self._fresh(name, learner.source)
                fresh.sequence = learner.sequence  # ids stay unique; parent None marks it
                self.learners[name] = fresh
            elif len(self.learners) < self.max_challengers:
                k = self.spawned.get(learner.source, 0) + 1
                self.spawned[learner.source] = k
                new = f"{learner.source}~{k}"
                self.learners[new] = self._fresh(new, learner.source)
