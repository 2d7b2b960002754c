"""The embedded runner over the real EmbeddedLog: restore after kill -9, dead letters, idle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pytest

from streamml.errors import ConfigError, InvalidRecord
from streamml.log.base import TopicPartition, TopicSpec
from streamml.log.embedded import EmbeddedLog
from streamml.payloads.deadletter import DeadLetter
from streamml.processors.base import Emit, Message, Processor, State
from streamml.runtime.checkpoint import CheckpointStore
from streamml.runtime.runner import Runner
from streamml.serde import decode, encode

ROOT = Path(__file__).resolve().parents[2]


class CountIds(Processor):
    """Counts inputs and sums their ids; one output per input, keyed by its id."""

    name = "count_ids"

    def __init__(self, source: str, sink: str, slow_s: float = 0.0) -> None:
        self.source, self.sink, self.slow_s = source, sink, slow_s
        self.inputs, self.outputs = (source,), (sink,)
        self.count = 0
        self.id_sum = 0
        self.idle_calls = 0

    def process(self, batch: Sequence[Message]) -> Iterable[Emit]:
        if self.slow_s:
            time.sleep(self.slow_s)
        for msg in batch:
            self.count += 1
            self.id_sum += int(msg.value["id"])
        return [Emit(self.sink, {"id": m.value["id"]}, key=str(m.value["id"])) for m in batch]

    def on_idle(self, now_ms: int) -> Iterable[Emit]:
        self.idle_calls += 1
        return [Emit(self.sink, {"idle": self.count}, key="idle")] if self.idle_calls == 1 else []

    def snapshot(self) -> State:
        return {"count": self.count, "id_sum": self.id_sum}

    def restore(self, state: State) -> None:
        assert isinstance(state, dict)
        self.count, self.id_sum = state["count"], state["id_sum"]


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EmbeddedLog]:
    with EmbeddedLog(tmp_path / "log") as embedded:
        yield embedded


def _produce(log: EmbeddedLog, topic: str, values: Iterable[bytes], partitions: int = 3) -> None:
    if not log.topic_exists(topic):
        log.create_topic(TopicSpec(topic, partitions=partitions))
    with log.producer() as producer:
        for i, value in enumerate(values):
            producer.send(topic, value, str(i).encode())


def _read(log: EmbeddedLog, topic: str) -> list:  # type: ignore[type-arg]
    info = log.describe_topic(topic)
    tps = [TopicPartition(topic, p.partition) for p in info.partitions]
    out: list = []
    with log.consumer() as consumer:
        consumer.assign(tps)
        consumer.seek_to_beginning(tps)
        while batch := consumer.poll(0.1):
            out += batch
    return out


def test_chained_processors_run_until_idle_and_resume(log: EmbeddedLog) -> None:
    _produce(log, "p.raw", [encode({"id": i}) for i in range(50)])
    first = CountIds("p.raw", "p.mid")
    second = CountIds("p.mid", "p.out")
    second.name = "count_mid"  # type: ignore[misc]
    with Runner(log, [first, second], "p", checkpoint_every_records=7) as runner:
        runner.run_until_idle(idle_s=0.2, timeout_s=60)
        stats = {s.name: s for s in runner.stats()}
    assert stats["count_ids"].records_in == 50 and stats["count_ids"].lag == 0
    assert stats["count_mid"].records_in >= 50  # plus the on_idle output
    assert stats["count_ids"].checkpoints > 1
    # a new runner resumes from the checkpoints: nothing is processed twice
    _produce(log, "p.raw", [encode({"id": i}) for i in range(50, 60)])
    a, b = CountIds("p.raw", "p.mid"), CountIds("p.mid", "p.out")
    b.name = "count_mid"  # type: ignore[misc]
    with Runner(log, [a, b], "p") as runner:
        runner.run_until_idle(idle_s=0.2, timeout_s=60)
    assert (a.count, a.id_sum) == (60, sum(range(60)))
    ids = {decode(r.value).get("id") for r in _read(log, "p.out")}
    assert set(range(60)) <= ids
    group = log.committed_offsets("p.count_ids")
    assert sum(group.values()) == 60  # group offsets committed for lag display


def test_malformed_input_goes_to_dead_letter(log: EmbeddedLog) -> None:
    values = [encode({"id": 1}), b"{not json", encode({"id": 2}), b"\xff\xfe", encode({"id": 3})]
    _produce(log, "p.raw", values, partitions=1)
    proc = CountIds("p.raw", "p.out")
    with Runner(log, [proc], "p") as runner:
        runner.run_until_idle(idle_s=0.1, timeout_s=30)
        [stats] = runner.stats()
    assert stats.records_in == 5 == proc.count + stats.dead_letters
    assert stats.dead_letters == 2
    dead = [DeadLetter.model_validate(decode(r.value)) for r in _read(log, "p.deadletter")]
    assert [d.position for d in dead] == [{"partition": 0, "offset": 1},
                                          {"partition": 0, "offset": 3}]
    assert dead[0].topic == "p.raw" and "not valid JSON" in dead[0].detail
    assert dead[0].reason == "invalid_json" and dead[0].component == "count_ids"
    assert dead[1].original_bytes() == b"\xff\xfe"
    assert [r.key for r in _read(log, "p.deadletter")] == [b"p.raw:0:1", b"p.raw:0:3"]


def test_dead_letter_off_raises(log: EmbeddedLog) -> None:
    _produce(log, "p.raw", [b"nope"], partitions=1)
    runner = Runner(log, [CountIds("p.raw", "p.out")], "p", dead_letter=False)
    with pytest.raises(InvalidRecord, match=r"p.raw\[0\]@0"):
        runner.step()
    runner.close()
    assert CheckpointStore(log, "p").load("count_ids") is None  # no checkpoint after failure


def test_dead_letter_off_raises_for_raw_values_processors(log: EmbeddedLog) -> None:
    from streamml.statistics.processor import StatisticsGen

    _produce(log, "p.examples", [b"{not json"], partitions=1)
    gen = StatisticsGen("p.examples", "p.statistics", count_window=3, cumulative=False)
    runner = Runner(log, [gen], "p", dead_letter=False)
    with pytest.raises(InvalidRecord, match=r"p.examples:0:0: not valid JSON"):
        runner.run_until_idle(idle_s=0.1, timeout_s=30)
    runner.close(checkpoint=False)
    # raised, not dead-lettered
    assert not log.topic_exists("p.deadletter") or log.describe_topic("p.deadletter").records == 0


def test_duplicate_names_are_a_config_error(log: EmbeddedLog) -> None:
    with pytest.raises(ConfigError, match="unique"):
        Runner(log, [CountIds("a", "b"), CountIds("c", "d")], "p")


def test_run_stops_on_event_with_a_final_checkpoint(log: EmbeddedLog) -> None:
    _produce(log, "p.raw", [encode({"id": i}) for i in range(20)])
    proc = CountIds("p.raw", "p.out")
    runner = Runner(log, [proc], "p", checkpoint_every_records=10_000,
                    checkpoint_every_s=3600, idle_after_s=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 30
    while proc.count < 20 or proc.idle_calls == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stop.set()
    thread.join(30)
    assert not thread.is_alive()
    cp = CheckpointStore(log, "p").load("count_ids")
    assert cp is not None and cp.state == {"count": 20, "id_sum": sum(range(20))}
    assert sum(cp.offsets["p.raw"].values()) == 20


CHILD = """
import sys
from streamml.log.embedded import EmbeddedLog
from streamml.runtime.runner import Runner
from tests.unit.test_runtime_runner import CountIds
log = EmbeddedLog(sys.argv[1])
runner = Runner(log, [CountIds("p.raw", "p.out", slow_s=0.01)], "p",
                checkpoint_every_records=37, checkpoint_every_s=0.2, batch_size=25)
