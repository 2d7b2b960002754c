"""Lineage: ``<pipeline>.metadata`` events materialized in DuckDB, and the questions they answer.

**Events components should emit** (:class:`~streamml.payloads.metadata.MetadataEvent`,
key = ``id``, deterministic). Artifact ids are ``<pipeline>/<type>/<name>@<version>``
by convention; what matters is that producers and consumers use the same id.

=============================  ===================================================================
What                           Event
=============================  ===================================================================
schema version                 ``kind="artifact"``, ``artifact.type="schema"``, ``artifact.version``
statistics window              ``kind="artifact"``, ``type="statistics"``, ``event_time`` = window
training run                   ``kind="execution"``, ``component="Trainer"``, ``execution_id``,
                               ``inputs`` = example offset ranges, ``event_time`` = their event
                               times, ``input_artifacts`` = [schema id, previous candidate id...],
                               ``output_artifacts`` = [candidate id]
candidate                      ``kind="artifact"``, ``type="candidate"``, ``artifact.key`` = model
                               name, ``artifact.version``, ``execution_id`` of the training run
evaluation / gate decision     ``kind="artifact"``, ``type="evaluation"``, ``input_artifacts`` =
                               [candidate id, baseline id], ``properties.blessed`` (bool),
                               ``properties.metrics``, ``properties.reasons``
pushed model                   ``kind="artifact"``, ``type="model"``, ``artifact.key`` = model
                               name, ``artifact.version``, ``input_artifacts`` = [candidate id,
                               evaluation id]
drift alert raised / resolved  ``kind="artifact"``, ``type="alert"``, same ``artifact.id`` for
                               both; ``properties.status`` = ``"open"`` / ``"resolved"``;
                               ``event_time.start_ms`` = event time it starts/ends (else ``time``)
server loaded a model          ``kind="deployment"``, ``host``, ``input_artifacts`` = [model id]
                               (or ``artifact`` = the model), ``properties.action`` = ``"loaded"``
lineage expired                ``kind="expired"``, ``properties.before_ms``: events with ``time``
                               < ``before_ms`` are deleted (``streamml lineage --expire-before``)
=============================  ===================================================================

Who writes them: :class:`~streamml.history.recorder.LineageRecorder` derives the
artifact and execution events from the artifact topics; the model server emits
deployments (:mod:`streamml.history.deployments`); the Evaluator its drift actions.

This module gathers the lineage API; the code lives in

* :mod:`~streamml.history.lineage_store`: :class:`LineageStore`, the DuckDB store
  (``<history dir>/lineage.duckdb``; tables, views, upserts, sync, expiry);
* :mod:`~streamml.history.lineage_query`: the questions (:func:`lineage_answer`);
* :mod:`~streamml.history.materializer`: :class:`LineageMaterializer`, the processor
  that keeps the store up to date inside a pipeline.

>>> import tempfile
>>> from pathlib import Path
>>> from streamml.payloads.metadata import ArtifactInfo, MetadataEvent
>>> store = LineageStore(Path(tempfile.mkdtemp()) / "lineage.duckdb")
>>> model = ArtifactInfo(id="p/model/m@1", type="model", key="m", version=1)
>>> store.apply([MetadataEvent(id="e1", pipeline="p", kind="artifact", component="Pusher",
...                            artifact=model, time=5)])
1
>>> store.lineage("m")["model"]["id"]
'p/model/m@1'
>>> store.close()
"""

from __future__ import annotations

from streamml.history.lineage_query import lineage_answer, merge_ranges, parse_model_ref
from streamml.history.lineage_store import (
    LineageStore,
    decode_event,
    execution_of,
    try_decode,
)
from streamml.history.materializer import LineageMaterializer

__all__ = [
    "LineageMaterializer",
    "LineageStore",
    "decode_event",
    "execution_of",
    "lineage_answer",
    "merge_ranges",
    "parse_model_ref",
    "try_decode",
]
