"""The synthetic source: River streams with drifts at known positions; paced file replay."""

from __future__ import annotations

import itertools
from pathlib import Path

from streamml.connectors.examplegen import ExampleGen
from streamml.connectors.ingest import Ingestor
from streamml.connectors.synthetic import SyntheticSource
from streamml.log.embedded import EmbeddedLog
from tests.connector_helpers import read_topic


def test_agrawal_with_drift_is_deterministic_and_resumes_exactly() -> None:
    opts = {"stream": "Agrawal", "params": {"classification_function": 0}, "seed": 7,
            "n": 400, "drifts": [{"position": 200, "width": 10,
                                  "params": {"classification_function": 4}}],
            "event_time_start_ms": 1_700_000_000_000, "interval_ms": 1000}
    a = SyntheticSource(name="ag", **opts)
    a.open()
    rows = list(itertools.chain.from_iterable(iter(lambda: a.read(64), [])))
    assert a.exhausted and len(rows) == 400
    assert rows[250].id == "ag:250" and rows[250].event_time_ms == 1_700_000_250_000
    b = SyntheticSource(name="ag", **opts)
    b.open({"n": 123})
    assert [r.row for r in b.read(50)] == [r.row for r in rows[123:173]]
    # The concept changes at the drift: the label function differs after it.
    gen = ExampleGen("ag", label="y")
    out = gen.process(rows)
    assert len(out.examples) == 400 and not out.dead_letters
    assert {"salary", "age"} <= set(out.examples[0]["features"])


def test_sea_hyperplane_drift_positions_change_the_concept() -> None:
    src = SyntheticSource(name="s", stream="SEA", params={"variant": 0}, seed=3, n=2000,
                          drifts=[{"position": 1000, "width": 1, "params": {"variant": 3}}])
    src.open()
    recs = src.read(2000)

    def agree(rs: list, threshold: float) -> float:
        return sum((r.row["0"] + r.row["1"] > threshold) == r.row["y"] for r in rs) / len(rs)

    # SEA variant 0 is "x0 + x1 > 8", variant 3 "> 9.5"; noise 0.
    assert agree(recs[:960], 8) == 1.0 and agree(recs[1040:], 9.5) == 1.0
    hp = SyntheticSource(name="h", stream="Hyperplane", params={"n_features": 4}, seed=1, n=10)
    hp.open()
    assert len(hp.read(100)) == 10


def test_replay_at_a_rate_and_by_event_time(tmp_path: Path) -> None:
    path = tmp_path / "ev.csv"
    path.write_text("k,ts\n" + "".join(f"{i},{1000 + i * 10}\n" for i in range(50)))
    now = [0.0]
    src = SyntheticSource(name="r", stream="replay", path=str(path), rate=10, refill=7,
                          clock=lambda: now[0])
    src.open()
    assert len(src.read(100)) == 1          # t=0: one record due
    now[0] = 1.0
    first = src.read(100)
    assert len(first) == 10
    position = src.position
    # event-time pacing: 10 s of event time per record, speedup 10 → 1 record per second
    ev = SyntheticSource(name="r", stream="replay", path=str(path), event_time="ts",
                         event_time_unit="s", speedup=10, clock=lambda: now[0])
    now[0] = 0.0
    ev.open()
    assert len(ev.read(100)) == 1
    now[0] = 3.0
    assert len(ev.read(100)) == 3
    # exact resume of the rate replay: the next id follows the last returned
    resumed = SyntheticSource(name="r", stream="replay", path=str(path), rate=1e9, refill=7)
    resumed.open(position)
    rest = list(itertools.chain.from_iterable(iter(lambda: resumed.read(100), [])))
    assert rest[0].id == "r:ev.csv:13" and len(rest) == 50 - 11 and resumed.exhausted


def test_synthetic_through_the_ingest_loop_records_in_equal_out(tmp_path: Path) -> None:
    log = EmbeddedLog(str(tmp_path / "log"))
    src = SyntheticSource(name="sy", stream="Agrawal", seed=1, n=1000)
    ing = Ingestor(log, src, "p", examplegen=ExampleGen("sy", pipeline="p", label="y"),
                   batch_size=128)
    stats = ing.run()
    ing.close()
    log.close()
    assert stats.records_in == 1000 == stats.examples + stats.dead_letters
    ids = {e["id"] for e in read_topic(f"embedded://{tmp_path / 'log'}", "p.examples")}
    assert ids == {f"sy:{i}" for i in range(1000)}
