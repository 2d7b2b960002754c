"""End-to-end examples/s of the taxi pipeline (every component on) vs a bare River loop.

    .venv/bin/python bench/pipeline_throughput.py [--broker kafka://HOST:PORT] [--processes 1,2]

Both consume the same rows (the demo's shuffled replay, no rate limit) in the
same process: the pipeline through ExampleGen, StatisticsGen, SchemaGen,
ExampleValidator, Trainer (two challengers), Evaluator and Pusher over the
log; the bare loop only does ``predict_proba_one`` + ``learn_one`` of the
taxi module's model on every row (one model, no split, no log).

The pipeline's time runs from the start of the run until every component has
consumed every record (no lag left); the time until the run ends, after the
0.8 s of idleness the demo waits for so that time windows close, is printed too.
The pipeline runs twice: with the components above (the issue's set), then as
the demo builds it, with the lineage recorder and DuckDB materializer added.
Examples per CPU-second (of this process and, with ``--processes`` N > 1, of
the N - 1 processes it spawns) are printed beside wall-clock figures (steadier
on a shared machine; on Kafka the broker's CPU is not counted). Each setting of
``--processes`` gets its rows; spawning the processes (``start``, ~1-2 s of
imports and rebuilding the pipeline) happens before the clock starts and is
printed on its own line.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bare_loop() -> tuple[int, float, float]:
    sys.path.insert(0, str(ROOT / "examples"))
    import taxi_module
    from taxi_pipeline import TAXI_CSV

    from streamml.connectors.examplegen import ExampleGen
    from streamml.pipeline import ReplaySource

    src = ReplaySource("taxi", TAXI_CSV, seed=7)
    src.open()
    examples = ExampleGen("taxi").process(src.read(100_000)).examples
    model = taxi_module.build_model()
    start, cpu = time.perf_counter(), time.process_time()
    for ex in examples:
        y = taxi_module.label(ex)
        x = taxi_module.features(ex)
        model.predict_proba_one(x)
        if y is not None:
            model.learn_one(x, y)
    return len(examples), time.perf_counter() - start, time.process_time() - cpu


def pipeline_run(broker: str | None, exclude: tuple[str, ...] = (), processes: int = 1
                 ) -> tuple[int, float, float, float, dict[str, int]]:
    """Rows, seconds until every component has consumed every record (wall, then
    this process's CPU), seconds until the run ended (after the 0.8 s of idleness
    the demo waits for, so that time windows close), records on the output topics."""
    from streamml.demo import DemoConfig, build_demo_pipeline
    from streamml.log import open_log
    from streamml.pipeline import PipelineRun, reset_topics
    from streamml.settings import load_settings

    tmp = tempfile.mkdtemp()
    os.environ["STREAMML_HISTORY_DIR"] = f"{tmp}/history"  # the lineage store, not ./
    url = broker or f"embedded://{tmp}/log"
    settings = load_settings(config_file=None, broker=url, signing_key="bench")
    log = open_log(settings=settings)
    try:
        pipeline = build_demo_pipeline(settings, DemoConfig(pipeline="bench", rate=0.0))
        reset_topics(log, pipeline)
        run = PipelineRun(pipeline, log, exclude=exclude, processes=processes)
        began = time.monotonic()
        with run:
            start, cpu = time.monotonic(), run.cpu_s()
            print(f"  processes={processes}: started in {start - began:.2f}s; split "
                  + " | ".join(", ".join(g) for g in run.split))
            while not run.drained():
                if not run.step():
                    time.sleep(0.001)  # waiting for other processes: leave them the CPU
            drained, drained_cpu = time.monotonic() - start, run.cpu_s() - cpu
            progress = run.run_until_done(idle_s=0.8)
            ended = time.monotonic() - start
        outputs = {t.split(".", 1)[1]: log.describe_topic(t).records for t in pipeline.topics
                   if log.topic_exists(t) and not t.endswith(".examples")}
    finally:
        log.close()
    return progress.ingested, drained, drained_cpu, ended, outputs


LINEAGE = ("lineage_recorder", "lineage")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--broker", default=None)
    parser.add_argument("--processes", default="1,2",
                        help="comma-separated process counts to measure (default 1,2)")
    args = parser.parse_args()
    counts = [int(x) for x in args.processes.split(",")]
    where = args.broker or "embedded"
    n_bare, t_bare, c_bare = bare_loop()
    bare, cbare = n_bare / t_bare, n_bare / c_bare
    rows = [f"| bare River predict+learn | {n_bare:,} | {t_bare:.2f} | {bare:,.0f} | 100% | "
            f"{cbare:,.0f} | 100% |"]
    for label, exclude, procs in [(f"{lab}, {k} process{'es' if k > 1 else ''}", ex, k)
                                  for lab, ex in (("issue-6 components", LINEAGE),
                                                  ("+ lineage recorder and DuckDB "
                                                   "materializer", ()))
                                  for k in counts]:
        n, t_pipe, c_pipe, t_end, outputs = pipeline_run(args.broker, exclude, procs)
        print(f"{label}: load average {os.getloadavg()[0]:.2f}; outputs: "
              + ", ".join(f"{k} {v:,}" for k, v in sorted(outputs.items())))
        pipe, cpipe = n / t_pipe, n / c_pipe
        rows.append(f"| taxi pipeline ({where}), {label}, until drained | {n:,} | "
                    f"{t_pipe:.2f} | {pipe:,.0f} | {pipe / bare:.0%} | {cpipe:,.0f} | "
                    f"{cpipe / cbare:.0%} |")
        rows.append(f"| same, until the run ends (+0.8 s idle wait) | {n:,} | {t_end:.2f} | "
                    f"{n / t_end:,.0f} | {n / t_end / bare:.0%} | | |")
    print("| run | examples | seconds | examples/s | vs bare | examples per CPU-s | vs bare |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
