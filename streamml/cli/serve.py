"""``streamml serve``: the model server (REST, TF Serving conventions)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

import click

from streamml.cli.context import CliState, pass_state
from streamml.errors import ConfigError
from streamml.settings import Settings

SIGNING_KEY_ENV = "STREAMML_SIGNING_KEY"


def signing_key_from(settings: Settings) -> bytes | None:
    """The model signing key of ``settings`` as UTF-8 bytes, or ``None`` if unset or empty.

    >>> signing_key_from(Settings(signing_key="s3cret"))
    b's3cret'
    >>> signing_key_from(Settings()) is None
    True
    """
    if settings.signing_key is None:
        return None
    value = settings.signing_key.get_secret_value()
    return value.encode("utf-8") if value else None


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("streamml: %(message)s"))
    for name in ("streamml.client", "streamml.serving"):
        log = logging.getLogger(name)
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind (0.0.0.0 exposes the server to the network).")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port (TF Serving's REST default; 0 picks a free one).")
@click.option("--pipeline", "-p", default=None,
              help="Pipeline whose <pipeline>.models topic is served (default: setting).")
@click.option("--keep-versions", default=3, show_default=True, type=click.IntRange(1, 1000),
              help="Recent versions kept loaded per model for /versions/{v}:predict.")
@click.option("--log-predictions/--no-log-predictions", default=False, show_default=True,
              envvar="STREAMML_SERVE_LOG_PREDICTIONS",
              help="Log each :predict's instances and predictions to <pipeline>.predictions "
                   "(from a background thread; $STREAMML_SERVE_LOG_PREDICTIONS).")
@click.option("--prediction-queue", default=10_000, show_default=True,
              type=click.IntRange(1, 10_000_000),
              help="Instances buffered for the prediction log; beyond, they are dropped "
                   "and counted, never slowing requests.")
@pass_state
def command(state: CliState, host: str, port: int, pipeline: str | None,
            keep_versions: int, log_predictions: bool, prediction_queue: int) -> None:
    """Serve the latest verified version of every model of PIPELINE over REST.

    Loads each signed release of <pipeline>.models, verifies its HMAC with the
    signing_key setting ($STREAMML_SIGNING_KEY) and its artifact checksum, and
    hot-swaps new versions without dropping requests. Unsigned or tampered releases are refused and
    logged; the previous version keeps serving. Endpoints: GET /v1/models,
    GET /v1/models/NAME[/metadata], POST /v1/models/NAME[/versions/V]:predict
    with {"instances": [{feature: value}, ...]}, GET /monitoring/prometheus/metrics.
    With --log-predictions every prediction is also written to <pipeline>.predictions.
    """
    from streamml.serving import ModelServer

    key = signing_key_from(state.settings)
    if key is None:
        raise ConfigError(
            f"no signing key: set {SIGNING_KEY_ENV} (or signing_key in the config file) "
            "to the Pusher's HMAC key "
            "(the server loads only models signed with it, so without one it would serve nothing)"
        )
    pipeline = pipeline or state.settings.pipeline
    log = state.log()
    try:
        server = ModelServer(log, pipeline, signing_key=key, host=host, port=port,
                             keep_versions=keep_versions, log_predictions=log_predictions,
                             prediction_queue=prediction_queue)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    _setup_logging()
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    server.start()
    try:
        logging_to = (f", logging predictions to {server.predictions.topic}"
                      if server.predictions is not None else "")
        click.echo(f"streamml: serving {server.subscriber.topic} on {server.url}{logging_to} "
                   "(Ctrl-C stops)", err=True)
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
