"""Checkpoints: envelope round trip, integrity checks, backwards offsets, the store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamml.errors import CheckpointError
from streamml.log.embedded import EmbeddedLog
from streamml.runtime.checkpoint import (
    Checkpoint,
    CheckpointStore,
    decode_checkpoint,
    encode_checkpoint,
)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EmbeddedLog]:
    with EmbeddedLog(tmp_path / "log") as embedded:
        yield embedded


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(
    state=st.dictionaries(st.text(), json_values, max_size=5) | st.binary(max_size=64),
    offsets=st.dictionaries(st.text(min_size=1), st.dictionaries(
        st.integers(0, 100), st.integers(0, 2**40), max_size=3), max_size=3),
    partition=st.none() | st.integers(0, 50),
    key=st.none() | st.binary(min_size=1, max_size=16),
)
def test_envelope_round_trips(state: object, offsets: dict, partition: int | None,
                              key: bytes | None) -> None:
    cp = Checkpoint("proc", offsets, state, partition=partition, created_ms=123)  # type: ignore[arg-type]
    assert decode_checkpoint(encode_checkpoint(cp, hmac_key=key), hmac_key=key) == cp


def _tamper(data: bytes, **changes: object) -> bytes:
    doc = orjson.loads(data)
    doc.update(changes)
    return orjson.dumps(doc)


def test_integrity_failures_raise_checkpoint_error() -> None:
    cp = Checkpoint("proc", {"t": {0: 5}}, {"n": 5}, created_ms=1)
    plain = encode_checkpoint(cp)
    signed = encode_checkpoint(cp, hmac_key=b"secret")
    with pytest.raises(CheckpointError, match="sha256"):
        decode_checkpoint(_tamper(plain, state={"n": 6}))
    with pytest.raises(CheckpointError, match="sha256"):
        decode_checkpoint(_tamper(plain, offsets={"t": {"0": 9}}))
    with pytest.raises(CheckpointError, match="HMAC"):
        decode_checkpoint(signed, hmac_key=b"other")
    with pytest.raises(CheckpointError, match="HMAC"):
        decode_checkpoint(plain, hmac_key=b"secret")  # unsigned when a key is configured
    with pytest.raises(CheckpointError, match="not valid JSON"):
        decode_checkpoint(plain[:-3])
    with pytest.raises(CheckpointError, match="format"):
        decode_checkpoint(_tamper(plain, format=99))
    with pytest.raises(CheckpointError, match="not a JSON object"):
        decode_checkpoint(b"[1, 2]")
    assert decode_checkpoint(signed) == cp  # the sha256 alone still verifies


def test_state_that_is_not_json_is_rejected_on_write() -> None:
    with pytest.raises(CheckpointError, match="not JSON-able"):
        encode_checkpoint(Checkpoint("p", {}, {"x": object()}))


def test_store_round_trip_and_last_value_wins(log: EmbeddedLog) -> None:
    store = CheckpointStore(log, "pipe")
    assert store.load_all() == {}
    store.write(Checkpoint("a", {"t": {0: 1}}, {"n": 1}))
    store.write(Checkpoint("a", {"t": {0: 3}}, {"n": 3}))
    store.write(Checkpoint("b", {"t": {0: 2}}, b"\x00opaque", partition=2))
    fresh = CheckpointStore(log, "pipe")
    loaded = fresh.load_all()
    assert set(loaded) == {"a/-", "b/2"}
    assert loaded["a/-"].state == {"n": 3} and loaded["a/-"].offsets == {"t": {0: 3}}
    assert loaded["b/2"].state == b"\x00opaque"
    assert fresh.load("b", 2) == loaded["b/2"]
    assert log.describe_topic("pipe.checkpoints").spec.cleanup_policy == "compact"


def test_offsets_moving_backwards_are_rejected(log: EmbeddedLog) -> None:
    store = CheckpointStore(log, "pipe")
    store.write(Checkpoint("a", {"t": {0: 10, 1: 4}}, {}))
    store.write(Checkpoint("a", {"t": {0: 10, 1: 5}}, {}))  # equal or forward is fine
    with pytest.raises(CheckpointError, match=r"backwards: 9 < 10"):
        store.write(Checkpoint("a", {"t": {0: 9, 1: 6}}, {}))
    store.write(Checkpoint("other", {"t": {0: 1}}, {}))  # keys are independent
    # a new process learns the last offsets when it loads
    fresh = CheckpointStore(log, "pipe")
    fresh.load_all()
    with pytest.raises(CheckpointError, match="backwards"):
        fresh.write(Checkpoint("a", {"t": {1: 4}}, {}))


def test_corrupt_latest_checkpoint_raises(log: EmbeddedLog) -> None:
    store = CheckpointStore(log, "pipe")
    store.write(Checkpoint("a", {"t": {0: 1}}, {"n": 1}))
    good = encode_checkpoint(Checkpoint("a", {"t": {0: 2}}, {"n": 2}))
    with log.producer() as producer:
        producer.send(store.topic, _tamper(good, state={"n": 1000}), b"a/-")
    with pytest.raises(CheckpointError, match="sha256"):
        CheckpointStore(log, "pipe").load_all()
    # a later good record for the key supersedes the corrupt one
    with log.producer() as producer:
        producer.send(store.topic, good, b"a/-")
    assert CheckpointStore(log, "pipe").load("a").state == {"n": 2}  # type: ignore[union-attr]


def test_hmac_keyed_store_rejects_unsigned_checkpoints(log: EmbeddedLog) -> None:
    CheckpointStore(log, "pipe").write(Checkpoint("a", {}, {"n": 1}))
    with pytest.raises(CheckpointError, match="HMAC"):
        CheckpointStore(log, "pipe", hmac_key=b"k").load_all()
    signed = CheckpointStore(log, "pipe", hmac_key=b"k")
    signed.write(Checkpoint("a", {}, {"n": 2}))
    assert signed.load("a").state == {"n": 2}  # type: ignore[union-attr]


def test_key_mismatch_is_corruption(log: EmbeddedLog) -> None:
    store = CheckpointStore(log, "pipe")
    store.ensure_topic()
    with log.producer() as producer:
        producer.send(store.topic, encode_checkpoint(Checkpoint("a", {}, {})), b"b")
    with pytest.raises(CheckpointError, match="is for .a/-."):
        store.load_all()


# -- the catalog payload describes exactly what the runtime writes --------------------------


def _written(log: EmbeddedLog, topic: str) -> list[tuple[bytes, bytes]]:
    from streamml.log.base import TopicPartition

    tps = [TopicPartition(topic, p.partition) for p in log.describe_topic(topic).partitions]
    out: list[tuple[bytes, bytes]] = []
    with log.consumer() as consumer:
        consumer.assign(tps)
        consumer.seek_to_beginning(tps)
        while batch := consumer.poll(timeout_s=0.1):
            out += [(r.key, r.value) for r in batch if r.key is not None and r.value is not None]
    return out


@pytest.mark.parametrize("hmac_key", [None, b"secret"])
def test_records_the_store_writes_validate_against_the_catalog_payload(
    log: EmbeddedLog, hmac_key: bytes | None
) -> None:
    from streamml.catalog import load_catalog
    from streamml.payloads.checkpoints import Checkpoint as CheckpointPayload

    model = load_catalog().payload_model("checkpoints")
    assert model is CheckpointPayload
    store = CheckpointStore(log, "pipe", hmac_key=hmac_key)
    store.write(Checkpoint("count", {"pipe.in": {0: 7, 3: 2}}, {"n": 9, "m": [1.5, None]},
                           partition=0))
    store.write(Checkpoint("model", {"pipe.in": {1: 4}}, b"\x00\xffbytes"))
    records = _written(log, store.topic)
    assert len(records) == 2
    for key, value in records:
        payload = model.model_validate(orjson.loads(value))
        assert isinstance(payload, CheckpointPayload)
        assert payload.key == key.decode()
        runtime = decode_checkpoint(value, hmac_key=hmac_key)
        assert payload.restore_state() == runtime.state
        assert {t: {int(p): o for p, o in ps.items()} for t, ps in payload.offsets.items()} \
            == runtime.offsets
        assert payload.created_ms == runtime.created_ms and payload.partition == runtime.partition
        assert (payload.integrity.hmac is not None) == (hmac_key is not None)
        if hmac_key is not None:
            assert payload.verify_hmac(hmac_key) and not payload.verify_hmac(b"other")
        # the model's own digest is the runtime's: it covers offsets too
        with pytest.raises(ValueError, match="corrupt"):
            model.model_validate(orjson.loads(_tamper(value, offsets={"pipe.in": {"0": 1}})))
        with pytest.raises(ValueError, match="corrupt"):
            model.model_validate(orjson.loads(_tamper(value, created_ms=1)))


@given(
    state=st.dictionaries(st.text(), json_values, max_size=5) | st.binary(max_size=64),
    offsets=st.dictionaries(st.text(min_size=1), st.dictionaries(
        st.integers(0, 100), st.integers(0, 2**40), max_size=3), max_size=3),
    partition=st.none() | st.integers(0, 50),
    key=st.none() | st.binary(min_size=1, max_size=16),
)
def test_payload_model_and_runtime_build_the_same_envelope(
    state: object, offsets: dict, partition: int | None, key: bytes | None
) -> None:
    from streamml.payloads.checkpoints import Checkpoint as CheckpointPayload

    cp = Checkpoint("proc", offsets, state, partition=partition, created_ms=5)  # type: ignore[arg-type]
    wire = encode_checkpoint(cp, hmac_key=key)
    built = CheckpointPayload.of(state, processor="proc", offsets=offsets,  # type: ignore[arg-type]
                                 partition=partition, created_ms=5, hmac_key=key)
    assert CheckpointPayload.model_validate(orjson.loads(wire)) == built
    assert decode_checkpoint(orjson.dumps(built.to_json()), hmac_key=key) == cp


def test_hmac_key_comes_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamml.runtime.checkpoint import hmac_key_from
    from streamml.settings import load_settings

    monkeypatch.setenv("STREAMML_CHECKPOINT_KEY", "s3cret")
    settings = load_settings(config_file=None)
    assert hmac_key_from(settings) == b"s3cret"
    assert "s3cret" not in repr(settings)
    monkeypatch.delenv("STREAMML_CHECKPOINT_KEY")
    assert hmac_key_from(load_settings(config_file=None)) is None
