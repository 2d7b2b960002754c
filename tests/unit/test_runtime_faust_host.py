"""The faust host's app configuration: Kafka security settings reach faust/aiokafka."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from streamml.errors import ConfigError
from streamml.runtime.faust_config import faust_app_config, faust_credentials
from streamml.settings import Settings

faust = pytest.importorskip("faust")


def _settings(**kwargs: Any) -> Settings:
    return Settings(broker="kafka://127.0.0.1:9092", **kwargs)


def _auth(settings: Settings, tmp_path: Path) -> tuple[Any, dict[str, Any]]:
    """The faust App's conf and what faust hands to aiokafka for it."""
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    app = faust.App(**faust_app_config(settings, "p.count", "127.0.0.1:9092", tmp_path))
    conf = app.conf
    return conf, credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context)


def test_plaintext_has_no_credentials(tmp_path: Path) -> None:
    conf, auth = _auth(_settings(), tmp_path)
    assert conf.broker_credentials is None
    assert auth == {"security_protocol": "PLAINTEXT"}
    assert [str(u) for u in conf.broker] == ["kafka://127.0.0.1:9092"]
    assert conf.id == "p.count" and conf.broker_client_id == "streamml"
    assert conf.stream_wait_empty is False and conf.topic_disable_leader is True
    assert conf.producer_max_request_size == 1024 * 1024


def test_max_request_size_is_configurable(tmp_path: Path) -> None:
    config = faust_app_config(_settings(), "p.count", "127.0.0.1:9092", tmp_path,
                              max_request_size=17 << 20)
    assert faust.App(**config).conf.producer_max_request_size == 17 << 20


def test_sasl_ssl_scram_reaches_aiokafka(tmp_path: Path) -> None:
    settings = _settings(kafka_security_protocol="SASL_SSL",
                         kafka_sasl_mechanism="SCRAM-SHA-512",
                         kafka_sasl_username="alice", kafka_sasl_password="pw",
                         kafka_client_id="me")
    conf, auth = _auth(settings, tmp_path)
    assert isinstance(conf.broker_credentials, faust.SASLCredentials)
    assert conf.broker_client_id == "me"
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("alice", "pw")
    context = auth["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_sasl_plaintext_defaults_to_plain_without_tls(tmp_path: Path) -> None:
    settings = _settings(kafka_security_protocol="SASL_PLAINTEXT",
                         kafka_sasl_username="bob", kafka_sasl_password="pw")
    _, auth = _auth(settings, tmp_path)
    assert auth["security_protocol"] == "SASL_PLAINTEXT"
    assert auth["sasl_mechanism"] == "PLAIN" and auth["ssl_context"] is None


def test_ssl_uses_the_configured_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import aiokafka.helpers

    seen: dict[str, Any] = {}

    def fake_context(**kwargs: Any) -> ssl.SSLContext:
        seen.update(kwargs)
        return ssl.create_default_context()

    monkeypatch.setattr(aiokafka.helpers, "create_ssl_context", fake_context)
    settings = _settings(kafka_security_protocol="SSL", kafka_ssl_cafile="/ca.pem",
                         kafka_ssl_certfile="/cert.pem", kafka_ssl_keyfile="/key.pem")
    conf, auth = _auth(settings, tmp_path)
    assert isinstance(conf.broker_credentials, faust.SSLCredentials)
    assert auth["security_protocol"] == "SSL"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)
    assert seen == {"cafile": "/ca.pem", "certfile": "/cert.pem", "keyfile": "/key.pem"}


def test_bad_security_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="cannot build the Kafka TLS context"):
        faust_credentials(_settings(kafka_security_protocol="SSL",
                                    kafka_ssl_cafile="/nonexistent/ca.pem"))
    with pytest.raises(ConfigError, match="needs kafka_ssl_certfile"):
        faust_credentials(_settings(kafka_security_protocol="SSL", kafka_ssl_keyfile="/k"))
    with pytest.raises(ConfigError, match="OAUTHBEARER"):
        faust_credentials(_settings(kafka_security_protocol="SASL_PLAINTEXT",
                                    kafka_sasl_mechanism="OAUTHBEARER"))
