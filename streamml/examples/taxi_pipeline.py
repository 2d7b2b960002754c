"""The taxi pipeline (classification: will the tip exceed 20% of the fare?).

    taxi replay (or the taxi-file connector) → ExampleGen → <p>.examples
      → StatisticsGen → <p>.statistics ─┐
      → SchemaGen → <p>.schema ─────────┼→ ExampleValidator → <p>.anomalies
      → Trainer (2 challengers) → <p>.candidates → Evaluator → <p>.evaluations
      → Pusher → <p>.models (signed)

Run it:  streamml run streamml.examples.taxi_pipeline   (or the thin copy
``examples/taxi_pipeline.py`` in a checkout; needs a signing_key setting;
``streamml demo`` runs it with a per-run demo key). It lives in the package so
that ``streamml demo`` works from an installed wheel.

The default source replays the bundled CSV as a live stream: a deterministic
shuffle (seed 7; the file in row order is not stationary on pickup_*/dropoff_*),
event times one simulated second apart (ending about now), and from halfway
through an injected drift: fare and tips ×1.5 and a new payment type
("Mobile") on a quarter of the trips. ``source="file"`` reads the ``taxi-file`` connector instead.
"""

from __future__ import annotations

from typing import Literal

from streamml.connectors.definition import DATA_DIR
from streamml.errors import ConfigError
from streamml.history.recorder import lineage_components
from streamml.learning import Evaluator, GateConfig, MetricThreshold, Pusher, Trainer
from streamml.pipeline import Connector, Drift, Pipeline, ReplaySource
from streamml.pipeline.replay import baseline_schema
from streamml.settings import Settings
from streamml.statistics.processor import StatisticsGen
from streamml.validation import ExampleValidator, SchemaGen

#: The user module (TFX ``module_file``), imported by its dotted name.
MODULE = "streamml.examples.taxi_module"
TAXI_CSV = str(DATA_DIR / "taxi.csv")
#: Event times of the replay, one second apart, start here; ``None``: so that the
#: replay ends about now. A fixed past date does not work on Kafka: topics delete
#: records by their (event-time) timestamps once older than ``retention.ms``.
START_MS: int | None = None
#: The second challenger, declarative: hours bucketized, a larger learning rate.
CHALLENGER = {
    "numeric": ["fare", "trip_miles", "trip_seconds", "pickup_latitude", "pickup_longitude",
                "dropoff_latitude", "dropoff_longitude"],
    "categorical": ["payment_type", "company"],
    "bucketize": {"trip_start_hour": [6, 10, 16, 20]},
    "model": "logistic_regression",
    "model_params": {},
}
DEMO_DRIFT = Drift(at=0.5, scale={"fare": 1.5, "tips": 1.5},
                   new_category=("payment_type", "Mobile", 0.25))


def build_pipeline(
    settings: Settings,
    *,
    name: str = "taxi",
    source: Literal["replay", "file"] = "replay",
    drift: Drift | None = DEMO_DRIFT,
    rows: int | None = None,
    rate: float | None = None,
    batch_size: int = 500,
    window: int = 1000,
    seed: int = 7,
    start_ms: int | None = START_MS,
    mini_batch: int | None = None,
) -> Pipeline:
    """The taxi pipeline named ``name``; ``window``: examples per statistics window and split.

    ``mini_batch``: the Trainer learns mini-batches of that many examples; the
    ``logreg`` challenger is then the module's ``build_batch_model`` (``learn_many``),
    while the bucketized one, not mini-batch capable, still learns one at a time.
    """
    if settings.signing_key is None or not settings.signing_key.get_secret_value():
        raise ConfigError("the taxi pipeline publishes signed models: set signing_key "
                          "(STREAMML_SIGNING_KEY, or signing_key: in streamml.yaml)")
    key = settings.signing_key.get_secret_value().encode()
    p = name
    if source == "file":
        connector = Connector("taxi-file", pipeline=p, rate=rate, batch_size=batch_size,
                              max_records=rows)
        initial = None  # SchemaGen infers version 1 from the first `window` examples
    else:
        replay = ReplaySource("taxi", TAXI_CSV, seed=seed, start_ms=start_ms, step_ms=1000,
                              drift=drift, limit=rows)
        connector = Connector(replay, pipeline=p, rate=rate, batch_size=batch_size)
        # Version 1 is inferred from the replay's baseline (pre-drift) part, as TFX's
        # SchemaGen runs over the training data: only the injected drift breaks it.
        initial = baseline_schema(replay, p)
    gate = GateConfig(min_examples=1000, thresholds=[
        MetricThreshold(metric="roc_auc", lower=0.92),
        MetricThreshold(metric="roc_auc", change_absolute=-0.01),
        MetricThreshold(metric="log_loss", upper=0.5),
    ])
    return Pipeline(
        name=p,
        description="Chicago taxi trips: big tippers (classification), with drift alerts",
        settings=settings,
        components=[
            connector,
            StatisticsGen(f"{p}.examples", f"{p}.statistics", pipeline=p, count_window=window,
                          cumulative_every=None),
            SchemaGen(f"{p}.examples", f"{p}.schema", f"{p}.anomalies", pipeline=p,
                      infer_from=window, initial=initial),
            ExampleValidator(f"{p}.examples", f"{p}.anomalies", pipeline=p,
                             schema_topic=f"{p}.schema", statistics_topic=f"{p}.statistics",
                             example_window=window),
            # progressive=False: the Evaluator judges every candidate (prequential, on the
            # eval split); nothing here reads the Trainer's own test-then-train metrics,
            # which cost a predict per model and train example (~1/4 of the Trainer).
            Trainer(p, {"logreg": f"{MODULE}:build_batch_model" if mini_batch else MODULE,
                        "logreg_buckets": CHALLENGER}, MODULE,
                    snapshot_every=2000, progressive=False, mini_batch=mini_batch),
            Evaluator(p, gate, MODULE, window=2000, slice_features=["payment_type"]),
            Pusher(p, key, key_id="demo", schema_topic=f"{p}.schema"),
            *lineage_components(p, settings),  # <p>.metadata lineage → lineage.duckdb
        ],
    )
