"""Helpers for :mod:`streamml.log.kafka`: client configs, error mapping, topic specs.

``TopicSpec`` maps onto Kafka topic configs. ``None`` retention means "keep
forever", which Kafka spells ``-1``; it is written explicitly because the broker
default is seven days.

>>> configs = spec_to_configs(TopicSpec("t", retention_ms=None, segment_bytes=1 << 20))
>>> configs["retention.ms"], configs["segment.bytes"]
('-1', '1048576')
>>> described = {"cleanup.policy": ("compact", False), "retention.ms": ("-1", False)}
>>> configs_to_spec("t", 3, 1, described)
TopicSpec(name='t', partitions=3, replication_factor=1, cleanup_policy='compact', \
retention_ms=None, retention_bytes=None, segment_bytes=None, config={})
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import aiokafka.errors as aerr
import kafka.errors as kerr

from streamml.errors import BrokerUnavailable, ConfigError, StreamMLError, UnknownTopic
from streamml.log.base import CleanupPolicy, TopicSpec

#: Seconds to wait for the first connection before raising BrokerUnavailable.
DEFAULT_BOOTSTRAP_TIMEOUT_MS = 5_000

MAPPED_KEYS = ("cleanup.policy", "retention.ms", "retention.bytes", "segment.bytes")


def client_kwargs(cls: type, bootstrap: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of ``config`` that kafka-python's ``cls`` accepts, plus the bootstrap list.

    Settings carry one config for every client; each kafka-python class rejects
    keys it does not know, so shared keys (security, client id, timeouts) pass
    through and the rest are dropped.
    """
    known = getattr(cls, "DEFAULT_CONFIG", {})
    kwargs = {k: v for k, v in config.items() if k in known}
    kwargs["bootstrap_servers"] = [h.strip() for h in bootstrap.split(",") if h.strip()]
    kwargs.setdefault("bootstrap_timeout_ms", DEFAULT_BOOTSTRAP_TIMEOUT_MS)
    return kwargs


def _both(name: str) -> tuple[type[BaseException], ...]:
    """The kafka-python and the aiokafka class of one Kafka error (same names)."""
    return tuple(c for c in (getattr(kerr, name, None), getattr(aerr, name, None)) if c)


def _classes(*names: str) -> tuple[type[BaseException], ...]:
    return tuple(c for name in names for c in _both(name))


ILLEGAL_STATE = _classes("IllegalStateError")
UNKNOWN_TOPIC = _classes("UnknownTopicOrPartitionError")
UNREACHABLE = _classes("KafkaConnectionError", "BrokerNotAvailableError", "NoBrokersAvailable")
TIMEOUT: tuple[type[BaseException], ...] = (
    *_classes("KafkaTimeoutError", "RequestTimedOutError"), TimeoutError,
)
REJECTED = _classes(
    "InvalidTopicError",
    "InvalidConfigurationError",
    "InvalidPartitionsError",
    "InvalidReplicationFactorError",
    "PolicyViolationError",
    "KafkaConfigurationError",
    "MessageSizeTooLargeError",
    "RecordListTooLargeError",
    "RecordTooLargeError",
)
REFUSED = _classes(
    "SaslAuthenticationFailedError",
    "AuthenticationFailedError",
    "AuthenticationMethodNotSupported",
    "AuthorizationError",
    "TopicAuthorizationFailedError",
    "GroupAuthorizationFailedError",
    "ClusterAuthorizationFailedError",
)


@contextlib.contextmanager
def kafka_errors(address: str, topic: str | None = None) -> Iterator[None]:
    """Translate kafka-python and aiokafka exceptions into the streamml hierarchy."""
    try:
        yield
    except StreamMLError:
        raise
    except ILLEGAL_STATE as exc:  # e.g. seek on a partition not assigned
        raise ConfigError(str(exc)) from exc
    except UNKNOWN_TOPIC as exc:
        what = f"no such topic: {topic}" if topic else f"unknown topic or partition: {exc}"
        raise UnknownTopic(what) from exc
    except UNREACHABLE as exc:
        detail = str(exc) or type(exc).__name__
        if "bootstrap" in detail.lower():
            detail = "no connection (is it running?)"
        raise BrokerUnavailable(f"cannot reach Kafka broker at {address}: {detail}") from exc
    except TIMEOUT as exc:
        if "bootstrap" in str(exc).lower():
            msg = f"cannot reach Kafka broker at {address}: no connection (is it running?)"
        else:
            detail = str(exc).split(":", 1)[-1].strip() or "request timed out"
            msg = f"Kafka broker at {address} did not answer: {detail}"
        raise BrokerUnavailable(msg) from exc
    except REJECTED as exc:
        raise ConfigError(f"Kafka rejected the request: {_brief(exc)}") from exc
    except REFUSED as exc:
        raise BrokerUnavailable(f"Kafka broker at {address} refused access: {_brief(exc)}") from exc


def _brief(exc: BaseException) -> str:
    """The first sentence of a kafka-python error (they embed whole requests)."""
    text = str(exc)
    for marker in ("error_message='", 'error_message="'):
        if marker in text:
            return text.split(marker, 1)[1].split(marker[-1], 1)[0]
    return text.split(": Request", 1)[0][:300]


def spec_to_configs(spec: TopicSpec) -> dict[str, str]:
    """Topic configs for ``CreateTopics``: the mapped fields, then ``spec.config`` verbatim."""
    if spec.cleanup_policy not in ("delete", "compact"):
        raise ConfigError(f"topic {spec.name!r}: unknown cleanup_policy {spec.cleanup_policy!r}")
    configs = {
        "cleanup.policy": spec.cleanup_policy,
        "retention.ms": str(-1 if spec.retention_ms is None else int(spec.retention_ms)),
        "retention.bytes": str(-1 if spec.retention_bytes is None else int(spec.retention_bytes)),
    }
    if spec.segment_bytes is not None:
        configs["segment.bytes"] = str(int(spec.segment_bytes))
    configs.update({str(k): str(v) for k, v in spec.config.items()})
    return configs


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    number = int(value)
    return None if number < 0 else number


def configs_to_spec(
    name: str, partitions: int, replication_factor: int, configs: Mapping[str, tuple[str, bool]]
) -> TopicSpec:
    """A ``TopicSpec`` from described configs: ``{key: (value, is_broker_default)}``.

    Retention and cleanup policy use the effective value (default or not);
    ``segment.bytes`` and extra keys only count when set on the topic itself.
    """
    policy_raw = configs.get("cleanup.policy", ("delete", True))[0]
    policy: CleanupPolicy = "compact" if "compact" in policy_raw else "delete"
    extra = {
        key: value
        for key, (value, is_default) in configs.items()
        if not is_default and key not in MAPPED_KEYS
    }
    if policy_raw not in ("delete", "compact"):
        extra["cleanup.policy"] = policy_raw
    segment = configs.get("segment.bytes")
    return TopicSpec(
        name=name,
        partitions=partitions,
        replication_factor=replication_factor,
        cleanup_policy=policy,
        retention_ms=_int_or_none(configs.get("retention.ms", ("-1", True))[0]),
        retention_bytes=_int_or_none(configs.get("retention.bytes", ("-1", True))[0]),
        segment_bytes=None if segment is None or segment[1] else int(segment[0]),
        config=dict(sorted(extra.items())),
    )
