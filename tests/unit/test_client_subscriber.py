"""ModelSubscriber on the embedded log: verification, chunks, catch-up, resume."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamml import serde
from streamml.client import ModelSubscriber, ServedModel
from streamml.client import verify as verify_module
from streamml.log import Log, open_log
from tests.serving_helpers import (
    INSTANCE,
    KEY,
    TOPIC,
    create_topic,
    flip_data_byte,
    publish,
    release,
    train,
)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Log]:
    with open_log(f"embedded://{tmp_path / 'log'}") as embedded:
        create_topic(embedded)
        yield embedded


@pytest.fixture
def unpickled(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every byte string the client unpickles (to prove nothing unverified is)."""
    calls: list[bytes] = []
    real = pickle.loads

    def spy(data: bytes) -> object:
        calls.append(data)
        return real(data)  # noqa: S301 - test spy around the verified call

    monkeypatch.setattr(verify_module.pickle, "loads", spy)
    return calls


def drain(sub: ModelSubscriber, timeout_s: float = 0.3) -> list[ServedModel]:
    return list(sub.updates(timeout_s=timeout_s))


def expected(version: int) -> float:
    return train(version).predict_proba_one(INSTANCE)[True]


def test_inline_and_chunked_releases_yield_ready_models(log: Log) -> None:
    with ModelSubscriber(log, "demo", signing_key=KEY) as sub:
        publish(log, *release(1))
        got = drain(sub)
        assert [(m.name, m.version) for m in got] == [("tipper", 1)]
        assert got[0].predict([INSTANCE]) == [expected(1)]
        assert got[0].metrics == {"roc_auc": pytest.approx(0.901)}
        rel, chunks = release(2, chunk_size=64)
        assert len(chunks) > 3
        publish(log, rel, chunks)
        got = drain(sub)
        assert [m.version for m in got] == [2]
        assert sub.latest("tipper") is got[0]
        assert got[0].predict([INSTANCE]) == [expected(2)]
        assert sub.stats["accepted"] == 2 and sub.stats["refused"] == 0


def test_catch_up_unpickles_only_the_newest_version(log: Log, unpickled: list[bytes]) -> None:
    for v in range(1, 6):
        publish(log, *release(v, chunk_size=100 if v % 2 else None))
    with ModelSubscriber(log, "demo", signing_key=KEY) as sub:
        got = drain(sub)
    assert [m.version for m in got] == [5]
    assert len(unpickled) == 1


