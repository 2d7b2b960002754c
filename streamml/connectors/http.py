"""The http source: an ingest endpoint (aiohttp) that acknowledges only durable records.

``POST /ingest`` (``route`` option) takes a JSON object, a JSON array of objects
or NDJSON (one object per line). The server runs on its own thread and event
loop, bound to ``127.0.0.1`` by default. Answers:

* ``200 {"accepted": n, "ids": [...]}`` only once the request's examples are
  flushed to the log and the position is checkpointed (the ingest loop calls
  :meth:`HttpSource.commit`): an acknowledged POST is never lost. A client that
  got no answer (timeout, crash) retries; with an ``X-Request-Id`` header the
  retry has the same ids, so consumers drop the duplicates;
* ``400`` for a malformed body (not JSON, not NDJSON, not objects, bad UTF-8):
  the whole original body becomes one dead letter (durable before the answer);
* ``401`` without the bearer ``token`` (when one is set; ``token_env`` reads it
  from the environment);
* ``429`` (with ``Retry-After``) when the bounded queue (``max_queued``
  records) is full: the pipeline is saturated; ``503`` when the source is
  closing or a request waited ``ack_timeout_s`` without becoming durable;
* ``413`` for bodies above ``max_body_bytes``.

Ids: ``<connector>:<X-Request-Id>:<i>`` (``i`` the record's index in the body)
when the client names its request, else ``<connector>:<seq>`` with a sequence
number that is part of the checkpointed position (never reused).

>>> src = HttpSource(name="h", port=0)
>>> src.open()
>>> import urllib.request
>>> req = urllib.request.Request(src.url, data=b'{"x": 1}', method="POST")
>>> import threading
>>> t = threading.Thread(target=lambda: print(urllib.request.urlopen(req).status)); t.start()
>>> import time; recs = []
>>> while not recs: recs = src.read(10); time.sleep(0.01)
>>> [r.id for r in recs]
['h:0']
>>> src.commit(); t.join()
200
>>> src.close()
"""

from __future__ import annotations

import asyncio
import hmac
import os
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson

from streamml.connectors.base import Position, SourceConnector, SourceRecord
from streamml.errors import ConfigError


@dataclass
class _Request:
    """One POST waiting in the queue or in a batch not yet durable."""

    bodies: list[bytes]
    request_id: str | None
    error: str | None = None
    raw: bytes = b""
    future: asyncio.Future[None] | None = None
    ids: list[str] = field(default_factory=list)
    remaining: int = 0


