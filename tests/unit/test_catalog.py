"""The topic catalog (topics/*.yaml) and the payload model of every role."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from streamml import serde
from streamml.catalog import (
    PACKAGED_TOPICS_DIR,
    Catalog,
    TopicDefinition,
    load_catalog,
    source_topics_dir,
    validate_pipeline,
)
from streamml.catalog_files import main
from streamml.errors import ConfigError
from streamml.log.base import TopicSpec
from streamml.payloads import (
    Alert,
    Candidate,
    Checkpoint,
    DeadLetter,
    Evaluation,
    Example,
    FeatureSignature,
    FeatureSpec,
    FeatureStatistics,
    InlineArtifact,
    Label,
    MetadataEvent,
    ModelChunk,
    ModelRecord,
    ModelRelease,
    ModelSignature,
    OffsetRange,
    SchemaVersion,
    StatisticsWindow,
    ThresholdCheck,
    Window,
)
from streamml.payloads.artifacts import ChunkedArtifact
from streamml.payloads.predictions import Prediction
from streamml.payloads.statistics import Bucket, Histogram, NumericStatistics

ROLES = {
    "labels",
    "predictions",
    "anomalies",
    "candidates",
    "checkpoints",
    "deadletter",
    "evaluations",
    "examples",
    "metadata",
    "models",
    "schema",
    "statistics",
}
T0 = 1_700_000_000_000
DAY_MS = 86_400_000
REPO_TOPICS = Path(__file__).resolve().parents[2] / "topics"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _signature() -> ModelSignature:
    return ModelSignature(
        task="classification",
        label="big_tipper",
        inputs=[FeatureSignature(name="fare", type="float", required=True)],
        classes=[False, True],
    )


def sample_payloads() -> dict[str, BaseModel]:
    """One realistic instance of every role's payload model."""
    offsets = [OffsetRange(topic="demo.examples", partition=p, start=0, end=100) for p in range(3)]
    artifact = InlineArtifact.from_bytes(b"\x80\x04model", format="river-pickle")
    release = ModelRelease(
        pipeline="demo",
        name="tipper",
        version=2,
        parent_version=1,
        candidate_id="tipper-logreg@7",
        evaluation_id="tipper-logreg@7",
        schema_version=1,
        signature=_signature(),
        metrics={"roc_auc": 0.94},
        examples_seen=300,
        trained_on=offsets,
        artifact=artifact,
        created_at=T0,
    ).signed(b"k" * 32, key_id="k1")
    return {
        "examples": Example(
            id="taxi.csv:12",
            source="taxi-file",
            position={"file": "taxi.csv", "line": 12},
            event_time=T0,
            ingest_time=T0 + 5,
            split="eval",
            features={
                "fare": 7.25,
                "trips": 1,
                "cash": True,
                "company": "Flash Cab",
                "tolls": None,
                "ratings": [4, 5],
                "speed": float("inf"),
            },
            label=0.0,
        ),
        "deadletter": DeadLetter.from_bytes(
            b"x" * 100,
            limit=10,
            id="taxi.csv:13",
            pipeline="demo",
            component="ExampleGen",
            reason="oversize",
            detail="100 bytes > limit 10",
            source="taxi-file",
            position={"file": "taxi.csv", "line": 13},
            topic="demo.examples",
            time=T0,
        ),
        "statistics": StatisticsWindow(
            pipeline="demo",
            split="train",
            window=Window(id="count:100:0", kind="count", size=100, index=0),
            num_examples=100,
            inputs=offsets,
            created_at=T0,
            features={
                "fare": FeatureStatistics(
                    type="float",
                    count=99,
                    num_missing=1,
                    numeric=NumericStatistics(
                        mean=12.5,
                        std_dev=3.0,
                        min=0.0,
                        max=float("inf"),
                        median=11.0,
                        num_inf=1,
                        quantiles={"0.5": 11.0},
                        quantile_rank_error=0.01,
                        histograms=[
                            Histogram(
                                type="equal_width", buckets=[Bucket(low=0, high=20, count=98)]
                            )
                        ],
                    ),
                    sketches={"quantiles": "AAEC"},
                )
            },
        ),
        "schema": SchemaVersion(
            pipeline="demo",
            version=2,
            parent=1,
            origin="evolved",
            reason="new category in payment_type",
            features={
                "fare": FeatureSpec(type="float", min=0.0, max=1000.0),
                "payment_type": FeatureSpec(type="string", domain=["Cash", "Credit Card"]),
                "tips": FeatureSpec(type="float", presence="optional", min_fraction=0.9),
            },
            label="tips",
            inferred_from=offsets,
            num_examples=300,
            created_at=T0,
        ),
        "anomalies": Alert(
            id="demo/COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH/fare/count:100:3",
            pipeline="demo",
            status="resolved",
            type="COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH",
            severity="warning",
            scope="window",
            feature="fare",
            message="fare drifted",
            window=Window(id="count:100:3", kind="count", size=100, index=3),
            metric="jsd",
            value=0.4,
            threshold=0.1,
            reference="training",
            count=3,
            first_seen=T0,
            last_seen=T0 + 1000,
            resolved_at=T0 + 2000,
        ),
        "candidates": Candidate(
            id="tipper-logreg@7",
            pipeline="demo",
            model="tipper-logreg",
            sequence=7,
            parent="tipper-logreg@6",
            algorithm="river.linear_model.LogisticRegression",
            params={"l2": 0.0, "optimizer": {"lr": 0.01}},
            signature=_signature(),
            examples_seen=300,
            trained_on=offsets,
            metrics={"progressive_roc_auc": 0.93},
            artifact=artifact,
            created_at=T0,
        ),
        "evaluations": Evaluation(
            id="tipper-logreg@7",
            pipeline="demo",
            candidate_id="tipper-logreg@7",
            model="tipper-logreg",
            baseline="tipper:1",
            task="classification",
            examples=5000,
            min_examples=1000,
            metrics={"roc_auc": 0.94},
            baseline_metrics={"roc_auc": 0.93},
            checks=[
                ThresholdCheck(
                    metric="roc_auc",
                    kind="value",
                    direction="higher",
                    threshold=0.9,
                    value=0.94,
                    passed=True,
                ),
                ThresholdCheck(
                    metric="roc_auc",
                    kind="change",
                    direction="higher",
                    threshold=0.0,
                    value=0.94,
                    baseline=0.93,
                    passed=True,
                ),
            ],
            blessed=True,
            reasons=[],
            decided_at=T0,
        ),
        "models": ModelRecord(root=release),
        "metadata": MetadataEvent(
            id="demo/Pusher/artifact/tipper@2",
            pipeline="demo",
            kind="artifact",
            component="Pusher",
            artifact={"id": "demo/model/tipper@2", "type": "model", "topic": "demo.models"},
            input_artifacts=["demo/evaluation/tipper-logreg@7"],
            properties={"blessed": True, "reasons": []},
            time=T0,
        ),
        "labels": Label(id="taxi.csv:12", label=True, event_time=T0, source="feedback"),
        "predictions": Prediction(
            id="9f2c41d07a3e-17:0", request_id="9f2c41d07a3e-17", index=0,
            source="host:8501", event_time=T0, model="tipper", version=2,
            features={"fare": 7.25, "payment_type": "Cash", "tips": None}, prediction=0.81,
        ),
        "checkpoints": Checkpoint.of(
            {"count": 3, "mean": 1.5},
            processor="StatisticsGen",
            partition=2,
            offsets={"demo.examples": {2: 300}},
            created_ms=T0,
        ),
    }


