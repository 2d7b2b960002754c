"""Replay throughput from the archive and from the log, beside raw Parquet scan and raw consume.

    .venv/bin/python bench/replay_throughput.py [--records 200000] [--broker URL]

All four figures come from the same run on the same records (embedded log by default).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from streamml.history.archive import ArchiveSink
from streamml.history.layout import archive_files
from streamml.history.replay import replay
from streamml.log import open_log
from streamml.log.base import TopicPartition, TopicSpec

T0 = 1_767_225_600_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--broker", default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    n = args.records
    with open_log(args.broker or f"embedded://{work / 'log'}") as log:
        log.create_topic(TopicSpec("bench.examples", partitions=3))
        with log.producer() as p:
            for i in range(n):
                p.send("bench.examples", b'{"i": %d, "fare": %d.5, "label": %d}' % (i, i, i % 2),
                       b"k%d" % i, partition=i % 3, timestamp_ms=T0 + i * 50)
            p.flush()
        rows = []
        t = time.perf_counter()
        stats = ArchiveSink(log, work / "arch", ["bench.examples"], pipeline="bench").run()
        rows.append(("archive sink (log → Parquet)", stats.records, time.perf_counter() - t))
        t = time.perf_counter()
        scanned = sum(pq.read_table(f.path).num_rows
                      for f in archive_files(work / "arch", "bench.examples"))
        rows.append(("raw Parquet scan", scanned, time.perf_counter() - t))
        tps = [TopicPartition("bench.examples", p) for p in range(3)]
        t = time.perf_counter()
        consumed = 0
        with log.consumer() as c:
            c.assign(tps)
            c.seek_to_beginning(tps)
            ends = c.end_offsets(tps)
            while any(c.position(tp) < ends[tp] for tp in tps):
                consumed += len(c.poll(timeout_s=0.5))
        rows.append(("raw consume", consumed, time.perf_counter() - t))
        for source in ("kafka", "archive"):
            t = time.perf_counter()
            s = replay(log, "bench", T0, T0 + n * 50, source=source,  # type: ignore[arg-type]
                       namespace=f"r{source}", root=work / "arch")
            rows.append((f"replay from {'log' if source == 'kafka' else 'archive'}", s.records,
                         time.perf_counter() - t))
    print(f"| {'path':<30} | {'records':>8} | {'records/s':>10} |")
    print(f"|{'-' * 32}|{'-' * 10}|{'-' * 12}|")
    for name, count, seconds in rows:
        print(f"| {name:<30} | {count:>8} | {count / seconds:>10,.0f} |")


if __name__ == "__main__":
    main()