class HttpSource(SourceConnector):
    """An HTTP ingest endpoint; see the module docs for the protocol."""

    type_name = "http"

    def __init__(
        self,
        *,
        name: str,
        host: str = "127.0.0.1",
        port: int = 8765,
        route: str = "/ingest",
        token: str | None = None,
        token_env: str | None = None,
        max_queued: int = 10_000,
        max_body_bytes: int = 16 << 20,
        ack_timeout_s: float = 30.0,
        max_record_bytes: int = 1 << 20,
    ) -> None:
        if max_queued < 1:
            raise ConfigError(f"connector {name!r}: max_queued must be positive")
        self.name = name
        self.host = host
        self.port = port
        self.route = route
        self.token = os.environ.get(token_env, token) if token_env else token
        self.max_queued = max_queued
        self.max_body_bytes = max_body_bytes
        self.ack_timeout_s = ack_timeout_s
        self.max_record_bytes = max_record_bytes
        self._lock = threading.Lock()
        self._queue: deque[_Request] = deque()
        self._queued = 0
        self._head = 0  # records of the queue's first request already read
        self._inflight: list[_Request] = []  # read, not yet durable
        self._seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: Any = None
        self._accepting = False

    def describe(self) -> str:
        return f"http POST {self.host}:{self.port}{self.route}" + (" (token)" if self.token else "")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.route}"

    # -- lifecycle ------------------------------------------------------------
    def open(self, position: Position | None = None) -> None:
        self.close()
        self._seq = int((position or {}).get("seq", 0))
        ready = threading.Event()
        errors: list[BaseException] = []
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start())
            except BaseException as exc:  # noqa: BLE001 - reported to open()
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"http-source-{self.name}", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            self._thread.join()
            self._thread, self._loop = None, None
            raise ConfigError(f"connector {self.name!r}: cannot listen on "
                              f"{self.host}:{self.port}: {errors[0]}")
        self._accepting = True

    async def _start(self) -> None:
        from aiohttp import web

        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_post(self.route, self._handle)
        app.router.add_get("/health", self._health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        server = getattr(site, "_server", None)
        if self.port == 0 and server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]

    def close(self) -> None:
        self._accepting = False
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with self._lock:
            pending = list(self._inflight) + list(self._queue)
            self._inflight.clear()
            self._queue.clear()
            self._queued, self._head = 0, 0

        def fail_all() -> None:
            for req in pending:
                if req.future is not None and not req.future.done():
                    req.future.set_exception(ConnectionAbortedError("closing"))
            loop.stop()

        loop.call_soon_threadsafe(fail_all)
        thread.join(timeout=30)
        self._loop, self._thread = None, None

    @property
    def position(self) -> Position:
        return {"seq": self._seq}

    # -- the ingest loop's side -----------------------------------------------------
    def read(self, max_records: int) -> list[SourceRecord]:
        out: list[SourceRecord] = []
        with self._lock:
            while self._queue and len(out) < max_records:
                req = self._queue[0]
                if req.error is not None:
                    ident = self._next_id(req, 0)
                    out.append(SourceRecord(
                        req.raw, {"request": req.request_id or "", "seq": self._seq - 1},
                        id=ident, fmt="json", error=("unparsable", req.error)))
                    self._queue.popleft()
                    self._queued -= 1
                    self._inflight.append(req)
                    continue
                take = min(len(req.bodies) - self._head, max_records - len(out))
                for i in range(self._head, self._head + take):
                    ident = self._next_id(req, i)
                    req.ids.append(ident)
                    out.append(SourceRecord(
                        req.bodies[i], {"request": req.request_id or "", "index": i,
                                        "seq": self._seq - 1},
                        id=ident, fmt="json"))
                self._head += take
                self._queued -= take
                if self._head == len(req.bodies):
                    self._queue.popleft()
                    self._head = 0
                    self._inflight.append(req)
        return out

    def _next_id(self, req: _Request, index: int) -> str:
        seq = self._seq
        self._seq += 1
        if req.request_id is not None:
            return f"{self.name}:{req.request_id}:{index}"
        return f"{self.name}:{seq}"

    def commit(self) -> None:
        """Every request fully read so far is durable: answer its client."""
        with self._lock:
            done, self._inflight = self._inflight, []
        loop = self._loop
        if not done or loop is None:
            return

        def resolve() -> None:
            for req in done:
                if req.future is not None and not req.future.done():
                    req.future.set_result(None)

        loop.call_soon_threadsafe(resolve)

    # -- the server's side --------------------------------------------------------
    async def _health(self, request: Any) -> Any:
        from aiohttp import web

        with self._lock:
            queued = self._queued
        return web.json_response({"status": "ok", "queued": queued, "max_queued": self.max_queued})

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        if self.token is not None:
            auth = request.headers.get("Authorization", "")
            if not hmac.compare_digest(auth.encode(), f"Bearer {self.token}".encode()):
                return web.json_response({"error": "missing or wrong bearer token"}, status=401,
                                         headers={"WWW-Authenticate": "Bearer"})
        if not self._accepting:
            return web.json_response({"error": "not accepting (closing)"}, status=503)
        body = await request.read()
        request_id = request.headers.get("X-Request-Id") or None
        bodies, error = split_body(body)
        req = _Request(bodies, request_id, error=error, raw=body)
        req.future = asyncio.get_running_loop().create_future()
        count = 1 if error is not None else len(bodies)
        with self._lock:
            if self._queued + count > self.max_queued and self._queued > 0:
                return web.json_response(
                    {"error": "saturated", "queued": self._queued}, status=429,
                    headers={"Retry-After": "1"})
            self._queue.append(req)
            self._queued += count
        try:
            await asyncio.wait_for(asyncio.shield(req.future), self.ack_timeout_s)
        except (TimeoutError, ConnectionAbortedError):
            return web.json_response({"error": "not durable in time; retry"}, status=503,
                                     headers={"Retry-After": "1"})
        if error is not None:
            return web.json_response({"error": error, "dead_lettered": 1}, status=400)
        return web.json_response({"accepted": len(bodies), "ids": req.ids})


def split_body(body: bytes) -> tuple[list[bytes], str | None]:
    """A body's records (JSON bytes each), or an error for a malformed body.

    >>> split_body(b'{"a": 1}'), split_body(b'[{"a": 1}, {"a": 2}]')[0]
    (([b'{"a": 1}'], None), [b'{"a":1}', b'{"a":2}'])
    >>> split_body(b'{"a": 1}\\n\\n{"a": 2}\\n')[0], split_body(b'{"a": 1}\\n[')[1]
    ([b'{"a": 1}', b'{"a": 2}'], 'NDJSON line 2 is not a JSON object')
    """
    if not body.strip():
        return [], "empty body"
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return [], "not valid UTF-8"
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        obj = None
    else:
        if isinstance(obj, dict):
            return [body.strip()], None
        if isinstance(obj, list):
            if not all(isinstance(x, dict) for x in obj):
                return [], "a JSON array must hold objects only"
            return [orjson.dumps(x) for x in obj], None
        return [], f"a JSON {type(obj).__name__}, not an object, array or NDJSON"
    lines = [line.strip() for line in body.split(b"\n")]
    out = []
    for n, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            return [], f"NDJSON line {n} is not a JSON object"
        out.append(line)
    return out, None
