"""DuckDB statistics store: flattened rows match the windows, re-delivery is idempotent."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from streamml.log.embedded import EmbeddedLog
from streamml.payloads.statistics import StatisticsWindow
from streamml.processors.base import Message
from streamml.runtime.runner import Runner
from streamml.serde import encode
from streamml.statistics.processor import StatisticsGen
from streamml.statistics.store import StatisticsDB, StatisticsStore
from tests.unit.test_statistics_processor import TOPIC, messages, run, taxi_table


@pytest.fixture(scope="module")
def windows() -> list[StatisticsWindow]:
    gen = StatisticsGen(TOPIC, "taxi.statistics", pipeline="taxi", count_window=3000,
                        cumulative_every=5000)
    return [StatisticsWindow.model_validate(e.value) for e in run(gen, messages(taxi_table()))]


def _msgs(ws: list[StatisticsWindow]) -> list[Message]:
    return [Message("taxi.statistics", 0, i, w.created_at, f"{w.split}/{w.window.id}",
                    w.to_json()) for i, w in enumerate(ws)]


def test_rows_match_windows_and_sql_over_time(tmp_path: Path,
                                              windows: list[StatisticsWindow]) -> None:
    db = StatisticsDB(tmp_path / "s.duckdb")
    db.append(windows)
    finals = [w for w in windows if w.window.kind == "count"]
    rows = db.query("SELECT split, window_id, mean, std_dev, count, num_missing, q50 FROM stats "
                    "WHERE feature = 'fare' AND kind = 'count' ORDER BY split, idx")
    expected = sorted(finals, key=lambda w: (w.split, w.window.index or 0))
    assert len(rows) == len(expected) > 2
    for (split, wid, mean, std, count, missing, q50), w in zip(rows, expected, strict=True):
        fs = w.features["fare"]
        assert (split, wid, count, missing) == (w.split, w.window.id, fs.count, fs.num_missing)
        assert fs.numeric is not None
        assert math.isclose(mean, fs.numeric.mean or 0) and math.isclose(std, fs.numeric.std_dev
                                                                          or 0)
        assert q50 == fs.numeric.quantiles["0.5"]
    top = db.query("SELECT value, count FROM top_values WHERE feature = 'payment_type' "
                   "AND window_id = 'count:3000:0' AND split = 'train' ORDER BY rank LIMIT 1")
    w0 = next(w for w in finals if w.split == "train" and w.window.index == 0)
    cat = w0.features["payment_type"].categorical
    assert cat is not None and top == [(cat.top_values[0].value, cat.top_values[0].count)]
    # cumulative progress updates are one window: the latest record
    [(n,)] = db.query("SELECT num_examples FROM windows WHERE window_id = 'cumulative' "
                      "AND split = 'train'")
    assert n == max(w.num_examples for w in windows
                    if w.split == "train" and w.window.kind == "cumulative")
    latest = db.latest("taxi", feature="fare", last=2)
    assert len(latest) == 2 and {r["feature"] for r in latest} == {"fare"}
    db.close()


def test_redelivery_and_stale_records_do_not_duplicate_or_roll_back(
        tmp_path: Path, windows: list[StatisticsWindow]) -> None:
    path = tmp_path / "s.duckdb"
    msgs = _msgs(windows)
    sink = StatisticsStore("taxi.statistics", str(path))
    sink.process(msgs[:5])
    sink.process(msgs[3:])  # overlapping redelivery: offsets 3, 4 recognized
    assert sink.skipped == 2
    fresh = StatisticsStore("taxi.statistics", str(path))
    with StatisticsDB(path) as db:  # lose the offsets table: the upsert by key still holds
        db.query("DELETE FROM offsets")
        before = db.query("SELECT count(*) FROM feature_stats")
    fresh.process(msgs)
    with StatisticsDB(path, read_only=True) as db:
        assert db.query("SELECT count(*) FROM feature_stats") == before
        [(n_windows,)] = db.query("SELECT count(*) FROM windows")
        assert n_windows == len({(w.split, w.window.id) for w in windows})
        # a stale progress update of the cumulative window does not overwrite the newer one
        cum = [w for w in windows if w.window.kind == "cumulative" and w.split == "train"]
        assert db.query("SELECT num_examples FROM windows WHERE window_id = 'cumulative' AND "
                        "split = 'train'") == [(cum[-1].num_examples,)]
    with StatisticsDB(path) as db:
        assert db.append([cum[0]]) == 0


def test_runner_crash_before_checkpoint_leaves_one_copy(tmp_path: Path) -> None:
    with EmbeddedLog(tmp_path / "log") as log:
        ex = messages(taxi_table())[:4000]
        Runner(log, [], "taxi")._ensure("taxi.examples")
        with log.producer() as producer:
            for m in ex:
                producer.send("taxi.examples", encode(m.value), m.key.encode() if m.key else None,
                              timestamp_ms=m.timestamp_ms)
        db_path = str(tmp_path / "s.duckdb")
        procs = [StatisticsGen("taxi.examples", "taxi.statistics", pipeline="taxi",
                               count_window=1000, cumulative=False, splits="all"),
                 StatisticsStore("taxi.statistics", db_path)]
        runner = Runner(log, procs, "taxi", idle_after_s=60, checkpoint_every_records=10**9,
                        checkpoint_every_s=3600)
        runner.run_until_idle(idle_s=0.1, timeout_s=60)
        runner.close()
        # simulate a crash of the store before its checkpoint: replay its input from scratch
        replay = Runner(log, [StatisticsStore("taxi.statistics", db_path)], "taxi",
                        idle_after_s=60)
        replay.store.ensure_topic()
        replay.start()
        for task in replay._tasks:
            task.consumer.seek_to_beginning(list(task.positions))
        replay.run_until_idle(idle_s=0.1, timeout_s=60)
        replay.close()
        with StatisticsDB(db_path, read_only=True) as db:
            [(n, total)] = db.query("SELECT count(*), sum(num_examples) FROM windows")
            assert (n, total) == (4, 4000)
            assert db.query("SELECT count(*) FROM feature_stats GROUP BY window_id, split "
                            "HAVING count(*) > 18") == []
