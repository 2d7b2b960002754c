"""Replay throughput from the archive and from the log, beside raw Parquet scan and raw consume.

    .venv/bin/python bench/replay_throughput.py [--records 100000] [--broker URL]

All figures come from the same run on the same records (embedded log by default):

* raw Parquet scan: ``pq.read_table`` of every archive file (rows/s), and the same
  files decoded to log records (:func:`streamml.history.archive.read_records`);
* raw consume: one consumer reading the live topic to its end;
* replay (copy): :func:`streamml.history.replay.replay` into a fresh namespace;
* replay through validation: the replay, then StatisticsGen + ExampleValidator
  (schema-checked, windowed statistics) run over the namespace to idle —
  end-to-end examples/s (the runner's final idle wait is not counted).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from streamml.history.archive import ArchiveSink, read_records
from streamml.history.layout import archive_files
from streamml.history.replay import replay
from streamml.log import open_log
from streamml.log.base import Log, TopicPartition, TopicSpec
from streamml.payloads.schema import FeatureSpec, SchemaVersion
from streamml.runtime.runner import Runner
from streamml.statistics.processor import StatisticsGen
from streamml.validation import ExampleValidator

#: Record timestamps start here: recent, because Kafka deletes records older than a
#: topic's retention.ms by their timestamps (the catalog keeps examples 7 days).
T0 = (int(time.time() * 1000) - 86_400_000) // 3_600_000 * 3_600_000
IDLE_S = 0.3
SCHEMA = SchemaVersion(pipeline="bench", version=1, origin="curated", created_at=T0,
                       label="big_tip", features={
                           "fare": FeatureSpec(type="float", min=0.0),
                           "trips": FeatureSpec(type="int", min=0.0, max=10.0),
                           "payment_type": FeatureSpec(type="string",
                                                       domain=["Cash", "Credit Card"]),
                           "big_tip": FeatureSpec(type="bool")})


def example(i: int) -> bytes:
    ts = T0 + i * 50
    return orjson.dumps({
        "id": f"bench:{i}", "source": "bench", "position": {"line": i}, "event_time": ts,
        "ingest_time": ts, "split": "train" if i % 3 else "eval",
        "features": {"fare": i % 97 + 0.5, "trips": i % 5,
                     "payment_type": "Cash" if i % 2 else "Credit Card", "big_tip": i % 4 == 0},
        "label": i % 4 == 0})


def through_validation(log: Log, ns: str, expected: int) -> int:
    """Run StatisticsGen + ExampleValidator over ``<ns>.examples`` until both read ``expected``.

    (Not "until idle": on Kafka a consumer group's first assignment takes seconds,
    during which nothing lags and the runner would look idle.)
    """
    processors = [
        StatisticsGen(f"{ns}.examples", f"{ns}.statistics", count_window=10_000,
                      cumulative=False),
        ExampleValidator(f"{ns}.examples", f"{ns}.anomalies", schema=SCHEMA),
    ]
    runner = Runner(log, processors, ns, batch_size=5000, checkpoint_every_records=100_000,
                    checkpoint_every_s=60, poll_timeout_s=0.0, idle_after_s=IDLE_S)
    try:
        runner.start()
        deadline = time.monotonic() + 600
        while min(s.records_in for s in runner.stats()) < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{ns}: validation did not read {expected} examples")
            runner.step(wait_s=0.05)
        return min(s.records_in for s in runner.stats())
    finally:
        runner.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--broker", default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    n = args.records
    rows: list[tuple[str, int, float]] = []

    def timed(name: str, fn, minus: float = 0.0) -> None:  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        count = fn()
        rows.append((name, count, time.perf_counter() - t - minus))

    with open_log(args.broker or f"embedded://{work / 'log'}") as log:
        run = f"{int(time.time())}"
        src = f"bench{run}"
        log.create_topic(TopicSpec(f"{src}.examples", partitions=3))
        with log.producer() as p:
            for i in range(n):
                p.send(f"{src}.examples", example(i), b"bench:%d" % i, partition=i % 3,
                       timestamp_ms=T0 + i * 50)
            p.flush()
        arch = work / "arch"
        timed("archive sink (log → Parquet)", lambda: ArchiveSink(
            log, arch, [f"{src}.examples"], pipeline=src).run().records)
        files = archive_files(arch, f"{src}.examples")
        timed("raw Parquet scan (Arrow)", lambda: sum(pq.read_table(f.path).num_rows
                                                      for f in files))
        timed("raw Parquet scan → records", lambda: sum(
            len(read_records(f.path, f"{src}.examples")) for f in files))
        tps = [TopicPartition(f"{src}.examples", p) for p in range(3)]

        def consume() -> int:
            consumed = 0
            with log.consumer() as c:
                c.assign(tps)
                c.seek_to_beginning(tps)
                ends = c.end_offsets(tps)
                while any(c.position(tp) < ends[tp] for tp in tps):
                    consumed += len(c.poll(timeout_s=0.5))
            return consumed

        timed("raw consume (log)", consume)
        for source, label in (("kafka", "log"), ("archive", "archive")):
            timed(f"replay from {label} (copy)", lambda s=source: replay(
                log, src, T0, T0 + n * 50, source=s, namespace=f"{src}-c{s}", root=arch).records)
        for source, label in (("kafka", "log"), ("archive", "archive")):
            def validated(s: str = source) -> int:
                ns = f"{src}-v{s}"
                replay(log, src, T0, T0 + n * 50, source=s, namespace=ns,  # type: ignore[arg-type]
                       root=arch)
                return through_validation(log, ns, n)

            timed(f"replay from {label} → Stats+Validator", validated)
        if args.broker:  # leave nothing behind on a shared broker
            for topic in log.list_topics():
                if topic.startswith(src):
                    log.delete_topic(topic)
    print(f"| {'path':<38} | {'examples':>8} | {'examples/s':>10} |")
    print(f"|{'-' * 40}|{'-' * 10}|{'-' * 12}|")
    for name, count, seconds in rows:
        print(f"| {name:<38} | {count:>8} | {count / seconds:>10,.0f} |")


if __name__ == "__main__":
    main()
