"""Backfill: run a pipeline's processors over a replayed namespace, deterministically.

:func:`run_processors` builds pipeline ``ref`` named after the namespace (so
every processor reads and writes ``<namespace>.*``, with its own consumer
groups and ``<namespace>.checkpoints``) and runs its processors until idle.

**Why backfills on Kafka run on a local log.** A processor's output depends on
the order its input records arrive in: a count window of StatisticsGen takes
the next N examples of *any* partition, the Evaluator judges a candidate on the
eval examples that came before it. The embedded log returns records in an
order fixed by its contents; Kafka's fetches interleave partitions and topics
by timing, so two runs over the same records differ (measured: the statistics
windows of two replays of the same taxi range did not match). A replay is a
bounded input, so ``local=True`` (the default on any log but the embedded one)
copies the namespace's topics to a temporary embedded log, runs the processors
there, and copies every topic they wrote back to the namespace on ``log``,
record for record (same partitions, keys, values, headers, timestamps). The
result is then the same on both logs, and the same every time.

The runner checkpoints by record count only (never "every N seconds"): a
checkpoint flushes the outputs written so far, so a timed one would let a
downstream processor see them earlier or later depending on the machine's
speed, and its multi-topic input (examples and candidates, say) would
interleave differently.

>>> import tempfile
>>> from streamml.log.embedded import EmbeddedLog
>>> from streamml.log.base import TopicSpec
>>> src, dst = EmbeddedLog(tempfile.mkdtemp()), EmbeddedLog(tempfile.mkdtemp())
>>> _ = src.create_topic(TopicSpec("ns.examples", partitions=2))
>>> with src.producer() as p:
...     for i in range(6):
...         p.send("ns.examples", b"%d" % i, partition=i % 2, timestamp_ms=1000 + i)
>>> copy_topic(src, dst, "ns.examples")
6
>>> [p.end_offset for p in dst.describe_topic("ns.examples").partitions]
[3, 3]
>>> src.close(); dst.close()
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from streamml.errors import ConfigError
from streamml.log.base import Log, TopicPartition
from streamml.processors.base import Processor

if TYPE_CHECKING:
    from streamml.runtime.runner import ProcessorStats
    from streamml.settings import Settings


def copy_topic(src: Log, dst: Log, topic: str, after: Mapping[int, int] | None = None) -> int:
    """Append the records of ``topic`` on ``src`` to the same partitions on ``dst``.

    Partition ``p`` is copied from offset ``after[p]`` (default: its start).
    The destination topic is created like the source (partitions, cleanup
    policy, retention, config) if missing. Returns the records copied.
    """
    info = src.describe_topic(topic)
    if not dst.topic_exists(topic):
        dst.create_topic(dataclasses.replace(info.spec, partitions=len(info.partitions)),
                         exist_ok=True)
    tps = [TopicPartition(topic, p.partition) for p in info.partitions]
    copied = 0
    with src.consumer(group_id=None) as consumer, dst.producer() as producer:
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        for tp, start in consumer.beginning_offsets(tps).items():
            consumer.seek(tp, max(start, (after or {}).get(tp.partition, 0)))
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for r in consumer.poll(timeout_s=0.5, max_records=10_000):
                if r.offset < ends[TopicPartition(topic, r.partition)]:
                    producer.send(topic, r.value, r.key, partition=r.partition,
                                  timestamp_ms=r.timestamp_ms, headers=r.headers)
                    copied += 1
        producer.flush()
    return copied


def _is_embedded(log: Log) -> bool:
    from streamml.log.embedded import EmbeddedLog

    return isinstance(log, EmbeddedLog)


def run_processors(log: Log, ref: str, namespace: str, *, settings: Settings | None = None,
                   idle_s: float = 1.0, timeout_s: float | None = None,
                   local: bool | None = None) -> list[ProcessorStats]:
    """Run the processors of pipeline ``ref`` (``module:build_pipeline``), named ``namespace``.

    Connectors are not run: the replayed topics stand in for them. ``local``
    (default: unless ``log`` is embedded) runs them on a temporary embedded
    log and copies their output back (see the module docstring). Returns the
    runner's per-processor stats.
    """
    try:
        from streamml.pipeline import load_pipeline
    except ImportError as exc:  # pragma: no cover - the pipeline package is optional
        raise ConfigError(f"--run needs streamml.pipeline: {exc}") from exc
    from streamml.settings import load_settings

    settings = settings or load_settings()
    pipeline = load_pipeline(ref, settings, name=namespace)
    if pipeline.name != namespace:
        raise ConfigError(f"{ref} built pipeline {pipeline.name!r}, not the namespace "
                          f"{namespace!r}; it must accept a name")
    if local is None:
        local = not _is_embedded(log)
    if not local:
        return _run(log, pipeline.processors, namespace, settings, idle_s, timeout_s)
    from streamml.log.embedded import EmbeddedLog

    prefix = f"{namespace}."
    copied: dict[str, dict[int, int]] = {}
    with tempfile.TemporaryDirectory(prefix="streamml-backfill-") as tmp:
        work = EmbeddedLog(tmp)
        try:
            for topic in sorted(t for t in log.list_topics() if t.startswith(prefix)):
                copy_topic(log, work, topic)
                copied[topic] = {p.partition: p.end_offset
                                 for p in work.describe_topic(topic).partitions}
            stats = _run(work, pipeline.processors, namespace, settings, idle_s, timeout_s)
            for topic in sorted(work.list_topics()):  # what the processors appended
                copy_topic(work, log, topic, after=copied.get(topic))
        finally:
            work.close()
    return stats


def _run(log: Log, processors: Sequence[Processor], namespace: str, settings: Settings,
         idle_s: float, timeout_s: float | None) -> list[ProcessorStats]:
    from streamml.runtime.checkpoint import hmac_key_from
    from streamml.runtime.runner import Runner

    # Checkpoints by record count only: a checkpoint flushes outputs, and a timed one
    # would make them visible downstream at a moment set by the clock, not the data.
    runner = Runner(log, processors, namespace, hmac_key=hmac_key_from(settings),
                    idle_after_s=min(0.5, idle_s / 2), poll_timeout_s=0.0,
                    checkpoint_every_s=float("inf"))
    try:
        runner.run_until_idle(idle_s=idle_s, timeout_s=timeout_s)
        return runner.stats()
    finally:
        runner.close()