# -- loading ------------------------------------------------------------------------------


def test_default_catalog_has_every_role(catalog: Catalog) -> None:
    assert set(catalog.roles) == ROLES
    assert catalog.roles == sorted(catalog.roles)
    assert catalog.path is not None


def test_source_checkout_reads_top_level_topics() -> None:
    assert source_topics_dir() == REPO_TOPICS
    assert load_catalog().path == REPO_TOPICS


def test_packaged_copy_loads_identically(catalog: Catalog) -> None:
    packaged = load_catalog(PACKAGED_TOPICS_DIR)
    assert packaged.roles == catalog.roles
    for role in catalog.roles:
        assert packaged.definition(role) == catalog.definition(role)


def test_path_accepts_str(catalog: Catalog) -> None:
    assert load_catalog(str(REPO_TOPICS)).roles == catalog.roles


# -- names and specs ----------------------------------------------------------------------


@pytest.mark.parametrize("role", sorted(ROLES))
def test_topic_name_is_pipeline_dot_role(catalog: Catalog, role: str) -> None:
    assert catalog.topic_name("taxi", role) == f"taxi.{role}"
    assert catalog.role_of(f"taxi.{role}") == ("taxi", role)
    assert catalog.role_of(f"my_pipe-2.{role}") == ("my_pipe-2", role)


