"""The taxi pipeline (classification: will the tip exceed 20% of the fare?).

    taxi replay → ExampleGen → <p>.examples
      → StatisticsGen → <p>.statistics ─┐
      → SchemaGen → <p>.schema ─────────┼→ ExampleValidator → <p>.anomalies
      → Trainer (2 challengers) → <p>.candidates → Evaluator → <p>.evaluations
      → Pusher → <p>.models (signed)

    streamml run examples/taxi_pipeline.py --dry-run

The definition ships inside the package, so that ``streamml demo`` runs from an
installed wheel: read it in ``streamml/examples/taxi_pipeline.py``. This file
re-exports it, so ``streamml run examples/taxi_pipeline.py`` and
``streamml run streamml.examples.taxi_pipeline`` build the same pipeline.
"""

from streamml.examples.taxi_pipeline import (
    CHALLENGER,
    DEMO_DRIFT,
    MODULE,
    START_MS,
    TAXI_CSV,
    build_pipeline,
)

__all__ = ["CHALLENGER", "DEMO_DRIFT", "MODULE", "START_MS", "TAXI_CSV", "build_pipeline"]
