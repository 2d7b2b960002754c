"""The http source: concurrent clients, durable acks, 400 + dead letters, 401, 429."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamml.connectors.examplegen import ExampleGen
from streamml.connectors.http import HttpSource
from streamml.connectors.ingest import Ingestor
from streamml.log.embedded import EmbeddedLog
from tests.connector_helpers import read_topic, spawn_ingest_cli, wait_for, write_definition


def post(url: str, body: bytes, token: str | None = "s3cret",
         request_id: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if request_id:
        headers["X-Request-Id"] = request_id
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 - local test server
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, orjson.loads(exc.read())


def test_concurrent_clients_acks_are_durable_and_counts_match(tmp_path: Path) -> None:
    log = EmbeddedLog(str(tmp_path / "log"))
    src = HttpSource(name="web", port=0, token="s3cret")
    ing = Ingestor(log, src, "p", examplegen=ExampleGen("web", pipeline="p"), batch_size=50,
                   idle_sleep_s=0.01)
    ing.start()
    stop = threading.Event()
    runner = threading.Thread(target=ing.run, args=(stop,))
    runner.start()
    results: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        for i in range(10):
            if i % 3 == 0:
                body = orjson.dumps({"c": c, "i": i})
            elif i % 3 == 1:
                body = orjson.dumps([{"c": c, "i": i, "j": j} for j in range(5)])
            else:
                body = b"\n".join(orjson.dumps({"c": c, "i": i, "j": j}) for j in range(3))
            rid = f"c{c}-{i}" if c % 2 else None
            r = post(src.url, body, request_id=rid)
            with lock:
                results.append(r)

    try:
        assert post(src.url, b'{"x": 1}', token=None)[0] == 401
        assert post(src.url, b'{"x": 1}', token="wrong")[0] == 401
        bad = [post(src.url, b) for b in (b"{nope", b"\xff\xfe", b"[1, 2]", b'{"a": 1}\n[', b"")]
        assert [s for s, _ in bad] == [400] * 5
        threads = [threading.Thread(target=client, args=(c,)) for c in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        stop.set()
        runner.join()
        ing.close()
        log.close()
    assert all(status == 200 for status, _ in results) and len(results) == 60
    acked = [i for _, body in results for i in body["ids"]]
    assert len(acked) == len(set(acked)) == 6 * (4 * 1 + 3 * 5 + 3 * 3)
    assert any(i.startswith("web:c1-0:") for i in acked)
    broker = f"embedded://{tmp_path / 'log'}"
    # Every acknowledged record is on the topic (acks only after the flush).
    assert {e["id"] for e in read_topic(broker, "p.examples")} == set(acked)
    letters = read_topic(broker, "p.deadletter")
    assert len(letters) == 5 and {d["reason"] for d in letters} == {"unparsable"}
    assert ing.stats.records_in == len(acked) + 5 == ing.stats.examples + ing.stats.dead_letters
    originals = {d.get("original") for d in letters}
    assert "{nope" in originals


def test_saturation_answers_429_with_retry_after() -> None:
    src = HttpSource(name="web", port=0, max_queued=3, ack_timeout_s=30)
    src.open()
    first: list[tuple[int, dict[str, Any]]] = []
    t = threading.Thread(target=lambda: first.append(
        post(src.url, orjson.dumps([{"a": i} for i in range(3)]), token=None)))
    t.start()
    try:
        wait_for(lambda: src._queued == 3, timeout=10)  # noqa: SLF001
        status, body = post(src.url, b'{"a": 9}', token=None)
        assert status == 429 and body["error"] == "saturated"
        assert len(src.read(10)) == 3
        src.commit()
        t.join()
        assert first[0][0] == 200 and first[0][1]["accepted"] == 3
        assert src.position == {"seq": 3}
    finally:
        src.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_kill_9_acknowledged_posts_are_never_lost(tmp_path: Path) -> None:
    """Clients retry until acknowledged while the ingest process is killed and restarted."""
    broker = f"embedded://{tmp_path / 'log'}"
    port = free_port()
    folder = tmp_path / "connectors"
    write_definition(folder, "web", type="http", pipeline="p",
                     options={"port": port, "ack_timeout_s": 5}, ingest={"batch_size": 40})
    args = ["ingest", "web", "--dir", str(folder)]
    url = f"http://127.0.0.1:{port}/ingest"
    acked: set[str] = set()

    def client(c: int) -> None:
        for i in range(25):
            body = b"\n".join(orjson.dumps({"c": c, "i": i, "j": j}) for j in range(4))
            while True:
                try:
                    status, reply = post(url, body, token=None, request_id=f"c{c}r{i}")
                except OSError:  # connection refused/reset: the process is down
                    status, reply = 0, {}
                if status == 200:
                    acked.update(reply["ids"])
                    break
                time.sleep(0.05)

    procs = [spawn_ingest_cli(*args, broker=broker)]
    threads = [threading.Thread(target=client, args=(c,)) for c in range(4)]
    for t in threads:
        t.start()
    killer_rng = random.Random(3)
    try:
        for _ in range(3):
            time.sleep(killer_rng.uniform(1.0, 2.0))
            os.kill(procs[-1].pid, signal.SIGKILL)
            procs[-1].wait(timeout=30)
            procs.append(spawn_ingest_cli(*args, broker=broker))
        for t in threads:
            t.join(timeout=120)
    finally:
        procs[-1].send_signal(signal.SIGTERM)
        procs[-1].wait(timeout=60)
    expected = {f"web:c{c}r{i}:{j}" for c in range(4) for i in range(25) for j in range(4)}
    assert acked == expected
    assert {e["id"] for e in read_topic(broker, "p.examples")} == expected
