"""Evidence: Trainer + Evaluator + Pusher on the taxi CSV through the embedded Runner."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from streamml import serde
from streamml.learning import (
    Evaluator,
    GateConfig,
    MetricThreshold,
    Pusher,
    Trainer,
    load_release_model,
)
from streamml.log.embedded import EmbeddedLog
from streamml.payloads.evaluations import Evaluation
from streamml.payloads.models import ModelRecord, ModelRelease
from streamml.processors.basic import _typed, split_of
from streamml.runtime.runner import Runner, topic_spec

ROOT = Path(__file__).resolve().parents[2]
TAXI = ROOT / "streamml" / "data" / "taxi.csv"
MODULE = str(ROOT / "examples" / "taxi_module.py")
KEY = b"test-signing-key"


def taxi_examples(limit: int | None = None) -> list[dict]:
    """Example-shaped JSON: deterministic id, split and event time; every column a feature."""
    out = []
    with TAXI.open(newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if limit is not None and i >= limit:
                break
            ex_id = f"taxi.csv:{i}"
            t = 1_700_000_000_000 + i * 1000
            out.append({"id": ex_id, "source": "taxi-file", "position": {"line": i + 2},
                        "event_time": t, "ingest_time": t, "split": split_of(ex_id),
                        "features": {k: _typed(v) for k, v in row.items()}, "label": None})
    return out


def read_all(log: EmbeddedLog, topic: str) -> list:
    out = []
    with log.consumer(group_id=None) as consumer:
        consumer.subscribe([topic])
        consumer.seek_to_beginning()
        while batch := consumer.poll(0.2, 10_000):
            out.extend(batch)
    return out


@pytest.mark.parametrize(("source", "mini_batch"), [
    (MODULE, None),
    (f"{MODULE}:build_batch_model", 500),  # learn_many on 500-example pyarrow Tables
])
def test_taxi_blessed_model_reaches_auc(tmp_path: Path, source: str,
                                        mini_batch: int | None) -> None:
    log = EmbeddedLog(str(tmp_path / "log"))
    p = "taxi"
    log.create_topic(topic_spec(p, f"{p}.examples"))
    with log.producer() as prod:
        for ex in taxi_examples():
            prod.send(f"{p}.examples", serde.encode(ex), ex["id"].encode(),
                      timestamp_ms=ex["event_time"])
    gate = GateConfig(min_examples=1000, thresholds=[
        MetricThreshold(metric="roc_auc", lower=0.92),
        MetricThreshold(metric="roc_auc", change_absolute=-0.01),
        MetricThreshold(metric="log_loss", upper=0.5),
    ])
    processors = [
        Trainer(p, {"logreg": source}, MODULE, snapshot_every=2000, mini_batch=mini_batch),
        Evaluator(p, gate, MODULE, window=2000, slice_features=["payment_type"]),
        Pusher(p, KEY, key_id="k1", export_dir=str(tmp_path / "export")),
    ]
    runner = Runner(log, processors, p, batch_size=500)
    runner.run_until_idle(idle_s=0.3, timeout_s=120)
    runner.close()
    trainer = processors[0]
    assert isinstance(trainer, Trainer)
    assert (trainer.learners["logreg"].batches > 0) == (mini_batch is not None)

    evaluations = [Evaluation.model_validate(r.value and serde.decode(r.value))
                   for r in read_all(log, f"{p}.evaluations")]
    assert evaluations, "the evaluator judged nothing"
    blessed = [e for e in evaluations if e.blessed]
    assert blessed, [e.reasons for e in evaluations]
    best = max(e.metrics["roc_auc"] for e in blessed)
    print(f"\nblessed {len(blessed)}/{len(evaluations)}; best prequential ROC AUC {best:.4f}")
    assert best >= 0.92
    assert any(s.feature == "payment_type" for s in blessed[0].slices)

    releases = [ModelRecord.model_validate(serde.decode(r.value)).root
                for r in read_all(log, f"{p}.models")]
    releases = [r for r in releases if isinstance(r, ModelRelease)]
    assert [r.version for r in releases] == list(range(1, len(blessed) + 1))
    assert all(r.verify(KEY) for r in releases)
    model = load_release_model(releases[-1], KEY)
    proba = model.predict_proba_one({"fare": 20.0, "payment_type": "Credit Card"})
    assert 0.0 <= proba[True] <= 1.0
    assert (tmp_path / "export" / str(releases[-1].version) / "model.pkl").exists()
    log.close()


@pytest.mark.parametrize("n", [0])
def test_taxi_module_features_exclude_tips(n: int) -> None:
    from streamml.learning import load_module_file

    um = load_module_file(MODULE)
    ex = taxi_examples(limit=1)[n]
    assert "tips" not in um.features(ex)
    assert um.label(ex) is (ex["features"]["tips"] > 0.2 * ex["features"]["fare"])
