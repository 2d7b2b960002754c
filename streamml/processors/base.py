"""The processor contract every streamml component implements.

A processor is pure: it never touches a log, a file or the clock on its own.
A host (:mod:`streamml.runtime`) feeds it micro-batches of decoded
:class:`Message` objects, writes the :class:`Emit` objects it returns to their
topics, and checkpoints ``snapshot()`` together with the input offsets, so a
restarted processor ``restore``-s state that agrees exactly with where it
resumes reading.

Constructor arguments are configuration; everything else is state (River's
convention), so ``clone()`` gives a fresh processor with the same settings.

>>> class Count(Processor):
...     def __init__(self, source: str, sink: str):
...         self.source, self.sink = source, sink
...         self.inputs, self.outputs = (source,), (sink,)
...         self.n = 0
...     def process(self, batch):
...         self.n += len(batch)
...         return [Emit(self.sink, {"count": self.n}, key="total")]
...     def snapshot(self):
...         return {"n": self.n}
...     def restore(self, state):
...         self.n = state["n"]
>>> c = Count("p.examples", "p.counts")
>>> c.process([Message("p.examples", 0, 0, 0, None, {"x": 1})])
[Emit(topic='p.counts', value={'count': 1}, key='total', timestamp_ms=None, headers=())]
>>> c2 = c.clone(); c2.restore(c.snapshot()); c2.n
1
"""

from __future__ import annotations

import abc
import copy
import inspect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from streamml.log.base import Headers
from streamml.serde import encode

State = dict[str, Any] | bytes


@dataclass(frozen=True, slots=True)
class Message:
    """One decoded input record: where it came from and its JSON value."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str | None
    value: Any


@dataclass(frozen=True, slots=True)
class Emit:
    """One output record; the host encodes ``value`` as JSON and appends it to ``topic``.

    Keys should be deterministic (derived from inputs, never random or
    clock-based), so downstream consumers can drop the duplicates that
    at-least-once delivery produces after a crash. ``Emit.tombstone(topic,
    key)`` writes a record with no value (``None`` bytes), which deletes the
    key from a compacted topic; a plain ``value=None`` is the JSON ``null``.

    >>> Emit.tombstone("p.models", "m/chunk/3").value is None
    True
    """

    topic: str
    value: Any
    key: str | None = None
    timestamp_ms: int | None = None
    headers: Headers = ()
    is_tombstone: bool = field(default=False, repr=False)

    @classmethod
    def tombstone(cls, topic: str, key: str, timestamp_ms: int | None = None) -> Emit:
        """A record that deletes ``key`` from a compacted ``topic``."""
        return cls(topic, None, key, timestamp_ms, (), True)

    def encoded_value(self) -> bytes | None:
        """The bytes a host appends: JSON of ``value``, or ``None`` for a tombstone."""
        return None if self.is_tombstone else encode(self.value)


class Processor(abc.ABC):
    """A stream processor. Subclasses set ``inputs`` and ``outputs`` (topic names)."""

    #: short, stable name; the host uses it for checkpoints and consumer groups.
    name: ClassVar[str] = ""
    inputs: Sequence[str] = ()
    outputs: Sequence[str] = ()
    #: when True, hosts hand each ``Message.value`` as the record's undecoded bytes
    #: (``None`` for a tombstone) and the processor decodes the batch itself, sending
    #: records that are not JSON to ``<pipeline>.deadletter`` (columnar decoding).
    raw_values: ClassVar[bool] = False

    @abc.abstractmethod
    def process(self, batch: Sequence[Message]) -> Iterable[Emit]:
        """Consume one micro-batch (possibly from several partitions) and return outputs."""

    def on_idle(self, now_ms: int) -> Iterable[Emit]:
        """Called by the host when no input arrived for a while (close time windows)."""
        return ()

    @abc.abstractmethod
    def snapshot(self) -> State:
        """Return the full state: a JSON-able dict, or bytes for opaque state."""

    @abc.abstractmethod
    def restore(self, state: State) -> None:
        """Replace the state with one returned by :meth:`snapshot`."""

    def clone(self) -> Processor:
        """A fresh processor with the same configuration and empty state."""
        params = inspect.signature(type(self).__init__).parameters
        kwargs = {
            name: copy.deepcopy(getattr(self, name))
            for name in list(params)[1:]
            if params[name].kind
            in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        }
        return type(self)(**kwargs)

    @property
    def processor_name(self) -> str:
        return self.name or type(self).__name__.lower()
