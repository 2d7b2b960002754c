"""Two ``streamml worker`` processes on a real broker; one is killed with ``kill -9``.

The survivor takes over the dead worker's partitions. At the end every input
id appears in the outputs (deduplicated by key) and the per-partition counts in
the final checkpoints equal the inputs exactly: no loss, no double count.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import pytest

from streamml.log.base import TopicPartition, TopicSpec
from streamml.log.kafka import KafkaLog
from streamml.processors.base import Emit, Message, Processor, State
from streamml.runtime.checkpoint import CheckpointStore
from streamml.serde import decode, encode

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4
N = 3000
# the real ``streamml`` entry point
CLI = [sys.executable, "-m", "streamml.cli.main"]


class CountIds(Processor):
    """Counts inputs and sums their ids; emits one output per input keyed by its id."""

    name = "count_ids"

    def __init__(self, source: str, sink: str) -> None:
        self.source, self.sink = source, sink
        self.inputs, self.outputs = (source,), (sink,)
        self.count = 0
        self.id_sum = 0

    def process(self, batch: Sequence[Message]) -> Iterable[Emit]:
        out = []
        for msg in batch:
            self.count += 1
            self.id_sum += int(msg.value["id"])
            out.append(Emit(self.sink, {"id": msg.value["id"], "partition": msg.partition},
                            key=str(msg.value["id"])))
        return out

    def snapshot(self) -> State:
        return {"count": self.count, "id_sum": self.id_sum}

    def restore(self, state: State) -> None:
        assert isinstance(state, dict)
        self.count, self.id_sum = state["count"], state["id_sum"]


def make_counter() -> CountIds:
    """The ``module:callable`` the workers run; topics come from the environment."""
    pipeline = os.environ["RUNTIME_TEST_PIPELINE"]
    return CountIds(f"{pipeline}.input", f"{pipeline}.output")


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str,
          procs: Sequence[subprocess.Popen[bytes]] = ()) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        for proc in procs:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"worker exited early ({proc.returncode}) waiting for {what}: {err}")
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


def _assignment(workdir: Path) -> list[int]:
    try:
        status = json.loads((workdir / "assignment.json").read_text())
    except (OSError, ValueError):
        return []
    return sorted(p for _, p in status["partitions"])


def _spawn(kafka_url: str, pipeline: str, workdir: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMML_")}
    env["RUNTIME_TEST_PIPELINE"] = pipeline
    env["PYTHONPATH"] = str(ROOT)
    log = open(workdir.parent / f"{workdir.name}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [*CLI, "--broker", kafka_url, "worker",
         "tests.integration.test_faust_workers:make_counter", "--pipeline", pipeline,
         "--workdir", str(workdir), "--batch-size", "100", "--loglevel", "INFO"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def _read_all(log: KafkaLog, topic: str) -> list:  # type: ignore[type-arg]
    info = log.describe_topic(topic)
    tps = [TopicPartition(topic, p.partition) for p in info.partitions]
    out = []
    with log.consumer() as consumer:
        consumer.assign(tps)
        consumer.seek_to_beginning(tps)
        ends = consumer.end_offsets(tps)
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, "reading topic timed out"
            out += consumer.poll(timeout_s=0.5)
    return out


@pytest.fixture
def log(kafka_bootstrap: str) -> Iterator[KafkaLog]:
    with KafkaLog(kafka_bootstrap, {"client_id": "runtime-tests"}) as kafka_log:
        yield kafka_log


def test_two_workers_split_partitions_and_survive_kill_9(
    log: KafkaLog, kafka_url: str, tmp_path: Path
) -> None:
    pipeline = f"rt{uuid.uuid4().hex[:8]}"
    source, sink = f"{pipeline}.input", f"{pipeline}.output"
    log.create_topic(TopicSpec(source, partitions=PARTITIONS))
    log.create_topic(TopicSpec(sink, partitions=PARTITIONS))
    dirs = [tmp_path / "w1", tmp_path / "w2"]
    procs = [_spawn(kafka_url, pipeline, d) for d in dirs]
    try:
        # 1. the two workers split the four partitions
        _wait(lambda: sorted(_assignment(dirs[0]) + _assignment(dirs[1])) == [0, 1, 2, 3]
              and all(_assignment(d) for d in dirs), 120, "a split assignment", procs)

        # 2. produce in the background, kill -9 one worker mid-stream
        def produce() -> None:
            with log.producer() as producer:
                for i in range(N):
                    producer.send(source, encode({"id": i}), str(i).encode())
                    if i % 100 == 99:
                        producer.flush()
                        time.sleep(0.25)

        feeder = threading.Thread(target=produce)
        feeder.start()
        out_tps = [TopicPartition(sink, p) for p in range(PARTITIONS)]

        def outputs() -> int:
            with log.consumer() as c:
                return sum(c.end_offsets(out_tps).values())

        _wait(lambda: outputs() >= N // 4, 120, "first outputs", procs)
        assert feeder.is_alive(), "kill must happen mid-stream"
        os.kill(procs[0].pid, signal.SIGKILL)
        procs[0].wait(10)
        feeder.join(120)
        assert not feeder.is_alive()

        # 3. the survivor takes over everything; nothing lost, nothing counted twice
        _wait(lambda: _assignment(dirs[1]) == [0, 1, 2, 3], 120, "takeover", procs[1:])
        inputs = _read_all(log, source)
        assert len(inputs) == N
        want = Counter(r.partition for r in inputs)
        want_sum = Counter()
        for r in inputs:
            want_sum[r.partition] += decode(r.value)["id"]
        store = CheckpointStore(log, pipeline)

        def settled() -> bool:
            cps = store.load_all()
            got = {p: cps.get(f"count_ids/{p}") for p in range(PARTITIONS)}
            return all(cp is not None and cp.state["count"] >= want[p]  # type: ignore[index]
                       for p, cp in got.items())

        _wait(settled, 180, "checkpoints covering every input", procs[1:])
        cps = store.load_all()
        for p in range(PARTITIONS):
            cp = cps[f"count_ids/{p}"]
            assert cp.state == {"count": want[p], "id_sum": want_sum[p]}, (p, cp)
            ends = {r.partition: r.offset + 1 for r in inputs}
            assert cp.offsets == {source: {p: ends[p]}}
        ids = {decode(r.value)["id"] for r in _read_all(log, sink)}
        assert ids == set(range(N))

        # 4. SIGTERM stops the survivor cleanly
        procs[1].send_signal(signal.SIGTERM)
        assert procs[1].wait(60) is not None
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def test_worker_seeks_back_when_the_group_offset_is_past_the_checkpoint(
    log: KafkaLog, kafka_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The checkpoint, not the group offset, decides where a partition resumes."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    from kafka.structs import OffsetAndMetadata

    from streamml.runtime.checkpoint import Checkpoint

    pipeline = f"rt{uuid.uuid4().hex[:8]}"
    source, sink = f"{pipeline}.input", f"{pipeline}.output"
    log.create_topic(TopicSpec(source, partitions=1))
    log.create_topic(TopicSpec(sink, partitions=1))
    n = 200
    with log.producer() as producer:
        for i in range(n):
            producer.send(source, encode({"id": i}), str(i).encode())
    # state covers the first 50 records, but the group offset claims 150
    CheckpointStore(log, pipeline).write(Checkpoint(
        "count_ids", {source: {0: 50}}, {"count": 50, "id_sum": sum(range(50))}, partition=0))
    committer = KafkaConsumer(bootstrap_servers=kafka_bootstrap,
                              group_id=f"{pipeline}.count_ids", enable_auto_commit=False)
    committer.assign([KTP(source, 0)])
    committer.commit({KTP(source, 0): OffsetAndMetadata(150, "", -1)})
    committer.close()

    proc = _spawn(kafka_url, pipeline, tmp_path / "w")
    try:
        store = CheckpointStore(log, pipeline)

        def done() -> bool:
            cp = store.load_all().get("count_ids/0")
            return cp is not None and cp.offsets == {source: {0: n}}

        _wait(done, 120, "the checkpoint to reach the end", [proc])
        cp = store.load_all()["count_ids/0"]
        assert cp.state == {"count": n, "id_sum": sum(range(n))}
        ids = {decode(r.value)["id"] for r in _read_all(log, sink)}
        assert ids == set(range(50, n))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert "past its checkpoint 50; seeking back" in (tmp_path / "w.log").read_text()
