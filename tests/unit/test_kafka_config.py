"""kafka-python style settings -> aiokafka client arguments (no broker needed)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from streamml.errors import ConfigError
from streamml.log.kafka_config import aiokafka_kwargs, check_options, ssl_context
from streamml.log.kafka_consumer import to_records
from streamml.log.kafka_loop import LoopThread
from streamml.log.kafka_producer import PRODUCER_DEFAULTS
from streamml.settings import load_settings


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A self-signed CA certificate and a client key/cert pair (openssl CLI)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed")
    d: Path = tmp_path_factory.mktemp("tls")
    key, cert = d / "client.key", d / "client.pem"
    subprocess.run(  # noqa: S603 - fixed arguments
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=streamml-test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return {"ssl_cafile": str(cert), "ssl_certfile": str(cert), "ssl_keyfile": str(key)}


def test_plaintext_has_no_ssl_context_and_keeps_shared_keys() -> None:
    config = {"client_id": "c", "request_timeout_ms": 30_000, "security_protocol": "PLAINTEXT",
              "bootstrap_timeout_ms": 5_000}  # fmt: skip
    kw = aiokafka_kwargs("consumer", "a:1,b:2", config)
    assert kw == {
        "client_id": "c",
        "request_timeout_ms": 30_000,
        "security_protocol": "PLAINTEXT",
        "bootstrap_servers": ["a:1", "b:2"],
    }


def test_producer_options_are_renamed_and_unknown_ones_dropped() -> None:
    kw = aiokafka_kwargs("producer", "h:1", {**PRODUCER_DEFAULTS, "linger_ms": 5,
                                             "max_block_ms": 1, "buffer_memory": 1})  # fmt: skip
    assert kw["max_batch_size"] == 512 * 1024
    assert kw["max_request_size"] == (16 << 20) + (64 << 10)
    assert kw["acks"] == "all" and kw["enable_idempotence"] is True
    assert kw["linger_ms"] == 5
    assert "batch_size" not in kw and "max_block_ms" not in kw and "buffer_memory" not in kw
    assert "compression_type" not in kw  # None: aiokafka's default


def test_sasl_plain_over_ssl_maps_credentials_and_builds_a_context(
    tls_files: dict[str, str],
) -> None:
    config = {
        "security_protocol": "sasl_ssl",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "s3cret",
        **tls_files,
    }
    for role in ("producer", "consumer"):
        kw = aiokafka_kwargs(role, "h:9093", config)  # type: ignore[arg-type]
        assert kw["security_protocol"] == "SASL_SSL"
        assert (kw["sasl_mechanism"], kw["sasl_plain_username"], kw["sasl_plain_password"]) == (
            "PLAIN", "alice", "s3cret",
        )  # fmt: skip
        assert isinstance(kw["ssl_context"], ssl.SSLContext)
        assert not any(k.startswith("ssl_") and k != "ssl_context" for k in kw)
    context = aiokafka_kwargs("consumer", "h:9093", config)["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert len(context.get_ca_certs()) == 1  # our CA file, loaded


def test_settings_config_maps_end_to_end(tls_files: dict[str, str]) -> None:
    settings = load_settings(broker="kafka://k1:9093", config_file=None)
    settings = settings.model_copy(update={
        "kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "bob", "kafka_ssl_cafile": tls_files["ssl_cafile"],
    })  # fmt: skip
    kw = aiokafka_kwargs("producer", "k1:9093", settings.kafka_client_config())
    assert kw["sasl_mechanism"] == "SCRAM-SHA-512" and kw["sasl_plain_username"] == "bob"
    assert kw["client_id"] == "streamml" and isinstance(kw["ssl_context"], ssl.SSLContext)
    assert kw["bootstrap_servers"] == ["k1:9093"]


def test_ssl_without_files_uses_the_default_trust_store() -> None:
    context = ssl_context({"security_protocol": "SSL"})
    assert isinstance(context, ssl.SSLContext) and context.check_hostname
    relaxed = ssl_context({"security_protocol": "SSL", "ssl_check_hostname": False})
    assert relaxed is not None and not relaxed.check_hostname
    assert ssl_context({"security_protocol": "SASL_PLAINTEXT"}) is None


def test_unreadable_tls_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TLS"):
        ssl_context({"security_protocol": "SSL", "ssl_cafile": str(tmp_path / "missing.pem")})


def test_check_options_accepts_both_libraries_names() -> None:
    assert check_options("producer", {"batch_size": 1, "max_batch_size": 2}) == {
        "batch_size": 1, "max_batch_size": 2,
    }  # fmt: skip
    assert check_options("consumer", {"max_poll_records": 10, "fetch_max_bytes": 1})
    with pytest.raises(ConfigError, match="nonsense"):
        check_options("consumer", {"nonsense": 1})


def test_to_records_builds_streamml_records() -> None:
    from aiokafka.structs import ConsumerRecord
    from aiokafka.structs import TopicPartition as ATP

    from streamml.log.base import Record

    msgs = [ConsumerRecord("t", 1, 5, 123, 0, b"k", b"v", None, 1, 1, (("h", b"x"),)),
            ConsumerRecord("t", 1, 6, 124, 0, None, None, None, -1, -1, ())]  # fmt: skip
    assert to_records({ATP("t", 1): msgs}) == [
        Record("t", 1, 5, 123, b"k", b"v", (("h", b"x"),)),
        Record("t", 1, 6, 124, None, None, ()),
    ]


def test_loop_thread_starts_lazily_and_stops() -> None:
    loop = LoopThread("test")
    assert not loop.running
    assert loop.call(lambda: 1 + 1) == 2
    assert loop.running
    loop.stop()
    assert not loop.running
    loop.stop()  # idempotent
