"""Pure stream processors: no I/O, state via snapshot/restore."""

from streamml.processors.base import Emit, Message, Processor

__all__ = ["Emit", "Message", "Processor"]
