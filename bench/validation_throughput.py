"""StatisticsGen + ExampleValidator throughput on taxi rows, beside a one-shot pyarrow run.

The bundled taxi CSV (15,002 rows, 18 features) is repeated to ``--rows``
(default 150k) examples, decoded as the runner hands them to processors
(``Message`` objects whose value is the example envelope), and fed in
micro-batches of ``--batch`` (500, the runner's default). Measured in one run,
best of ``--repeat``, as wall-clock examples/s and as examples per CPU-second of
this process (steadier on a shared machine; pyarrow's own threads count too):

* **StatisticsGen** — count windows of 10k examples per split + cumulative,
  sketches included (the processor's defaults);
* **ExampleValidator** — per-example checks against the schema inferred from
  the file (flag policy, no anomalies on clean rows);
* **both, shared batch** — both processors on the same micro-batches, so the
  columns are built once (:class:`streamml.statistics.batch.ExampleBatch`;
  StatisticsGen then accumulates blocks of up to 16,384 examples, see its docs);
* **from record bytes** — both processors from the records' JSON bytes, the
  cost the hosts pay too: *per record* decodes each with orjson into dicts
  first (the path before ``raw_values``), *columnar* hands the bytes to the
  processors, which decode each micro-batch at once with ``pyarrow.json``
  (:mod:`streamml.statistics.rawbatch`), shared between the two;
* **decoded micro-batches** — the same two processors on the columnar batches
  ``rawbatch`` makes of those records, decoded before the clock starts (fresh
  for each run, so nothing decoded lazily is carried over): the processors'
  own cost; and **decoding alone** (``rawbatch.decode_examples`` over the same
  records). The columnar row above is about the two together;
* **embedded Runner** — the same records in an embedded log, both processors
  run by :class:`~streamml.runtime.runner.Runner` (a consumer each, polls of
  500, no checkpoints in the timed region), with ``raw_values`` off (the runner
  decodes each record per processor) and on (equal polls decode once);
* **one-shot pyarrow** — the same rows as one in-memory pyarrow Table, the
  statistics StatisticsGen reports computed once (:func:`one_shot`: moments,
  extremes, zeros, NaN/Inf, quantiles, both histograms, distinct counts, top
  values, string lengths; no streaming, no windows, no sketches) — the ``vs
  one-shot`` baseline; and the narrower subset earlier versions of this bench
  compared with (moments, quantiles, value counts).

Usage::

    .venv/bin/python bench/validation_throughput.py [--rows 150000] [--batch 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamml.connectors.fields import encode_example  # noqa: E402
from streamml.log.base import TopicSpec  # noqa: E402
from streamml.log.embedded import EmbeddedLog  # noqa: E402
from streamml.processors.base import Message  # noqa: E402
from streamml.runtime.runner import Runner  # noqa: E402
from streamml.serde import decode  # noqa: E402
from streamml.statistics import processor as stats_module  # noqa: E402
from streamml.statistics import rawbatch  # noqa: E402
from streamml.statistics.processor import StatisticsGen  # noqa: E402
from streamml.validation import validator as validator_module  # noqa: E402
from streamml.validation.schema import infer_schema  # noqa: E402
from streamml.validation.validator import ExampleValidator  # noqa: E402

TAXI = ROOT / "streamml" / "data" / "taxi.csv"
QUANTILES = [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99]
TOPIC = "taxi.examples"


def raw_messages(msgs: list[Message]) -> list[Message]:
    """The same examples as the record bytes ExampleGen writes (``position`` etc. included)."""
    out = []
    for m in msgs:
        value = {**m.value, "position": {"line": m.offset}, "ingest_time": m.timestamp_ms,
                 "label": None}
        out.append(Message(m.topic, m.partition, m.offset, m.timestamp_ms, m.key,
                           encode_example(value)))
    return out


def taxi_rows(n: int) -> tuple[pa.Table, list[Message]]:
    table = pcsv.read_csv(TAXI, convert_options=pcsv.ConvertOptions(strings_can_be_null=True))
    reps = -(-n // table.num_rows)
    table = pa.concat_tables([table] * reps).slice(0, n)
    rows = table.to_pylist()
    msgs = []
    for i, row in enumerate(rows):
        ts = 1_700_000_000_000 + i
        value = {"id": f"taxi:{i}", "source": "taxi", "split": "train" if i % 5 else "eval",
                 "event_time": ts, "features": row}
        msgs.append(Message(TOPIC, i % 4, i // 4, ts, f"taxi:{i}", value))
    return table, msgs


def one_shot_subset(table: pa.Table) -> None:
    """Moments, t-digest quantiles and value counts only (the baseline before this one)."""
    for name in table.column_names:
        col = table.column(name)
        col.null_count  # noqa: B018 - computed by the reader, as in a batch job
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            pc.mean(col), pc.stddev(col, ddof=0), pc.min_max(col)
            pc.tdigest(col, q=QUANTILES)
            pc.count(pc.equal(col, 0))
        else:
            pc.value_counts(col)
            pc.mean(pc.utf8_length(col))


def one_shot(table: pa.Table) -> None:
    """The statistics StatisticsGen reports, computed once over the whole table.

    Per numeric column: count and missing, mean, population std, min/max, zeros,
    NaN/Inf counts, quantiles (t-digest), a 10-bucket equal-width histogram
    (numpy over the non-null values) and a 10-bucket quantile histogram (its edges
    by t-digest), distinct count (exact, ``count_distinct``). Per string column:
    value counts with the top 10 (``select_k_unstable``), distinct count, average
    length.
    """
    for name in table.column_names:
        col = table.column(name)
        col.null_count  # noqa: B018 - computed by the reader, as in a batch job
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            extremes = pc.min_max(col)
            pc.mean(col), pc.stddev(col, ddof=0), pc.count(pc.equal(col, 0))
            if pa.types.is_floating(col.type):
                pc.sum(pc.is_nan(col)), pc.sum(pc.is_inf(col))
            pc.tdigest(col, q=QUANTILES)
            pc.tdigest(col, q=[i / 10 for i in range(11)])  # quantile histogram edges
            lo, hi = extremes["min"].as_py(), extremes["max"].as_py()
            if lo is not None:
                x = col.drop_null().to_numpy()
                np.histogram(x[np.isfinite(x)] if x.dtype.kind == "f" else x, bins=10,
                             range=(lo, hi))
            pc.count_distinct(col)
        else:
            counts = pc.value_counts(col)
            if len(counts):
                pc.take(counts, pc.select_k_unstable(counts.field("counts"), 10,
                                                     [("counts", "descending")]))
            pc.count_distinct(col)
            pc.mean(pc.utf8_length(col))


def best(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best wall-clock seconds and best CPU seconds (this process, all threads) of ``repeat``."""
    walls, cpus = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=150_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    table, msgs = taxi_rows(args.rows)
    batches = [msgs[i:i + args.batch] for i in range(0, len(msgs), args.batch)]
    schema = infer_schema(TAXI, pipeline="taxi", created_at=0)

    def stats_gen() -> None:
        gen = StatisticsGen(TOPIC, "taxi.statistics", pipeline="taxi")
        for b in batches:
            gen.process(list(b))  # a fresh list: no sharing with another processor
        gen.drain()  # the buffered block is accumulated inside the timed region

    def validator() -> None:
        v = ExampleValidator(TOPIC, "taxi.anomalies", schema=schema)
        for b in batches:
            v.process(list(b))

    def both() -> None:
        gen = StatisticsGen(TOPIC, "taxi.statistics", pipeline="taxi")
        v = ExampleValidator(TOPIC, "taxi.anomalies", schema=schema)
        for b in batches:
            gen.process(b)
            v.process(b)
        gen.drain()

    raw = raw_messages(msgs)
    raw_batches = [raw[i:i + args.batch] for i in range(0, len(raw), args.batch)]

    def both_bytes(columnar: bool) -> None:
        gen = StatisticsGen(TOPIC, "taxi.statistics", pipeline="taxi")
        v = ExampleValidator(TOPIC, "taxi.anomalies", schema=schema)
        for rb in raw_batches:
            b = list(rb) if columnar else [
                Message(m.topic, m.partition, m.offset, m.timestamp_ms, m.key, decode(m.value))
                for m in rb]
            gen.process(b)
            v.process(b)
        gen.drain()

    def decode_all() -> dict[int, object]:  # by the batch's first message, which both see
        return {id(rb[0]): rawbatch.decode_examples(rb) for rb in raw_batches}

    decoded_batches: dict[int, object] = {}

    def timed_decoded() -> tuple[float, float]:
        """Best of ``repeat``: each run on freshly decoded batches (decoded off the clock)."""
        real = (stats_module.decode_examples, validator_module.decode_examples)
        lookup = decoded_batches.__getitem__
        stats_module.decode_examples = validator_module.decode_examples = (  # type: ignore
            lambda msgs: lookup(id(msgs[0])))
        try:
            runs = []
            for _ in range(args.repeat):
                decoded_batches.clear()
                decoded_batches.update(decode_all())
                runs.append(best(lambda: both_bytes(True), 1))
            return min(r[0] for r in runs), min(r[1] for r in runs)
        finally:
            stats_module.decode_examples, validator_module.decode_examples = real

    tmp = tempfile.TemporaryDirectory()
    log = EmbeddedLog(tmp.name)
    log.create_topic(TopicSpec(TOPIC, partitions=1))
    with log.producer() as prod:
        for m in raw:
            prod.send(TOPIC, m.value, m.key.encode() if m.key else None)
    runs = itertools.count()

    def runner(raw_values: bool) -> None:
        gen = StatisticsGen(TOPIC, "taxi.statistics", pipeline="taxi")
        v = ExampleValidator(TOPIC, "taxi.anomalies", schema=schema)
        gen.raw_values = v.raw_values = raw_values  # type: ignore[misc]
        r = Runner(log, [gen, v], f"bench{next(runs)}", batch_size=args.batch,
                   checkpoint_every_records=1 << 62, checkpoint_every_s=1e9)
        r.start()
        while min(s.records_in for s in (t.stats for t in r._tasks)) < len(raw):
            r.step()
        gen.drain()
        r.close(checkpoint=False)

    n = len(msgs)
    results = [("StatisticsGen", best(stats_gen, args.repeat)),
               ("ExampleValidator", best(validator, args.repeat)),
               ("StatisticsGen + ExampleValidator (shared batch)", best(both, args.repeat)),
               ("both, from bytes: orjson per record (before)",
                best(lambda: both_bytes(False), args.repeat)),
               ("both, from bytes: columnar decode (raw_values)",
                best(lambda: both_bytes(True), args.repeat)),
               ("  of which decoding alone (rawbatch)", best(decode_all, args.repeat)),
               ("  of which both on the decoded batches", timed_decoded()),
               ("Runner, embedded log -> both: per record (before)",
                best(lambda: runner(False), args.repeat)),
               ("Runner, embedded log -> both: raw_values",
                best(lambda: runner(True), args.repeat)),
               ("one-shot pyarrow: moments + quantiles only",
                best(lambda: one_shot_subset(table), args.repeat)),
               ("one-shot pyarrow: the same statistics",
                best(lambda: one_shot(table), args.repeat))]
    base_wall, base_cpu = (n / t for t in results[-1][1])
    print(f"{n:,} taxi examples, {table.num_columns} features, micro-batches of {args.batch}, "
          f"best of {args.repeat}; load average {os.getloadavg()[0]:.2f} at the end\n")
    print(f"| {'component':<48} | {'examples/s':>11} | {'vs one-shot':>11} "
          f"| {'per CPU-s':>11} | {'vs one-shot':>11} |")
    print(f"|{'-' * 50}|{'-' * 12}:|{'-' * 12}:|{'-' * 12}:|{'-' * 12}:|")
    for name, (wall, cpu) in results:
        print(f"| {name:<48} | {n / wall:>11,.0f} | {n / wall / base_wall:>10.2f}x "
              f"| {n / cpu:>11,.0f} | {n / cpu / base_cpu:>10.2f}x |")
    log.close()
    tmp.cleanup()


if __name__ == "__main__":
    main()