def test_specs_follow_definitions(catalog: Catalog) -> None:
    examples = catalog.spec("taxi", "examples")
    assert examples == TopicSpec(
        name="taxi.examples", partitions=3, cleanup_policy="delete", retention_ms=7 * DAY_MS
    )
    dead = catalog.spec("taxi", "deadletter")
    assert (dead.partitions, dead.retention_ms) == (1, 30 * DAY_MS)
    assert catalog.spec("taxi", "anomalies").partitions == 1
    assert catalog.spec("taxi", "metadata").retention_ms is None
    for role in ("schema", "models", "checkpoints"):
        spec = catalog.spec("taxi", role)
        assert spec.cleanup_policy == "compact"
        assert spec.retention_ms is None
    for role in ("models", "checkpoints", "candidates"):
        assert catalog.spec("taxi", role).config["max.message.bytes"] == str(16 * 1024 * 1024)
    assert catalog.definition("checkpoints").internal


def test_every_spec_config_is_text(catalog: Catalog) -> None:
    for spec in catalog.specs("taxi"):
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in spec.config.items())


def test_specs_subset_keeps_order_and_rejects_unknown(catalog: Catalog) -> None:
    assert [s.name for s in catalog.specs("p", ["models", "examples"])] == [
        "p.models",
        "p.examples",
    ]
    assert len(catalog.specs("p")) == len(ROLES)
    with pytest.raises(ConfigError, match="unknown topic role 'nope'"):
        catalog.specs("p", ["nope"])
    with pytest.raises(ConfigError, match="known: anomalies"):
        catalog.definition("labelz")


@pytest.mark.parametrize("name", ["taxi", "Taxi_2", "a-b", "0day", "x" * 200])
def test_valid_pipeline_names(catalog: Catalog, name: str) -> None:
    assert validate_pipeline(name) == name
    assert catalog.topic_name(name, "examples") == f"{name}.examples"


@pytest.mark.parametrize(
    "name", ["", "a.b", "-x", "_x", "__consumer", "a b", "tä", "a/b", "x" * 201, "a\n"]
)
def test_invalid_pipeline_names(catalog: Catalog, name: str) -> None:
    with pytest.raises(ConfigError, match="invalid pipeline name"):
        catalog.topic_name(name, "examples")
    with pytest.raises(ConfigError, match="invalid pipeline name"):
        catalog.spec(name, "models")


@pytest.mark.parametrize(
    "topic",
    ["taxi", "taxi.unknown", ".examples", "a.b.examples", "taxi.examples.x", "-x.examples", ""],
)
def test_role_of_other_topics(catalog: Catalog, topic: str) -> None:
    assert catalog.role_of(topic) is None


# -- payload models -----------------------------------------------------------------------


def test_sample_covers_every_role() -> None:
    assert set(sample_payloads()) == ROLES


@pytest.mark.parametrize("role", sorted(ROLES))
def test_payload_model_validates_and_round_trips(catalog: Catalog, role: str) -> None:
    model = catalog.payload_model(role)
    instance = sample_payloads()[role]
    assert isinstance(instance, model)
    wire = serde.encode(instance.model_dump(mode="json"))
    back = model.model_validate(serde.decode(wire))
    # NaN != NaN, so compare the canonical wire form as well as the objects.
    assert serde.encode(back.model_dump(mode="json")) == wire
    assert back.model_dump(mode="json") == instance.model_dump(mode="json")
    assert model.model_validate_json(instance.model_dump_json()).model_dump(
        mode="json"
    ) == instance.model_dump(mode="json")


