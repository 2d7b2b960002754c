"""Model server latency and throughput, steady and during 100 hot swaps.

Setup: an embedded log in a temporary directory; a signed River logistic
regression (``tests/serving_helpers.train``) published as version 1; the model
server (``ModelServer``, aiohttp) in its own process on 127.0.0.1, so the load
generator does not share its GIL. ``--clients`` concurrent keep-alive clients
(aiohttp, one event loop) POST single-instance ``:predict`` requests; latency is
measured per request on the client, from send to parsed response.

Phases:

1. warm-up (``--warmup`` requests, not measured);
2. steady: until ``--requests`` requests or ``--seconds`` seconds, whichever first;
3. swaps: ``--swaps`` new versions published one after another while the clients
   keep going; each next version is published once a response from the previous
   one has been seen (bounded wait), so every swap really happens under load.

``--log-predictions on`` runs the server with prediction logging
(``<p>.predictions``, written from a background thread); ``both`` runs the whole
benchmark ``--rounds`` times each way, alternating without and with logging (so
load from other processes hits both alike), and prints the steady figures side
by side with their medians (the baseline is the runs without logging).

Reported: p50/p99/max latency and requests/s per phase, failed requests (any non-200
or a prediction that does not match the version that answered), and the ratio of
p99 during swaps to steady p99 (target <= 2x).

Usage::

    .venv/bin/python bench/serving_latency.py
    .venv/bin/python bench/serving_latency.py --clients 16 --requests 50000 --swaps 100
    .venv/bin/python bench/serving_latency.py --log-predictions both
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamml.log import open_log  # noqa: E402
from tests.serving_helpers import (  # noqa: E402
    INSTANCE,
    KEY,
    create_topic,
    publish,
    release,
    train,
)

SERVER = """
import sys
from streamml.serving import ModelServer
server = ModelServer(sys.argv[1], "demo", signing_key=sys.argv[2].encode(), port=0,
                     keep_versions=3, log_predictions=sys.argv[3] == "on")
server.start()
server.wait_ready(60)
print(server.port, flush=True)
sys.stdin.read()
server.stop()
"""


def prediction_counts(port: int) -> dict[str, float]:
    """The server's prediction log counters (``/monitoring/prometheus/metrics``)."""
    url = f"http://127.0.0.1:{port}/monitoring/prometheus/metrics"
    with urllib.request.urlopen(url) as resp:  # noqa: S310 - our own local server
        text = resp.read().decode()
    return {ln.split()[0].removeprefix("streamml_predictions_"): float(ln.split()[1])
            for ln in text.splitlines() if ln.startswith("streamml_predictions_")}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Load:
    def __init__(self, url: str, expected: dict[int, float]) -> None:
        self.url = url
        self.expected = expected
        self.phase = "warmup"
        self.lat: dict[str, list[float]] = {"warmup": [], "steady": [], "swaps": []}
        self.failed: dict[str, int] = {"warmup": 0, "steady": 0, "swaps": 0}
        self.latest_seen = 0
        self.stop = False
        self.body = orjson.dumps({"instances": [INSTANCE]})

    async def client(self, session: aiohttp.ClientSession) -> None:
        headers = {"Content-Type": "application/json"}
        while not self.stop:
            phase = self.phase
            t0 = time.perf_counter()
            try:
                async with session.post(self.url, data=self.body, headers=headers) as resp:
                    raw = await resp.read()
                    status = resp.status
            except aiohttp.ClientError:
                self.failed[phase] += 1
                continue
            elapsed = time.perf_counter() - t0
            body = orjson.loads(raw)
            version = body.get("model_version")
            if status != 200 or body.get("predictions") != [self.expected.get(version)]:
                self.failed[phase] += 1
                continue
            self.lat[phase].append(elapsed)
            if version > self.latest_seen:
                self.latest_seen = version


async def run(args: argparse.Namespace, url: str, log_url: str) -> tuple[Load, dict[str, float]]:
    expected = {v: train(v).predict_proba_one(INSTANCE)[True] for v in range(1, args.swaps + 2)}
    load = Load(url, expected)
    durations: dict[str, float] = {}
    connector = aiohttp.TCPConnector(limit=args.clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(load.client(session)) for _ in range(args.clients)]
        while len(load.lat["warmup"]) < args.warmup:
            await asyncio.sleep(0.01)
        load.phase = "steady"
        t0 = time.perf_counter()
        while len(load.lat["steady"]) < args.requests and time.perf_counter() - t0 < args.seconds:
            await asyncio.sleep(0.01)
        durations["steady"] = time.perf_counter() - t0
        load.phase = "swaps"
        t0 = time.perf_counter()
        releases = [release(v, chunk_size=400 if v % 4 == 0 else None)
                    for v in range(2, args.swaps + 2)]
        with open_log(log_url) as log:
            for rel, chunks in releases:
                publish(log, rel, chunks)
                deadline = time.perf_counter() + 10
                while load.latest_seen < rel.version and time.perf_counter() < deadline:
                    await asyncio.sleep(0.002)
        durations["swaps"] = time.perf_counter() - t0
        load.stop = True
        await asyncio.gather(*tasks)
    return load, durations


