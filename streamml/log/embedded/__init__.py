"""The embedded log: durable, partitioned, offset-addressed segments on local disk.

Modules, one job each: :mod:`.format` (batch framing and CRC), :mod:`.segment`
(segment files and their batch index), :mod:`.partition` (reader and locked
writer of one partition), :mod:`.maintenance` (retention and compaction),
:mod:`.producer`, :mod:`.consumer` and :mod:`.log` (topics and group offsets).

>>> import tempfile
>>> from streamml.log.base import TopicSpec
>>> from streamml.log.embedded import EmbeddedLog
>>> with EmbeddedLog(tempfile.mkdtemp()) as log:
...     _ = log.create_topic(TopicSpec("demo"))
...     with log.producer() as p:
...         p.send("demo", b"hello", key=b"k", headers=(("h", b"1"),))
...     with log.consumer() as c:
...         c.subscribe(["demo"])
...         [(r.offset, r.key, r.value, r.headers) for r in c.poll(1.0)]
[(0, b'k', b'hello', (('h', b'1'),))]
"""

from streamml.log.embedded.log import DEFAULT_SEGMENT_BYTES, EmbeddedLog

__all__ = ["DEFAULT_SEGMENT_BYTES", "EmbeddedLog"]
