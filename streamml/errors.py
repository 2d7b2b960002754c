"""The streamml exception hierarchy.

Every error a user can cause derives from :class:`StreamMLError`; the CLI turns
these into one clear line on stderr and a non-zero exit code. Anything else is
a bug and keeps its traceback.

>>> try:
...     raise UnknownTopic("no such topic: demo.examples")
... except StreamMLError as exc:
...     print(exc)
no such topic: demo.examples
"""

from __future__ import annotations


class StreamMLError(Exception):
    """Base class of every error streamml raises on purpose."""

    exit_code: int = 1


class ConfigError(StreamMLError):
    """Invalid settings, broker URL, topic definition or command-line input."""

    exit_code = 2


class BrokerUnavailable(StreamMLError):
    """The log (Kafka cluster or embedded directory) cannot be reached."""

    exit_code = 3


class UnknownTopic(StreamMLError):
    """A topic that must exist does not."""

    exit_code = 4


class TopicExists(StreamMLError):
    """A topic that must not exist does."""


class InvalidRecord(StreamMLError):
    """A record (or input line) cannot be decoded or does not match its payload model."""


class CorruptLog(StreamMLError):
    """On-disk log data that fails its checksum somewhere other than a torn tail."""


class CheckpointError(StreamMLError):
    """A checkpoint cannot be written, read or verified."""
