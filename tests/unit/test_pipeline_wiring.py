"""Pipeline wiring errors at build time, and settings precedence (code > env > file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamml.errors import ConfigError
from streamml.learning import Evaluator, GateConfig, MetricThreshold, Trainer
from streamml.pipeline import Connector, Pipeline, Step, load_pipeline
from streamml.processors.basic import ToExample
from streamml.statistics.processor import StatisticsGen
from streamml.validation import ExampleValidator, SchemaGen

ROOT = Path(__file__).resolve().parents[2]
GATE = GateConfig(thresholds=[MetricThreshold(metric="roc_auc", lower=0.9)])
NO_FILE = {"broker": "embedded:///tmp/unused"}


def _connector(p: str = "p") -> Connector:
    return Connector("taxi-file", pipeline=p)


def test_graph_is_topologically_ordered() -> None:
    p = Pipeline(name="p", settings=NO_FILE, components=[
        ExampleValidator("p.examples", "p.anomalies", schema_topic="p.schema",
                         statistics_topic="p.statistics"),
        SchemaGen("p.examples", "p.schema", "p.anomalies"),
        StatisticsGen("p.examples", "p.statistics"),
        _connector(),
    ])
    names = [c.name for c in p.order]
    assert names.index("ingest/taxi-file") < names.index("statistics_gen")
    assert names.index("statistics_gen") < names.index("example_validator")
    assert names.index("schema_gen") < names.index("example_validator")
    assert ("statistics_gen", "p.statistics", "example_validator") in p.edges()


def test_missing_upstream_names_topic_and_component() -> None:
    with pytest.raises(ConfigError, match=r"example_validator reads p.schema, but no component"):
        Pipeline(name="p", settings=NO_FILE, components=[
            _connector(), ExampleValidator("p.examples", "p.anomalies", schema_topic="p.schema")])


def test_external_topic_is_not_missing() -> None:
    p = Pipeline(name="p", settings=NO_FILE, external=["p.examples"],
                 components=[StatisticsGen("p.examples", "p.statistics")])
    assert p.topics == ["p.statistics"]


def test_cycle_is_reported_with_its_path() -> None:
    a = Step(ToExample("p.raw", "p.examples"), produces={"p.examples": "examples"},
             consumes={"p.raw": None})
    b = ToExample("p.examples", "p.raw")
    b.name = "back"  # type: ignore[misc]
    with pytest.raises(ConfigError, match=r"cycle: .*to_example.*back|cycle: .*back.*to_example"):
        Pipeline(name="p", settings=NO_FILE, components=[a, Step(b, consumes={
            "p.examples": "examples"}, produces={"p.raw": None})])


def test_trainer_evaluator_feedback_loop_is_not_a_cycle() -> None:
    p = Pipeline(name="p", settings=NO_FILE, components=[
        _connector(), Trainer("p", {"m": {"numeric": ["fare"]}}), Evaluator("p", GATE)])
    assert [c.name for c in p.order][-2:] == ["trainer", "evaluator"]


def test_incompatible_payload() -> None:
    # SchemaGen consumes Example records, but p.statistics carries StatisticsWindow ones.
    with pytest.raises(ConfigError, match=r"incompatible payload on p.statistics: .*"
                                          r"StatisticsWindow.*schema_gen consumes Example"):
        Pipeline(name="p", settings=NO_FILE, components=[
            _connector(), StatisticsGen("p.examples", "p.statistics"),
            SchemaGen("p.statistics", "p.schema", "p.anomalies")])


def test_topic_of_another_pipeline() -> None:
    with pytest.raises(ConfigError, match="outside the pipeline's p.\\* topics"):
        Pipeline(name="p", settings=NO_FILE, components=[
            _connector(), StatisticsGen("p.examples", "q.statistics")])


def test_duplicate_names() -> None:
    with pytest.raises(ConfigError, match="unique"):
        Pipeline(name="p", settings=NO_FILE, components=[
            _connector(), StatisticsGen("p.examples", "p.statistics"),
            StatisticsGen("p.examples", "p.statistics")])


def test_settings_precedence_code_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    cfg = tmp_path / "streamml.yaml"
    cfg.write_text("broker: embedded:///from-file\npipeline: filep\nstate_dir: /file-state\n")
    monkeypatch.setenv("STREAMML_CONFIG", str(cfg))
    monkeypatch.setenv("STREAMML_PIPELINE", "envp")
    monkeypatch.setenv("STREAMML_BROKER", "embedded:///from-env")
    p = Pipeline(name="p", external=["p.examples"], settings={"broker": "embedded:///code"},
                 components=[StatisticsGen("p.examples", "p.statistics")])
    assert p.settings.broker == "embedded:///code"        # code beats env and file
    assert p.settings.pipeline == "envp"                  # env beats file
    assert p.settings.state_dir == "/file-state"          # file beats default


def test_load_pipeline_from_file_and_module(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamml.settings import load_settings

    settings = load_settings(config_file=None, signing_key="k")
    p = load_pipeline(str(ROOT / "examples" / "taxi_pipeline.py"), settings, name="t1")
    assert p.name == "t1" and {"trainer", "evaluator", "pusher"} <= {c.name for c in p.order}
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    p2 = load_pipeline("drift_pipeline:build_pipeline", settings)
    assert p2.name == "penguins"
    with pytest.raises(ConfigError, match="signing_key"):
        load_pipeline(str(ROOT / "examples" / "taxi_pipeline.py"),
                      load_settings(config_file=None))
    with pytest.raises(ConfigError, match="no attribute"):
        load_pipeline("streamml.pipeline:nothing_here", settings)


def test_taxi_pipeline_mini_batch_option_reaches_the_trainer() -> None:
    from streamml.learning import Trainer
    from streamml.learning.minibatch import supports_many
    from streamml.settings import load_settings

    settings = load_settings(config_file=None, signing_key="k")
    plain = load_pipeline(str(ROOT / "examples" / "taxi_pipeline.py"), settings, name="t2")
    batched = load_pipeline(str(ROOT / "examples" / "taxi_pipeline.py"), settings, name="t3",
                            mini_batch=500)
    [t_plain] = [p for p in plain.processors if isinstance(p, Trainer)]
    [t_batch] = [p for p in batched.processors if isinstance(p, Trainer)]
    assert t_plain.mini_batch is None and t_batch.mini_batch == 500
    assert not supports_many(t_plain.learners["logreg"].model)
    assert supports_many(t_batch.learners["logreg"].model)
