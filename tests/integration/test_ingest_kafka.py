"""The ingest loop on the real Kafka broker: taxi CSV → <p>.examples; ids equal the source."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from streamml.connectors.definition import DATA_DIR
from streamml.connectors.examplegen import ExampleGen
from streamml.connectors.file import FileSource
from streamml.connectors.ingest import Ingestor
from streamml.log import open_log
from streamml.payloads.examples import Example
from streamml.settings import Settings
from tests.connector_helpers import read_topic

pytestmark = pytest.mark.kafka

BAD = [b'1,"unbalanced', b"\xff\xfe,2,3", b"only,three,fields"]


def test_taxi_file_to_kafka_ids_equal_the_source(tmp_path: Path, kafka_url: str) -> None:
    header, _, body = (DATA_DIR / "taxi.csv").read_bytes().partition(b"\n")
    lines = body.rstrip(b"\n").split(b"\n")
    # three malformed lines, at known places
    for at, bad in zip((10, 5000, 12000), BAD, strict=True):
        lines.insert(at, bad)
    path = tmp_path / "taxi.csv"
    path.write_bytes(header + b"\n" + b"\n".join(lines) + b"\n")
    pipeline = f"it{uuid.uuid4().hex[:8]}"
    settings = Settings(broker=kafka_url)
    with open_log(kafka_url, settings) as log:
        ing = Ingestor(log, FileSource(name="taxi", path=str(path)), pipeline,
                       examplegen=ExampleGen("taxi", pipeline=pipeline,
                                             event_time="trip_start_timestamp",
                                             event_time_unit="s"),
                       batch_size=4000)
        try:
            stats = ing.run()
        finally:
            ing.close()
    assert stats.records_in == len(lines) == stats.examples + stats.dead_letters
    assert stats.dead_letters == 3
    source_ids = {f"taxi:taxi.csv:{n}" for n in range(2, len(lines) + 2)}
    bad_ids = {f"taxi:taxi.csv:{at + 2}" for at in (10, 5000, 12000)}
    examples = read_topic(kafka_url, f"{pipeline}.examples")
    assert len(examples) == stats.examples
    assert {e["id"] for e in examples} == source_ids - bad_ids
    Example.model_validate(examples[0])
    letters = read_topic(kafka_url, f"{pipeline}.deadletter")
    assert {d["id"] for d in letters} == bad_ids
    assert {d["reason"] for d in letters} == {"unparsable", "bad_encoding"}
