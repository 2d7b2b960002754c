"""End-to-end examples/s of the taxi pipeline (every component on) vs a bare River loop.

    .venv/bin/python bench/pipeline_throughput.py [--broker kafka://HOST:PORT]

Both consume the same rows (the demo's shuffled replay, no rate limit) in the
same process: the pipeline through ExampleGen, StatisticsGen, SchemaGen,
ExampleValidator, Trainer (two challengers), Evaluator and Pusher over the
log; the bare loop only does ``predict_proba_one`` + ``learn_one`` of the
taxi module's model on the train split.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bare_loop() -> tuple[int, float]:
    sys.path.insert(0, str(ROOT / "examples"))
    import taxi_module
    from taxi_pipeline import TAXI_CSV

    from streamml.connectors.examplegen import ExampleGen
    from streamml.pipeline import ReplaySource

    src = ReplaySource("taxi", TAXI_CSV, seed=7)
    src.open()
    examples = ExampleGen("taxi").process(src.read(100_000)).examples
    model = taxi_module.build_model()
    start = time.perf_counter()
    for ex in examples:
        y = taxi_module.label(ex)
        x = taxi_module.features(ex)
        model.predict_proba_one(x)
        if y is not None:
            model.learn_one(x, y)
    return len(examples), time.perf_counter() - start


def pipeline_run(broker: str | None) -> tuple[int, float]:
    from streamml.demo import DemoConfig, run_demo
    from streamml.log import open_log
    from streamml.settings import load_settings

    url = broker or f"embedded://{tempfile.mkdtemp()}"
    settings = load_settings(config_file=None, broker=url, signing_key="bench")
    log = open_log(settings=settings)
    try:
        s = run_demo(log, settings, DemoConfig(pipeline="bench", rate=0.0, serve=False))
    finally:
        log.close()
    return s.rows, s.progress.elapsed_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--broker", default=None)
    args = parser.parse_args()
    n_bare, t_bare = bare_loop()
    n_pipe, t_pipe = pipeline_run(args.broker)
    bare, pipe = n_bare / t_bare, n_pipe / t_pipe
    print(f"| run | examples | seconds | examples/s | vs bare |\n|---|---|---|---|---|\n"
          f"| bare River predict+learn | {n_bare:,} | {t_bare:.2f} | {bare:,.0f} | 100% |\n"
          f"| taxi pipeline, all components ({args.broker or 'embedded'}) | {n_pipe:,} | "
          f"{t_pipe:.2f} | {pipe:,.0f} | {pipe / bare:.0%} |")


if __name__ == "__main__":
    main()
