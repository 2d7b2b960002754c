"""kafka-python style client settings, translated for the aiokafka data path.

``Settings.kafka_client_config()`` and ``log.producer(**options)`` speak
kafka-python names (the admin client still is kafka-python). The producer and
consumer are aiokafka clients: this module keeps the keys aiokafka shares,
renames the few that differ and turns the ``ssl_*`` files into an
``ssl_context``::

    >>> kw = aiokafka_kwargs("producer", "h1:9092, h2:9092",
    ...                      {"client_id": "x", "batch_size": 65536, "max_block_ms": 1})
    >>> kw["bootstrap_servers"], kw["client_id"], kw["max_batch_size"], "max_block_ms" in kw
    (['h1:9092', 'h2:9092'], 'x', 65536, False)
    >>> aiokafka_kwargs("consumer", "h:1", {"security_protocol": "SASL_PLAINTEXT",
    ...     "sasl_mechanism": "SCRAM-SHA-256", "sasl_plain_username": "u",
    ...     "sasl_plain_password": "p"})["sasl_mechanism"]
    'SCRAM-SHA-256'
"""

from __future__ import annotations

import inspect
import ssl
from collections.abc import Mapping
from functools import cache
from typing import Any, Literal

from streamml.errors import ConfigError

Role = Literal["producer", "consumer"]

#: kafka-python name -> aiokafka name, where they differ.
RENAMED = {"batch_size": "max_batch_size"}
#: kafka-python TLS settings, folded into one ``ssl_context``.
SSL_KEYS = ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password", "ssl_check_hostname")
#: Never passed to aiokafka: streamml decides these itself.
OWN_KEYS = frozenset({"bootstrap_servers", "loop", "topics", "key_serializer",
                      "value_serializer", "key_deserializer", "value_deserializer",
                      "partitioner", "ssl_context"})  # fmt: skip


@cache
def aiokafka_params(role: Role) -> frozenset[str]:
    """Keyword arguments the aiokafka client of ``role`` accepts."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    cls = AIOKafkaProducer if role == "producer" else AIOKafkaConsumer
    return frozenset(inspect.signature(cls).parameters) - OWN_KEYS


@cache
def known_options(role: Role) -> frozenset[str]:
    """Option names ``log.producer()``/``log.consumer()`` accept: kafka-python's and aiokafka's."""
    from kafka import KafkaConsumer, KafkaProducer

    cls = KafkaProducer if role == "producer" else KafkaConsumer
    return frozenset(cls.DEFAULT_CONFIG) | aiokafka_params(role)


def check_options(role: Role, options: Mapping[str, object]) -> dict[str, object]:
    """Reject options neither client library understands for ``role``."""
    unknown = sorted(set(options) - known_options(role))
    if unknown:
        raise ConfigError(f"unknown Kafka {role} option(s): {', '.join(unknown)}")
    return dict(options)


def ssl_context(config: Mapping[str, Any]) -> ssl.SSLContext | None:
    """An ``SSLContext`` from kafka-python's ``ssl_*`` keys; ``None`` when TLS is not used."""
    protocol = str(config.get("security_protocol") or "PLAINTEXT").upper()
    if protocol not in ("SSL", "SASL_SSL") and not any(config.get(k) for k in SSL_KEYS[:3]):
        return None
    from aiokafka.helpers import create_ssl_context

    try:
        context = create_ssl_context(
            cafile=config.get("ssl_cafile"),
            certfile=config.get("ssl_certfile"),
            keyfile=config.get("ssl_keyfile"),
            password=config.get("ssl_password"),
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load Kafka TLS files: {exc}") from exc
    if config.get("ssl_check_hostname") is False:
        context.check_hostname = False
    return context


def aiokafka_kwargs(role: Role, bootstrap: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``AIOKafkaProducer``/``AIOKafkaConsumer`` from a kafka-python config.

    Keys aiokafka does not know (``bootstrap_timeout_ms``, ``max_block_ms``...)
    are dropped; ``ssl_*`` files become ``ssl_context``; SASL keys keep their names.
    """
    accepted = aiokafka_params(role)
    kwargs: dict[str, Any] = {}
    for key, value in config.items():
        name = RENAMED.get(key, key)
        if name in accepted and value is not None:
            kwargs[name] = value
    if "security_protocol" in kwargs:
        kwargs["security_protocol"] = str(kwargs["security_protocol"]).upper()
    context = ssl_context(config)
    if context is not None:
        kwargs["ssl_context"] = context
    kwargs["bootstrap_servers"] = [h.strip() for h in bootstrap.split(",") if h.strip()]
    return kwargs
