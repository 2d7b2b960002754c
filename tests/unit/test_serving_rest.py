"""The model server over REST on the embedded log: endpoints, errors, refusals, hot swap."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamml.log import Log, open_log
from streamml.serving import ModelServer
from tests.serving_helpers import (
    INSTANCE,
    KEY,
    create_topic,
    flip_data_byte,
    publish,
    release,
    train,
    wait_for,
)


class Client:
    """A keep-alive HTTP client; returns (status, decoded JSON body)."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, path: str, body: Any = None,
                raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else orjson.dumps(body))
        self.conn.request(method, path, body=data,
                          headers={"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        payload = resp.read()
        assert resp.getheader("Content-Type", "").startswith("application/json"), payload
        return resp.status, orjson.loads(payload)

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Log]:
    with open_log(f"embedded://{tmp_path / 'log'}") as embedded:
        create_topic(embedded)
        yield embedded


@pytest.fixture
def server(log: Log) -> Iterator[ModelServer]:
    with ModelServer(log, "demo", signing_key=KEY, port=0, keep_versions=2) as srv:
        yield srv


@pytest.fixture
def client(server: ModelServer) -> Iterator[Client]:
    c = Client(server.port)
    yield c
    c.close()


def served_version(server: ModelServer, name: str = "tipper") -> int:
    entry = server.registry._entries.get(name)
    return 0 if entry is None else entry.latest.version


def test_endpoints_follow_tf_serving(log: Log, server: ModelServer, client: Client) -> None:
    assert client.request("GET", "/v1/models") == (200, {"models": []})
    publish(log, *release(1))
    wait_for(lambda: served_version(server) == 1, what="version 1")
    publish(log, *release(2, chunk_size=200))
    wait_for(lambda: served_version(server) == 2, what="version 2")

    status, body = client.request("GET", "/v1/models")
    assert status == 200
    [model] = body["models"]
    assert model["name"] == "tipper" and model["version"] == 2 and model["state"] == "AVAILABLE"
    assert model["metrics"] == {"roc_auc": pytest.approx(0.902)}

    status, body = client.request("GET", "/v1/models/tipper")
    assert status == 200
    assert body["model_version_status"][0] == {
        "version": "2", "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    }

    status, body = client.request("GET", "/v1/models/tipper/metadata")
    assert status == 200 and body["model_spec"]["version"] == "2"
    assert body["metadata"]["features"]["fare"] == {
        "type": "float", "valency": "scalar", "required": True}
    assert body["metadata"]["signature_def"]["task"] == "classification"

    status, body = client.request("POST", "/v1/models/tipper:predict",
                                  {"instances": [INSTANCE, {"fare": 1.0}]})
    assert status == 200
    assert body["predictions"][0] == pytest.approx(train(2).predict_proba_one(INSTANCE)[True])
    assert len(body["predictions"]) == 2 and body["model_version"] == 2

    publish(log, *release(3))
    wait_for(lambda: served_version(server) == 3, what="version 3")
    for v in (2, 3):
        status, body = client.request("POST", f"/v1/models/tipper/versions/{v}:predict",
                                      {"instances": [INSTANCE]})
        assert status == 200 and body["model_version"] == v
        assert body["predictions"] == [pytest.approx(train(v).predict_proba_one(INSTANCE)[True])]
    status, body = client.request("GET", "/v1/models/tipper/versions/2/metadata")
    assert status == 200 and body["model_spec"]["version"] == "2"
    status, body = client.request("GET", "/v1/models/tipper")
    assert [(r["version"], r["state"]) for r in body["model_version_status"]] == [
        ("3", "AVAILABLE"), ("2", "AVAILABLE"), ("1", "END")]  # keep_versions=2


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "needle"),
    [
        ("POST", "/v1/models/tipper:predict", b"{not json", 400, "malformed JSON"),
        ("POST", "/v1/models/tipper:predict", b"[1, 2]", 400, "must be a JSON object"),
        ("POST", "/v1/models/tipper:predict", b"{}", 400, 'missing "instances"'),
        ("POST", "/v1/models/tipper:predict", b'{"inputs": {"fare": [1]}}', 400, "columnar"),
        ("POST", "/v1/models/tipper:predict", b'{"instances": {"fare": 1}}', 400, "must be a list"),
        ("POST", "/v1/models/tipper:predict", b'{"instances": [{"trip_miles": 1}]}', 400,
         "instance 0: missing required feature 'fare'"),
        ("POST", "/v1/models/tipper:predict", b'{"instances": [{"fare": "x"}]}', 400,
         "feature 'fare' must be a number"),
        ("POST", "/v1/models/tipper:predict", b'{"instances": [7]}', 400, "must be an object"),
        ("POST", "/v1/models/nope:predict", b'{"instances": []}', 404, "no model named 'nope'"),
        ("POST", "/v1/models/tipper/versions/9:predict", b'{"instances": []}', 404,
         "no loaded version 9 (loaded: 1)"),
        ("POST", "/v1/models/tipper/versions/x:predict", b"{}", 400, "positive integer"),
        ("GET", "/v1/models/tipper:predict", None, 405, "needs POST"),
        ("POST", "/v1/models/tipper:classify", b"{}", 404, "unsupported verb"),
        ("GET", "/v1/models/nope", None, 404, "no model named"),
        ("GET", "/v1/models/nope/metadata", None, 404, "no model named"),
        ("GET", "/v1/models/tipper/versions/5", None, 404, "no loaded version 5"),
        ("GET", "/nowhere", None, 404, "no such path"),
        ("DELETE", "/v1/models", None, 405, "not allowed"),
    ],
)
def test_bad_requests_get_json_4xx(log: Log, server: ModelServer, client: Client, method: str,
                                   path: str, body: bytes | None, status: int,
                                   needle: str) -> None:
    publish(log, *release(1))
    wait_for(lambda: served_version(server) == 1)
    got_status, got = client.request(method, path, raw=body)
    assert got_status == status, got
    assert set(got) == {"error"} and needle in got["error"], got
    assert "Traceback" not in got["error"]


