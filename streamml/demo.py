"""The main job: the taxi pipeline end to end, from a live replay to a served prediction.

:func:`run_demo` builds :mod:`streamml.examples.taxi_pipeline` (connector → ExampleGen →
StatisticsGen, SchemaGen, ExampleValidator → Trainer with two challengers →
Evaluator → Pusher), resets its topics, replays the bundled taxi CSV at
``rate`` rows/s (a fixed-seed shuffle; event times one simulated second
apart, ending about now; from halfway, fare and tips ×1.5 and a new payment
type), runs it on the given log (in this process, or spread over
``processes`` OS processes), then starts a
:class:`~streamml.serving.ModelServer` on a free port and asks it for one
prediction over REST.

When no ``signing_key`` is configured a random demo key is generated for the
run (``DemoSummary.generated_key``): models are still signed and verified.

>>> DemoConfig().rate, DemoConfig().pipeline
(1000.0, 'demo')
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from streamml.errors import ConfigError
from streamml.log.base import Log
from streamml.pipeline import Pipeline, PipelineRun, RunProgress, load_pipeline, reset_topics
from streamml.pipeline.status import PipelineView, TopicWatcher
from streamml.settings import Settings

#: The demo's pipeline: shipped in the package, so an installed wheel runs the demo.
TAXI_PIPELINE = "streamml.examples.taxi_pipeline"
#: The instance the demo sends to the model server.
DEMO_INSTANCE: dict[str, Any] = {
    "fare": 23.25, "trip_miles": 7.1, "trip_seconds": 1260, "trip_start_hour": 18,
    "trip_start_day": 5, "trip_start_month": 6, "payment_type": "Credit Card",
    "company": "Flash Cab", "pickup_community_area": 8, "dropoff_community_area": 32,
}


@dataclass(frozen=True)
class DemoConfig:
    """What the demo replays and how fast."""

    pipeline: str = "demo"
    rows: int | None = None
    rate: float = 1000.0
    """Rows per second (0: as fast as the pipeline goes)."""
    window: int = 1000
    batch_size: int = 250
    serve: bool = True
    processes: int | str = "auto"
    """OS processes the pipeline runs in (``"auto"``: min(2, usable CPUs))."""


@dataclass
class DemoUpdate:
    """A progress snapshot for live displays."""

    progress: RunProgress
    view: PipelineView
    drift_row: int | None
    total_rows: int


@dataclass
class DemoSummary:
    pipeline: str
    elapsed_s: float
    rows: int
    drift_row: int | None
    drift: str
    generated_key: bool
    progress: RunProgress
    view: PipelineView
    topics: dict[str, int]
    prediction: dict[str, Any] | None = None
    predict_url: str | None = None
    start_ms: int | None = None
    """Event time of the first replayed row (events are one second apart)."""
    step_ms: int = 1000
    instance: dict[str, Any] = field(default_factory=lambda: dict(DEMO_INSTANCE))

    @property
    def drift_ms(self) -> int | None:
        """Event time of the first drifted row."""
        if self.drift_row is None or self.start_ms is None:
            return None
        return self.start_ms + self.drift_row * self.step_ms

    @property
    def best_auc(self) -> float | None:
        aucs = [e["metrics"].get("roc_auc") for e in self.view.blessed]
        aucs = [a for a in aucs if a is not None]
        return max(aucs) if aucs else None


def demo_settings(settings: Settings) -> tuple[Settings, bool]:
    """``settings`` with a signing key: the configured one, or a fresh random demo key."""
    if settings.signing_key is not None and settings.signing_key.get_secret_value():
        return settings, False
    key = SecretStr("demo-" + secrets.token_hex(16))
    return settings.model_copy(update={"signing_key": key}), True


def build_demo_pipeline(settings: Settings, config: DemoConfig) -> Pipeline:
    return load_pipeline(TAXI_PIPELINE, settings, name=config.pipeline, rows=config.rows,
                         rate=config.rate or None, window=config.window,
                         batch_size=config.batch_size)


def predict(url: str, instance: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
    """POST ``{"instances": [instance]}`` to a TF Serving style ``:predict`` URL."""
    body = json.dumps({"instances": [instance]}).encode()
    request = urllib.request.Request(  # noqa: S310
        url, body, {"Content-Type": "application/json"})
    if not url.startswith("http://"):
        raise ConfigError(f"not an http URL: {url}")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
        return dict(json.load(response))


def serve_one_prediction(log: Log, pipeline: str, key: bytes, model: str,
                         instance: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Start a model server on a free port, wait for ``model``, predict ``instance``."""
    from streamml.serving.server import ModelServer

    with ModelServer(log, pipeline, signing_key=key, port=0) as server:
        server.wait_ready(timeout_s=30.0)
        url = f"http://127.0.0.1:{server.port}/v1/models/{model}:predict"
        deadline = time.monotonic() + 30.0
        while True:
            try:
                return url, predict(url, instance)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def run_demo(log: Log, settings: Settings, config: DemoConfig | None = None,
             on_update: Callable[[DemoUpdate], None] | None = None) -> DemoSummary:
    """Run the demo on ``log`` (see the module docstring) and return its summary."""
    cfg = config or DemoConfig()
    settings, generated = demo_settings(settings)
    pipeline = build_demo_pipeline(settings, cfg)
    source = pipeline.connectors[0].source
    reset_topics(log, pipeline)
    started = time.monotonic()
    watcher = TopicWatcher(log, pipeline.name)
    run = PipelineRun(pipeline, log, processes=cfg.processes)
    try:
        with run:
            total = getattr(source, "rows", 0)
            drift_row = getattr(source, "drift_row", None)

            def report(progress: RunProgress) -> None:
                if on_update is not None:
                    on_update(DemoUpdate(progress, watcher.poll(), drift_row, total))

            progress = run.run_until_done(idle_s=0.8, on_progress=report, every_s=0.125)
        view = watcher.catch_up()
    finally:
        watcher.close()
    summary = DemoSummary(
        pipeline=pipeline.name, elapsed_s=0.0, rows=progress.ingested, drift_row=drift_row,
        drift=getattr(getattr(source, "drift", None), "describe", lambda: "none")(),
        generated_key=generated, progress=progress, view=view,
        topics={t: log.describe_topic(t).records for t in pipeline.topics
                if log.topic_exists(t)},
        start_ms=getattr(source, "start_ms", None), step_ms=getattr(source, "step_ms", 1000),
    )
    if cfg.serve and view.models:
        assert settings.signing_key is not None
        key = settings.signing_key.get_secret_value().encode()
        model = str(view.models[-1]["name"])
        summary.predict_url, summary.prediction = serve_one_prediction(
            log, pipeline.name, key, model, summary.instance)
    summary.elapsed_s = time.monotonic() - started
    return summary