def trial(args: argparse.Namespace, logging: str) -> tuple[Load, dict[str, float], str]:
    """One full run against a fresh server; ``logging`` is ``"on"`` or ``"off"``."""
    with tempfile.TemporaryDirectory() as tmp:
        log_url = f"embedded://{tmp}/log"
        with open_log(log_url) as log:
            create_topic(log)
            publish(log, *release(1))
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, log_url, KEY.decode(), logging],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )
        counts: dict[str, float] = {}
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            url = f"http://127.0.0.1:{port}/v1/models/tipper:predict"
            load, durations = asyncio.run(run(args, url, log_url))
            counts = prediction_counts(port)
        finally:
            server.communicate(input="", timeout=60)
        note = "prediction logging off"
        if logging == "on":
            with open_log(log_url) as log:
                on_topic = log.describe_topic("demo.predictions").records
            note = (f"prediction logging on: {counts['offered_total']:.0f} instances offered, "
                    f"{counts['logged_total']:.0f} logged at stop time + "
                    f"{counts['pending']:.0f} pending (then written at stop), "
                    f"{counts['dropped_total']:.0f} dropped; {on_topic} records on "
                    "demo.predictions")
    return load, durations, note


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--swaps", type=int, default=100)
    parser.add_argument("--log-predictions", choices=("off", "on", "both"), default="off",
                        help="serve with prediction logging; 'both' compares off and on")
    parser.add_argument("--rounds", type=int, default=3,
                        help="with --log-predictions both: alternating runs of each")
    args = parser.parse_args()
    modes = (["off", "on"] * args.rounds if args.log_predictions == "both"
             else [args.log_predictions])
    results = [(mode, *trial(args, mode)) for mode in modes]
    code = 0
    for _, load, durations, note in results:
        code |= report(args, load, durations, note)
    if len(results) > 1:
        print()
        print("| steady, single-instance :predict | run | req/s | p50 ms | p99 ms |")
        print("|---|---:|---:|---:|---:|")
        for mode in ("off", "on"):
            rows = [(len(lo.lat["steady"]) / du["steady"], pct(lo.lat["steady"], 0.5) * 1e3,
                     pct(lo.lat["steady"], 0.99) * 1e3)
                    for m, lo, du, _ in results if m == mode]
            for i, (rps, p50, p99) in enumerate(rows, 1):
                print(f"| prediction logging {mode} | {i} | {rps:,.0f} | {p50:.2f} | {p99:.2f} |")
            print(f"| **prediction logging {mode}, median** | | "
                  f"**{statistics.median(r[0] for r in rows):,.0f}** | "
                  f"**{statistics.median(r[1] for r in rows):.2f}** | "
                  f"**{statistics.median(r[2] for r in rows):.2f}** |")
    return code


def report(args: argparse.Namespace, load: Load, durations: dict[str, float], note: str) -> int:
    print(f"# serving latency: {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, {args.clients} concurrent keep-alive clients, "
          f"single-instance :predict, server in its own process; {note}")
    print()
    print("| phase | requests | failed | req/s | p50 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for phase in ("steady", "swaps"):
        lat = load.lat[phase]
        print(f"| {phase if phase == 'steady' else f'{args.swaps} hot swaps'} | {len(lat)} | "
              f"{load.failed[phase]} | {len(lat) / durations[phase]:,.0f} | "
              f"{pct(lat, 0.5) * 1e3:.2f} | {pct(lat, 0.99) * 1e3:.2f} | "
              f"{max(lat) * 1e3:.2f} |")
    steady_p99 = pct(load.lat["steady"], 0.99)
    swap_p99 = pct(load.lat["swaps"], 0.99)
    ratio = swap_p99 / steady_p99
    failed = load.failed["steady"] + load.failed["swaps"]
    print()
    print(f"versions served during the swap phase: up to {load.latest_seen} "
          f"(published {args.swaps + 1}); mean steady latency "
          f"{statistics.fmean(load.lat['steady']) * 1e3:.2f} ms")
    print(f"p99 during swaps / steady p99 = {ratio:.2f}x (target <= 2x): "
          f"{'PASS' if ratio <= 2 else 'FAIL'}; failed requests: {failed} "
          f"({'PASS' if failed == 0 else 'FAIL'})")
    return 0 if ratio <= 2 and failed == 0 and load.latest_seen == args.swaps + 1 else 1


if __name__ == "__main__":
    sys.exit(main())
