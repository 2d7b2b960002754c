"""The faust host: one processor as a faust-streaming worker group on Kafka.

Every worker is a faust ``App`` whose id (the Kafka consumer group) is
``<pipeline>.<processor name>``; Kafka spreads the input partitions over the
workers. State is kept per input partition *number* (a clone of the
processor per partition, covering that partition of every input topic, like
a Kafka Streams task) and checkpointed to ``<pipeline>.checkpoints`` under
``<name>/<partition>``.

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
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamml.errors import ConfigError, InvalidRecord
from streamml.log import open_log, parse_broker_url
from streamml.log.base import Record, TopicPartition
from streamml.processors.base import Emit, Message, Processor
from streamml.runtime.checkpoint import Checkpoint, CheckpointStore, checkpoint_key
from streamml.runtime.runner import dead_letter, topic_spec
from streamml.serde import decode, decode_key, encode_key
from streamml.settings import Settings

logger = logging.getLogger(__name__)
SEEK_GRACE_S = 30.0
DEFAULT_MAX_REQUEST_SIZE = 1024 * 1024  # aiokafka's default


def load_processor(spec: str) -> Processor:
    """Build the processor named ``module:callable`` (a class or a factory).

    >>> load_processor("streamml:nothing")
    Traceback (most recent call last):
    ...
    streamml.errors.ConfigError: module 'streamml' has no attribute 'nothing'
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"PROCESSOR must look like module:callable, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}") from exc
    try:
        factory: Any = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"module {module_name!r} has no attribute {attr!r}") from None
    processor = factory() if callable(factory) else factory
    if not isinstance(processor, Processor):
        raise ConfigError(f"{spec} returned {type(processor).__name__}, not a Processor")
    if not processor.inputs:
        raise ConfigError(f"processor {processor.processor_name!r} declares no input topics")
    return processor


def faust_ssl_context(settings: Settings) -> ssl.SSLContext:
    """TLS context from ``kafka_ssl_*`` (system CAs when no ``kafka_ssl_cafile``)."""
    from aiokafka.helpers import create_ssl_context

    if settings.kafka_ssl_keyfile and not settings.kafka_ssl_certfile:
        raise ConfigError("kafka_ssl_keyfile needs kafka_ssl_certfile")
    try:
        return create_ssl_context(cafile=settings.kafka_ssl_cafile,
                                  certfile=settings.kafka_ssl_certfile,
                                  keyfile=settings.kafka_ssl_keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot build the Kafka TLS context: {exc}") from exc


def faust_credentials(settings: Settings) -> Any:
    """faust ``broker_credentials`` for the ``kafka_*`` security settings (``None``: PLAINTEXT).

    The same settings kafka-python gets through ``Settings.kafka_client_config``:
    ``SSL`` -> ``SSLCredentials``; ``SASL_PLAINTEXT``/``SASL_SSL`` ->
    ``SASLCredentials`` (PLAIN, SCRAM-SHA-256/512) or ``GSSAPICredentials``, with
    the TLS context for ``SASL_SSL``.

    >>> faust_credentials(Settings(kafka_security_protocol="SASL_PLAINTEXT",
    ...     kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="u",
    ...     kafka_sasl_password="p"))
    <SASLCredentials: username=u>
    """
    import faust

    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = faust_ssl_context(settings) if protocol in ("SSL", "SASL_SSL") else None
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    mechanism = (settings.kafka_sasl_mechanism or "PLAIN").upper()
    if mechanism == "GSSAPI":
        return faust.GSSAPICredentials(ssl_context=context)
    if mechanism not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        raise ConfigError(f"the faust host does not support SASL mechanism {mechanism!r}")
    password = settings.kafka_sasl_password
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password.get_secret_value() if password is not None else None,
        ssl_context=context, mechanism=mechanism,
    )


def faust_app_config(settings: Settings, app_id: str, bootstrap: str, workdir: Path, *,
                     web_port: int | None = None, session_timeout_s: float = 10.0,
                     max_request_size: int = DEFAULT_MAX_REQUEST_SIZE) -> dict[str, Any]:
    """Keyword arguments of the worker's ``faust.App`` (security settings included).

    ``max_request_size`` bounds one produce request; the host raises it to the
    checkpoints topic's ``max.message.bytes`` so large states can be written.
    """
    return {
        "id": app_id,
        "broker": f"kafka://{bootstrap}",
        "broker_credentials": faust_credentials(settings),
        "broker_client_id": settings.kafka_client_id,
        "datadir": str(workdir / "faust-data"),
        "web_enabled": web_port is not None,
        "web_port": web_port or 6066,
        "web_host": "127.0.0.1",
        "topic_disable_leader": True,
        "topic_allow_declare": False,
        "stream_wait_empty": False,
        "consumer_auto_offset_reset": "earliest",
        "broker_commit_interval": 1.0,
        "producer_acks": -1,
        "producer_max_request_size": max_request_size,
        "broker_session_timeout": session_timeout_s,
        "broker_heartbeat_interval": max(0.5, session_timeout_s / 10),
    }


@dataclass
class _PartitionTask:
    processor: Processor
    next_offsets: dict[TopicPartition, int]
    checked: set[TopicPartition] = field(default_factory=set)
    seeking: dict[TopicPartition, float] = field(default_factory=dict)
    batch: list[Message] = field(default_factory=list)