@pytest.mark.parametrize("role", sorted(ROLES - {"models"}))
def test_payload_models_refuse_unknown_fields(catalog: Catalog, role: str) -> None:
    data = sample_payloads()[role].model_dump(mode="json")
    data["surprise"] = 1
    with pytest.raises(ValidationError, match="extra_forbidden|Extra inputs"):
        catalog.payload_model(role).model_validate(data)


def test_example_keeps_feature_types_and_nonfinite_floats() -> None:
    ex = sample_payloads()["examples"]
    assert isinstance(ex, Example)
    back = Example.model_validate(serde.decode(serde.encode(ex.model_dump(mode="json"))))
    assert type(back.features["cash"]) is bool
    assert type(back.features["trips"]) is int
    assert type(back.features["fare"]) is float
    assert back.features["speed"] == math.inf
    assert back.features["tolls"] is None
    nan = Example.model_validate({**ex.model_dump(), "features": {"x": float("nan")}})
    assert nan.to_json()["features"]["x"] == "NaN"
    assert math.isnan(Example.model_validate(nan.to_json()).features["x"])  # type: ignore[arg-type]


def test_example_split_and_time_are_checked() -> None:
    data = sample_payloads()["examples"].model_dump(mode="json")
    with pytest.raises(ValidationError):
        Example.model_validate({**data, "split": "Train!"})
    with pytest.raises(ValidationError):
        Example.model_validate({**data, "event_time": -1})


def test_deadletter_keeps_original_bytes() -> None:
    dl = sample_payloads()["deadletter"]
    assert isinstance(dl, DeadLetter)
    assert dl.truncated and dl.original_size == 100 and dl.original_bytes() == b"x" * 10


def test_deadletter_rejects_bad_base64() -> None:
    data = sample_payloads()["deadletter"].model_dump(mode="json")
    with pytest.raises(ValidationError, match="base64"):
        DeadLetter.model_validate({**data, "encoding": "base64", "original": "%%"})


def test_model_release_signature_detects_tampering() -> None:
    record = sample_payloads()["models"]
    assert isinstance(record, ModelRecord)
    release = record.root
    assert isinstance(release, ModelRelease)
    assert release.verify(b"k" * 32)
    assert not release.verify(b"other-key")
    assert not release.model_copy(update={"version": 3}).verify(b"k" * 32)
    assert not release.model_copy(update={"hmac_sha256": None}).verify(b"k" * 32)


def test_models_topic_carries_chunks() -> None:
    chunk = ModelChunk.from_bytes(b"part", name="tipper", version=2, index=0, count=2)
    back = ModelRecord.model_validate(serde.decode(serde.encode(chunk.to_json())))
    assert back.root == chunk
    art = ChunkedArtifact(
        format="river-pickle",
        size=8,
        sha256="0" * 64,
        chunks=2,
        chunk_size=4,
        key_prefix="tipper@2",
    )
    assert art.chunk_key(0) == chunk.key


def test_evaluation_fails_closed() -> None:
    data = sample_payloads()["evaluations"].model_dump(mode="json")
    with pytest.raises(ValidationError, match="without threshold checks"):
        Evaluation.model_validate({**data, "checks": []})
    failed = [{**data["checks"][0], "passed": False}]
    with pytest.raises(ValidationError, match="failed check"):
        Evaluation.model_validate({**data, "checks": failed})
    with pytest.raises(ValidationError, match="reason"):
        Evaluation.model_validate({**data, "blessed": False, "reasons": []})


def test_checkpoint_detects_corrupt_state() -> None:
    cp = sample_payloads()["checkpoints"]
    assert isinstance(cp, Checkpoint)
    assert cp.key == "StatisticsGen/2" and cp.restore_state() == {"count": 3, "mean": 1.5}
    with pytest.raises(ValidationError, match="corrupt"):
        Checkpoint.model_validate({**cp.to_json(), "state": {"count": 4, "mean": 1.5}})


def test_alert_resolution_is_consistent() -> None:
    data = sample_payloads()["anomalies"].model_dump(mode="json")
    with pytest.raises(ValidationError, match="resolved_at"):
        Alert.model_validate({**data, "status": "open"})


