"""``pipeline_status``: component state and lag from checkpoints of both hosts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamml.log.base import TopicSpec
from streamml.log.embedded import EmbeddedLog
from streamml.pipeline.status import pipeline_status
from streamml.runtime.checkpoint import Checkpoint, CheckpointStore


def _log_with_input(root: Path, ends: list[int]) -> EmbeddedLog:
    log = EmbeddedLog(str(root))
    log.create_topic(TopicSpec("p.examples", partitions=len(ends)))
    with log.producer() as producer:
        for partition, n in enumerate(ends):
            for _ in range(n):
                producer.send("p.examples", b"{}", None, partition=partition)
    return log


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), min_size=3, max_size=3))
def test_lag_merges_per_partition_checkpoints(tmp_path_factory: pytest.TempPathFactory,
                                              parts: list[tuple[int, int]]) -> None:
    """A faust worker checkpoints each input partition on its own: lag sums them all."""
    ends = [a + b for a, b in parts]
    done = [a for a, _ in parts]
    log = _log_with_input(tmp_path_factory.mktemp("log"), ends)
    try:
        store = CheckpointStore(log, "p")
        for partition, offset in enumerate(done):
            store.write(Checkpoint("trainer", {"p.examples": {partition: offset}}, {},
                                   partition=partition))
        store.write(Checkpoint("statistics_gen", {"p.examples": dict(enumerate(ends))}, {}))
        status = pipeline_status(log, "p", ["trainer", "statistics_gen", "pusher"])
        by_name = {c.name: c for c in status.components}
        assert by_name["trainer"].lag == sum(ends) - sum(done)
        assert by_name["trainer"].state == "running"
        assert by_name["statistics_gen"].lag == 0
        assert by_name["pusher"].state == "not started" and by_name["pusher"].lag is None
    finally:
        log.close()


def test_newest_checkpoint_wins_and_old_ones_are_idle(tmp_path: Path) -> None:
    log = _log_with_input(tmp_path / "log", [10, 10])
    try:
        store = CheckpointStore(log, "p")
        old = int(time.time() * 1000) - 60_000
        store.write(Checkpoint("trainer", {"p.examples": {0: 2, 1: 3}}, {}, created_ms=old))
        store.write(Checkpoint("validator", {"p.examples": {0: 9, 1: 10}}, {}, created_ms=old))
        store.write(Checkpoint("trainer", {"p.examples": {0: 10, 1: 7}}, {}))
        by_name = {c.name: c for c in pipeline_status(log, "p").components}
        assert (by_name["trainer"].state, by_name["trainer"].lag) == ("running", 3)
        assert (by_name["validator"].state, by_name["validator"].lag) == ("idle", 1)
    finally:
        log.close()
