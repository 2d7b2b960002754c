"""The live validation pipeline on CSV files, beside ``streamml validate`` on the same files.

Files, not JSON examples: each fault goes through the file source and
ExampleGen's typing, as a user's file does. The bundled taxi CSV is shuffled
(the file in row order is not stationary) and cut in two: the first half is
the reference (training data), the second the stream; the schema is inferred
from the whole file, so the clean stream breaks nothing. Each of the seven
faults of issue #4 starts at row ``AT`` (in window 3 of 1000, not at its
start) and must be found within one window, naming its feature and no other;
the batch command must find the same causes on the same file.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamml.connectors.definition import DATA_DIR
from streamml.errors import ConfigError
from streamml.log import open_log
from streamml.payloads.schema import FeatureSpec, SchemaVersion
from streamml.pipeline import load_pipeline
from streamml.processors.base import Message
from streamml.settings import load_settings
from streamml.validation.filecheck import validate_table
from streamml.validation.files import load_table, row_lines
from streamml.validation.schema import infer_schema, load_schema, save_schema
from tests.cli_helpers import run_cli
from tests.pipeline_helpers import inputs_consumed, records, run_to_end

TAXI = DATA_DIR / "taxi.csv"
PIPELINE = "streamml.examples.validation_pipeline"
W, AT = 1000, 3300
FAULTS = {  # fault -> the feature it must be found on
    "new category": "payment_type", "scale change": "trip_miles", "presence drop": "company",
    "non-numeric tokens": "fare", "impossible value": "trip_seconds",
    "new column": "surge_multiplier", "dropped column": "trip_start_hour",
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("files")
    with TAXI.open(newline="") as f:
        rows = list(csv.DictReader(f))
    random.Random(5).shuffle(rows)
    ref, cur = rows[:len(rows) // 2], rows[len(rows) // 2:]
    out = {"ref": _write(d / "ref.csv", ref), "clean": _write(d / "clean.csv", cur)}
    for fault in FAULTS:
        out[fault] = _write(d / f"{fault.replace(' ', '_')}.csv", _inject(fault, cur))
    save_schema(infer_schema(TAXI, pipeline="v", created_at=0), d / "schema.yaml")
    out["schema"] = d / "schema.yaml"
    return out


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        w.writerows(rows)
    return path


def _inject(fault: str, rows: list[dict[str, str]]) -> list[dict[str, str]]:
    out = []
    for i, row in enumerate(rows):
        r = dict(row)
        if fault == "new column":
            r["surge_multiplier"] = "1.25" if i >= AT else ""
        if i >= AT:
            if fault == "new category" and i % 25 == 0:
                r["payment_type"] = "Bitcoin"
            elif fault == "scale change" and i < AT + 1500 and r["trip_miles"]:
                r["trip_miles"] = f"{float(r['trip_miles']) * 1.6:g}"
            elif fault == "presence drop":
                r["company"] = ""  # optional, usually present
            elif fault == "non-numeric tokens" and i % 200 == 0:
                r["fare"] = "N/A"  # pandas/pyarrow would silently read a null
            elif fault == "impossible value" and i == AT:
                r["trip_seconds"] = "-600"
            elif fault == "dropped column":
                r["trip_start_hour"] = ""
        out.append(r)
    return out


def _run(tmp_path: Path, path: Path, **options: Any) -> dict[str, list[Any]]:
    """Run the pipeline ``v`` over ``path`` on an embedded log to its end; every record of
    its anomalies, schema and dead-letter topics (in order per alert or key); counts in =
    counts out for every processor, and no input record refused."""
    settings = load_settings(config_file=None, broker=f"embedded://{tmp_path / 'log'}")
    log = open_log(settings=settings)
    try:
        p = load_pipeline(PIPELINE, settings, name="v", path=str(path),
                          **{"window": W, **options})
        inputs_consumed(run_to_end(p, log), p, log)
        assert log.describe_topic("v.examples").records == load_table(path).num_rows
        return {role: [v for _, v in records(log, f"v.{role}") if v]
                for role in ("anomalies", "schema", "deadletter")}
    finally:
        log.close()


def _live(tmp_path: Path, path: Path, files: dict[str, Path],
          **options: Any) -> list[dict[str, Any]]:
    """The alert records of the pipeline over ``path``, with the schema and reference."""
    return _run(tmp_path, path, schema=str(files["schema"]), reference=str(files["ref"]),
                **options)["anomalies"]


def _batch(path: Path, files: dict[str, Path]) -> dict[tuple[str, str | None], dict[str, Any]]:
    schema = load_schema(files["schema"])
    found = validate_table(load_table(path), schema, path.name, load_table(files["ref"]),
                           window=W)
    return {(a["type"], a["feature"]): a for a in found}


def _line(example_id: str) -> int:
    return int(example_id.rsplit(":", 1)[1])


def test_clean_stream_raises_nothing_live_or_batch(tmp_path: Path,
                                                   files: dict[str, Path]) -> None:
    assert _live(tmp_path, files["clean"], files) == []
    assert _batch(files["clean"], files) == {}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_is_found_within_a_window_live_and_batch(tmp_path: Path, fault: str,
                                                            files: dict[str, Path]) -> None:
    records_ = _live(tmp_path, files[fault], files)
    feature = FAULTS[fault]
    assert records_ and {a["feature"] for a in records_} == {feature}, records_
    alerts = {a["id"]: a for a in records_}  # the last record of each alert
    opened = {a["id"]: a for a in reversed(records_)}  # the first: where it opened
    for a in opened.values():
        if a["scope"] == "example":  # only faulty rows, the first found at once
            lines = [_line(i) for r in records_ if r["id"] == a["id"] for i in r["example_ids"]]
            assert min(lines) >= AT + 2 and min(lines) < (AT // W + 1) * W + 2, a
        elif a["scope"] == "window":  # the window holding row AT or the next one
            assert a["window"]["kind"] == "count"
            assert a["window"]["index"] in (AT // W, AT // W + 1), a["window"]
        else:  # SchemaGen: the stream no longer fits schema version 1
            assert (a["component"], a["reference"]) == ("SchemaGen", "schema:1"), a
    batch = _batch(files[fault], files)
    assert {f for _, f in batch} == {feature}, batch  # no false alarm there either
    # per-example causes: the same on both paths, the same number of examples
    per_example = {(a["type"], a["feature"]): a["count"] for a in alerts.values()
                   if a["scope"] == "example"}
    assert per_example == {c: a["count"] for c, a in batch.items() if "example_id" in a}
    # window causes: whatever the batch finds, the live pipeline finds too
    live_types = {a["type"] for a in alerts.values()}
    assert {t for t, _ in batch} <= live_types, (batch.keys(), live_types)


def test_non_numeric_token_is_an_anomaly_not_a_dead_letter_and_quarantined_by_policy(
        tmp_path: Path, files: dict[str, Path]) -> None:
    letters = _run(tmp_path, files["non-numeric tokens"], schema=str(files["schema"]),
                   policy="quarantine")["deadletter"]
    tokens = [i for i in range(AT, 7501) if i % 200 == 0]
    assert sorted(_line(d["example_id"]) for d in letters) == [i + 2 for i in tokens]
    assert {d["reason"] for d in letters} == {"quarantined"}
    assert all("UNEXPECTED_DATA_TYPE" in d["detail"] and "'fare'" in d["detail"]
               for d in letters), letters[0]


def test_a_schema_file_checks_examples_before_its_record_reaches_the_validator(
        files: dict[str, Path]) -> None:
    """SchemaGen publishes the file as version 1 when it sees the first examples; the
    validator may read those examples first (another process, another poll)."""
    p = load_pipeline(PIPELINE, load_settings(config_file=None), name="s",
                      path=str(files["clean"]), schema=str(files["schema"]))
    [validator] = [proc for proc in p.processors if proc.processor_name == "example_validator"]
    example = {"id": "x:x.csv:2", "source": "x", "event_time": 1, "features": {"fare": "N/A"}}
    out = list(validator.process([Message("s.examples", 0, 0, 1, "x:x.csv:2", example)]))
    assert ("UNEXPECTED_DATA_TYPE", "fare") in {(e.value["type"], e.value["feature"])
                                                for e in out if e.topic == "s.anomalies"}


def test_without_a_schema_version_1_is_inferred_from_the_first_window(
        tmp_path: Path, files: dict[str, Path]) -> None:
    out = _run(tmp_path, files["new column"], compare_previous=False)
    [schema], alerts = out["schema"], out["anomalies"]
    assert schema["version"] == 1 and schema["num_examples"] == W
    assert "surge_multiplier" not in schema["features"]
    assert ("SCHEMA_NEW_COLUMN", "surge_multiplier") in {(a["type"], a["feature"])
                                                         for a in alerts}


def test_options_are_checked_with_one_clear_error(files: dict[str, Path]) -> None:
    settings = load_settings(config_file=None)
    with pytest.raises(ConfigError, match="one source"):
        load_pipeline(PIPELINE, settings)
    csv_path = str(files["clean"])
    with pytest.raises(ConfigError, match="needs -o schema"):
        load_pipeline(PIPELINE, settings, path=csv_path, reference=str(files["ref"]))
    with pytest.raises(ConfigError, match="cannot read"):
        load_pipeline(PIPELINE, settings, path=csv_path, schema=str(files["schema"]),
                      reference="/nonexistent.csv")
    with pytest.raises(ConfigError, match="no file matches"):
        load_pipeline(PIPELINE, settings, path="/nonexistent/*.csv")
    with pytest.raises(ConfigError, match="invalid schema"):
        load_pipeline(PIPELINE, settings, path=csv_path, schema=csv_path)  # not a schema
    for bad, match in [({"window": 0}, "positive"), ({"window": "abc"}, "positive"),
                       ({"policy": "drop"}, "flag or quarantine"), ({"alpha": 2}, "p-value"),
                       ({"compare_previous": "maybe"}, "true or false")]:
        with pytest.raises(ConfigError, match=match):
            load_pipeline(PIPELINE, settings, path=csv_path, **bad)
    with pytest.raises(ConfigError, match="connector's definition"):
        load_pipeline(PIPELINE, settings, connector="taxi-file", label="tips")


def test_cli_validate_windows_and_run_the_pipeline(tmp_path: Path,
                                                   files: dict[str, Path]) -> None:
    """As a user runs them: ``validate --window`` finds a change over part of the file that
    the whole file hides; ``run`` the pipeline, then ``alerts``, shows the same cause."""
    broker = f"embedded://{tmp_path / 'log'}"
    path, schema, ref = (str(files[k]) for k in ("scale change", "schema", "ref"))
    whole = run_cli("validate", path, "--schema", schema, "--reference", ref, "--json",
                    broker=broker)  # the whole file only, by default
    assert whole.returncode == 0 and json.loads(whole.stdout)["anomalies"] == [], whole.stdout
    windows = run_cli("validate", path, "--schema", schema, "--reference", ref, "--json",
                      "--window", str(W), broker=broker)
    assert windows.returncode == 1, windows.stderr
    [drift] = json.loads(windows.stdout)["anomalies"]
    assert (drift["type"], drift["feature"], drift["metric"]) == ("DRIFT", "trip_miles", "ks")
    first = AT // W * W + 2  # the line of the first row of the window holding row AT
    assert drift["rows"][0] == [first, first + W - 1] and drift["count"] == len(drift["rows"])
    assert drift["value"] >= drift["threshold"] and drift["p_value"] < 1e-4
    run = run_cli("run", PIPELINE, "-p", "cli", "--reset", "-o", f"path={path}",
                  "-o", f"schema={schema}", "-o", f"reference={ref}", broker=broker)
    assert run.returncode == 0, run.stderr
    alerts = run_cli("alerts", "-p", "cli", "--json", broker=broker)
    assert alerts.returncode == 0, alerts.stderr
    causes = {(a["type"], a["feature"]) for a in map(json.loads, alerts.stdout.splitlines())}
    assert causes == {("DRIFT", "trip_miles")}, alerts.stdout


def test_tokens_from_the_first_row_on_do_not_make_a_number_column_text(
        tmp_path: Path, files: dict[str, Path]) -> None:
    """Schema inference, batch or live, types a column of numbers with a few ``N/A`` as a
    number column, so the tokens are anomalies wherever they are in the file."""
    rows = list(csv.DictReader(files["clean"].open(newline="")))
    for i in range(0, len(rows), 200):
        rows[i]["fare"] = "N/A"
    path = _write(tmp_path / "tokens.csv", rows)
    inferred = infer_schema(path, pipeline="t", created_at=0)
    assert inferred.features["fare"].type == "float"
    found = validate_table(load_table(path), inferred, path.name)
    [token] = [a for a in found if a["feature"] == "fare"]
    assert (token["type"], token["count"], token["example_id"]) == (
        "UNEXPECTED_DATA_TYPE", len(range(0, len(rows), 200)), "tokens.csv:2")
    out = _run(tmp_path, path)  # no schema file: version 1 from the first window, tokens in
    [schema], alerts = out["schema"], out["anomalies"]
    assert schema["features"]["fare"]["type"] == "float"
    assert ("UNEXPECTED_DATA_TYPE", "fare") in {(a["type"], a["feature"]) for a in alerts}


def test_auto_evolve_does_not_turn_a_number_column_into_text_for_a_few_tokens(
        tmp_path: Path, files: dict[str, Path]) -> None:
    """Tokens are per-example anomalies, not a type change: with auto-evolve on, the
    schema stays at version 1 (it used to widen fare to string, then republish the same
    version at every batch, each float then an anomaly)."""
    out = _run(tmp_path, files["non-numeric tokens"], schema=str(files["schema"]),
               auto_evolve=True)
    assert [(v["version"], v["features"]["fare"]["type"]) for v in out["schema"]] == [
        (1, "float")]
    causes = {(a["type"], a["feature"], a["scope"]) for a in out["anomalies"]}
    assert causes == {("UNEXPECTED_DATA_TYPE", "fare", "example")}, causes


def test_batch_and_live_name_the_same_line_with_blank_lines_and_quoted_newlines(
        tmp_path: Path) -> None:
    """Example ids are the line a record starts on, as the file source counts lines (a
    quoted field may span lines; blank lines are no records), on both paths; JSON Lines
    whose column of numbers holds a token are read by the batch commands too."""
    csv_text = "note,fare\n" + "".join(f"n{i},{i}.5\n" for i in range(40))
    csv_text = csv_text.replace("n1,1.5\n", '"multi\nline",1.5\n').replace(
        "n3,3.5\n", "n3,3.5\n\n").replace("n30,30.5", "n30,N/A")
    jsonl = "".join(orjson.dumps({"fare": "N/A" if i == 30 else i + 0.5}).decode() + "\n"
                    + ("\n" if i == 3 else "") for i in range(40))
    for name, text in (("ids.csv", csv_text), ("ids.jsonl", jsonl)):
        path = tmp_path / name
        path.write_text(text)
        inferred = infer_schema(path, pipeline="x", created_at=0)
        assert inferred.features["fare"].type == "float", name
        save_schema(inferred, tmp_path / "s.yaml")
        proc = run_cli("validate", str(path), "--schema", str(tmp_path / "s.yaml"), "--json",
                       broker=f"embedded://{tmp_path / 'log'}")
        assert proc.returncode == 1, proc.stderr
        [batch] = json.loads(proc.stdout)["anomalies"]
        lines = text.splitlines()
        line = next(n for n, t in enumerate(lines, 1) if "N/A" in t)
        assert batch["example_id"] == f"{name}:{line}", (batch, line)
        [live] = {a["example_ids"][0] for a in _run(tmp_path / f"run-{name}", path, window=10,
                                                       schema=str(tmp_path / "s.yaml"))[
            "anomalies"] if a["scope"] == "example"}
        assert live == f"ids:{name}:{line}"


def test_batch_reads_keep_text_as_text_and_parse_only_untyped_columns(tmp_path: Path) -> None:
    """JSON Lines that pyarrow refuses (a token among numbers): only the mixed column is
    parsed; JSON text ids stay text, as ingestion keeps them. A CSV's true/false column
    with a token is a bool column. A field too long for Python's csv module does not
    stop ``validate`` (ids fall back to row numbers)."""
    path = tmp_path / "ids.jsonl"
    path.write_text("".join(orjson.dumps({"id": f"{i:06d}", "fare": "N/A" if i == 7 else
                                          i + 0.5}).decode() + "\n" for i in range(40)))
    inferred = infer_schema(path, pipeline="x", created_at=0)
    assert (inferred.features["id"].type, inferred.features["fare"].type) == ("string", "float")
    flags = tmp_path / "flags.csv"
    flags.write_text("paid\n" + "true\nfalse\n" * 20 + "maybe\n")
    schema = infer_schema(flags, pipeline="x", created_at=0)
    assert schema.features["paid"].type == "bool"
    [found] = validate_table(load_table(flags), schema, flags.name)
    assert (found["type"], found["count"], found["example_id"]) == (
        "UNEXPECTED_DATA_TYPE", 1, "flags.csv:42")
    long = tmp_path / "long.csv"
    long.write_text("note,fare\n" + f'"{"x" * 200_000}",1.5\n' + "b,N/A\n")
    assert row_lines(long, 2) is None
    save_schema(SchemaVersion(pipeline="x", version=1, origin="curated", created_at=0,
                              features={"fare": FeatureSpec(type="float")}),
                tmp_path / "long.yaml")
    proc = run_cli("validate", str(long), "--schema", str(tmp_path / "long.yaml"), "--json",
                   broker=f"embedded://{tmp_path / 'log'}")
    assert proc.returncode == 1, proc.stderr
    found = {a["type"]: a["example_id"] for a in json.loads(proc.stdout)["anomalies"]}
    assert found["UNEXPECTED_DATA_TYPE"] == "long.csv:3"


def test_ints_written_as_floats_are_no_anomaly_live_or_batch(tmp_path: Path,
                                                              files: dict[str, Path]) -> None:
    """A file whose int columns are written ``5.0`` (a pandas export with missing values)
    against the schema of the file written ``5``: nothing to report on either path."""
    rows = list(csv.DictReader(files["clean"].open(newline="")))
    for r in rows:
        for k, v in r.items():
            if v.lstrip("-").isdigit():
                r[k] = f"{v}.0"
    path = _write(tmp_path / "floats.csv", rows)
    assert ",5.0," in path.read_text() or ".0," in path.read_text()
    assert _live(tmp_path, path, files) == []
    assert _batch(path, files) == {}
