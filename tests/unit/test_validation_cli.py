"""``streamml stats / schema / validate / alerts`` run as subprocesses, as a user would."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from streamml.log.embedded import EmbeddedLog
from streamml.payloads.anomalies import Alert
from streamml.runtime.runner import Runner
from streamml.serde import encode
from streamml.statistics.processor import StatisticsGen
from streamml.validation.schema import infer_schema, read_table
from tests.cli_helpers import ROOT, assert_one_line_error, cli_env

TAXI = ROOT / "streamml" / "data" / "taxi.csv"
def cli(*args: str, broker: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamml.cli.main", "--broker", broker, *args],
                          capture_output=True, text=True, cwd=ROOT, env=cli_env(),
                          timeout=120, check=False)


@pytest.fixture
def broker(tmp_path: Path) -> str:
    return f"embedded://{tmp_path / 'log'}"


def _faulty_csv(tmp_path: Path) -> Path:
    rows = read_table(TAXI).slice(0, 400).to_pylist()
    rows[10]["fare"] = -3.0
    rows[20]["payment_type"] = "Bitcoin"
    for r in rows:
        r["fare"] = str(r["fare"]) if r["fare"] is not None else None
    rows[30]["fare"] = "abc"  # a non-numeric token in a numeric column
    for r in rows:
        r["surge"] = 1.0  # a new column
    path = tmp_path / "faulty.csv"
    pcsv.write_csv(pa.Table.from_pylist(rows), path)
    return path


def test_schema_infer_then_validate_clean_and_faulty(tmp_path: Path, broker: str) -> None:
    out = tmp_path / "schema.yaml"
    proc = cli("schema", "infer", str(TAXI), "-o", str(out), "-p", "taxi", broker=broker)
    assert proc.returncode == 0, proc.stderr
    assert "fare" in out.read_text() and "wrote schema of 18 feature(s)" in proc.stderr
    clean = cli("validate", str(TAXI), "--schema", str(out), "--json", broker=broker)
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["anomalies"] == []
    bad = cli("validate", str(_faulty_csv(tmp_path)), "--schema", str(out), "--json",
              broker=broker)
    assert bad.returncode == 1, bad.stderr
    found = {(a["type"], a["feature"]): a for a in json.loads(bad.stdout)["anomalies"]}
    assert set(found) == {("FLOAT_TYPE_SMALL_FLOAT", "fare"), ("UNEXPECTED_DATA_TYPE", "fare"),
                          ("ENUM_TYPE_UNEXPECTED_STRING_VALUES", "payment_type"),
                          ("SCHEMA_NEW_COLUMN", "surge")}
    small = found[("FLOAT_TYPE_SMALL_FLOAT", "fare")]
    assert (small["count"], small["example_id"], small["value"], small["threshold"]) == (
        1, "faulty.csv:12", -3.0, 0.0)  # rows[10]: line 12, the header being line 1
    assert found[("UNEXPECTED_DATA_TYPE", "fare")]["example_id"] == "faulty.csv:32"
    assert found[("SCHEMA_NEW_COLUMN", "surge")]["count"] == 400
    assert all(a["severity"] in ("warning", "error") for a in found.values())
    text = cli("validate", str(tmp_path / "faulty.csv"), "--schema", str(out), broker=broker)
    assert text.returncode == 1 and "FLOAT_TYPE_SMALL_FLOAT" in text.stdout


def test_validate_reference_drift_and_usage_errors(tmp_path: Path, broker: str) -> None:
    schema = tmp_path / "s.json"
    assert cli("schema", "infer", str(TAXI), "-o", str(schema), broker=broker).returncode == 0
    table = read_table(TAXI)
    shifted = table.set_column(table.column_names.index("fare"), "fare",
                               pa.array([(f or 0) * 3 for f in table["fare"].to_pylist()]))
    path = tmp_path / "shifted.parquet"
    import pyarrow.parquet as pq

    pq.write_table(shifted, path)
    proc = cli("validate", str(path), "--schema", str(schema), "--reference", str(TAXI),
               "--json", broker=broker)
    assert proc.returncode == 1
    drift = [a for a in json.loads(proc.stdout)["anomalies"] if a["type"] == "DRIFT"]
    assert [a["feature"] for a in drift] == ["fare"] and drift[0]["p_value"] < 1e-4
    assert drift[0]["value"] > drift[0]["threshold"] > 0 and drift[0]["severity"] == "warning"
    nofile = cli("validate", str(tmp_path / "nope.csv"), "--schema", str(schema), broker=broker)
    assert nofile.returncode == 2
    missing = cli("validate", str(TAXI), broker=broker)
    assert missing.returncode == 2 and "--schema" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("features: [1, 2\n")
    assert_one_line_error(cli("validate", str(TAXI), "--schema", str(broken), broker=broker),
                          "invalid schema")


def _publish(broker: str, tmp_path: Path) -> None:
    with EmbeddedLog(tmp_path / "log") as log:
        runner = Runner(log, [StatisticsGen("taxi.examples", "taxi.statistics", pipeline="taxi",
                                            count_window=2000, cumulative=False, splits="all")],
                        "taxi", idle_after_s=60)
        for topic in ("taxi.examples", "taxi.schema", "taxi.anomalies"):
            runner._ensure(topic)
        rows = read_table(TAXI).slice(0, 4000).to_pylist()
        with log.producer() as prod:
            for i, row in enumerate(rows):
                prod.send("taxi.examples", encode({"id": f"t{i}", "event_time": i,
                                                   "features": row}), f"t{i}".encode())
            schema = infer_schema(TAXI, pipeline="taxi", created_at=1)
            prod.send("taxi.schema", encode(schema.to_json()), b"default")
            v2 = schema.model_copy(update={"version": 2, "parent": 1, "origin": "evolved"})
            prod.send("taxi.schema", encode(v2.to_json()), b"default")
            base = dict(pipeline="taxi", type="DRIFT", severity="warning", scope="window",
                        feature="fare", message="fare distribution changed", first_seen=1000,
                        last_seen=1000, metric="ks", value=0.2, threshold=0.05)
            for status, count in (("open", 1), ("update", 2)):
                a = Alert(id="taxi/DRIFT/fare/x", status=status, count=count, **base)
                prod.send("taxi.anomalies", encode(a.to_json()), a.id.encode())
            r = Alert(id="taxi/SKEW/tips/x", status="resolved", count=1, resolved_at=1000,
                      **{**base, "type": "SKEW", "feature": "tips"})
            prod.send("taxi.anomalies", encode(r.to_json()), r.id.encode())
        runner.run_until_idle(idle_s=0.1, timeout_s=60)
        runner.close()


def test_stats_schema_show_and_alerts_from_topics(tmp_path: Path, broker: str) -> None:
    _publish(broker, tmp_path)
    proc = cli("stats", "-p", "taxi", "-f", "fare", "--last", "2", "--json",
               "--db", str(tmp_path / "none.duckdb"), broker=broker)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["window_id"] for r in rows] == ["count:2000:1", "count:2000:0"]
    assert all(r["feature"] == "fare" and r["num_examples"] == 2000 for r in rows)
    text = cli("stats", "-p", "taxi", "--db", str(tmp_path / "none.duckdb"), broker=broker)
    assert text.returncode == 0 and "payment_type" in text.stdout
    assert_one_line_error(cli("stats", "-p", "nope", "--db", str(tmp_path / "x"),
                              broker=broker))
    shown = cli("schema", "show", "-p", "taxi", "--json", broker=broker)
    assert shown.returncode == 0 and json.loads(shown.stdout)["version"] == 2
    assert_one_line_error(cli("schema", "show", "-p", "taxi", "--version", "7", broker=broker),
                          "no version 7")
    opened = cli("alerts", "-p", "taxi", "--open", broker=broker)
    assert opened.returncode == 0, opened.stderr
    [line] = opened.stdout.splitlines()
    assert "DRIFT" in line and "feature=fare" in line and "count=2" in line
    assert "since=1970-01-01T00:00:01Z" in line
    every = cli("alerts", "-p", "taxi", "--json", broker=broker)
    assert [json.loads(x)["status"] for x in every.stdout.splitlines()] == ["update", "resolved"]


def test_help_texts() -> None:
    for args in (["stats"], ["schema"], ["schema", "infer"], ["validate"], ["alerts"]):
        proc = cli(*args, "--help", broker="embedded:///nonexistent")
        assert proc.returncode == 0 and "Usage:" in proc.stdout, proc.stderr


def test_alerts_follow_prints_new_records_live(tmp_path: Path, broker: str) -> None:
    _publish(broker, tmp_path)
    follower = subprocess.Popen([sys.executable, "-m", "streamml.cli.main", "--broker", broker,
                                 "alerts",
                                 "-p", "taxi", "--follow", "--open", "--max", "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT, env=cli_env())
    try:
        assert follower.stdout is not None
        state = follower.stdout.readline()  # the current state is printed: now it follows
        a = Alert(id="taxi/SCHEMA_NEW_COLUMN/surge/x", pipeline="taxi", status="open",
                  type="SCHEMA_NEW_COLUMN", severity="warning", scope="example", feature="surge",
                  message="new column", first_seen=5000, last_seen=5000, count=4)
        with EmbeddedLog(tmp_path / "log") as log, log.producer() as prod:
            prod.send("taxi.anomalies", encode(a.to_json()), a.id.encode())
        out, err = follower.communicate(timeout=60)
    finally:
        follower.kill()
    assert follower.returncode == 0, err
    lines = [state.rstrip("\n"), *out.splitlines()]
    assert "DRIFT" in lines[0] and "SCHEMA_NEW_COLUMN feature=surge" in lines[-1]
    assert "count=4" in lines[-1] and len(lines) == 2


def _integral_float_csvs(tmp_path: Path) -> tuple[Path, Path]:
    """The taxi file with int columns written as ``180.0``: all of them, and mixed with ``180``."""
    lines = TAXI.read_text().splitlines()
    header = lines[0].split(",")
    cols = [header.index(c) for c in ("trip_seconds", "trip_start_hour", "pickup_community_area")]
    every, mixed = [lines[0]], [lines[0]]
    for n, line in enumerate(lines[1:]):
        cells = next(csv.reader([line]))
        if len(cells) != len(header):
            continue
        a, b = list(cells), list(cells)
        for c in cols:
            if cells[c]:
                a[c] = f"{cells[c]}.0"
                b[c] = f"{cells[c]}.0" if n % 2 else cells[c]
        every.append(_csv_line(a))
        mixed.append(_csv_line(b))
    p1, p2 = tmp_path / "floats.csv", tmp_path / "mixed.csv"
    p1.write_text("\n".join(every) + "\n")
    p2.write_text("\n".join(mixed) + "\n")
    return p1, p2


def _csv_line(cells: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(cells)
    return buf.getvalue()


def test_integral_floats_infer_int_and_validate_clean(tmp_path: Path, broker: str) -> None:
    floats, mixed = _integral_float_csvs(tmp_path)
    assert ",180.0," in floats.read_text() or ".0," in floats.read_text()
    taxi_schema = tmp_path / "taxi.yaml"
    assert cli("schema", "infer", str(TAXI), "-o", str(taxi_schema), broker=broker).returncode == 0
    for path in (floats, mixed):
        out = tmp_path / f"{path.stem}.json"
        proc = cli("schema", "infer", str(path), "-o", str(out), broker=broker)
        assert proc.returncode == 0, proc.stderr
        features = json.loads(out.read_text())["features"]
        for name in ("trip_seconds", "trip_start_hour", "pickup_community_area"):
            assert features[name]["type"] == "int", (path.name, name)
        assert features["fare"]["type"] == "float"  # real fractions stay float
        for schema in (out, taxi_schema):  # its own schema, and the one of the int file
            proc = cli("validate", str(path), "--schema", str(schema), "--json", broker=broker)
            assert proc.returncode == 0, proc.stdout[:500]
            assert json.loads(proc.stdout)["anomalies"] == []
    proc = cli("validate", str(TAXI), "--schema", str(tmp_path / "floats.json"), "--json",
               broker=broker)
    assert proc.returncode == 0 and json.loads(proc.stdout)["anomalies"] == []
