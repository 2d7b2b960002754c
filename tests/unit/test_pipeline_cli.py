"""``streamml run`` options on the embedded log: ``-o``, ``--skip``, and ``-c`` user errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamml.errors import ConfigError
from streamml.log.embedded import EmbeddedLog
from streamml.pipeline import PipelineRun, load_pipeline
from streamml.settings import Settings
from tests.cli_helpers import ROOT, assert_one_line_error, run_cli

DRIFT = str(ROOT / "examples" / "drift_pipeline.py")


@pytest.fixture
def broker(tmp_path: Path) -> str:
    return f"embedded://{tmp_path / 'log'}"


def test_options_reach_the_build_function_and_skip_leaves_components_out(
        broker: str, tmp_path: Path) -> None:
    proc = run_cli("run", DRIFT, "-p", "pg", "-o", "passes=1", "-o", "window=100",
                   "--skip", "trainer", broker=broker, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = sum(1 for _ in (ROOT / "streamml" / "data" / "penguins.csv").open()) - 1
    assert f"ingest/penguins: {rows} records" in proc.stdout, proc.stdout
    lines = {line.split(":")[0]: line for line in proc.stdout.splitlines()}
    assert "trainer" not in lines
    assert lines["statistics_gen"].startswith(f"statistics_gen: {rows:,} in"), proc.stdout


def test_exclude_unknown_component_is_a_config_error(tmp_path: Path) -> None:
    p = load_pipeline(DRIFT, Settings(broker=f"embedded://{tmp_path}"), name="pg", passes=1)
    log = EmbeddedLog(str(tmp_path / "log"))
    try:
        with pytest.raises(ConfigError, match="has no component 'nope'"):
            PipelineRun(p, log, exclude=["nope"])
        run = PipelineRun(p, log, exclude=["trainer", "ingest/penguins"])
        assert [t.processor.processor_name for t in run.runner._tasks] == []
        assert run.ingestors == []
        assert [proc.processor_name for proc in run.runner.processors] == [
            "statistics_gen", "schema_gen", "example_validator"]
    finally:
        log.close()


@pytest.mark.parametrize(("args", "needle"), [
    (["-c", "trainer"], "needs --broker kafka://HOST:PORT"),
    (["-o", "no-equals"], "--option must look like KEY=VALUE"),
    (["-c", "nope"], "needs --broker kafka://"),
    (["-o", "pases=1"], "takes no option pases; its options: passes, window, drift"),
])
def test_user_errors_are_one_line(broker: str, args: list[str], needle: str) -> None:
    assert_one_line_error(run_cli("run", DRIFT, *args, broker=broker), needle)


def test_worker_component_user_errors(tmp_path: Path) -> None:
    proc = run_cli("worker", DRIFT, "-c", "ingest/penguins", broker="kafka://127.0.0.1:1")
    assert_one_line_error(proc, "ingest/penguins is a connector, not a processor")
    proc = run_cli("worker", DRIFT, "-c", "nope", broker="kafka://127.0.0.1:1")
    assert_one_line_error(proc, "has no component 'nope'")
    proc = run_cli("worker", DRIFT, "-o", "passes=1", broker="kafka://127.0.0.1:1")
    assert_one_line_error(proc, "-o/--option needs -c")
    proc = run_cli("worker", DRIFT, "-c", "nope", "-o", "passes=1", broker="kafka://127.0.0.1:1")
    assert_one_line_error(proc, "has no component 'nope'")  # the options reached the build
    proc = run_cli("worker", DRIFT, "-c", "statistics_gen", "-o", "nope=1",
                   broker="kafka://127.0.0.1:1")
    assert_one_line_error(proc, "takes no option nope; its options: passes, window, drift")
