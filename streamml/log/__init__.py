"""Logs: the embedded on-disk log and Apache Kafka behind one interface.

>>> import tempfile
>>> from streamml.log import open_log
>>> with open_log("embedded://" + tempfile.mkdtemp()) as log:
...     type(log).__name__
'EmbeddedLog'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamml.errors import ConfigError
from streamml.log.base import (
    Consumer,
    Log,
    PartitionInfo,
    Producer,
    Record,
    TopicInfo,
    TopicPartition,
    TopicSpec,
)

if TYPE_CHECKING:
    from streamml.settings import Settings

__all__ = [
    "Consumer",
    "Log",
    "PartitionInfo",
    "Producer",
    "Record",
    "TopicInfo",
    "TopicPartition",
    "TopicSpec",
    "open_log",
    "parse_broker_url",
]


def parse_broker_url(url: str) -> tuple[str, str]:
    """Split a broker URL into ``(scheme, location)``.

    >>> parse_broker_url("kafka://localhost:9092,localhost:9093")
    ('kafka', 'localhost:9092,localhost:9093')
    >>> parse_broker_url("embedded://.streamml")
    ('embedded', '.streamml')
    >>> parse_broker_url("./data")
    ('embedded', './data')
    """
    if "://" not in url:
        return "embedded", url
    scheme, _, location = url.partition("://")
    scheme = scheme.lower()
    if scheme not in ("embedded", "kafka"):
        raise ConfigError(
            f"unsupported broker URL {url!r}: use embedded://PATH or kafka://HOST:PORT[,HOST:PORT]"
        )
    if not location:
        raise ConfigError(f"broker URL {url!r} names no location")
    return scheme, location


def open_log(url: str | None = None, settings: Settings | None = None) -> Log:
    """Open the log named by ``url`` (default: the ``broker`` setting).

    ``settings`` supplies the rest of the configuration (Kafka security,
    embedded fsync policy); it defaults to :func:`streamml.settings.load_settings`.
    """
    from streamml.settings import load_settings

    settings = settings or load_settings()
    scheme, location = parse_broker_url(url or settings.broker)
    if scheme == "embedded":
        from streamml.log.embedded import EmbeddedLog

        return EmbeddedLog(location, fsync=settings.embedded_fsync)
    from streamml.log.kafka import KafkaLog

    return KafkaLog(location, client_config=settings.kafka_client_config())
