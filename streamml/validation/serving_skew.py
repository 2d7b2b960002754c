"""Training/serving skew from the model server's logged predictions.

``streamml serve --log-predictions`` writes one
:class:`~streamml.payloads.predictions.Prediction` per served instance to
``<p>.predictions``. Those records are examples-shaped (``id``, ``event_time``,
``split="serving"``, ``features``), so no adapter is needed:

1. :class:`ServingStatisticsGen` (a StatisticsGen named
   ``serving_statistics_gen``) reads ``<p>.predictions`` and publishes
   ``serving``-split windows to ``<p>.statistics``, next to the training ones;
2. :class:`ServingSkewValidator` (an ExampleValidator named
   ``serving_skew_validator``) compares each final ``serving`` window with the
   training ``reference`` and raises ``SKEW`` alerts on ``<p>.anomalies``. It
   ignores the other splits' windows (the pipeline's own ExampleValidator
   handles those), and compares with the previous serving window only if asked.

:func:`training_reference` builds the reference from the train-split windows
already on ``<p>.statistics``; :func:`serving_skew_steps` wraps both processors
as pipeline steps (add ``<p>.predictions`` to the pipeline's ``external``).

>>> import numpy as np
>>> from streamml.processors.base import Message
>>> rng = np.random.default_rng(0)
>>> def msgs(topic, split, scale):
...     return [Message(topic, 0, i, i, str(i), {"split": split, "event_time": i,
...             "features": {"fare": float(v) * scale}})
...             for i, v in enumerate(rng.lognormal(2, 0.5, 600))]
>>> train = StatisticsGen("p.examples", "p.statistics", count_window=300, cumulative=False)
>>> ref = merge_windows([StatisticsWindow.model_validate(e.value)
...                      for e in train.process(msgs("p.examples", "train", 1.0))])
>>> gen = serving_statistics_gen("p", count_window=300)
>>> val = serving_skew_validator("p", ref)
>>> def skew(scale):
...     stats = [Message("p.statistics", 0, 0, 0, e.key, e.value)
...              for e in gen.process(msgs("p.predictions", "serving", scale))]
...     return sorted({(a.value["type"], a.value["feature"]) for a in val.process(stats)})
>>> skew(1.0), skew(3.0)
([], [('SKEW', 'fare')])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from streamml.errors import InvalidRecord
from streamml.log import Log
from streamml.log.read import read_values
from streamml.payloads.statistics import StatisticsWindow, Window
from streamml.processors.base import Emit, Message
from streamml.statistics.dataset import StatisticsAccumulator
from streamml.statistics.processor import StatisticsGen
from streamml.statistics.rawbatch import decoded
from streamml.validation.drift import DriftConfig
from streamml.validation.validator import ExampleValidator

if TYPE_CHECKING:
    from streamml.pipeline.components import Step

SERVING_SPLIT = "serving"


class ServingStatisticsGen(StatisticsGen):
    """StatisticsGen over ``<p>.predictions`` (its own name, so its checkpoints are its own)."""

    name = "serving_statistics_gen"


class ServingSkewValidator(ExampleValidator):
    """ExampleValidator that judges only ``serving_split`` statistics windows."""

    name = "serving_skew_validator"

    def process(self, batch: Sequence[Message]) -> Iterable[Emit]:
        keep = []
        for m in batch:
            if m.topic == self.statistics_topic:
                try:
                    m = decoded(m)  # once: the validator takes decoded windows as they are
                except InvalidRecord:
                    keep.append(m)  # the validator dead-letters it
                    continue
                if not (isinstance(m.value, dict) and m.value.get("split") == self.serving_split):
                    continue
            keep.append(m)
        return super().process(keep) if keep else []


def serving_statistics_gen(pipeline: str, *, count_window: int | None = 1000,
                           time_window_ms: int | None = None) -> ServingStatisticsGen:
    """Serving statistics: ``<p>.predictions`` → ``serving`` windows on ``<p>.statistics``."""
    return ServingStatisticsGen(f"{pipeline}.predictions", f"{pipeline}.statistics",
                                pipeline=pipeline, count_window=count_window,
                                time_window_ms=time_window_ms, cumulative=False)


def serving_skew_validator(pipeline: str, reference: StatisticsWindow, *,
                           compare_previous: bool = False,
                           drift: DriftConfig | None = None) -> ServingSkewValidator:
    """``SKEW`` alerts on ``<p>.anomalies`` for serving windows that differ from ``reference``."""
    return ServingSkewValidator(f"{pipeline}.predictions", f"{pipeline}.anomalies",
                                pipeline=pipeline, statistics_topic=f"{pipeline}.statistics",
                                reference=reference, compare_previous=compare_previous,
                                serving_split=SERVING_SPLIT, drift=drift)


def serving_skew_steps(pipeline: str, reference: StatisticsWindow, *,
                       count_window: int | None = 1000) -> list[Step]:
    """Both processors as :class:`~streamml.pipeline.components.Step` objects.

    ``<p>.predictions`` is written by the model server, outside the pipeline:
    declare it in the pipeline's ``external``.
    """
    from streamml.pipeline.components import Step

    pred = f"{pipeline}.predictions"
    return [Step(serving_statistics_gen(pipeline, count_window=count_window),
                 consumes={pred: "predictions"}),
            Step(serving_skew_validator(pipeline, reference), consumes={pred: "predictions"})]


def merge_windows(windows: Sequence[StatisticsWindow], *, split: str | None = None,
                  created_at: int = 0) -> StatisticsWindow:
    """One window (with sketches) merging ``windows``, e.g. training statistics as a reference.

    Every window must have been published with sketches (StatisticsGen's default).
    """
    if not windows:
        raise ValueError("no statistics windows to merge")
    acc = StatisticsAccumulator.from_window(windows[0])
    for w in windows[1:]:
        acc.merge(StatisticsAccumulator.from_window(w))
    return StatisticsWindow(pipeline=windows[0].pipeline, split=split or windows[0].split,
                            num_examples=acc.num_examples,
                            window=Window(id="reference", kind="cumulative"),
                            features=acc.extract(with_sketches=True), created_at=created_at)


def training_reference(log: Log, pipeline: str, *, split: str = "train",
                       kind: str = "count") -> StatisticsWindow:
    """Merge the final ``split`` windows of ``kind`` on ``<p>.statistics`` into a reference.

    ``ValueError`` if there is none (run StatisticsGen over the training examples first).
    """
    topic = f"{pipeline}.statistics"
    windows = [StatisticsWindow.model_validate(value) for value in read_values(log, topic)
               if isinstance(value, dict) and value.get("split") == split
               and value.get("final", True) and (value.get("window") or {}).get("kind") == kind]
    if not windows:
        raise ValueError(f"no final {split!r} {kind} windows on {topic}")
    return merge_windows(windows, split=split)
