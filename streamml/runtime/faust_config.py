"""faust ``App`` configuration for a worker: broker, security credentials, producer limits.

The same ``kafka_*`` security settings kafka-python and aiokafka get through
:class:`~streamml.settings.Settings` are turned into faust's credentials here.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from streamml.errors import ConfigError
from streamml.settings import Settings

DEFAULT_MAX_REQUEST_SIZE = 1024 * 1024  # aiokafka's default


def faust_ssl_context(settings: Settings) -> ssl.SSLContext:
    """TLS context from ``kafka_ssl_*`` (system CAs when no ``kafka_ssl_cafile``)."""
    from aiokafka.helpers import create_ssl_context

    if settings.kafka_ssl_keyfile and not settings.kafka_ssl_certfile:
        raise ConfigError("kafka_ssl_keyfile needs kafka_ssl_certfile")
    try:
        return create_ssl_context(cafile=settings.kafka_ssl_cafile,
                                  certfile=settings.kafka_ssl_certfile,
                                  keyfile=settings.kafka_ssl_keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot build the Kafka TLS context: {exc}") from exc


def faust_credentials(settings: Settings) -> Any:
    """faust ``broker_credentials`` for the ``kafka_*`` security settings (``None``: PLAINTEXT).

    The same settings kafka-python gets through ``Settings.kafka_client_config``:
    ``SSL`` -> ``SSLCredentials``; ``SASL_PLAINTEXT``/``SASL_SSL`` ->
    ``SASLCredentials`` (PLAIN, SCRAM-SHA-256/512) or ``GSSAPICredentials``, with
    the TLS context for ``SASL_SSL``.

    >>> faust_credentials(Settings(kafka_security_protocol="SASL_PLAINTEXT",
    ...     kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="u",
    ...     kafka_sasl_password="p"))
    <SASLCredentials: username=u>
    """
    import faust

    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = faust_ssl_context(settings) if protocol in ("SSL", "SASL_SSL") else None
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    mechanism = (settings.kafka_sasl_mechanism or "PLAIN").upper()
    if mechanism == "GSSAPI":
        return faust.GSSAPICredentials(ssl_context=context)
    if mechanism not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        raise ConfigError(f"the faust host does not support SASL mechanism {mechanism!r}")
    password = settings.kafka_sasl_password
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password.get_secret_value() if password is not None else None,
        ssl_context=context, mechanism=mechanism,
    )


def faust_app_config(settings: Settings, app_id: str, bootstrap: str, workdir: Path, *,
                     web_port: int | None = None, session_timeout_s: float = 10.0,
                     max_request_size: int = DEFAULT_MAX_REQUEST_SIZE) -> dict[str, Any]:
    """Keyword arguments of the worker's ``faust.App`` (security settings included).

    ``max_request_size`` bounds one produce request; the host raises it to the
    checkpoints topic's ``max.message.bytes`` so large states can be written.
    """
    return {
        "id": app_id,
        "broker": f"kafka://{bootstrap}",
        "broker_credentials": faust_credentials(settings),
        "broker_client_id": settings.kafka_client_id,
        "datadir": str(workdir / "faust-data"),
        "web_enabled": web_port is not None,
        "web_port": web_port or 6066,
        "web_host": "127.0.0.1",
        "topic_disable_leader": True,
        "topic_allow_declare": False,
        "stream_wait_empty": False,
        "consumer_auto_offset_reset": "earliest",
        "broker_commit_interval": 1.0,
        "producer_acks": -1,
        "producer_max_request_size": max_request_size,
        "broker_session_timeout": session_timeout_s,
        "broker_heartbeat_interval": max(0.5, session_timeout_s / 10),
    }
