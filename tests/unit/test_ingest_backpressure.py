"""Backpressure: memory stays flat when the source is faster than the log; the rate limit.

The memory test ingests a generated CSV file (a fast source) into a log whose
producer sleeps in every flush (a slow log), in a subprocess, and samples the
process's resident memory (``VmRSS``) after every batch. It runs the same
ingestion through a producer with an *unbounded* send buffer that the slow log
drains more slowly than the source fills it: that variant's memory must grow
past the bound, which shows the bound can catch a leak. No wall-clock limits:
samples are taken per batch, not per second.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streamml.connectors.examplegen import ExampleGen
from streamml.connectors.file import FileSource
from streamml.connectors.ingest import Ingestor, TokenBucket
from streamml.log.base import Producer
from streamml.log.embedded import EmbeddedLog
from tests.cli_helpers import ROOT, cli_env
from tests.connector_helpers import read_topic

ROWS = 120_000
BATCH = 2_000
#: Growth allowed between the 25% point and the end of the run (measured: ~2 MB).
#: The unbounded buffer below keeps ~80k encoded examples of ~460 bytes by the
#: end (~37 MB), though encoded bytes are the leanest form a buffer can take.
BOUND_MB = 12


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")  # pragma: no cover


class SlowProducer(Producer):
    """A producer in front of a slow log: every flush sleeps ``delay_s``.

    ``unbounded=True`` models a send buffer with no bound: ``send`` only
    queues, and each flush hands the log at most ``drain`` queued records, so
    the queue grows whenever the source is faster than the log.
    """

    def __init__(self, inner: Producer, delay_s: float, *, unbounded: bool = False,
                 drain: int = 200) -> None:
        self.inner, self.delay_s, self.unbounded, self.drain = inner, delay_s, unbounded, drain
        self.queue: list[tuple[str, bytes | None, bytes | None, int | None]] = []

    def send(self, topic: str, value: bytes | None, key: bytes | None = None, *,
             partition: int | None = None, timestamp_ms: int | None = None,
             headers: Any = None) -> None:
        if self.unbounded:
            self.queue.append((topic, value, key, partition))
        else:
            self.inner.send(topic, value, key, partition=partition)

    def send_many(self, topic: str, values: Sequence[bytes | None],
                  keys: Sequence[bytes | None] | None = None, *, partition: int | None = None,
                  timestamp_ms: int | None = None) -> None:
        if self.unbounded:
            ks = keys if keys is not None else [None] * len(values)
            self.queue.extend((topic, v, k, partition) for v, k in zip(values, ks, strict=True))
        else:
            self.inner.send_many(topic, values, keys, partition=partition)

    def flush(self, timeout_s: float | None = None) -> None:
        time.sleep(self.delay_s)
        if self.unbounded:
            head, self.queue = self.queue[: self.drain], self.queue[self.drain:]
            for topic, value, key, partition in head:
                self.inner.send(topic, value, key, partition=partition)
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()


class SlowLog:
    """Delegates to a real log; its producers are :class:`SlowProducer`."""

    def __init__(self, inner: EmbeddedLog, delay_s: float, unbounded: bool) -> None:
        self._inner, self._delay, self._unbounded = inner, delay_s, unbounded

    def producer(self, **options: object) -> SlowProducer:
        return SlowProducer(self._inner.producer(), self._delay, unbounded=self._unbounded)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def make_csv(path: Path, rows: int) -> None:
    with path.open("w") as f:
        f.write("k,ts,fare,miles,company,flag,note\n")
        text = "lorem ipsum dolor sit amet " * 9
        for i in range(rows):
            f.write(f"{i},{1_400_000_000 + i},{i % 97 * 0.25},{i % 13},co{i % 50},"
                    f"{'true' if i % 2 else 'false'},{i} {text}\n")


def worker(folder: str, unbounded: str) -> None:
    """Run in a subprocess: ingest, print the RSS samples (one per batch) as JSON."""
    path = Path(folder) / "fast.csv"
    log = EmbeddedLog(str(Path(folder) / "log"))
    slow = SlowLog(log, delay_s=0.002, unbounded=unbounded == "1")
    ing = Ingestor(slow, FileSource(name="fast", path=str(path)), "mem",  # type: ignore[arg-type]
                   examplegen=ExampleGen("fast", pipeline="mem", key="k", event_time="ts"),
                   batch_size=BATCH)
    samples: list[float] = []
    stats = ing.run(on_batch=lambda s: samples.append(rss_mb()))
    ing.close()
    log.close()
    print(json.dumps({"samples": samples, "examples": stats.examples}))


def run_worker(folder: Path, unbounded: bool) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from tests.unit.test_ingest_backpressure import "
         "worker; worker(*sys.argv[1:])", str(folder), "1" if unbounded else "0"],
        capture_output=True, text=True, cwd=ROOT, env=cli_env(), check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def growth_mb(samples: list[float]) -> float:
    """Peak RSS after the 25% point minus the RSS at that point."""
    quarter = len(samples) // 4
    return max(samples[quarter:]) - samples[quarter]


def test_memory_stays_flat_when_the_source_is_faster_than_the_log(tmp_path: Path) -> None:
    make_csv(tmp_path / "fast.csv", ROWS)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for sub in ("a", "b"):
        (tmp_path / sub / "fast.csv").symlink_to(tmp_path / "fast.csv")
    bounded = run_worker(tmp_path / "a", unbounded=False)
    assert bounded["examples"] == ROWS
    assert len(bounded["samples"]) == ROWS // BATCH
    assert growth_mb(bounded["samples"]) < BOUND_MB, bounded["samples"]
    assert len(read_topic(f"embedded://{tmp_path / 'a' / 'log'}", "mem.examples")) == ROWS
    # The same run with an unbounded buffer in front of the slow log breaks the bound.
    leaky = run_worker(tmp_path / "b", unbounded=True)
    assert growth_mb(leaky["samples"]) > 2 * BOUND_MB, leaky["samples"]


def test_rate_limit_caps_every_batch_and_the_pace(tmp_path: Path) -> None:
    """``rate`` records/s (virtual clock): no batch exceeds the tokens, time ≥ records/rate."""
    path = tmp_path / "r.csv"
    make_csv(path, 1_000)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    log = EmbeddedLog(str(tmp_path / "log"))
    ing = Ingestor(log, FileSource(name="r", path=str(path)), "rl", batch_size=500, rate=100)
    ing.bucket = TokenBucket(100, burst=100, clock=lambda: now[0], sleep=sleep)
    sizes: list[int] = []
    ing.run(on_batch=lambda s: sizes.append(s.records_in - sum(sizes)))
    ing.close()
    log.close()
    assert sum(sizes) == 1_000 and max(sizes) <= 100
    assert now[0] >= (1_000 - 100) / 100 - 1e-9  # the first 100 are the burst

