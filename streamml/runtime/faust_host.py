"""The faust host: one processor as a faust-streaming worker group on Kafka.

Every worker is a faust ``App`` whose id (the Kafka consumer group) is
``<pipeline>.<processor name>``; Kafka spreads the input partitions over the
workers. Two ways to keep state:

* **per partition** (the default): a clone of the processor per input
  partition *number*, covering that partition of every input topic (a Kafka
  Streams task), checkpointed to ``<pipeline>.checkpoints`` under
  ``<name>/<partition>``. Workers of one group scale out over the partitions;
  right for processors whose state is local to a partition.
* **shared** (``shared_state=True``): ONE state over every partition of every
  input, checkpointed under the embedded runner's key, ``<name>/-`` (so a
  component moves between the two hosts and resumes). The pipeline's built-in
  components need it: a Trainer learns one model from all examples, a
  validator reads the one schema partition. One worker of the group is
  active; a worker assigned only part of the inputs processes nothing, and
  unless it holds partition 0 of the first input it stops with an error, so
  the group settles on the holder of that partition.

Commit ordering, and why faust never commits past a checkpoint:

* the agent reads with ``stream.noack_take``: faust does NOT ack the events
  it yields (``take``/``take_events`` ack them when the generator is resumed
  or closed, even after an exception, which could ack unprocessed events);
* per batch: process -> send outputs -> ``producer.flush()`` -> write the
  checkpoint of every touched partition and wait for it -> only then ack the
  batch's events. Faust's commit loop commits only the contiguous acked
  offsets, so the group offset never passes the last durable checkpoint;
* faust still auto-acks events it *skips* (stale generation during a
  rebalance), which could move a group offset ahead of the checkpoint. So
  the checkpoint, not the group offset, is the source of truth for the
  position: after every assignment the first event of each partition is
  compared with the checkpoint's next offset; earlier events are already
  counted (acked and skipped: no double counting), and if the consumer
  starts *beyond* it the host seeks back to it (no loss);
* ``stream_wait_empty`` is off (faust would otherwise wait on events this
  host deliberately never acks) and the revocation handler waits for the
  batch in progress, so a partition is handed over only between batches.

``on_idle`` (time windows close on it) is called, as on the embedded runner,
when no input arrived for ``idle_after_s``; its outputs are flushed and
checkpointed like a batch's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamml.errors import ConfigError, InvalidRecord, StreamMLError
from streamml.log import open_log, parse_broker_url
from streamml.log.base import Record, TopicPartition
from streamml.processors.base import Emit, Message, Processor
from streamml.processors.deadletter import dead_letter
from streamml.runtime.checkpoint import Checkpoint, CheckpointStore, checkpoint_key
from streamml.runtime.faust_config import (  # noqa: F401  (re-exported)
    DEFAULT_MAX_REQUEST_SIZE,
    faust_app_config,
    faust_credentials,
    faust_ssl_context,
)
from streamml.runtime.runner import topic_spec
from streamml.serde import decode, decode_key, encode_key
from streamml.settings import Settings

logger = logging.getLogger(__name__)
SEEK_GRACE_S = 30.0


@dataclass
class _PartitionTask:
    processor: Processor
    next_offsets: dict[TopicPartition, int]
    checked: set[TopicPartition] = field(default_factory=set)
    seeking: dict[TopicPartition, float] = field(default_factory=dict)
    batch: list[Message] = field(default_factory=list)
    last_input: float = field(default_factory=time.monotonic)
    last_idle_call: float = 0.0


class FaustHost:
    """Host ``processor`` as a faust worker; :meth:`run` blocks until stopped."""

    def __init__(self, processor: Processor, settings: Settings, *, pipeline: str,
                 workdir: str | Path, web_port: int | None = None, batch_size: int = 500,
                 batch_within_s: float = 0.5, hmac_key: bytes | None = None,
                 session_timeout_s: float = 10.0, shared_state: bool = False,
                 idle_after_s: float = 1.0, create_inputs: bool = False) -> None:
        scheme, location = parse_broker_url(settings.broker)
        if scheme != "kafka":
            raise ConfigError(
                f"streamml worker needs a kafka:// broker, not {settings.broker!r}"
            )
        self.processor = processor
        self.name = processor.processor_name
        self.settings = settings
        self.pipeline = pipeline
        self.location = location
        self.workdir = Path(workdir)
        self.web_port = web_port
        self.batch_size = batch_size
        self.batch_within_s = batch_within_s
        self.session_timeout_s = session_timeout_s
        self.shared_state = shared_state
        self.create_inputs = create_inputs
        self.idle_after_s = idle_after_s
        self.exit_error: str | None = None
        self.log = open_log(settings.broker, settings)
        self.store = CheckpointStore(self.log, pipeline, hmac_key=hmac_key)
        self.deadletter_topic = topic_spec(pipeline, f"{pipeline}.deadletter").name
        self.tasks: dict[int | None, _PartitionTask] = {}
        self.owned: set[TopicPartition] = set()
        self.all_inputs: set[TopicPartition] = set()
        self._loaded: dict[str, Checkpoint] | None = None
        self._lock = asyncio.Lock()
        self.app = self._build_app()

    # -- setup ------------------------------------------------------------------
    def _ensure_topics(self) -> None:
        self.store.ensure_topic()
        made = (*self.processor.outputs, self.deadletter_topic,
                *(self.processor.inputs if self.create_inputs else ()))
        for topic in made:
            if not self.log.topic_exists(topic):
                self.log.create_topic(topic_spec(self.pipeline, topic), exist_ok=True)
        missing = [t for t in self.processor.inputs if not self.log.topic_exists(t)]
        if missing:
            raise ConfigError(f"input topics do not exist: {', '.join(missing)}")
        self.all_inputs = {TopicPartition(t, p.partition) for t in self.processor.inputs
                           for p in self.log.describe_topic(t).partitions}

    def _max_request_size(self) -> int:
        """Room for the largest checkpoint the checkpoints topic accepts (plus overhead)."""
        limit = self.store.spec.config.get("max.message.bytes")
        if limit is None or not str(limit).isdigit():
            return DEFAULT_MAX_REQUEST_SIZE
        return max(DEFAULT_MAX_REQUEST_SIZE, int(limit) + 64 * 1024)

    def _build_app(self) -> Any:
        import faust

        self._ensure_topics()
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = faust_app_config(self.settings, f"{self.pipeline}.{self.name}",
                                  self.location, self.workdir, web_port=self.web_port,
                                  session_timeout_s=self.session_timeout_s,
                                  max_request_size=self._max_request_size())
        app = faust.App(**config)
        topic = app.topic(*self.processor.inputs, key_type=bytes, value_type=bytes,
                          key_serializer="raw", value_serializer="raw")

        async def agent(stream: Any) -> None:
            async for events in stream.noack_take(self.batch_size, self.batch_within_s):
                await self.handle(stream, events)

        app.agent(topic, name=f"{self.name}-agent")(agent)
        app.timer(max(0.1, self.idle_after_s / 2), name=f"{self.name}-idle")(self._idle_tick)

        async def on_revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
            async with self._lock:  # hand partitions over only between batches
                gone = {TopicPartition(tp.topic, tp.partition) for tp in revoked}
                self.owned -= gone
                self._forget_unowned()
                logger.info("%s revoked %s, keeping tasks %s", self.name, sorted(gone),
                            list(self.tasks))

        async def on_assigned(sender: Any, assigned: set[Any], **_: Any) -> None:
            async with self._lock:
                self.owned = {TopicPartition(tp.topic, tp.partition) for tp in assigned
                              if tp.topic in self.processor.inputs}
                self._forget_unowned()
                self._loaded = None  # others may have checkpointed meanwhile
                for task in self.tasks.values():
                    task.checked.clear()
                self._write_status()
                self._check_shared_assignment()

        app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]
        app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]
        return app

    def _write_status(self) -> None:
        """``<workdir>/assignment.json``: the input partitions this worker owns now."""
        status = {"processor": self.name, "group": f"{self.pipeline}.{self.name}",
                  "partitions": sorted([tp.topic, tp.partition] for tp in self.owned),
                  "updated_ms": int(time.time() * 1000)}
        # per process: two workers of one group (a second one started by mistake)
        # share the workdir, and must not move each other's file away
        tmp = self.workdir / f"assignment.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(status), encoding="utf-8")
        tmp.replace(self.workdir / "assignment.json")
        logger.info("%s assigned %s", self.name, status["partitions"])

    @property
    def owns_all(self) -> bool:
        """Shared state: this worker holds every input partition (it may process)."""
        return bool(self.owned) and self.owned >= self.all_inputs

    def _check_shared_assignment(self) -> None:
        """Shared state split over workers: all but the holder of the lead partition stop."""
        if not self.shared_state or not self.owned or self.owns_all:
            return
        lead = TopicPartition(self.processor.inputs[0], 0)
        if lead in self.owned:
            logger.warning("%s: another worker joined group %s.%s; this one keeps one state "
                           "over all partitions, so it waits until it holds them all",
                           self.name, self.pipeline, self.name)
            return
        self.exit_error = (f"{self.name} keeps one state over all its input partitions, so "
                           f"one worker of group {self.pipeline}.{self.name} runs it: the one "
                           f"holding {lead.topic}[0] goes on from the checkpoint, this one stops")
        logger.error("%s", self.exit_error)
        os.kill(os.getpid(), signal.SIGTERM)  # faust's worker shuts down cleanly on it

    def _task_id(self, partition: int) -> int | None:
        """Which task's state covers input ``partition`` (``None``: the shared one)."""
        return None if self.shared_state else partition

    def _forget_unowned(self) -> None:
        if self.shared_state:
            if not self.owns_all:
                self.tasks.clear()
            return
        partitions = {tp.partition for tp in self.owned}
        for p in [p for p in self.tasks if p not in partitions]:
            del self.tasks[p]

    async def _task(self, tid: int | None) -> _PartitionTask:
        task = self.tasks.get(tid)
        if task is not None:
            return task
        if self._loaded is None:
            self._loaded = await asyncio.to_thread(self.store.load_all)
        cp = self._loaded.get(checkpoint_key(self.name, tid))
        processor = self.processor.clone()
        if cp is not None:
            processor.restore(cp.state)
        next_offsets = {}
        covered = (sorted(self.all_inputs) if tid is None
                   else [TopicPartition(t, tid) for t in self.processor.inputs])
        for tp in covered:
            start = await asyncio.to_thread(self._start_offset, tp)
            found = cp.next_offset(tp) if cp is not None else None
            next_offsets[tp] = max(found if found is not None else 0, start)
        task = self.tasks[tid] = _PartitionTask(processor, next_offsets)
        logger.info("%s task %s restored at %s", self.name,
                    "shared" if tid is None else tid, next_offsets)
        return task

    def _start_offset(self, tp: TopicPartition) -> int:
        info = self.log.describe_topic(tp.topic)
        return next((p.start_offset for p in info.partitions if p.partition == tp.partition), 0)

    # -- one batch ----------------------------------------------------------------
    async def _admit(self, event: Any) -> str:
        """``process``, ``covered`` (already in the checkpoint: ack only) or ``drop``."""
        message = event.message
        if message.generation_id != self.app.consumer_generation_id:
            return "drop"
        tp = TopicPartition(message.topic, message.partition)
        if tp not in self.owned or (self.shared_state and not self.owns_all):
            return "drop"  # not acked: redelivered to whoever holds it
        task = await self._task(self._task_id(tp.partition))
        expected = task.next_offsets[tp]
        offset = message.offset
        if tp in task.seeking:
            if offset > expected and time.monotonic() < task.seeking[tp]:
                return "drop"  # fetched before the seek took effect
            del task.seeking[tp]
        if offset < expected:
            return "covered"
        if offset > expected and tp not in task.checked:
            logger.warning("%s: %s starts at %d, past its checkpoint %d; seeking back",
                           self.name, tp, offset, expected)
            await self.app.consumer.seek(message.tp, expected)
            task.seeking[tp] = time.monotonic() + SEEK_GRACE_S
            return "drop"
        task.checked.add(tp)
        task.next_offsets[tp] = offset + 1
        return "process"

    async def handle(self, stream: Any, events: Sequence[Any]) -> None:
        """Process one batch: outputs, flush, checkpoints, and only then acks."""
        async with self._lock:
            to_ack: list[Any] = []
            touched: dict[int | None, _PartitionTask] = {}
            pending: list[Any] = []
            for event in events:
                verdict = await self._admit(event)
                if verdict == "drop":
                    continue
                to_ack.append(event)
                if verdict == "covered":
                    continue
                message = event.message
                tid = self._task_id(message.partition)
                task = self.tasks[tid]
                task.last_input = time.monotonic()
                touched[tid] = task
                try:
                    value = (message.value if task.processor.raw_values  # decodes itself
                             else decode(message.value))
                    task.batch.append(Message(message.topic, message.partition, message.offset,
                                              int(message.timestamp * 1000),
                                              decode_key(message.key), value))
                except (InvalidRecord, UnicodeDecodeError) as exc:
                    record = Record(message.topic, message.partition, message.offset,
                                    int(message.timestamp * 1000), message.key, message.value)
                    key, value = dead_letter(str(exc), record, self.name, self.pipeline)
                    pending.append(await self._send(self.deadletter_topic, key, value))
            for task in touched.values():
                batch, task.batch = task.batch, []
                emits = task.processor.process(batch) if batch else ()
                pending.extend([await self._send_emit(e) for e in emits])
            await self._make_durable(pending, touched)
            for event in to_ack:
                await stream.ack(event)

    async def _idle_tick(self) -> None:
        """``on_idle`` for tasks without input for ``idle_after_s``: emit, flush, checkpoint."""
        async with self._lock:
            now = time.monotonic()
            for tid, task in list(self.tasks.items()):
                if (now - task.last_input < self.idle_after_s
                        or now - task.last_idle_call < self.idle_after_s):
                    continue
                task.last_idle_call = now
                emits = list(task.processor.on_idle(int(time.time() * 1000)))
                if not emits:
                    continue
                await self._make_durable([await self._send_emit(e) for e in emits], {tid: task})

    async def _make_durable(self, pending: list[Any],
                            tasks: dict[int | None, _PartitionTask]) -> None:
        """Flush the outputs, wait for their acks, then checkpoint ``tasks`` (in that order:
        a checkpoint never covers an output that could still be lost)."""
        if pending:
            await self.app.producer.flush()
            await asyncio.gather(*pending)
        for tid, task in tasks.items():
            await self._write_checkpoint(tid, task)

    async def _send(self, topic: str, key: bytes | None, value: bytes | None,
                    partition: int | None = None, timestamp_ms: int | None = None,
                    headers: Any = None) -> Any:
        return await self.app.producer.send(
            topic, key, value, partition,
            None if timestamp_ms is None else timestamp_ms / 1000.0, headers,
        )

    async def _send_emit(self, emit: Emit) -> Any:
        return await self._send(emit.topic, encode_key(emit.key), emit.encoded_value(),
                                timestamp_ms=emit.timestamp_ms,
                                headers=list(emit.headers) or None)

    async def _write_checkpoint(self, partition: int | None, task: _PartitionTask) -> None:
        offsets: dict[str, dict[int, int]] = {}
        for tp, offset in task.next_offsets.items():
            offsets.setdefault(tp.topic, {})[tp.partition] = offset
        cp = Checkpoint(self.name, offsets, task.processor.snapshot(), partition=partition)
        key, value, cp_partition = self.store.encode(cp)
        await self.app.producer.send_and_wait(self.store.topic, key, value, cp_partition,
                                              None, None)
        self.store.remember(cp)

    # -- running --------------------------------------------------------------------
    def run(self, loglevel: str = "WARNING") -> int:
        """Run the worker until SIGTERM/SIGINT; return its exit code.

        ``ConfigError`` when it stopped because another worker runs its shared state.
        """
        from faust.worker import Worker

        worker = Worker(self.app, loglevel=loglevel, quiet=True,
                        workdir=str(self.workdir), redirect_stdouts=False)
        code = 0
        crashed: BaseException | None = None
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            code = int(exc.code or 0)
        except Exception as exc:  # a crash that escapes faust's own SystemExit handling
            crashed = exc
        finally:
            self.log.close()
        if self.exit_error is not None:
            raise ConfigError(self.exit_error)
        crashed = crashed or worker.crash_reason or self.app.crash_reason
        if crashed is not None:  # a crash is never a clean exit (code 0)
            raise StreamMLError(f"{self.name} worker crashed: {crashed!r} (see the log above)")
        return code
