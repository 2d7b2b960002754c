"""The CLI on the embedded log, run as a subprocess exactly as a user runs it."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.cli_helpers import assert_one_line_error, run_cli, spawn_cli

COMMANDS = [
    [],
    ["topics"],
    ["topics", "apply"],
    ["topics", "list"],
    ["topics", "describe"],
    ["topics", "delete"],
    ["produce"],
    ["tail"],
    ["worker"],
    ["demo"],
    ["serve"],
    ["connectors"],
    ["connectors", "list"],
    ["ingest"],
    ["archive"],
    ["query"],
    ["lineage"],
    ["replay"],
    ["promote"],
    ["run"],
    ["status"],
    ["stats"],
    ["schema"],
    ["schema", "infer"],
    ["validate"],
    ["alerts"],
]


@pytest.fixture
def broker(tmp_path: Path) -> str:
    return f"embedded://{tmp_path / 'log'}"


def _lines(n: int, start: int = 0) -> bytes:
    return b"".join(json.dumps({"i": i, "user": f"u{i % 3}"}).encode() + b"\n"
                    for i in range(start, start + n))


@pytest.mark.parametrize("words", COMMANDS, ids=lambda w: " ".join(w) or "streamml")
def test_every_command_has_help(words: list[str], broker: str) -> None:
    proc = run_cli(*words, "--help", broker=broker)
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout
    assert len(proc.stdout.splitlines()) > 3


def test_produce_autocreates_and_tail_reads_back_json(broker: str) -> None:
    proc = run_cli("produce", "events", "--key", "user", broker=broker, stdin=_lines(25))
    assert proc.returncode == 0, proc.stderr
    assert "created topic events" in proc.stderr
    assert "produced 25 record(s)" in proc.stderr

    tail = run_cli("tail", "events", "--from-beginning", "--json", broker=broker)
    assert tail.returncode == 0, tail.stderr
    rows = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [r["value"]["i"] for r in rows] == list(range(25))
    assert {r["key"] for r in rows} == {"u0", "u1", "u2"}
    assert [r["offset"] for r in rows] == list(range(25))

    again = run_cli("produce", "events", broker=broker, stdin=_lines(1, 25))
    assert "created topic" not in again.stderr


def test_tail_default_shows_last_records(broker: str) -> None:
    run_cli("produce", "events", broker=broker, stdin=_lines(30))
    proc = run_cli("tail", "events", "-n", "4", broker=broker)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 4
    assert lines[-1].startswith("0:29 ")
    assert '"i":29' in lines[-1].replace(" ", "")


def test_tail_from_time_skips_older_records(broker: str) -> None:
    run_cli("produce", "events", broker=broker, stdin=_lines(5))
    time.sleep(0.05)
    cut = int(time.time() * 1000)
    time.sleep(0.05)
    run_cli("produce", "events", broker=broker, stdin=_lines(3, 5))
    proc = run_cli("tail", "events", "--from-time", str(cut), "--json", broker=broker)
    assert [json.loads(x)["value"]["i"] for x in proc.stdout.splitlines()] == [5, 6, 7]


def test_malformed_json_line_names_the_line_and_keeps_earlier_lines(broker: str) -> None:
    data = _lines(2) + b"{oops\n" + _lines(2, 2)
    proc = run_cli("produce", "events", broker=broker, stdin=data)
    assert_one_line_error(proc, "line 3", "not valid JSON", "2 record(s) before it")
    tail = run_cli("tail", "events", "--from-beginning", "--json", broker=broker)
    assert [json.loads(x)["value"]["i"] for x in tail.stdout.splitlines()] == [0, 1]


def test_tail_of_unknown_topic_is_one_line_error(broker: str) -> None:
    assert_one_line_error(run_cli("tail", "nope", broker=broker), "nope")


def test_bad_broker_url_is_one_line_error(tmp_path: Path) -> None:
    proc = run_cli("topics", "list", broker="redis://localhost")
    assert_one_line_error(proc, "redis://localhost")


def test_unreachable_kafka_broker_is_one_line_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nobody listens
    proc = run_cli("topics", "list", broker=f"kafka://127.0.0.1:{port}", timeout=60)
    assert_one_line_error(proc, f"127.0.0.1:{port}")


def test_tail_follow_sees_records_from_another_process(broker: str) -> None:
    run_cli("produce", "live", broker=broker, stdin=_lines(2))
    follower = spawn_cli("tail", "live", "--from-beginning", "--follow", "--json",
                         "--max", "7", broker=broker)
    try:
        time.sleep(1.0)  # the follower is running and waiting before the appends happen
        for start, count in ((2, 2), (4, 2), (6, 1)):
            run_cli("produce", "live", broker=broker, stdin=_lines(count, start))
        out, err = follower.communicate(timeout=60)
    finally:
        follower.kill()
    assert follower.returncode == 0, err
    assert [json.loads(x)["value"]["i"] for x in out.splitlines()] == list(range(7))


def test_topics_apply_list_describe(broker: str) -> None:
    proc = run_cli("topics", "apply", "--pipeline", "taxi", broker=broker)
    assert proc.returncode == 0, proc.stderr
    assert "created taxi.examples" in proc.stdout
    again = run_cli("topics", "apply", "--pipeline", "taxi", broker=broker)
    assert "created" not in again.stdout and "exists  taxi.examples" in again.stdout

    listed = run_cli("topics", "list", "--json", broker=broker)
    names = {json.loads(line)["name"] for line in listed.stdout.splitlines()}
    for role in ("examples", "deadletter", "statistics", "schema", "anomalies", "candidates",
                 "evaluations", "models", "metadata"):
        assert f"taxi.{role}" in names

    described = json.loads(run_cli("topics", "describe", "taxi.models", "--json",
                                   broker=broker).stdout)
    assert described["spec"]["cleanup_policy"] == "compact"


def test_topics_apply_unknown_role_is_one_line_error(broker: str) -> None:
    proc = run_cli("topics", "apply", "--role", "bogus", broker=broker)
    assert_one_line_error(proc, "bogus")


def test_env_variable_selects_broker(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.cli_helpers import ROOT, cli_env

    env = cli_env(STREAMML_BROKER=f"embedded://{tmp_path / 'envlog'}")
    proc = subprocess.run([sys.executable, "-m", "streamml.cli.main", "produce", "t"],
                          input='{"a": 1}\n', capture_output=True, text=True, env=env, cwd=ROOT,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "envlog").is_dir()