# -- invalid definition folders -----------------------------------------------------------


def _copy_topics(tmp_path: Path) -> Path:
    folder = tmp_path / "topics"
    shutil.copytree(REPO_TOPICS, folder)
    return folder


def _edit(folder: Path, file_role: str, changes: dict[str, object]) -> None:
    file = folder / f"{file_role}.yaml"
    data = yaml.safe_load(file.read_text())
    data.update(changes)
    file.write_text(yaml.safe_dump(data))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"partitions": 0}, "greater than or equal to 1"),
        ({"cleanup_policy": "compact,delete"}, "cleanup_policy"),
        ({"name": "examples"}, "exactly once"),
        ({"name": "{pipeline}/examples"}, r"\[a-zA-Z0-9._-\]"),
        ({"config": {"retention.ms": 1}}, "dedicated fields"),
        ({"retention": "7d"}, "Extra inputs"),
        ({"role": "other"}, "must match the file name"),
    ],
)
def test_invalid_definitions_are_config_errors(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    folder = _copy_topics(tmp_path)
    _edit(folder, "examples", changes)
    with pytest.raises(ConfigError, match=message):
        load_catalog(folder)


def test_retention_must_be_stated(tmp_path: Path) -> None:
    folder = _copy_topics(tmp_path)
    file = folder / "examples.yaml"
    data = yaml.safe_load(file.read_text())
    del data["retention_ms"]
    file.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="retention_ms"):
        load_catalog(folder)


def test_duplicate_name_patterns_are_refused(tmp_path: Path) -> None:
    folder = _copy_topics(tmp_path)
    _edit(folder, "anomalies", {"name": "{pipeline}.examples"})
    with pytest.raises(ConfigError, match="share the name"):
        load_catalog(folder)


def test_unreadable_yaml_and_empty_or_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_catalog(tmp_path / "absent")
    with pytest.raises(ConfigError, match="no topic definitions"):
        load_catalog(tmp_path)
    (tmp_path / "examples.yaml").write_text("role: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_catalog(tmp_path)


def test_bad_payload_path_fails_when_used(tmp_path: Path) -> None:
    folder = _copy_topics(tmp_path)
    _edit(folder, "examples", {"payload": "streamml.payloads.examples.Nope"})
    catalog = load_catalog(folder)
    with pytest.raises(ConfigError, match="cannot import payload"):
        catalog.payload_model("examples")
    _edit(folder, "examples", {"payload": "streamml.catalog.load_catalog"})
    with pytest.raises(ConfigError, match="not a pydantic model"):
        load_catalog(folder).payload_model("examples")


def test_definition_model_coerces_config_values() -> None:
    definition = TopicDefinition.model_validate(
        {
            **yaml.safe_load((REPO_TOPICS / "models.yaml").read_text()),
            "config": {"max.message.bytes": 1024, "preallocate": True},
        }
    )
    assert definition.config == {"max.message.bytes": "1024", "preallocate": "true"}


# -- the schema command -------------------------------------------------------------------


def test_write_and_check_schemas_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _copy_topics(tmp_path)
    assert main(["check-schemas", "--topics", str(folder)]) == 0
    stale = folder / "schemas" / "examples.schema.json"
    stale.write_text("{}\n")
    (folder / "schemas" / "metadata.schema.json").unlink()
    (folder / "schemas" / "gone.schema.json").write_text("{}\n")
    assert main(["check-schemas", "--topics", str(folder)]) == 1
    err = capsys.readouterr().err
    assert f"stale {stale}" in err
    assert "missing" in err and "metadata.schema.json" in err
    assert "orphan" in err and "gone.schema.json" in err
    assert "write-schemas" in err
    assert main(["write-schemas", "--topics", str(folder)]) == 0
    assert main(["check-schemas", "--topics", str(folder)]) == 0
    assert not (folder / "schemas" / "gone.schema.json").exists()


def test_schema_command_reports_bad_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-schemas", "--topics", str(tmp_path)]) == ConfigError.exit_code
    assert "no topic definitions" in capsys.readouterr().err