def test_oversized_body_is_413_json(log: Log) -> None:
    publish(log, *release(1))
    with ModelServer(log, "demo", signing_key=KEY, port=0) as srv:
        assert srv.wait_ready(20)
        c = Client(srv.port)
        try:
            status, body = c.request("POST", "/v1/models/tipper:predict",
                                     raw=b" " * (17 * 1024 * 1024))
        finally:
            c.close()
    assert status == 413 and "error" in body


def test_tampered_and_unsigned_releases_keep_the_old_model_serving(
    log: Log, server: ModelServer, client: Client
) -> None:
    publish(log, *release(1))
    wait_for(lambda: served_version(server) == 1)
    good, _ = release(2)
    publish(log, good, value=flip_data_byte(good))
    publish(log, *release(3, key=None))
    wait_for(lambda: server.subscriber.stats["refused"] == 2, what="two refusals")
    status, body = client.request("POST", "/v1/models/tipper:predict", {"instances": [INSTANCE]})
    assert status == 200 and body["model_version"] == 1
    status, body = client.request("GET", "/v1/models/tipper")
    rows = {r["version"]: r for r in body["model_version_status"]}
    assert rows["1"]["state"] == "AVAILABLE"
    assert rows["2"]["state"] == "END" and rows["2"]["status"]["reason"] == "bad_signature"
    assert rows["3"]["status"]["reason"] == "unsigned"


def test_without_a_key_the_server_refuses_every_model(log: Log) -> None:
    publish(log, *release(1))
    with ModelServer(log, "demo", signing_key=None, port=0) as srv:
        assert srv.wait_ready(20)
        c = Client(srv.port)
        try:
            assert c.request("GET", "/v1/models") == (200, {"models": []})
            status, body = c.request("GET", "/v1/models/tipper")
            assert status == 200
            [row] = body["model_version_status"]
            assert row["state"] == "END" and row["status"]["reason"] == "no_key"
            assert "fail closed" in row["status"]["error_message"]
            status, body = c.request("POST", "/v1/models/tipper:predict",
                                     {"instances": [INSTANCE]})
            assert status == 404
        finally:
            c.close()


def test_hot_swap_under_concurrent_requests_drops_nothing(
    log: Log, server: ModelServer
) -> None:
    versions = 20
    expected = {v: train(v).predict_proba_one(INSTANCE)[True] for v in range(1, versions + 2)}
    publish(log, *release(1))
    wait_for(lambda: served_version(server) == 1)
    stop = threading.Event()
    failures: list[Any] = []
    seen: list[int] = []
    lock = threading.Lock()

    def hammer() -> None:
        c = Client(server.port)
        try:
            while not stop.is_set():
                try:
                    status, body = c.request("POST", "/v1/models/tipper:predict",
                                             {"instances": [INSTANCE]})
                except Exception as exc:  # a dropped connection is a failure too
                    failures.append(repr(exc))
                    continue
                v = body.get("model_version")
                if status != 200 or body["predictions"] != [expected.get(v)]:
                    failures.append((status, body))
                with lock:
                    seen.append(v)
        finally:
            c.close()

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for v in range(2, versions + 2):
            publish(log, *release(v, chunk_size=300 if v % 3 == 0 else None))
            wait_for(lambda v=v: served_version(server) == v, what=f"version {v}")
            n = len(seen)
            wait_for(lambda n=n: len(seen) > n, what="requests served after the swap")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert server.registry.swaps == versions
    assert set(seen) <= set(expected) and max(seen) == versions + 1
    assert len(set(seen)) >= versions // 2  # requests really ran across many versions
