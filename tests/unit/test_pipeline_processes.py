"""One pipeline over several OS processes (``PipelineRun(processes=N)``, ``run --processes``).

The multi-process runs are compared with the one-process run over the same
input: statistics windows, schemas and anomalies must be equal; the learning
outputs may differ by interleaving, so invariants are asserted for them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from streamml import serde
from streamml.errors import ConfigError
from streamml.log.base import Log
from streamml.log.embedded import EmbeddedLog
from streamml.log.read import read_to_end
from streamml.pipeline import Pipeline, PipelineRun, RunProgress, load_pipeline, reset_topics
from streamml.pipeline.processes import PipelineProcessError, split_components
from streamml.pipeline.status import pipeline_status
from streamml.settings import load_settings
from streamml.statistics.processor import StatisticsGen
from tests.cli_helpers import ROOT, assert_one_line_error, cli_env, run_cli
from tests.pipeline_helpers import (
    ROWS,
    TAXI,
    inputs_consumed,
    records,
    run_to_end,
    stamped,
    taxi,
    windows,
)


def test_split_is_deterministic_and_keeps_families_together(tmp_path: Path) -> None:
    p = taxi(tmp_path / "log")
    two = split_components(p, 2)
    assert two == split_components(p, 2)
    assert two == [["ingest/taxi", "statistics_gen", "schema_gen", "example_validator",
                    "lineage_recorder", "lineage"], ["trainer", "evaluator", "pusher"]]
    for n in (1, 2, 3, 5):
        split = split_components(p, n)
        names = [name for group in split for name in group]
        assert sorted(names) == sorted(c.name for c in p.components)  # each exactly once
        assert {"ingest/taxi", "statistics_gen", "example_validator"} <= set(split[0])
        assert len(split) <= min(n, 3)
    assert split_components(p, 2, exclude=["lineage", "lineage_recorder"])[1] == [
        "trainer", "evaluator", "pusher"]
    assert split_components(p, 2, groups=[["pusher", "trainer"]])[1] == ["trainer", "pusher"]
    with pytest.raises(ConfigError, match="connector"):
        split_components(p, 2, groups=[["ingest/taxi"]])
    with pytest.raises(ConfigError, match="more than one process"):
        split_components(p, 2, groups=[["trainer"], ["trainer"]])
    with pytest.raises(ConfigError, match="has no component 'nope'"):
        split_components(p, 2, groups=[["nope"]])


def test_a_pipeline_built_in_code_needs_an_origin(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("x\n1\n")
    from streamml.pipeline import ReplaySource

    p = Pipeline(name="p", components=[ReplaySource("t", str(csv)),
                                       StatisticsGen("p.examples", "p.statistics")],
                 settings={"broker": f"embedded://{tmp_path}/log"})
    log = EmbeddedLog(str(tmp_path / "log"))
    try:
        with pytest.raises(ConfigError, match="load_pipeline"):
            PipelineRun(p, log, groups=[["statistics_gen"]])
        # nothing to give a second process (the data family stays with the connector)
        assert PipelineRun(p, log, processes=2).children is None
    finally:
        log.close()


def test_auto_takes_two_usable_cpus_and_needs_an_origin(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import streamml.pipeline.processes as processes

    log = EmbeddedLog(str(tmp_path / "log"))
    try:
        for cpus, expected in ((1, 1), (2, 2), (8, 2)):
            monkeypatch.setattr(processes, "usable_cpus", lambda n=cpus: n)
            assert processes.resolve_processes("auto") == expected
            run = PipelineRun(taxi(tmp_path / "log"), log, processes="auto")
            assert len(run.split) == expected
            built_in_code = taxi(tmp_path / "log")
            built_in_code.origin = None  # children could not rebuild it: one process
            assert len(PipelineRun(built_in_code, log, processes="auto").split) == 1
        assert load_settings(config_file=None).processes == "auto"  # the CLI default
    finally:
        log.close()


def test_two_processes_match_the_one_process_run(tmp_path: Path) -> None:
    single_log, multi_log = EmbeddedLog(str(tmp_path / "one")), EmbeddedLog(str(tmp_path / "two"))
    try:
        p1, p2 = taxi(tmp_path / "one"), taxi(tmp_path / "two")
        # count-based checkpoints only: a StatisticsGen snapshot taken at a wall-clock
        # dependent point changes its sketches' float details (even in one process)
        one = run_to_end(p1, single_log, checkpoint_every_s=3600)
        two = run_to_end(p2, multi_log, processes=2, checkpoint_every_s=3600)
        assert two.ingested == one.ingested == ROWS
        for progress, p, log in ((one, p1, single_log), (two, p2, multi_log)):
            inputs_consumed(progress, p, log)
        # the data side: exactly the one-process outputs
        w1, w2 = windows(single_log, "t"), windows(multi_log, "t")
        assert len(w1) >= 6 and w1 == w2  # per split: ~2/3 train, ~1/3 eval
        for topic in ("t.schema", "t.anomalies"):
            assert stamped(records(single_log, topic)) == stamped(records(multi_log, topic))
        assert any(v.get("type") for _, v in records(multi_log, "t.anomalies"))
        # the learning side: invariants (interleaving may change which models win)
        for log in (single_log, multi_log):
            candidates = {k for k, v in records(log, "t.candidates") if v is not None}
            evaluated = {v["candidate_id"] for _, v in records(log, "t.evaluations")}
            assert candidates and evaluated == candidates
            view = pipeline_status(log, "t").view
            assert [m["version"] for m in view.models] == list(range(1, len(view.models) + 1))
            assert {m["candidate_id"] for m in view.models} <= {
                e["candidate_id"] for e in view.blessed}
    finally:
        single_log.close()
        multi_log.close()


FAILING = '''
from streamml.pipeline import Pipeline, ReplaySource
from streamml.processors.base import Processor
from streamml.statistics.processor import StatisticsGen

class Boom(Processor):
    name = "boom"
    inputs = ("b.examples",)
    outputs = ()

    def process(self, batch):
        raise RuntimeError("boom at offset %d" % batch[0].offset)

    def snapshot(self):
        return {}

    def restore(self, state):
        pass

def build_pipeline(settings, name="b"):
    return Pipeline(name="b", settings=settings, components=[
        ReplaySource("t", CSV), StatisticsGen("b.examples", "b.statistics", pipeline="b"),
        Boom()])
'''


def failing_pipeline(tmp_path: Path) -> Path:
    csv = tmp_path / "t.csv"
    csv.write_text("x\n" + "".join(f"{i}\n" for i in range(50)))
    path = tmp_path / "failing.py"
    path.write_text(f"CSV = {str(csv)!r}\n" + textwrap.dedent(FAILING))
    return path


def test_a_failing_child_is_one_clear_error(tmp_path: Path) -> None:
    path = failing_pipeline(tmp_path)
    settings = load_settings(config_file=None, broker=f"embedded://{tmp_path}/log")
    p = load_pipeline(str(path), settings)
    log = EmbeddedLog(str(tmp_path / "log"))
    try:
        run = PipelineRun(p, log, groups=[["boom"]])
        assert run.split == [["ingest/t", "statistics_gen"], ["boom"]]
        with pytest.raises(PipelineProcessError,
                           match=r"process 1 \(boom\) failed: RuntimeError: boom at offset 0"):
            with run:
                run.run_until_done(idle_s=0.8)
        # the parent still checkpointed its own processors on the way out
        states = {c.name: c for c in pipeline_status(log, "b").components}
        assert states["statistics_gen"].lag == 0
    finally:
        log.close()
    proc = run_cli("run", str(path), "--group", "boom", broker=f"embedded://{tmp_path}/log2")
    assert_one_line_error(proc, "process 1 (boom) failed: RuntimeError: boom")


def assert_each_example_counted_once(log: Log, ws: dict[tuple[Any, ...], Any]) -> None:
    """Count windows of a split take its examples partition by partition in offset order:
    per partition, consecutive windows hold adjacent runs of that split's examples,
    from the first on, and each run adds up to the window's ``num_examples``: no
    example lost or counted twice, however the partitions interleaved."""
    offsets: dict[tuple[str, int], list[int]] = {}
    for r in read_to_end(log, "t.examples"):
        split = serde.decode(r.value)["split"]
        offsets.setdefault((split, r.partition), []).append(r.offset)
    for split in ("train", "eval"):
        count_windows = sorted((w["window"]["index"], w) for (s, kind, _), w in ws.items()
                               if s == split and kind == "count")
        assert [i for i, _ in count_windows] == list(range(len(count_windows)))
        taken = {p: 0 for (s, p) in offsets if s == split}  # next unread index per partition
        for _, w in count_windows:
            n = 0
            for rng in w["inputs"]:
                run = [o for o in offsets[(split, rng["partition"])]
                       if rng["start"] <= o < rng["end"]]
                first = offsets[(split, rng["partition"])].index(run[0]) if run else None
                assert first in (None, taken[rng["partition"]]), (split, w["window"], rng)
                taken[rng["partition"]] += len(run)
                n += len(run)
            assert n == w["num_examples"], (split, w["window"])


@pytest.mark.parametrize(("groups", "victim"), [
    ((), "trainer"),  # the default split: the learning chain's process
    ([["statistics_gen"]], "statistics_gen"),
])
def test_kill9_of_a_child_then_rerun_resumes_without_loss_or_double_counting(
        tmp_path: Path, groups: list[list[str]], victim: str) -> None:
    from streamml.examples import taxi_module
    from streamml.runtime.checkpoint import CheckpointStore, checkpoint_key

    reference_log = EmbeddedLog(str(tmp_path / "ref"))
    log = EmbeddedLog(str(tmp_path / "log"))
    try:
        run_to_end(taxi(tmp_path / "ref"), reference_log)
        expected = windows(reference_log, "t")
        p = taxi(tmp_path / "log", rate=2000.0)
        run = PipelineRun(p, log, processes=2, groups=groups, checkpoint_every_records=1000)
        assert victim in run.split[1]
        killed: list[int] = []

        def kill_midway(progress: RunProgress) -> None:
            seen = {s.name: s.records_in for s in progress.processors}
            if not killed and seen.get(victim, 0) >= 1500:
                child = run.children.children[0].process  # type: ignore[union-attr]
                os.kill(child.pid, signal.SIGKILL)
                killed.append(seen[victim])

        with pytest.raises(PipelineProcessError,
                           match=rf"process 1 \(.*{victim}.*\) was killed by signal 9"):
            with run:
                run.run_until_done(idle_s=0.8, on_progress=kill_midway, every_s=0.02)
        assert killed and killed[0] < ROWS
        assert len(windows(log, "t")) < len(expected)
        # rerun: every processor resumes from its own checkpoint
        p = taxi(tmp_path / "log", rate=2000.0)
        progress = run_to_end(p, log, processes=2, groups=groups)
        assert progress.done and progress.ingested < ROWS  # the rest, not all again
        after = windows(log, "t", last_wins=True)
        assert sorted(after) == sorted(expected)
        assert_each_example_counted_once(log, after)
        assert_each_example_counted_once(reference_log, expected)
        # (which examples a window holds depends on how the rate-limited batches
        # interleaved the partitions; the same input interleaved alike gives the same
        # windows: test_two_processes_match_the_one_process_run)
        # the killed Trainer learned every labelled train example exactly once
        train = [v for _, v in records(log, "t.examples")
                 if v.get("split") == "train" and taxi_module.label(v) is not None]
        cp = CheckpointStore(log, "t", hmac_key=None).load_all()[checkpoint_key("trainer")]
        trainer = p.component("trainer").processor  # type: ignore[attr-defined]
        trainer.restore(cp.state)
        assert {n: lr.examples_seen for n, lr in trainer.learners.items()} == {
            "logreg": len(train), "logreg_buckets": len(train)}
        candidates = {k for k, v in records(log, "t.candidates") if v is not None}
        assert {v["candidate_id"] for _, v in records(log, "t.evaluations")} == candidates
    finally:
        reference_log.close()
        log.close()


def test_sigterm_stops_every_process_with_final_checkpoints(tmp_path: Path) -> None:
    broker = f"embedded://{tmp_path / 'log'}"
    env = cli_env(STREAMML_SIGNING_KEY="k", STREAMML_HISTORY_DIR=str(tmp_path / "history"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamml.cli.main", "--broker", broker, "run", TAXI,
         "--processes", "2", "-o", "rate=1000", "-o", "window=500", "-p", "s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        assert proc.stdout is not None
        lines = []
        while "process 1:" not in "".join(lines) and len(lines) < 20:
            lines.append(proc.stdout.readline())
        assert "process 1: trainer, evaluator, pusher" in " ".join(lines), lines
        log = EmbeddedLog(str(tmp_path / "log"))
        try:
            deadline = time.monotonic() + 120
            while (not log.topic_exists("s.examples")
                   or log.describe_topic("s.examples").records < 3000):
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
            signalled_ms = int(time.time() * 1000)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            states = {c.name: c for c in pipeline_status(log, "s", hmac_key=None).components}
            for name in ("statistics_gen", "trainer", "evaluator", "pusher"):
                assert states[name].state == "running", states  # checkpointed just now
                # a final checkpoint, written after the signal (not a periodic one before it)
                last = states[name].last_checkpoint_ms
                assert last is not None and last >= signalled_ms, (name, last, signalled_ms)
            examples = log.describe_topic("s.examples").records
            assert 3000 <= examples < 15_002
        finally:
            log.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_processes_option_user_errors(tmp_path: Path) -> None:
    broker = f"embedded://{tmp_path / 'log'}"
    drift = str(ROOT / "examples" / "drift_pipeline.py")
    assert_one_line_error(run_cli("run", drift, "--processes", "0", broker=broker),
                          "processes must be at least 1")
    assert_one_line_error(run_cli("demo", "--processes", "many", broker=broker),
                          "processes must be a positive number or 'auto'")


def test_a_short_run_in_two_processes_consumes_everything(tmp_path: Path) -> None:
    # (reset_topics after building a multi-process PipelineRun, as `run --reset` does)
    p = taxi(tmp_path / "log", rows=600)
    log = EmbeddedLog(str(tmp_path / "log"))
    try:
        run = PipelineRun(p, log, processes=2)
        reset_topics(log, p)
        with run:
            progress = run.run_until_done(idle_s=0.8)
        assert progress.ingested == 600 and progress.done
        inputs_consumed(progress, p, log)
    finally:
        log.close()
