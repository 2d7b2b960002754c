"""The model server: a subscriber thread feeding a registry, an aiohttp loop serving it.

Why aiohttp rather than the standard library's ``ThreadingHTTPServer``: its HTTP
parser is in C, it keeps connections alive with HTTP/1.1 by default, and one
event loop serves many concurrent clients without a thread (and GIL hand-offs)
per connection; predictions of River models take microseconds, so they run
inline on the loop, serialized, with no lock around models that are not
thread-safe. aiohttp is already installed (faust depends on it).

Hot swap: the :class:`~streamml.client.ModelSubscriber` thread verifies,
unpickles and warms up each new version, then
:meth:`~streamml.serving.registry.ModelRegistry.install` swaps one reference.
Requests in flight keep the entry they looked up. Refused releases (unsigned,
tampered, no signing key configured...) are logged, recorded in the model's status
and change nothing: the previous version keeps serving.

Prediction logging (``log_predictions=True``): a
:class:`~streamml.serving.predlog.PredictionLog` writes every ``:predict``'s
instances and predictions to ``<pipeline>.predictions`` from its own thread,
through a bounded queue (``prediction_queue`` instances); when it is full,
predictions are dropped and counted rather than slowing requests. Its counters
are at ``GET /monitoring/prometheus/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from typing import Any

from aiohttp import web

from streamml.client.subscriber import ModelSubscriber
from streamml.client.verify import Refusal
from streamml.history.deployments import DeploymentRecorder, default_host
from streamml.log import Log, open_log
from streamml.serving.app import make_app
from streamml.serving.predlog import PredictionLog
from streamml.serving.registry import ModelRegistry

logger = logging.getLogger("streamml.serving")


class ModelServer:
    """Serve the verified models of ``<pipeline>.models`` over REST.

    ``signing_key=None`` fails closed: the server runs but refuses every model.
    Binds ``host:port`` (``port=0`` picks a free port; see :attr:`port`).

    >>> import json, tempfile, urllib.request
    >>> from streamml.log import open_log
    >>> log = open_log("embedded://" + tempfile.mkdtemp())
    >>> with ModelServer(log, "demo", signing_key=b"k", port=0) as server:
    ...     url = f"http://127.0.0.1:{server.port}/v1/models"
    ...     json.load(urllib.request.urlopen(url))
    {'models': []}
    >>> log.close()
    """

    def __init__(
        self,
        log: Log | str,
        pipeline: str = "demo",
        *,
        signing_key: bytes | None,
        host: str = "127.0.0.1",
        port: int = 8501,
        keep_versions: int = 3,
        poll_interval_s: float = 0.05,
        log_predictions: bool = False,
        prediction_queue: int = 10_000,
    ) -> None:
        self.registry = ModelRegistry(keep_versions=keep_versions)
        # one log (one set of clients on Kafka) for the subscriber, lineage and predictions
        self._own_log: Log | None = None
        if isinstance(log, str):
            log = self._own_log = open_log(log)
        self.subscriber = ModelSubscriber(
            log, pipeline, signing_key=signing_key, on_refusal=self._refused,
            poll_interval_s=poll_interval_s,
        )
        self.host = host
        self._sock = socket.create_server((host, port), backlog=1024)
        self.port: int = self._sock.getsockname()[1]
        self.deployments = DeploymentRecorder(log, pipeline, host=default_host(self.port))
        self.predictions: PredictionLog | None = None
        if log_predictions:
            self.predictions = PredictionLog(log, pipeline, source=default_host(self.port),
                                             max_pending=prediction_queue)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._http_thread: threading.Thread | None = None
        self._sub_thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _refused(self, refusal: Refusal) -> None:
        self.registry.refuse(refusal)

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> ModelServer:
        """Start the HTTP loop and the subscriber threads; return once listening."""
        if self.predictions is not None:
            self.predictions.start()
        self._http_thread = threading.Thread(target=self._run_http, name="streamml-http",
                                             daemon=True)
        self._http_thread.start()
        self._started.wait()
        if self._start_error is not None:
            self._http_thread.join()
            self._http_thread = None
            self.stop()
            raise self._start_error
        self._sub_thread = threading.Thread(target=self._run_subscriber,
                                            name="streamml-subscriber", daemon=True)
        self._sub_thread.start()
        return self

    def wait_ready(self, timeout_s: float = 30.0) -> bool:
        """Wait until the models on the topic at start are loaded (or refused)."""
        step = 0.02
        waited = 0.0
        while waited < timeout_s:
            if self.subscriber.caught_up:
                return True
            threading.Event().wait(step)
            waited += step
        return self.subscriber.caught_up

    def _run_subscriber(self) -> None:
        try:
            for served in self.subscriber.updates(timeout_s=None):
                self.registry.install(served)
                self.deployments.loaded(served.release)  # lineage: this server loaded it
        except Exception:
            logger.exception("model subscriber stopped")

    def _run_http(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            runner = web.AppRunner(make_app(self.registry, predictions=self.predictions),
                                   access_log=None,
                                   handle_signals=False, shutdown_timeout=1.0)
            loop.run_until_complete(runner.setup())
            site = web.SockSite(runner, self._sock, backlog=1024)
            loop.run_until_complete(site.start())
            self._runner = runner
        except BaseException as exc:
            self._start_error = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> None:
        """Stop serving and subscribing; close sockets (idempotent)."""
        self.subscriber.stop()
        if self._sub_thread is not None:
            self._sub_thread.join(timeout=10)
            self._sub_thread = None
        if self._loop is not None and self._http_thread is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._http_thread.join(timeout=10)
            self._http_thread = None
        self.subscriber.close()
        self.deployments.close()
        if self.predictions is not None:
            self.predictions.stop()  # after the HTTP loop: what was answered gets written
        if self._own_log is not None:
            self._own_log.close()
            self._own_log = None
        self._sock.close()

    def serve_forever(self) -> None:
        """Start and block until interrupted (Ctrl-C / SIGTERM via KeyboardInterrupt)."""
        self.start()
        try:
            threading.Event().wait()
        finally:
            self.stop()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
