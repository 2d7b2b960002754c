"""Trainer throughput beside a bare River predict+learn loop, same rows, same run.

Rows: the bundled taxi CSV (15k trips) as Example-shaped JSON, train split only,
repeated ``--passes`` times. Model: ``examples/taxi_module.py`` (coerce, impute,
scale, one-hot, logistic regression). Every figure is the best of ``--repeat`` runs
(interleaved), in wall-clock examples/s and in examples per CPU-second of this
process (steadier when other processes share the cores).

* **bare River**: ``x``/``y`` precomputed (``features``/``label`` are not timed), then
  ``predict_proba_one(x)`` + ``learn_one(x, y)`` per row: the floor of any online
  trainer that reports progressive metrics;
* **bare River over the example rows**: the same loop calling the user module's
  ``features``/``label`` on each row inside the clock (what any consumer of the
  topic does, and the bare loop of ``bench/pipeline_throughput.py``);
* **Trainer**: ``Trainer.process`` over decoded ``Message`` micro-batches of
  ``--batch`` records: split filter, ``label``/``features`` of the user module,
  progressive metrics (accuracy, log loss), offset and event-time bookkeeping, and a
  candidate (pickle + sha256 + base64 payload) every ``--snapshot-every`` examples;
* **Trainer, no progressive metrics**: the same with ``progressive=False`` (the
  bare loop's ``predict_proba_one`` is then not done either);
* **mini-batches** (``--mini-batch``, 500): the taxi module's ``build_batch_model``
  (the same steps, mini-batch capable) learning ``learn_many`` on pyarrow Tables.
  The bare loop builds each batch's Table from the example rows and does
  ``predict_proba_many`` + ``learn_many`` (the first batch predicted one at a time,
  as the Trainer does); the Trainer runs with ``mini_batch=--mini-batch``.

Target (issue 5): Trainer >= 90% of the bare loop (both baselines are printed).

Usage::

    .venv/bin/python bench/trainer_throughput.py [--passes 2] [--repeat 3] [--markdown]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamml.learning.trainer import Trainer  # noqa: E402
from streamml.learning.transform import load_module_file, resolve_builder  # noqa: E402
from streamml.processors.base import Message  # noqa: E402
from streamml.processors.basic import _typed, split_of  # noqa: E402

BATCH_MODEL = "streamml.examples.taxi_module:build_batch_model"

MODULE = str(ROOT / "examples" / "taxi_module.py")
TAXI = ROOT / "streamml" / "data" / "taxi.csv"


def rows(passes: int) -> list[Message]:
    with TAXI.open(newline="") as f:
        raw = list(csv.DictReader(f))
    out = []
    for p in range(passes):
        for i, row in enumerate(raw):
            ex_id = f"taxi.csv:{i}"
            if split_of(ex_id) != "train":
                continue
            n = p * len(raw) + i
            value = {"id": ex_id, "split": "train", "event_time": 1_700_000_000_000 + n * 1000,
                     "features": {k: _typed(v) for k, v in row.items()}, "label": None}
            out.append(Message("taxi.examples", 0, n, value["event_time"], ex_id, value))
    return out


def bare(msgs: list[Message], progressive: bool = True,
         precomputed: bool = True) -> tuple[float, float]:
    """The bare loop; ``precomputed``: ``x``/``y`` built before the clock starts."""
    um = load_module_file(MODULE)
    data = [(um.features(m.value), um.label(m.value)) for m in msgs]
    model = um.build_model()
    features, label = um.features, um.label
    start, cpu = time.perf_counter(), time.process_time()
    if precomputed:
        for x, y in data:
            if progressive:
                model.predict_proba_one(x)
            model.learn_one(x, y)
    else:  # over the example rows, as any consumer of the topic (and the pipeline bench)
        for m in msgs:
            x, y = features(m.value), label(m.value)
            if progressive:
                model.predict_proba_one(x)
            model.learn_one(x, y)
    return (len(data) / (time.perf_counter() - start),
            len(data) / (time.process_time() - cpu))


def bare_many(msgs: list[Message], size: int) -> tuple[float, float]:
    """The bare mini-batch loop: a Table per ``size`` rows, predict_proba_many + learn_many."""
    import pyarrow as pa

    um = load_module_file(MODULE)
    model = resolve_builder(BATCH_MODEL)()
    features, label = um.features, um.label
    start, cpu = time.perf_counter(), time.process_time()
    for k in range(0, len(msgs), size):
        xs = [features(m.value) for m in msgs[k:k + size]]
        ys = [label(m.value) for m in msgs[k:k + size]]
        X, y = pa.Table.from_pylist(xs), pa.chunked_array([pa.array(ys)])
        if k:
            model.predict_proba_many(X)
        else:
            for x in xs:
                model.predict_proba_one(x)
        model.learn_many(X, y)
    return (len(msgs) / (time.perf_counter() - start),
            len(msgs) / (time.process_time() - cpu))


def trainer(msgs: list[Message], batch: int, snapshot_every: int,
            progressive: bool = True, mini_batch: int | None = None) -> tuple[float, float, int]:
    t = Trainer("taxi", {"logreg": BATCH_MODEL if mini_batch else MODULE}, MODULE,
                snapshot_every=snapshot_every, progressive=progressive, mini_batch=mini_batch)
    emitted = 0
    start, cpu = time.perf_counter(), time.process_time()
    for k in range(0, len(msgs), batch):
        emitted += len(list(t.process(msgs[k:k + batch])))
    return (len(msgs) / (time.perf_counter() - start),
            len(msgs) / (time.process_time() - cpu), emitted)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--snapshot-every", type=int, default=5000)
    ap.add_argument("--mini-batch", type=int, default=500)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    msgs = rows(args.passes)
    best: dict[str, float] = {}
    best_cpu: dict[str, float] = {}
    candidates = 0
    for _ in range(args.repeat):
        for name, fn in (
            ("bare River predict_proba_one+learn_one", lambda: bare(msgs)),
            ("bare, over the example rows", lambda: bare(msgs, precomputed=False)),
            ("Trainer (progressive metrics)",
             lambda: trainer(msgs, args.batch, args.snapshot_every)[:2]),
            ("bare River learn_one", lambda: bare(msgs, progressive=False)),
            ("bare learn_one, over the example rows",
             lambda: bare(msgs, progressive=False, precomputed=False)),
            ("Trainer (progressive=False)",
             lambda: trainer(msgs, args.batch, args.snapshot_every, progressive=False)[:2]),
            (f"bare River learn_many, {args.mini_batch}-row Tables",
             lambda: bare_many(msgs, args.mini_batch)),
            (f"Trainer (mini_batch={args.mini_batch})",
             lambda: trainer(msgs, args.batch, args.snapshot_every,
                             mini_batch=args.mini_batch)[:2]),
        ):
            wall, cpu = fn()
            best[name] = max(best.get(name, 0.0), wall)
            best_cpu[name] = max(best_cpu.get(name, 0.0), cpu)
        candidates = trainer(msgs[:1], 1, 1)[2]
    groups = [("bare River predict_proba_one+learn_one", "bare, over the example rows",
               "Trainer (progressive metrics)"),
              ("bare River learn_one", "bare learn_one, over the example rows",
               "Trainer (progressive=False)"),
              (f"bare River learn_many, {args.mini_batch}-row Tables",
               f"bare River learn_many, {args.mini_batch}-row Tables",
               f"Trainer (mini_batch={args.mini_batch})")]
    print(f"{len(msgs)} train rows ({args.passes} passes over taxi.csv), batch {args.batch}, "
          f"candidate every {args.snapshot_every}, best of {args.repeat}"
          f" ({candidates} candidate per snapshot); load average {os.getloadavg()[0]:.2f}")
    sep = "|" if args.markdown else " "
    if args.markdown:
        print("| loop | examples/s | vs bare (x, y precomputed) | vs bare over the rows "
              "| examples per CPU-s | vs bare (x, y precomputed) | vs bare over the rows |\n"
              "|---|---:|---:|---:|---:|---:|---:|")
    for base, rows_base, ours in groups:
        for name in dict.fromkeys((base, rows_base, ours)):
            ratio = f"{100 * best[name] / best[base]:.1f}%"
            rratio = f"{100 * best[name] / best[rows_base]:.1f}%"
            cratio = f"{100 * best_cpu[name] / best_cpu[base]:.1f}%"
            crratio = f"{100 * best_cpu[name] / best_cpu[rows_base]:.1f}%"
            if args.markdown:
                print(f"| {name} | {best[name]:,.0f} | {ratio} | {rratio} | "
                      f"{best_cpu[name]:,.0f} | {cratio} | {crratio} |")
            else:
                print(f"{name:<42}{sep}{best[name]:>10,.0f} ex/s{sep}{ratio:>8}{sep}"
                      f"{rratio:>8}{sep}{best_cpu[name]:>10,.0f} ex/CPU-s{sep}{cratio:>8}"
                      f"{sep}{crratio:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
