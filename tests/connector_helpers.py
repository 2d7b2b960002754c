"""Helpers of the connector tests: run `streamml ingest` in a subprocess, read topics back."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import orjson
import yaml

from streamml.log import open_log
from streamml.log.base import TopicPartition
from streamml.settings import Settings
from tests.cli_helpers import ROOT, cli_env


def cli_argv(*args: str, broker: str) -> list[str]:
    return [sys.executable, "-m", "streamml.cli.main", "--broker", broker, *args]


def run_ingest_cli(
    *args: str, broker: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_argv(*args, broker=broker), capture_output=True, text=True,
                          cwd=ROOT, env=cli_env(), timeout=timeout, check=False)


def spawn_ingest_cli(*args: str, broker: str, stderr: IO[bytes] | None = None
                     ) -> subprocess.Popen[bytes]:
    """Start `streamml ingest ...`; ``stderr``: a file to keep its errors (default: dropped)."""
    return subprocess.Popen(cli_argv(*args, broker=broker), stdout=subprocess.DEVNULL,
                            stderr=stderr if stderr is not None else subprocess.DEVNULL,
                            cwd=ROOT, env=cli_env())


def write_definition(folder: Path, name: str, **body: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **body}), encoding="utf-8")
    return path


def read_topic(broker: str, topic: str) -> list[dict[str, Any]]:
    """Every value of ``topic`` (decoded JSON), partition by partition."""
    with open_log(broker, Settings()) as log:
        if not log.topic_exists(topic):
            return []
        info = log.describe_topic(topic)
        tps = [TopicPartition(topic, p.partition) for p in info.partitions]
        out: list[dict[str, Any]] = []
        with log.consumer() as consumer:
            consumer.assign(tps)
            consumer.seek_to_beginning(tps)
            ends = consumer.end_offsets(tps)
            deadline = time.monotonic() + 60
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                assert time.monotonic() < deadline, "timed out reading " + topic
                out.extend(orjson.loads(r.value) for r in consumer.poll(0.2) if r.value)
        return out


def wait_for(predicate: Any, timeout: float = 60, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(every)


def kill_restart(args: list[str], broker: str, feed: list[object], rng: random.Random) -> None:
    """Run `ingest` and kill -9 it at random moments, calling each feed step in between."""
    for step in feed:
        step()  # type: ignore[operator]
        proc = spawn_ingest_cli(*args, broker=broker)
        try:
            proc.wait(timeout=rng.uniform(0.5, 1.5))
        except Exception:  # noqa: BLE001 - still running: kill it
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def finish(args: list[str], broker: str, topic: str, expected: set[str],
           also: dict[str, set[str]] | None = None) -> list[str]:
    """Run `ingest` until ``topic`` (and every topic of ``also``) holds the expected ids."""
    wanted = {topic: expected, **(also or {})}

    def complete() -> bool:
        return all({e["id"] for e in read_topic(broker, t)} >= ids for t, ids in wanted.items())

    with tempfile.TemporaryFile() as err:
        proc = spawn_ingest_cli(*args, broker=broker, stderr=err)
        try:
            try:
                wait_for(complete, timeout=120, every=0.5)
            except AssertionError:
                missing = sorted(expected - {e["id"] for e in read_topic(broker, topic)})
                err.seek(0)
                raise AssertionError(
                    f"{len(missing)} ids missing, e.g. {missing[:5]} ... {missing[-5:]}; "
                    f"ingest stderr: {err.read()[-2000:]!r}") from None
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    return [e["id"] for e in read_topic(broker, topic)]
