"""Ingest throughput: taxi CSV → ``<p>.examples`` in examples/s, beside a raw baseline.

The bundled taxi CSV (15,002 rows) is repeated to ``--rows`` (default 300k)
rows. Measured in one run, on the embedded log (fresh directory) and, with
``--bootstrap`` (or ``--kafka`` to start a broker via scripts/kafka_broker.py),
on Kafka:

* **ingest**: the real loop (FileSource → ExampleGen → produce → flush →
  checkpoint per batch of ``--batch`` records);
* **baseline**: a raw pyarrow CSV parse of the whole file plus a raw batch
  produce of the encoded rows (``orjson`` of each row dict, ``send_many``, flush).

Wall-clock rates swing with other load on a 2-core machine; the CPU columns
(this process's CPU time: pyarrow's threads included) are steadier for comparisons.

Usage::

    .venv/bin/python bench/ingest_throughput.py [--rows 300000] [--bootstrap HOST:PORT | --kafka]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamml.connectors.examplegen import ExampleGen  # noqa: E402
from streamml.connectors.fields import gc_paused  # noqa: E402
from streamml.connectors.file import FileSource  # noqa: E402
from streamml.connectors.ingest import Ingestor  # noqa: E402
from streamml.log import open_log  # noqa: E402
from streamml.log.base import TopicSpec  # noqa: E402
from streamml.settings import Settings  # noqa: E402

TAXI = ROOT / "streamml" / "data" / "taxi.csv"


def make_file(folder: Path, rows: int) -> tuple[Path, int]:
    header, _, body = TAXI.read_bytes().partition(b"\n")
    lines = body.rstrip(b"\n").split(b"\n")
    out = (lines * (rows // len(lines) + 1))[:rows]
    path = folder / "taxi.csv"
    path.write_bytes(header + b"\n" + b"\n".join(out) + b"\n")
    return path, len(out)


def bench_ingest(url: str, path: Path, pipeline: str, batch: int) -> tuple[int, float, float]:
    with open_log(url, Settings(broker=url)) as log:
        source = FileSource(name="taxi-bench", path=str(path))
        gen = ExampleGen("taxi-bench", pipeline=pipeline, event_time="trip_start_timestamp",
                         event_time_unit="s")
        ing = Ingestor(log, source, pipeline, examplegen=gen, batch_size=batch)
        ing.start()
        t, c = time.perf_counter(), time.process_time()
        stats = ing.run()
        elapsed, cpu = time.perf_counter() - t, time.process_time() - c
        ing.close()
        return stats.examples, elapsed, cpu


def bench_baseline(url: str, path: Path, topic: str) -> tuple[int, float, float]:
    with open_log(url, Settings(broker=url)) as log, gc_paused():
        # As in the ingest loop: gc paused (else the collector re-traverses the 300k row
        # dicts again and again), and right-sized copies of orjson's output (each
        # dumps result sits in a ~4 KiB buffer; 300k kept alive fault in 1.2 GB).
        log.create_topic(TopicSpec(topic, partitions=3), exist_ok=True)
        with log.producer() as producer:
            t, c = time.perf_counter(), time.process_time()
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                null_values=[""], strings_can_be_null=True))
            names = table.column_names
            cols = [c.to_pylist() for c in table.columns]
            values = [bytes(memoryview(orjson.dumps(dict(zip(names, row, strict=True)))))
                      for row in zip(*cols, strict=True)]
            for i in range(0, len(values), 10_000):
                producer.send_many(topic, values[i:i + 10_000])
            producer.flush()
            return len(values), time.perf_counter() - t, time.process_time() - c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--bootstrap", default=None)
    ap.add_argument("--kafka", action="store_true", help="start a broker for the run")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    broker = None
    try:
        path, rows = make_file(tmp, args.rows)
        targets = [("embedded", f"embedded://{tmp / 'log'}")]
        bootstrap = args.bootstrap
        if args.kafka and not bootstrap:
            sys.path.insert(0, str(ROOT / "scripts"))
            import kafka_broker

            broker = kafka_broker.start_broker(tmp / "kafka")
            bootstrap = broker.bootstrap
        if bootstrap:
            targets.append(("kafka", f"kafka://{bootstrap}"))
        print(f"taxi CSV x{rows / 15002:.0f} = {rows:,} rows, batch {args.batch:,}, "
              f"load average {os.getloadavg()[0]:.2f}")
        print("| log | run | examples | seconds | examples/s | CPU s | examples/CPU-s |")
        print("|---|---|---:|---:|---:|---:|---:|")
        stamp = int(time.time())
        for label, url in targets:
            n, s, c = bench_baseline(url, path, f"bench{stamp}.raw")
            print(f"| {label} | baseline: pyarrow parse + raw batch produce | {n:,} | {s:.2f} "
                  f"| {n / s:,.0f} | {c:.2f} | {n / c:,.0f} |")
            n, s, c = bench_ingest(url, path, f"bench{stamp}", args.batch)
            print(f"| {label} | streamml ingest (ExampleGen, checkpoint per batch) | {n:,} "
                  f"| {s:.2f} | {n / s:,.0f} | {c:.2f} | {n / c:,.0f} |")
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
