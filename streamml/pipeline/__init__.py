"""Pipelines as code: components wired by topics, checked at build time, run anywhere.

* :mod:`~streamml.pipeline.graph`: :class:`Pipeline` (wiring checks, topological order);
* :mod:`~streamml.pipeline.components`: :class:`Step` (a processor),
  :class:`Connector` (a source and its ExampleGen) and their payload declarations;
* :mod:`~streamml.pipeline.replay`: :class:`ReplaySource`, a file replayed as a
  live stream, with :class:`Drift` injected on demand;
* :mod:`~streamml.pipeline.execute`: :class:`PipelineRun`, which hosts a pipeline in one
  process or, with ``processes=N``, over several (:mod:`~streamml.pipeline.processes`);
* :mod:`~streamml.pipeline.loader`: :func:`load_pipeline` (``module:attr`` or a file);
* :mod:`~streamml.pipeline.workers`: one component as a faust worker on Kafka;
* :mod:`~streamml.pipeline.status`: :func:`pipeline_status` (what ``streamml status`` shows).

>>> from streamml.pipeline import Pipeline, Connector
>>> Pipeline(name="taxi", components=[Connector("taxi-file", pipeline="taxi")]).topics
['taxi.deadletter', 'taxi.examples']
"""

from streamml.pipeline.components import Component, Connector, Step
from streamml.pipeline.execute import PipelineRun, RunProgress, reset_topics
from streamml.pipeline.graph import Pipeline
from streamml.pipeline.loader import load_pipeline
from streamml.pipeline.replay import Drift, ReplaySource

__all__ = [
    "Component",
    "Connector",
    "Drift",
    "Pipeline",
    "PipelineRun",
    "ReplaySource",
    "RunProgress",
    "Step",
    "load_pipeline",
    "reset_topics",
]
