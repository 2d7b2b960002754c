"""The REST API, in TF Serving's conventions (aiohttp).

========================================================  ===============================
``GET  /v1/models``                                       ``{"models": [{"name", "version",
                                                          "state", "versions", "task",
                                                          "metrics", "created_at"}]}``
``GET  /v1/models/{name}[/versions/{v}]``                 ``{"model_version_status": [...]}``
``GET  /v1/models/{name}[/versions/{v}]/metadata``        ``{"model_spec", "metadata":
                                                          {"signature_def", "features"}}``
``POST /v1/models/{name}[/versions/{v}]:predict``         ``{"instances": [{feature: value}]}``
                                                          → ``{"predictions": [...]}``
``GET  /monitoring/prometheus/metrics``                   Prometheus text: prediction log
                                                          counters (TF Serving's path)
========================================================  ===============================

Errors are ``{"error": "..."}`` with a 4xx status: 400 for malformed JSON, a
missing or non-list ``instances``, an instance that does not match the signature,
or a model that raises while predicting (TF Serving's ``INVALID_ARGUMENT``; the
exception is logged server-side, only its message reaches the client); 404 for an
unknown model, version or path; 405 for a wrong method; 413 for a body over the
limit. A bug in the server itself is a 500 ``{"error": "internal error"}``, with
no traceback sent. Model names in paths are percent-decoded.

With a :class:`~streamml.serving.predlog.PredictionLog`, each successful
``:predict`` is offered to it (a queue append, no I/O) under a request id: the
client's ``X-Request-Id`` header (1-128 printable characters) or the server's
own ``<server id>-<counter>``, returned in the response's ``X-Request-Id``.

Predictions run inline on the event loop: a River ``predict_one`` takes
microseconds, and one loop thread means models (which are not guaranteed
thread-safe) are never called concurrently.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from streamml.client.errors import ServingError
from streamml.serving.predlog import PredictionLog
from streamml.serving.registry import ModelRegistry

logger = logging.getLogger("streamml.serving")

MAX_BODY_BYTES = 16 * 1024 * 1024
_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/]+?)(?:/versions/(?P<version>[^/:]+))?"
    r"(?P<tail>/metadata|:predict|:[A-Za-z]+)?/?$"
)
_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
METRICS_PATH = "/monitoring/prometheus/metrics"
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        content_type="application/json",
    )


def _error(message: str, status: int) -> web.Response:
    return _json({"error": message}, status)


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ServingError(f"version must be a positive integer, not {unquote(text)!r}")
    return int(text)


def _models_body(registry: ModelRegistry) -> dict[str, Any]:
    models = []
    for entry in registry.entries():
        latest = entry.latest
        models.append({
            "name": entry.name,
            "version": latest.version,
            "state": "AVAILABLE",
            "versions": sorted(entry.versions, reverse=True),
            "task": latest.signature.task,
            "metrics": latest.metrics,
            "created_at": latest.release.created_at,
        })
    return {"models": models}


def _metadata_body(registry: ModelRegistry, name: str, version: int | None) -> dict[str, Any]:
    served = registry.get(name).version(version)
    return {
        "model_spec": {"name": name, "signature_name": "serving_default",
                       "version": str(served.version)},
        "metadata": {
            "signature_def": served.signature.to_json(),
            "features": served.features(),
            "metrics": served.metrics,
            "created_at": served.release.created_at,
            "parent_version": served.release.parent_version,
            "schema_version": served.release.schema_version,
        },
    }


def _metrics_body(registry: ModelRegistry, predictions: PredictionLog | None) -> str:
    """Prometheus text exposition of the server's counters."""
    lines = ["# TYPE streamml_models_served gauge",
             f"streamml_models_served {len(registry.entries())}",
             "# TYPE streamml_model_swaps_total counter",
             f"streamml_model_swaps_total {registry.swaps}",
             "# TYPE streamml_prediction_log_enabled gauge",
             f"streamml_prediction_log_enabled {int(predictions is not None)}"]
    if predictions is not None:
        c = predictions.counts()
        for name, kind in (("offered", "counter"), ("logged", "counter"),
                           ("dropped", "counter"), ("failed", "counter")):
            lines += [f"# TYPE streamml_predictions_{name}_total {kind}",
                      f"streamml_predictions_{name}_total {c[name]}"]
        lines += ["# TYPE streamml_predictions_pending gauge",
                  f"streamml_predictions_pending {c['pending']}",
                  "# TYPE streamml_prediction_log_batches_total counter",
                  f"streamml_prediction_log_batches_total {c['batches']}"]
    return "\n".join(lines) + "\n"


