"""Read a whole topic as it stands: every record up to the end offsets found at the start.

"Until a poll comes back empty" is not "the end" on Kafka (an empty poll may
only mean a fetch is in flight), so :func:`read_to_end` reads by offsets.

>>> import tempfile
>>> from streamml.log.base import TopicSpec
>>> from streamml.log.embedded import EmbeddedLog
>>> log = EmbeddedLog(tempfile.mkdtemp())
>>> _ = log.create_topic(TopicSpec("t", partitions=2))
>>> with log.producer() as p:
...     for i in range(5):
...         p.send("t", b"%d" % i, partition=i % 2)
...     p.flush()
>>> sorted(read_values(log, "t"))
[0, 1, 2, 3, 4]
>>> log.close()
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from streamml import serde
from streamml.log.base import Log, Record, TopicPartition


def read_to_end(log: Log, topic: str, *, ends_out: dict[TopicPartition, int] | None = None,
                timeout_s: float | None = None, max_records: int = 10_000) -> Iterator[Record]:
    """Every record of ``topic`` (all partitions, in offset order per partition) up to the
    end offsets when reading starts; they are stored in ``ends_out`` if given, so a
    follower can go on from exactly there. ``timeout_s`` bounds a read that stops
    making progress (``TimeoutError``)."""
    tps = [TopicPartition(topic, p.partition) for p in log.describe_topic(topic).partitions]
    with log.consumer(group_id=None) as consumer:
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        if ends_out is not None:
            ends_out.update(ends)
        for tp, start in consumer.beginning_offsets(tps).items():
            consumer.seek(tp, start)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            batch = consumer.poll(0.2, max_records)
            if batch and timeout_s is not None:
                deadline = time.monotonic() + timeout_s
            yield from (r for r in batch if r.offset < ends[r.tp])
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: no progress towards the end offsets "
                                   f"in {timeout_s} s")


def read_values(log: Log, topic: str, **kwargs: Any) -> list[Any]:
    """The decoded values of :func:`read_to_end` (tombstones skipped)."""
    return [serde.decode(r.value) for r in read_to_end(log, topic, **kwargs)
            if r.value is not None]