class FaustHost:
    """Host ``processor`` as a faust worker; :meth:`run` blocks until stopped."""

    def __init__(self, processor: Processor, settings: Settings, *, pipeline: str,
                 workdir: str | Path, web_port: int | None = None, batch_size: int = 500,
                 batch_within_s: float = 0.5, hmac_key: bytes | None = None,
                 session_timeout_s: float = 10.0) -> None:
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
        self.log = open_log(settings.broker, settings)
        self.store = CheckpointStore(self.log, pipeline, hmac_key=hmac_key)
        self.deadletter_topic = topic_spec(pipeline, f"{pipeline}.deadletter").name
        self.tasks: dict[int, _PartitionTask] = {}
        self.owned: set[TopicPartition] = set()
        self._loaded: dict[str, Checkpoint] | None = None
        self._lock = asyncio.Lock()
        self.app = self._build_app()

    # -- setup ------------------------------------------------------------------
    def _ensure_topics(self) -> None:
        self.store.ensure_topic()
        for topic in (*self.processor.outputs, self.deadletter_topic):
            if not self.log.topic_exists(topic):
                self.log.create_topic(topic_spec(self.pipeline, topic), exist_ok=True)
        missing = [t for t in self.processor.inputs if not self.log.topic_exists(t)]
        if missing:
            raise ConfigError(f"input topics do not exist: {', '.join(missing)}")

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

        async def on_revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
            async with self._lock:  # hand partitions over only between batches
                gone = {TopicPartition(tp.topic, tp.partition) for tp in revoked}
                self.owned -= gone
                self._forget_unowned()
                logger.info("%s revoked %s, keeping tasks %s", self.name, sorted(gone),
                            sorted(self.tasks))

        async def on_assigned(sender: Any, assigned: set[Any], **_: Any) -> None:
            async with self._lock:
                self.owned = {TopicPartition(tp.topic, tp.partition) for tp in assigned
                              if tp.topic in self.processor.inputs}
                self._forget_unowned()
                self._loaded = None  # others may have checkpointed meanwhile
                for task in self.tasks.values():
                    task.checked.clear()
                self._write_status()

        app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]
        app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]
        return app

    def _write_status(self) -> None:
        """``<workdir>/assignment.json``: the input partitions this worker owns now."""
        status = {"processor": self.name, "group": f"{self.pipeline}.{self.name}",
                  "partitions": sorted([tp.topic, tp.partition] for tp in self.owned),
                  "updated_ms": int(time.time() * 1000)}
        tmp = self.workdir / "assignment.json.tmp"
        tmp.write_text(json.dumps(status), encoding="utf-8")
        tmp.replace(self.workdir / "assignment.json")
        logger.info("%s assigned %s", self.name, status["partitions"])

    def _forget_unowned(self) -> None:
        partitions = {tp.partition for tp in self.owned}
        for p in [p for p in self.tasks if p not in partitions]:
            del self.tasks[p]

    async def _task(self, partition: int) -> _PartitionTask:
        task = self.tasks.get(partition)
        if task is not None:
            return task
        if self._loaded is None:
            self._loaded = await asyncio.to_thread(self.store.load_all)
        cp = self._loaded.get(checkpoint_key(self.name, partition))
        processor = self.processor.clone()
        if cp is not None:
            processor.restore(cp.state)
        next_offsets = {}
        for topic in self.processor.inputs:
            tp = TopicPartition(topic, partition)
            start = await asyncio.to_thread(self._start_offset, tp)
            found = cp.next_offset(tp) if cp is not None else None
            next_offsets[tp] = max(found if found is not None else 0, start)
        task = self.tasks[partition] = _PartitionTask(processor, next_offsets)
        logger.info("%s partition %d restored at %s", self.name, partition, next_offsets)
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
        if tp not in self.owned:
            return "drop"
        task = await self._task(tp.partition)
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
            touched: dict[int, _PartitionTask] = {}
            pending: list[Any] = []
            for event in events:
                verdict = await self._admit(event)
                if verdict == "drop":
                    continue
                to_ack.append(event)
                if verdict == "covered":
                    continue
                message = event.message
                task = self.tasks[message.partition]
                touched[message.partition] = task
                try:
                    task.batch.append(Message(message.topic, message.partition, message.offset,
                                              int(message.timestamp * 1000),
                                              decode_key(message.key), decode(message.value)))
                except (InvalidRecord, UnicodeDecodeError) as exc:
                    record = Record(message.topic, message.partition, message.offset,
                                    int(message.timestamp * 1000), message.key, message.value)
                    key, value = dead_letter(str(exc), record, self.name, self.pipeline)
                    pending.append(await self._send(self.deadletter_topic, key, value))
            for task in touched.values():
                batch, task.batch = task.batch, []
                emits = task.processor.process(batch) if batch else ()
                pending.extend([await self._send_emit(e) for e in emits])
            if pending:
                await self.app.producer.flush()
                await asyncio.gather(*pending)
            for partition, task in touched.items():
                await self._write_checkpoint(partition, task)
            for event in to_ack:
                await stream.ack(event)

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

    async def _write_checkpoint(self, partition: int, task: _PartitionTask) -> None:
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
        """Run the worker until SIGTERM/SIGINT; return its exit code."""
        from faust.worker import Worker

        worker = Worker(self.app, loglevel=loglevel, quiet=True,
                        workdir=str(self.workdir), redirect_stdouts=False)
        try:
            worker.execute_from_commandline()
        except SystemExit as exc:
            return int(exc.code or 0)
        finally:
            self.log.close()
        return 0


def host_from_spec(spec: str, settings: Settings, **kwargs: Any) -> FaustHost:
    """``FaustHost`` for the processor named by ``module:callable``."""
    return FaustHost(load_processor(spec), settings, **kwargs)