class _Ids:
    """Request ids: the client's ``X-Request-Id`` if valid, else ``<server id>-<n>``."""

    def __init__(self) -> None:
        self.prefix = uuid.uuid4().hex[:12]
        self.counter = itertools.count(1)

    def of(self, request: web.Request) -> str:
        given = request.headers.get("X-Request-Id")
        if given is not None and _REQUEST_ID.match(given):
            return given
        return f"{self.prefix}-{next(self.counter)}"


async def _predict(registry: ModelRegistry, request: web.Request, name: str,
                   version: int | None, predictions_log: PredictionLog | None = None,
                   ids: _Ids | None = None) -> web.Response:
    received_ms = int(time.time() * 1000)
    served = registry.get(name).version(version)  # one lookup: the whole request uses it
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _error(f"malformed JSON: {exc}", 400)
    if not isinstance(body, dict):
        return _error('the body must be a JSON object {"instances": [...]}', 400)
    instances = body.get("instances")
    if instances is None:
        hint = " (the columnar \"inputs\" format is not supported)" if "inputs" in body else ""
        return _error(f'missing "instances"{hint}', 400)
    if not isinstance(instances, list):
        return _error('"instances" must be a list of objects', 400)
    predictions = served.predict(instances)
    response = _json({"predictions": predictions, "model_version": served.version})
    if predictions_log is not None and ids is not None:
        request_id = ids.of(request)
        predictions_log.offer(served.name, served.version, request_id, instances, predictions,
                              received_ms)
        response.headers["X-Request-Id"] = request_id
    return response


def make_app(registry: ModelRegistry, *, max_body_bytes: int = MAX_BODY_BYTES,
             predictions: PredictionLog | None = None) -> web.Application:
    """The aiohttp application serving ``registry`` (logging to ``predictions`` if given)."""
    ids = _Ids()

    @web.middleware
    async def json_errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ServingError as exc:
            if exc.__cause__ is not None:
                logger.warning("%s", exc, exc_info=exc.__cause__)
            return _error(str(exc), exc.status)
        except web.HTTPException as exc:
            return _error(exc.reason, exc.status)
        except Exception:
            logger.exception("internal error on %s %s", request.method, request.path)
            return _error("internal error", 500)

    async def dispatch(request: web.Request) -> web.Response:
        path = request.rel_url.raw_path
        if path.rstrip("/") == "/v1/models":
            if request.method != "GET":
                return _error(f"method {request.method} not allowed on /v1/models", 405)
            return _json(_models_body(registry))
        if path == METRICS_PATH:
            if request.method != "GET":
                return _error(f"method {request.method} not allowed on {METRICS_PATH}", 405)
            return web.Response(text=_metrics_body(registry, predictions),
                                content_type="text/plain")
        match = _PATH.match(path)
        if match is None:
            return _error(f"no such path: {unquote(path)}", 404)
        name = unquote(match["name"])
        version = _version(match["version"])
        tail = match["tail"]
        if tail == ":predict":
            if request.method != "POST":
                return _error(":predict needs POST", 405)
            return await _predict(registry, request, name, version, predictions, ids)
        if tail is not None and tail.startswith(":"):
            return _error(f"unsupported verb {tail!r} (only :predict)", 404)
        if request.method != "GET":
            return _error(f"method {request.method} not allowed here", 405)
        if tail == "/metadata":
            return _json(_metadata_body(registry, name, version))
        status = registry.status(name)
        if version is not None:
            rows = [r for r in status["model_version_status"] if r["version"] == str(version)]
            if not rows:
                registry.get(name).version(version)  # raises ModelNotFound with the list
            status = {"model_version_status": rows}
        return _json(status)

    app = web.Application(middlewares=[json_errors], client_max_size=max_body_bytes)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app