print("started", flush=True)
runner.run()
"""


def _spawn(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def _close(child: subprocess.Popen[str]) -> None:
    for stream in (child.stdout, child.stderr):
        if stream is not None:
            stream.close()


def _outputs(log: EmbeddedLog) -> int:
    if not log.topic_exists("p.out"):
        return 0
    return log.describe_topic("p.out").records


@pytest.mark.slow
def test_kill_9_mid_stream_then_restart_counts_every_input_exactly_once(
    log: EmbeddedLog, tmp_path: Path
) -> None:
    n = 2000
    _produce(log, "p.raw", [encode({"id": i}) for i in range(n)])
    for _ in range(2):  # two crashes in a row
        child = _spawn(tmp_path / "log")
        try:
            deadline = time.monotonic() + 60
            start = _outputs(log)
            while _outputs(log) < start + 300:
                assert child.poll() is None, child.stderr.read()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "runner made no progress"
                time.sleep(0.02)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait(10)
            _close(child)
    cp = CheckpointStore(log, "p").load("count_ids")
    assert cp is not None and cp.state["count"] < n  # type: ignore[index]
    # restart, in process this time, and drain
    proc = CountIds("p.raw", "p.out")
    with Runner(log, [proc], "p") as runner:
        runner.run_until_idle(idle_s=0.2, timeout_s=120)
    assert (proc.count, proc.id_sum) == (n, sum(range(n)))  # state: exactly once
    outputs = [decode(r.value) for r in _read(log, "p.out")]
    ids = [o["id"] for o in outputs if "id" in o]
    assert set(ids) == set(range(n))  # outputs: at least once
    assert len(ids) >= n


@pytest.mark.slow
def test_sigterm_writes_a_final_checkpoint(log: EmbeddedLog, tmp_path: Path) -> None:
    _produce(log, "p.raw", [encode({"id": i}) for i in range(300)])
    child = _spawn(tmp_path / "log")
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 60
        while _outputs(log) < 300:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child.send_signal(signal.SIGTERM)
        assert child.wait(30) == 0, child.stderr.read()  # type: ignore[union-attr]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        _close(child)
    cp = CheckpointStore(log, "p").load("count_ids")
    assert cp is not None and cp.state == {"count": 300, "id_sum": sum(range(300))}


def test_raw_values_processors_get_bytes_and_dead_letter_bad_records(log: EmbeddedLog) -> None:
    from streamml.statistics.processor import StatisticsGen
    from streamml.validation.validator import ExampleValidator

    good = [encode({"id": f"e{i}", "split": "train", "event_time": i,
                    "features": {"fare": 1.5 * i, "n": i}}) for i in range(6)]
    values = [*good[:2], b"{not json", *good[2:4], b"\xff\xfe", *good[4:]]
    _produce(log, "p.examples", values, partitions=1)
    gen = StatisticsGen("p.examples", "p.statistics", count_window=3, cumulative=False)
    val = ExampleValidator("p.examples", "p.anomalies")
    assert gen.raw_values and val.raw_values and not CountIds.raw_values
    with Runner(log, [gen, val], "p") as runner:
        runner.run_until_idle(idle_s=0.1, timeout_s=30)
        stats = {s.name: s for s in runner.stats()}
    assert stats["statistics_gen"].records_in == 8 and stats["statistics_gen"].dead_letters == 2
    assert val.passed == 6 and stats["example_validator"].dead_letters == 2
    windows = [decode(r.value) for r in _read(log, "p.statistics")]
    assert [w["num_examples"] for w in windows] == [3, 3]
    assert windows[1]["features"]["n"]["numeric"]["mean"] == 4.0
    dead = [DeadLetter.model_validate(decode(r.value)) for r in _read(log, "p.deadletter")]
    assert sorted((d.component, d.position["offset"]) for d in dead) == [
        ("example_validator", 2), ("example_validator", 5),
        ("statistics_gen", 2), ("statistics_gen", 5)]
    assert all(d.reason == "invalid_json" and "not valid JSON" in d.detail for d in dead)


class RawOffsets(Processor):
    """A raw_values processor that records what it was handed."""

    raw_values = True

    def __init__(self, name: str, source: str) -> None:
        self.name, self.inputs, self.outputs = name, (source,), ()
        self.seen: list[tuple[int, int]] = []
        self.messages: list[Message] = []

    def process(self, batch: Sequence[Message]) -> Iterable[Emit]:
        assert all(isinstance(m.value, bytes) for m in batch)
        self.seen += [(m.partition, m.offset) for m in batch]
        self.messages += batch
        return []

    def snapshot(self) -> State:
        return {"seen": len(self.seen)}

    def restore(self, state: State) -> None:
        pass


def test_raw_values_processors_share_the_messages_of_equal_polls(log: EmbeddedLog) -> None:
    """Two raw processors polling the same records get the same Message objects (decoded
    once), each in its own list; every record reaches each exactly once, positions right."""
    _produce(log, "p.in", [encode({"id": i}) for i in range(40)], partitions=3)
    a, b = RawOffsets("a", "p.in"), RawOffsets("b", "p.in")
    with Runner(log, [a, b], "p", batch_size=7) as runner:
        runner.run_until_idle(idle_s=0.1, timeout_s=30)
        positions = [dict(t.positions) for t in runner._tasks]
    everything = sorted((r.partition, r.offset) for r in _read(log, "p.in"))
    assert sorted(a.seen) == sorted(b.seen) == everything
    assert all(x is y for x, y in zip(a.messages, b.messages, strict=True))
    ends = {TopicPartition("p.in", p): max(o for q, o in everything if q == p) + 1
            for p, _ in everything}
    assert positions == [ends, ends]
    runner = Runner(log, [RawOffsets("c", "p.in")], "q")
    first = runner._raw_messages(_read(log, "p.in")[:5])
    again = runner._raw_messages(_read(log, "p.in")[:5])
    other = runner._raw_messages(_read(log, "p.in")[1:6])
    assert first is not again and all(x is y for x, y in zip(first, again, strict=True))
    assert not any(x is y for x, y in zip(again[1:], other, strict=False))
