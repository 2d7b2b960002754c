"""Run the real ``streamml`` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMML_")}
    env.update(extra)
    return env


def run_cli(
    *args: str,
    broker: str,
    stdin: bytes | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``streamml --broker BROKER ARGS...``; returns the finished process (text mode)."""
    return subprocess.run(
        [sys.executable, "-m", "streamml.cli.main", "--broker", broker, *args],
        input=None if stdin is None else stdin.decode(),
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=cli_env(),
        timeout=timeout,
        check=False,
    )


def spawn_cli(*args: str, broker: str) -> subprocess.Popen[str]:
    """Start ``streamml`` in the background (for ``tail --follow``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "streamml.cli.main", "--broker", broker, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=cli_env(),
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    """A user error: non-zero exit, one ``streamml: error:`` line, no traceback."""
    assert proc.returncode != 0, proc
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("streamml: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    # anything else on stderr is a one-line notice (e.g. "streamml: created topic ...")
    assert all(line.startswith("streamml: ") for line in lines), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
