"""The source connector contract: ``open`` → ``read`` batches → ``position`` → ``close``.

A source connector frames records out of a live source (a file, a table, an
HTTP endpoint, a Kafka topic...) and tells where it is. It does not type or
validate anything: :class:`~streamml.connectors.examplegen.ExampleGen` does.
The ingest loop checkpoints :attr:`SourceConnector.position` *after* the
examples of a batch are durable, so a restarted connector reopened at that
position re-reads at most the last batch (same ids) and never skips a record.

Rules every connector follows (the conformance tests check them):

* ``read(n)`` returns at most ``n`` records and never blocks for long (a
  follow-mode source with nothing new returns ``[]``);
* after ``read`` returns, ``position`` covers exactly the records returned so far;
* ``position`` is JSON-able (it is stored in the checkpoint) and
  ``open(position)`` resumes right after the last record returned;
* a record keeps its original bytes (or can rebuild them) for dead letters;
* ``exhausted`` becomes ``True`` once a bounded source (mode ``once``) has
  returned everything.

New source types register themselves with :func:`register_source` so
connector definitions (``type: <name>``) can name them.

>>> rec = SourceRecord(b"a,b", {"file": "x.csv", "line": 2}, id="src:x.csv:2", fmt="csv",
...                    header=b"c1,c2")
>>> rec.original(), rec.fmt
(b'a,b', 'csv')
>>> SourceRecord(None, {"row": 0}, id="s:0", fmt="row", row={"x": 1}).original()
b'{"x":1}'
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

import orjson

from streamml.errors import ConfigError

#: How ExampleGen must parse a record: ``csv`` (a line; ``header`` names its columns),
#: ``json`` (one JSON object per record) or ``row`` (already parsed into ``row``).
RecordFormat = Literal["csv", "json", "row"]
Position = dict[str, Any]


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


class SourceRecord:
    """One record as read from a source, before ExampleGen types it.

    ``raw`` is the original bytes (``None`` when ``row`` is given and the bytes
    can be rebuilt as JSON). ``position`` is where the record sat (flat JSON
    scalars: it becomes ``Example.position``). ``id`` is the default example id
    (source and position). ``error`` is set by the connector for records it
    already knows are bad, as ``(reason, detail)`` (``oversize``...), and
    ``size`` is then the record's full size when ``raw`` was cut.
    """

    __slots__ = ("raw", "position", "id", "fmt", "header", "row", "event_time_ms", "error",
                 "size")

    def __init__(
        self,
        raw: bytes | None,
        position: dict[str, int | str],
        *,
        id: str,  # noqa: A002 - the Example field name
        fmt: RecordFormat = "json",
        header: bytes | None = None,
        row: dict[str, Any] | None = None,
        event_time_ms: int | None = None,
        error: tuple[str, str] | None = None,
        size: int | None = None,
    ) -> None:
        self.raw = raw
        self.position = position
        self.id = id
        self.fmt = fmt
        self.header = header
        self.row = row
        self.event_time_ms = event_time_ms
        self.error = error
        self.size = size

    def original(self) -> bytes:
        """The original bytes of the record (the JSON of ``row`` when no bytes were kept)."""
        if self.raw is not None:
            return self.raw
        return orjson.dumps(self.row, default=_json_default)

    def __repr__(self) -> str:
        return f"SourceRecord(id={self.id!r}, fmt={self.fmt!r}, position={self.position!r})"


class LineRecord(SourceRecord):
    """A :class:`SourceRecord` built positionally (the file source's hot path).

    >>> r = LineRecord(b"1,2", {"line": 2}, "f:a.csv:2", "csv", b"x,y")
    >>> isinstance(r, SourceRecord), r.id, r.header, r.error
    (True, 'f:a.csv:2', b'x,y', None)
    """

    __slots__ = ()

    def __init__(self, raw: bytes, position: dict[str, int | str], id: str,  # noqa: A002
                 fmt: RecordFormat, header: bytes | None) -> None:
        self.raw, self.position, self.id, self.fmt, self.header = raw, position, id, fmt, header
        self.row = self.event_time_ms = self.error = self.size = None


class SourceConnector(abc.ABC):
    """A source of records with a resumable, JSON-able position.

    Subclasses set ``type_name`` (the ``type:`` of connector definitions) and
    take their options as keyword arguments (configuration only; everything
    else is state, as in River).
    """

    type_name: ClassVar[str] = ""
    name: str

    @abc.abstractmethod
    def open(self, position: Position | None = None) -> None:
        """Start reading, at ``position`` (a former :attr:`position`) or at the beginning."""

    @abc.abstractmethod
    def read(self, max_records: int) -> list[SourceRecord]:
        """Up to ``max_records`` records (``[]`` when nothing is available now)."""

    @property
    @abc.abstractmethod
    def position(self) -> Position:
        """Where to resume so that the next record read is the one after the last returned."""

    @property
    def exhausted(self) -> bool:
        """``True`` when a bounded source has returned every record (never, when following)."""
        return False

    def describe(self) -> str:
        """One line naming what this connector reads (for ``connectors list``)."""
        return self.type_name

    def commit(self) -> None:  # noqa: B027 - optional hook
        """Called by the ingest loop once every record returned so far is durable.

        The examples and dead letters of those records are flushed to the log and
        :attr:`position` is checkpointed. Sources that acknowledge their clients
        (HTTP) answer them here, never earlier, so an acknowledged record is never lost.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files, connections, sockets."""

    def __enter__(self) -> SourceConnector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


SourceFactory = Callable[..., SourceConnector]
_SOURCES: dict[str, SourceFactory] = {}


def register_source(type_name: str, factory: SourceFactory) -> None:
    """Make ``type: <type_name>`` in connector definitions build ``factory(name=..., **options)``.

    >>> {"file", "sql", "kafka", "http", "synthetic"} <= set(source_types())
    True
    """
    _SOURCES[type_name] = factory


def source_types() -> list[str]:
    """Registered source types (the built-in ones are registered on first use)."""
    _builtin()
    return sorted(_SOURCES)


def _builtin() -> None:
    if "file" not in _SOURCES:
        from streamml.connectors.file import FileSource
        from streamml.connectors.sql import SqlSource

        register_source("file", FileSource)
        register_source("sql", SqlSource)
        register_source("kafka", _lazy("streamml.connectors.kafka", "KafkaSource"))
        register_source("http", _lazy("streamml.connectors.http", "HttpSource"))
        register_source("synthetic", _lazy("streamml.connectors.synthetic", "SyntheticSource"))


def _lazy(module: str, name: str) -> SourceFactory:
    """A factory importing its module on first use (kafka, aiohttp, river are heavy)."""

    def factory(**options: Any) -> SourceConnector:
        import importlib

        cls: SourceFactory = getattr(importlib.import_module(module), name)
        return cls(**options)

    factory.__name__ = name
    return factory


def build_source(type_name: str, name: str, options: Mapping[str, Any]) -> SourceConnector:
    """Build a registered source; bad options raise :class:`~streamml.errors.ConfigError`."""
    _builtin()
    factory = _SOURCES.get(type_name)
    if factory is None:
        raise ConfigError(
            f"unknown connector type {type_name!r}; known: {', '.join(sorted(_SOURCES))}"
        )
    try:
        return factory(name=name, **dict(options))
    except TypeError as exc:
        raise ConfigError(f"connector {name!r} ({type_name}): {exc}") from exc
