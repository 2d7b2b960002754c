"""``streamml replay``: determinism, isolation, auto source (archive then log), gaps (issue 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamml.cli import main as cli_main
from streamml.history.archive import ArchiveSink, row_bytes
from streamml.history.layout import HistoryGap
from streamml.history.replay import replay
from streamml.log.base import TopicPartition, TopicSpec
from streamml.log.embedded import EmbeddedLog
from streamml.log.embedded.maintenance import enforce_partition_retention
from tests.unit.test_history_archive import T0, archived_rows, fill, log_records

HOUR = 3_600_000


def cli(capsys: pytest.CaptureFixture[str], *args: str, broker: str) -> tuple[int, str, str]:
    """Run ``streamml --broker BROKER ARGS`` in-process."""
    capsys.readouterr()
    code = cli_main.main(["--broker", broker, *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def iso(ms: int) -> str:
    return str(ms)


def test_replay_twice_identical_and_live_untouched(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broker = f"embedded://{tmp_path / 'log'}"
    with EmbeddedLog(tmp_path / "log") as log:
        fill(log, "demo.examples", 600, step_ms=30_000)  # 5 hours
        with log.consumer("live-group") as c:  # a live consumer group with committed offsets
            tp = TopicPartition("demo.examples", 0)
            c.assign([tp])
            c.commit({tp: 17})
        before = log_records(log, "demo.examples")
        topics_before = set(log.list_topics())
    lo, hi = T0 + HOUR, T0 + 3 * HOUR + 5
    outs = []
    for ns in ("bfa", "bfb"):
        code, out, err = cli(capsys, "replay", "demo", "--from-time", iso(lo), "--to-time",
                             iso(hi), "--source", "kafka", "--namespace", ns,
                             "--dir", str(tmp_path / "hist"), broker=broker)
        assert code == 0, err
        assert out.strip() == ns
        assert "replayed 241 record(s) (241 from kafka)" in err
        outs.append(ns)
    with EmbeddedLog(tmp_path / "log") as log:
        a, b = (log_records(log, f"{ns}.examples") for ns in outs)
        assert a == b and len(a) == 241
        assert all(lo <= ts < hi for ts, _, _ in a.values())
        assert log_records(log, "demo.examples") == before
        assert set(log.list_topics()) - topics_before == {"bfa.examples", "bfb.examples"}
        with log.consumer("live-group") as c:
            assert c.committed(TopicPartition("demo.examples", 0)) == 17
    # the same namespace twice is refused: a replay never mixes with an earlier one
    code, _, err = cli(capsys, "replay", "demo", "--from-time", iso(lo), "--to-time", iso(hi),
                       "--source", "kafka", "--namespace", "bfa", broker=broker)
    assert code != 0 and "not empty" in err


RETENTION_MS = 400 * 24 * HOUR  # records of T0 are not expired by the log itself...


def expire(log: EmbeddedLog, topic: str) -> int:
    """...until this runs retention as if it were T0 + 401 days."""
    spec = log.load_spec(topic)
    return sum(enforce_partition_retention(log.partition_dir(topic, p), spec,
                                           now_ms=T0 + RETENTION_MS + 24 * HOUR)
               for p in range(spec.partitions))


def _retained_log(tmp_path: Path) -> EmbeddedLog:
    """A topic whose early segments can be expired by retention (many small segments)."""
    log = EmbeddedLog(tmp_path / "log")
    log.create_topic(TopicSpec("demo.examples", partitions=2, retention_ms=RETENTION_MS,
                               segment_bytes=1))
    for chunk in range(10):  # one flush per chunk: one segment per chunk and partition
        fill(log, "demo.examples", 30, partitions=2, start=chunk * 30, step_ms=60_000)
    return log


def test_auto_reads_the_archive_then_the_log(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "hist"
    with _retained_log(tmp_path) as log:
        ArchiveSink(log, root, ["demo.examples"], pipeline="demo").run()
        archived = {(r["partition"], r["offset"]): (r["timestamp"],
                                                    row_bytes(r["key"], r["key_bin"]),
                                                    row_bytes(r["value"], r["value_bin"]))
                    for r in archived_rows(root, "demo.examples")}
        assert expire(log, "demo.examples") > 0  # the log forgets the oldest
        starts = [p.start_offset for p in log.describe_topic("demo.examples").partitions]
        assert all(s > 0 for s in starts)
        fill(log, "demo.examples", 60, partitions=2, start=300, step_ms=60_000)  # not archived
        on_log = log_records(log, "demo.examples")
    everything = {**archived, **on_log}
    assert len(everything) == 360
    lo, hi = T0, T0 + 360 * 60_000
    for ns in ("auto1", "auto2"):
        code, out, err = cli(capsys, "replay", "demo", "--from-time", iso(lo), "--to-time",
                             iso(hi), "--namespace", ns, "--dir", str(root),
                             broker=f"embedded://{tmp_path / 'log'}")
        assert code == 0, err
        n_archive = sum(starts)
        assert f"{n_archive} from archive, {360 - n_archive} from kafka" in err
    with EmbeddedLog(tmp_path / "log") as log:
        one, two = log_records(log, "auto1.examples"), log_records(log, "auto2.examples")
    assert one == two == everything


def test_auto_names_the_gap_retention_left(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with _retained_log(tmp_path) as log:
        expire(log, "demo.examples")  # nothing was archived
        start = log.describe_topic("demo.examples").partitions[0].start_offset
        with pytest.raises(HistoryGap, match=rf"demo.examples\[0\]: offsets 0..{start - 1}"):
            replay(log, "demo", T0, T0 + 10 * HOUR, namespace="gap", root=tmp_path / "h")
        # a range entirely on the log is fine
        stats = replay(log, "demo", T0 + 290 * 60_000, T0 + 10 * HOUR, namespace="ok",
                       root=tmp_path / "h")
        assert stats.records == 10 and stats.by_source == {"kafka": 10}
    code, _, err = cli(capsys, "replay", "demo", "--from-time", iso(T0), "--to-time",
                       iso(T0 + HOUR), "--namespace", "gap2", "--dir", str(tmp_path / "h"),
                       broker=f"embedded://{tmp_path / 'log'}")
    assert code == 5 and "streamml: error: demo.examples[0]: offsets 0.." in err


PIPELINE_FILE = '''
from streamml.pipeline import Pipeline
from streamml.statistics.processor import StatisticsGen


def build_pipeline(settings, name="demo"):
    return Pipeline(name=name, external=[f"{name}.examples"], settings=settings, components=[
        StatisticsGen(f"{name}.examples", f"{name}.statistics", count_window=50,
                      cumulative=False, with_sketches=False)])
'''


def test_replay_then_run_processors_in_the_namespace(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("streamml.pipeline")
    (tmp_path / "pipe.py").write_text(PIPELINE_FILE)
    broker = f"embedded://{tmp_path / 'log'}"
    with EmbeddedLog(tmp_path / "log") as log:
        fill(log, "demo.examples", 200, step_ms=1000)
    for ns in ("run1", "run2"):
        code, _, err = cli(capsys, "replay", "demo", "--from-time", iso(T0), "--to-time",
                           iso(T0 + 200_000), "--source", "kafka", "--namespace", ns,
                           "--run", f"{tmp_path / 'pipe.py'}:build_pipeline", broker=broker)
        assert code == 0, err
        assert f"{ns}: " in err
    with EmbeddedLog(tmp_path / "log") as log:
        assert not log.topic_exists("demo.statistics")  # live untouched
        assert log.topic_exists("run1.checkpoints")  # the replay's own state
        stats = [{k: v for k, v in log_records(log, f"{ns}.statistics").items()}
                 for ns in ("run1", "run2")]
    assert stats[0] and len(stats[0]) == len(stats[1])