def test_resumes_after_restart_from_the_last_version_delivered(log: Log, tmp_path: Path) -> None:
    state = tmp_path / "sub-state.json"
    publish(log, *release(1))
    publish(log, *release(2))
    with ModelSubscriber(log, "demo", signing_key=KEY, state_path=state) as sub:
        assert [m.version for m in drain(sub)] == [2]
    assert serde.decode(state.read_bytes()) == {"seen": {"tipper": 2}, "topic": TOPIC}

    with ModelSubscriber(log, "demo", signing_key=KEY, state_path=state) as sub:
        assert drain(sub) == []  # nothing new since the last run ...
        current = sub.latest("tipper")  # ... but the current model is there to use
        assert current is not None and current.version == 2
        publish(log, *release(3, chunk_size=128))
        assert [m.version for m in drain(sub)] == [3]

    with ModelSubscriber(log, "demo", signing_key=KEY) as sub:  # no state: latest once
        assert [m.version for m in drain(sub)] == [3]


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("flip_artifact_byte", "bad_signature"),
        ("change_metrics", "bad_signature"),
        ("unsigned", "unsigned"),
        ("other_key", "bad_signature"),
        ("chunk_replaced", "checksum"),
    ],
)
def test_tampered_and_unsigned_releases_are_refused_before_unpickling(
    log: Log, unpickled: list[bytes], tamper: str, reason: str
) -> None:
    refusals = []
    with ModelSubscriber(log, "demo", signing_key=KEY, on_refusal=refusals.append) as sub:
        publish(log, *release(1))
        assert [m.version for m in drain(sub)] == [1]
        assert len(unpickled) == 1
        good, chunks = release(2, chunk_size=64 if tamper == "chunk_replaced" else None)
        if tamper == "flip_artifact_byte":
            publish(log, good, value=flip_data_byte(good))
        elif tamper == "change_metrics":
            body = good.to_json()
            body["metrics"]["roc_auc"] = 0.99
            publish(log, good, value=body)
        elif tamper == "unsigned":
            publish(log, *release(2, key=None))
        elif tamper == "other_key":
            publish(log, *release(2, key=b"not-the-key"))
        else:  # a chunk swapped for attacker bytes with a matching per-chunk digest
            evil = type(chunks[1]).from_bytes(
                b"\x80" * len(chunks[1].data_bytes()), name="tipper", version=2, index=1,
                count=len(chunks),
            )
            publish(log, good, [chunks[0], evil, *chunks[2:]])
        assert drain(sub) == []
        assert len(unpickled) == 1  # the refused artifact was never unpickled
        assert sub.latest("tipper").version == 1  # type: ignore[union-attr]
        assert sub.stats[f"refused:{reason}"] == 1
        assert [(r.name, r.version, r.reason) for r in refusals] == [("tipper", 2, reason)]
        # the genuine version 2 published afterwards is still accepted
        publish(log, *release(2))
        assert [m.version for m in drain(sub)] == [2]


def test_no_key_refuses_everything(log: Log, unpickled: list[bytes]) -> None:
    publish(log, *release(1))
    with ModelSubscriber(log, "demo", signing_key=None) as sub:
        assert drain(sub) == []
        assert sub.latest("tipper") is None
        assert sub.stats["refused:no_key"] == 1
    assert unpickled == []


def test_older_signed_release_replayed_is_ignored(log: Log) -> None:
    with ModelSubscriber(log, "demo", signing_key=KEY) as sub:
        old, _ = release(1)
        publish(log, *release(2))
        publish(log, old)
        assert [m.version for m in drain(sub)] == [2]
        publish(log, old)
        assert drain(sub) == []
        assert sub.stats["stale"] >= 1 and sub.latest("tipper").version == 2  # type: ignore[union-attr]


def test_garbage_records_are_counted_and_skipped(log: Log) -> None:
    with log.producer() as producer:
        producer.send(TOPIC, b"{not json", b"tipper")
        producer.send(TOPIC, serde.encode({"kind": "release", "name": "x"}), b"x")
        producer.send(TOPIC, None, b"tipper@1/0")  # a chunk tombstone
    publish(log, *release(1))
    with ModelSubscriber(log, "demo", signing_key=KEY) as sub:
        assert [m.version for m in drain(sub)] == [1]
        assert sub.stats["refused:invalid_record"] == 2


def test_waits_for_the_topic_and_filters_names(tmp_path: Path) -> None:
    with open_log(f"embedded://{tmp_path / 'log'}") as log:
        with ModelSubscriber(log, "demo", signing_key=KEY, names=["tipper"]) as sub:
            assert drain(sub, 0.1) == []
            create_topic(log)
            publish(log, *release(1, name="other"))
            publish(log, *release(1))
            got = list(sub.updates(timeout_s=1.5))
            assert [(m.name, m.version) for m in got] == [("tipper", 1)]
            assert sub.models().keys() == {"tipper"}


def test_catch_up_then_latest(log: Log) -> None:
    publish(log, *release(4))
    with ModelSubscriber(log, "demo", signing_key=KEY) as sub:
        assert sub.catch_up(timeout_s=10)
        assert sub.caught_up and sub.latest("tipper").version == 4  # type: ignore[union-attr]
        assert [m.version for m in drain(sub)] == [4]  # still delivered by updates()
