"""History on a real Kafka broker: replay determinism and archive-then-live (issue 7).

* The taxi examples (4,500 replayed rows, drift halfway) are ingested into
  Kafka; a range is replayed twice from Kafka and once from the Parquet archive
  into fresh namespaces, byte-identically, and the whole pipeline runs over
  each namespace: statistics, alerts, candidates, evaluations and signed models
  must be equal (the namespace name aside), and the models' weights too.
* :class:`~streamml.history.hybrid.HybridConsumer` reads a topic from the
  archive, then from Kafka, while a producer keeps writing: every offset of
  every partition once, in order.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamml import serde
from streamml.examples.taxi_pipeline import DEMO_DRIFT, TAXI_CSV
from streamml.history.archive import ArchiveSink
from streamml.history.hybrid import HybridConsumer
from streamml.history.layout import archive_files
from streamml.history.replay import replay, run_processors
from streamml.learning.artifact import load_release_model
from streamml.log import Log, open_log
from streamml.log.base import Record, TopicSpec
from streamml.payloads.models import ModelRelease
from streamml.pipeline import Connector, Pipeline, PipelineRun, ReplaySource
from streamml.settings import load_settings
from tests.history_helpers import contents, records

pytestmark = pytest.mark.kafka

KEY = "kafka-history-key"
ROWS = 4500
PIPELINE_FILE = '''
from streamml.examples.taxi_pipeline import build_pipeline as taxi


def build_pipeline(settings, name):
    return taxi(settings, name=name, rows={rows}, window=500, start_ms={start})
'''
ROLES = ("statistics", "anomalies", "schema", "candidates", "evaluations", "models")


@pytest.fixture
def kafka_log(kafka_url: str) -> Iterator[Log]:
    log = open_log(kafka_url)
    before = set(log.list_topics())
    try:
        yield log
    finally:
        for topic in set(log.list_topics()) - before:
            log.delete_topic(topic)
        log.close()


def test_replay_on_kafka_twice_gives_equal_artifacts(kafka_log: Log, kafka_url: str,
                                                     tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMML_HISTORY_DIR", str(tmp_path / "history"))
    p = f"hk{os.getpid()}"
    start = (int(time.time() * 1000) - ROWS * 1000) // 60_000 * 60_000  # within retention
    settings = load_settings(config_file=None, broker=kafka_url, signing_key=KEY)
    source = ReplaySource("taxi", TAXI_CSV, seed=7, start_ms=start, step_ms=1000, limit=ROWS,
                          drift=DEMO_DRIFT)
    ingest = Pipeline(name=p, settings=settings, components=[Connector(source, pipeline=p)])
    with PipelineRun(ingest, kafka_log) as run:
        run.run_until_done(idle_s=0.5)
    live = records(kafka_log, f"{p}.examples")
    assert len(live) == ROWS
    stamps = sorted(r.timestamp_ms for r in live)
    lo, hi = stamps[500], stamps[-1] + 1
    expected = sum(lo <= t < hi for t in stamps)
    archive = tmp_path / "archive"
    ArchiveSink(kafka_log, archive, [f"{p}.examples"], pipeline=p).run()
    (tmp_path / "pipe.py").write_text(PIPELINE_FILE.format(rows=ROWS, start=start))
    namespaces = []
    for suffix, src in (("-a", "kafka"), ("-b", "kafka"), ("-c", "archive")):
        ns = p + suffix
        stats = replay(kafka_log, p, lo, hi, source=src, namespace=ns,  # type: ignore[arg-type]
                       root=archive)
        assert stats.records == expected and stats.by_source == {src: expected}
        run_processors(kafka_log, f"{tmp_path / 'pipe.py'}:build_pipeline", ns,
                       settings=settings, idle_s=1.5, timeout_s=600)
        namespaces.append(ns)
    copies = [[(r.partition, r.offset, r.timestamp_ms, r.key, r.value)
               for r in records(kafka_log, f"{ns}.examples")] for ns in namespaces]
    assert copies[0] == copies[1] == copies[2] and len(copies[0]) == expected
    for role in ROLES:
        first, *others = (contents(kafka_log, ns, role) for ns in namespaces)
        assert first or role == "models", f"nothing on {role}"
        for other in others:
            assert other == first, role
    weights = []
    for ns in namespaces:
        releases = [ModelRelease.model_validate(serde.decode(r.value))
                    for r in records(kafka_log, f"{ns}.models")
                    if r.value is not None and serde.decode(r.value).get("kind") == "release"]
        models = [load_release_model(rel, KEY.encode()) for rel in releases]
        weights.append([(rel.version, dict(m[-1].weights) if hasattr(m, "steps") else None)
                        for rel, m in zip(releases, models, strict=True)])
    assert weights[0] and all(w is not None for _, w in weights[0]), weights[0]
    assert weights[0] == weights[1] == weights[2]


TOPIC_ROLE = "examples"
TOTAL = 3000


def _produce(log: Log, topic: str, t0: int, started: threading.Event,
             archived: threading.Event) -> None:
    """A third of the records, then (once the archive ran) the rest, while the reader reads."""
    with log.producer() as p:
        for i in range(TOTAL):
            p.send(topic, b'{"i": %d}' % i, b"k%d" % i, partition=i % 3, timestamp_ms=t0 + i)
            if i % 50 == 49:
                p.flush()
                if i >= TOTAL // 3:
                    started.set()
                    archived.wait(120)
                time.sleep(0.01)
        p.flush()


def test_archive_then_live_on_kafka_with_a_concurrent_producer(kafka_log: Log,
                                                               tmp_path: Path) -> None:
    p = f"hh{os.getpid()}"
    topic = f"{p}.{TOPIC_ROLE}"
    kafka_log.create_topic(TopicSpec(topic, partitions=3))
    root = tmp_path / "hist"
    started, archived_event = threading.Event(), threading.Event()
    t0 = int(time.time() * 1000) - 60_000
    writer = threading.Thread(target=_produce,
                              args=(kafka_log, topic, t0, started, archived_event))
    writer.start()
    got: list[Record] = []
    try:
        assert started.wait(60)
        ArchiveSink(kafka_log, root, [topic], pipeline=p).run()  # partway
        archived = sum(f.last - f.first + 1 for f in archive_files(root, topic))
        assert archived > 0
        archived_event.set()  # the producer goes on writing while the consumer reads
        with HybridConsumer(kafka_log, root, topic) as hc:
            deadline = time.monotonic() + 120
            while len(got) < TOTAL and time.monotonic() < deadline:
                got += hc.poll(timeout_s=0.5)
            got += hc.read_available(timeout_s=1.0)  # nothing extra arrives
    finally:
        archived_event.set()
        writer.join(120)
    by_partition: dict[int, list[int]] = {}
    for r in got:
        by_partition.setdefault(r.partition, []).append(r.offset)
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets))), "gap, duplicate or out of order"
    assert len(got) == TOTAL
    assert {r.value for r in got} == {b'{"i": %d}' % i for i in range(TOTAL)}
    assert hc.from_archive == archived and hc.from_log == TOTAL - archived
    assert archived < TOTAL, "the producer finished before the archive: nothing read live"
