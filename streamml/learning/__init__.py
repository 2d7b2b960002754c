"""Learning: Transform, Trainer, Evaluator and Pusher, TFX's training half made continuous.

One job per module:

* :mod:`~streamml.learning.transform`: user modules and declarative preprocessing
  (River pipelines that travel inside the artifact);
* :mod:`~streamml.learning.artifact`: serialize, checksum, verify and load artifacts;
* :mod:`~streamml.learning.join`: delayed labels joined by id with an event-time TTL;
* :mod:`~streamml.learning.trainer`: the online Trainer processor;
* :mod:`~streamml.learning.metrics`, :mod:`~streamml.learning.gate`,
  :mod:`~streamml.learning.drift`: metrics, the TFMA-style gate, drift → action;
* :mod:`~streamml.learning.evaluator`: the Evaluator processor;
* :mod:`~streamml.learning.pusher`: the Pusher processor (signed, chunked releases).

>>> from streamml.learning import GateConfig, MetricThreshold
>>> GateConfig(thresholds=[MetricThreshold(metric="roc_auc", lower=0.9)]).min_examples
1000
"""

from __future__ import annotations

from streamml.learning.artifact import ArtifactError, load_release_model
from streamml.learning.drift import DriftPolicy
from streamml.learning.evaluator import Evaluator
from streamml.learning.gate import GateConfig, MetricThreshold, judge
from streamml.learning.join import LabelJoin
from streamml.learning.pusher import Pusher
from streamml.learning.trainer import Trainer
from streamml.learning.transform import build_from_spec, load_module_file

__all__ = [
    "ArtifactError",
    "DriftPolicy",
    "Evaluator",
    "GateConfig",
    "LabelJoin",
    "MetricThreshold",
    "Pusher",
    "Trainer",
    "build_from_spec",
    "judge",
    "load_module_file",
    "load_release_model",
]
