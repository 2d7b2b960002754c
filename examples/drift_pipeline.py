"""A synthetic-drift stream: Palmer penguins replayed with a sensor drift, validation only.

    penguins replay (shuffled, ×20 passes) → ExampleGen → <p>.examples
      → StatisticsGen (windows of 500) → SchemaGen → ExampleValidator → <p>.anomalies
      → Trainer (species, 2 challengers) → <p>.candidates

Halfway through, ``culmen_length_mm`` and ``body_mass_g`` read 30% high (a
recalibrated scale): DRIFT alerts name them. No signing key is needed (no Pusher).

    streamml run examples/drift_pipeline.py --reset
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from streamml.connectors.definition import DATA_DIR
from streamml.pipeline import Connector, Drift, Pipeline, ReplaySource
from streamml.pipeline.replay import baseline_schema
from streamml.settings import Settings
from streamml.statistics.processor import StatisticsGen
from streamml.validation import ExampleValidator, SchemaGen

FEATURES = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]
DRIFT = Drift(at=0.5, scale={"culmen_length_mm": 1.3, "body_mass_g": 1.3})


def _repeated(passes: int) -> str:
    """The penguins CSV repeated ``passes`` times (a longer stream), in a temp file."""
    src = (DATA_DIR / "penguins.csv").read_text().splitlines()
    out = Path(tempfile.gettempdir()) / f"streamml-penguins-x{passes}.csv"
    if not out.exists():
        out.write_text("\n".join([src[0], *(src[1:] * passes)]) + "\n")
    return str(out)


def build_pipeline(settings: Settings, *, name: str = "penguins", passes: int = 20,
                   window: int = 500, drift: Drift | None = DRIFT) -> Pipeline:
    p = name
    replay = ReplaySource("penguins", _repeated(passes), seed=3, start_ms=None,
                          step_ms=60_000, drift=drift)
    challengers = {
        "logreg": {"numeric": FEATURES, "model": "logistic_regression"},
        "tree": {"numeric": FEATURES, "model": "river.tree.HoeffdingTreeClassifier"},
    }
    from streamml.connectors.examplegen import ExampleGen
    from streamml.learning import Trainer

    gen = ExampleGen("penguins", pipeline=p, label="species")

    return Pipeline(name=p, settings=settings, description="penguins with injected drift",
                    components=[
                        Connector(replay, pipeline=p, batch_size=250, examplegen=gen),
                        StatisticsGen(f"{p}.examples", f"{p}.statistics", pipeline=p,
                                      count_window=window, cumulative_every=None),
                        SchemaGen(f"{p}.examples", f"{p}.schema", f"{p}.anomalies", pipeline=p,
                                  initial=baseline_schema(replay, p, examplegen=ExampleGen(
                                      "penguins", pipeline=p, label="species"))),
                        ExampleValidator(f"{p}.examples", f"{p}.anomalies", pipeline=p,
                                         schema_topic=f"{p}.schema",
                                         statistics_topic=f"{p}.statistics",
                                         example_window=window),
                        Trainer(p, challengers, snapshot_every=1000),
                    ])
