"""Hosts that drive processors over a log.

* :class:`~streamml.runtime.runner.Runner`: every processor of a pipeline in
  one process, over the embedded log or Kafka (the default host).
* :mod:`streamml.runtime.faust_host`: one processor as a faust-streaming
  worker group on Kafka, with per-partition state.

Both commit in the same order: flush outputs, then write the checkpoint
(state and next input offsets in one record, :mod:`.checkpoint`), then commit
group offsets, so a restart resumes with state and offsets that agree.
"""

from streamml.runtime.checkpoint import Checkpoint, CheckpointStore
from streamml.runtime.runner import ProcessorStats, Runner

__all__ = ["Checkpoint", "CheckpointStore", "ProcessorStats", "Runner"]
