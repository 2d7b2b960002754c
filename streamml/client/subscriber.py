"""Subscribe to ``<pipeline>.models``: verified, ready-to-predict model updates.

How it reads the topic. The models topic is compacted, keyed by model name, so
it holds the latest releases (and the chunks of chunked artifacts). A subscriber
assigns every partition and reads from the beginning, with no consumer group:

* **catch-up** (up to the end offsets seen at start): every release's HMAC and
  artifact checksum are checked as it is read (cheap), but only the *highest*
  verified version per model is unpickled and loaded, once the end is reached;
* **live**: each newer release is verified, unpickled, warmed up and yielded.

Refused releases (unsigned, tampered, bad checksum...; see
:mod:`streamml.client.verify`) are logged, counted in ``stats`` and kept in
``refusals``; the previous version stays current. A release whose version is not
above the current one is ignored (``stats["stale"]``), so an old signed release
replayed onto the topic cannot roll a model back.

Resuming. ``state_path`` names a small JSON file holding, per model name, the last
version :meth:`ModelSubscriber.updates` delivered (``{"topic": ..., "seen": {name:
version}}``, replaced atomically). After a restart :meth:`~ModelSubscriber.latest`
still returns the current model (reloaded from the topic), but ``updates()``
yields only versions newer than the ones already delivered. A version counts as
delivered once the loop body that received it finishes or leaves the loop (``break``,
an exception); if the process dies while handling it, it is delivered again.
Without ``state_path`` the memory is per object. No consumer-group offsets are
used: a compacted topic must be re-read from its start to find the current model
anyway, and one file works the same on both logs.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import orjson
from pydantic import ValidationError

from streamml import serde
from streamml.catalog import validate_pipeline
from streamml.client.served import ServedModel
from streamml.client.verify import (
    Refusal,
    Refused,
    check_artifact,
    check_signature,
    load_verified,
    read_stored,
)
from streamml.errors import InvalidRecord
from streamml.log import Consumer, Log, Record, TopicPartition, open_log
from streamml.payloads.artifacts import ChunkedArtifact, InlineArtifact, StoredArtifact
from streamml.payloads.models import ModelChunk, ModelRecord, ModelRelease

logger = logging.getLogger("streamml.client")

TOPIC_CHECK_INTERVAL_S = 1.0


class ModelSubscriber:
    """Consume ``<pipeline>.models`` and yield verified, ready-to-predict models.

    ``log`` is a :class:`~streamml.log.Log` (not closed by the subscriber) or a
    broker URL (opened and closed by it). ``signing_key`` is the HMAC key of the
    Pusher; with ``None`` every release is refused (fail closed). ``names``
    restricts the models followed.

    >>> import pickle, tempfile
    >>> from river import linear_model
    >>> from streamml import serde
    >>> from streamml.log import TopicSpec, open_log
    >>> from streamml.payloads.artifacts import (FeatureSignature, InlineArtifact,
    ...                                          ModelSignature)
    >>> from streamml.payloads.models import ModelRelease
    >>> log = open_log("embedded://" + tempfile.mkdtemp())
    >>> _ = log.create_topic(TopicSpec("demo.models", cleanup_policy="compact"))
    >>> model = linear_model.LinearRegression()
    >>> model.learn_one({"x": 1.0}, 2.0)
    >>> release = ModelRelease(
    ...     pipeline="demo", name="price", version=1, candidate_id="c1",
    ...     signature=ModelSignature(task="regression", label="y",
    ...                              inputs=[FeatureSignature(name="x", type="float")]),
    ...     artifact=InlineArtifact.from_bytes(pickle.dumps(model), format="river-pickle"),
    ...     created_at=0).signed(b"secret")
    >>> with log.producer() as producer:
    ...     producer.send("demo.models", serde.encode(release.to_json()), b"price")
    >>> with ModelSubscriber(log, "demo", signing_key=b"secret") as subscriber:
    ...     for served in subscriber.updates(timeout_s=0.5):
    ...         print(served.name, served.version, round(served.predict([{"x": 1.0}])[0], 3))
    ...     print(subscriber.latest("price"))
    price 1 0.08
    ServedModel(name='price', version=1)
    >>> log.close()
    """

    def __init__(
        self,
        log: Log | str,
        pipeline: str = "demo",
        *,
        signing_key: bytes | None,
        names: Iterable[str] | None = None,
        state_path: str | os.PathLike[str] | None = None,
        fetch_stored: Callable[[StoredArtifact], bytes] = read_stored,
        on_refusal: Callable[[Refusal], None] | None = None,
        poll_interval_s: float = 0.2,
    ) -> None:
        self._own_log = isinstance(log, str)
        self._log: Log = open_log(log) if isinstance(log, str) else log
        self.topic = f"{validate_pipeline(pipeline)}.models"
        self._key = signing_key
        self._names = None if names is None else frozenset(names)
        self._state_path = None if state_path is None else Path(state_path)
        self._fetch_stored = fetch_stored
        self._on_refusal = on_refusal
        self._poll_interval = poll_interval_s
        self._consumer: Consumer | None = None
        self._catchup_end: dict[TopicPartition, int] | None = None
        self._last_topic_check = -1e9
        self._chunks: dict[tuple[str, int], dict[int, bytes]] = {}
        self._awaiting: dict[str, ModelRelease] = {}  # releases whose chunks are still missing
        self._pending: dict[str, tuple[ModelRelease, bytes, int]] = {}  # best during catch-up
        self._latest: dict[str, ServedModel] = {}
        self._ready: deque[ServedModel] = deque()
        self._seen: dict[str, int] = self._load_state()
        self._stop = threading.Event()
        self.stats: Counter[str] = Counter()
        """Counts: ``accepted``, ``stale``, ``refused`` and ``refused:<reason>``."""
        self.refusals: deque[Refusal] = deque(maxlen=100)
        """The last refused releases, oldest first."""
        if signing_key is None:
            logger.warning("no signing key configured: every model will be refused (fail closed)")

    # -- public API -------------------------------------------------------------
    def updates(self, timeout_s: float | None = None) -> Iterator[ServedModel]:
        """Yield each newly loaded model version, in the order they are verified.

        Stops after ``timeout_s`` seconds with nothing new (``None``: runs until
        :meth:`stop` is called, from any thread). During catch-up only the newest
        verified version of each model is loaded and yielded.
        """
        self._stop.clear()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self._stop.is_set():
            while self._ready:
                model = self._ready.popleft()
                try:
                    yield model
                finally:
                    self._ack(model)
                if timeout_s is not None:
                    deadline = time.monotonic() + timeout_s
            if deadline is not None and time.monotonic() >= deadline:
                return
            wait = self._poll_interval
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            self._step(wait)

    def catch_up(self, timeout_s: float = 30.0) -> bool:
        """Read up to the end of the topic as of now; ``True`` if reached within ``timeout_s``.

        Models loaded meanwhile are available from :meth:`latest` (and are still
        yielded by a later :meth:`updates`).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            if self._open() and self._catchup_end is None and self._at_end():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._step(min(self._poll_interval, remaining))

    @property
    def caught_up(self) -> bool:
        """Whether the catch-up read (to the end offsets at start) has finished."""
        return self._consumer is not None and self._catchup_end is None

    def latest(self, name: str) -> ServedModel | None:
        """The current verified version of model ``name`` (``None`` if none yet)."""
        return self._latest.get(name)

    def models(self) -> dict[str, ServedModel]:
        """The current verified version of every model, by name."""
        return dict(self._latest)

    def stop(self) -> None:
        """Make a running :meth:`updates` return (thread-safe)."""
        self._stop.set()

    def close(self) -> None:
        """Stop, close the consumer (and the log if the subscriber opened it)."""
        self.stop()
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._own_log:
            self._log.close()

    def __enter__(self) -> ModelSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ------------------------------------------------------------------
    def _open(self) -> bool:
        if self._consumer is not None:
            return True
        now = time.monotonic()
        if now - self._last_topic_check < TOPIC_CHECK_INTERVAL_S:
            return False
        self._last_topic_check = now
        if not self._log.topic_exists(self.topic):
            logger.debug("waiting for topic %s", self.topic)
            return False
        info = self._log.describe_topic(self.topic)
        tps = [TopicPartition(self.topic, p.partition) for p in info.partitions]
        consumer = self._log.consumer(None, auto_offset_reset="earliest")
        consumer.assign(tps)
        consumer.seek_to_beginning(tps)
        self._catchup_end = consumer.end_offsets(tps)
        self._consumer = consumer
        return True

    def _at_end(self) -> bool:
        assert self._consumer is not None
        ends = self._consumer.end_offsets(sorted(self._consumer.assignment()))
        return all(self._consumer.position(tp) >= end for tp, end in ends.items())

    def _step(self, wait_s: float) -> None:
        if not self._open():
            time.sleep(wait_s)
            return
        assert self._consumer is not None
        records = self._consumer.poll(timeout_s=wait_s, max_records=500)
        for record in records:
            self._handle(record)
        if self._catchup_end is not None and all(
            self._consumer.position(tp) >= end for tp, end in self._catchup_end.items()
        ):
            self._finish_catch_up()

    def _finish_catch_up(self) -> None:
        self._catchup_end = None
        for name in sorted(self._pending):
            release, data, offset = self._pending[name]
            self._load(release, data, offset)
        self._pending.clear()
        for name, release in list(self._awaiting.items()):
            self._refuse(release.name, release.version, "missing_chunks",
                         "artifact chunks missing from the topic", None)
            del self._awaiting[name]

    # -- records ------------------------------------------------------------------
    def _handle(self, record: Record) -> None:
        if record.value is None:  # tombstone: of a chunk (or of a model, which we keep)
            key = serde.decode_key(record.key) or ""
            prefix, _, index = key.rpartition("/")
            name, _, version = prefix.rpartition("@")
            if index.isdigit() and version.isdigit():
                self._chunks.get((name, int(version)), {}).pop(int(index), None)
            return
        try:
            item = ModelRecord.model_validate(serde.decode(record.value)).root
        except (InvalidRecord, ValidationError) as exc:
            first = str(exc).splitlines()[0]
            self._refuse(None, None, "invalid_record", f"not a model record: {first}",
                         record.offset)
            return
        if self._names is not None and item.name not in self._names:
            return
        if isinstance(item, ModelChunk):
            self._add_chunk(item, record.offset)
        else:
            self._handle_release(item, record.offset)

    def _add_chunk(self, chunk: ModelChunk, offset: int) -> None:
        current = self._latest.get(chunk.name)
        if current is not None and chunk.version <= current.version:
            return
        try:
            data = chunk.data_bytes()
        except ValueError:
            data = b""
        if check_chunk(chunk, data):
            self._chunks.setdefault((chunk.name, chunk.version), {})[chunk.index] = data
        waiting = self._awaiting.get(chunk.name)
        if waiting is not None and waiting.version == chunk.version:
            if self._assemble(waiting) is not None:
                del self._awaiting[chunk.name]
                self._handle_release(waiting, offset)

    def _handle_release(self, release: ModelRelease, offset: int) -> None:
        name, version = release.name, release.version
        current = self._latest.get(name)
        pending = self._pending.get(name)
        best = max(current.version if current else 0, pending[0].version if pending else 0)
        if version <= best:
            self.stats["stale"] += 1
            return
        try:
            check_signature(release, self._key)
            data = self._artifact_bytes(release)
            if data is None:
                if self._catchup_end is None:  # chunks may still come: wait for them
                    self._awaiting[name] = release
                    return
                raise Refused("missing_chunks", "artifact chunks missing from the topic")
            check_artifact(release, data)
        except Refused as exc:
            self._refuse(name, version, exc.reason, str(exc), offset)
            return
        self._drop_chunks(name, version)
        if self._catchup_end is not None:
            self._pending[name] = (release, data, offset)
        else:
            self._load(release, data, offset)

    def _artifact_bytes(self, release: ModelRelease) -> bytes | None:
        art = release.artifact
        if isinstance(art, InlineArtifact):
            try:
                return art.data_bytes()
            except ValueError as exc:
                raise Refused("checksum", f"artifact is not valid base64: {exc}") from exc
        if isinstance(art, ChunkedArtifact):
            return self._assemble(release)
        return self._fetch_stored(art)

    def _assemble(self, release: ModelRelease) -> bytes | None:
        art = release.artifact
        assert isinstance(art, ChunkedArtifact)
        have = self._chunks.get((release.name, release.version), {})
        if any(i not in have for i in range(art.chunks)):
            return None
        return b"".join(have[i] for i in range(art.chunks))

    def _drop_chunks(self, name: str, up_to_version: int) -> None:
        for key in [k for k in self._chunks if k[0] == name and k[1] <= up_to_version]:
            del self._chunks[key]

    def _load(self, release: ModelRelease, data: bytes, offset: int) -> None:
        try:
            served = load_verified(release, data, self._key)
        except Refused as exc:
            self._refuse(release.name, release.version, exc.reason, str(exc), offset)
            return
        self._latest[served.name] = served
        self.stats["accepted"] += 1
        logger.info("loaded model %s version %d", served.name, served.version)
        if served.version > self._seen.get(served.name, 0):
            self._ready.append(served)

    def _refuse(self, name: str | None, version: int | None, reason: str, message: str,
                offset: int | None) -> None:
        refusal = Refusal(name, version, reason, message, offset)  # type: ignore[arg-type]
        self.refusals.append(refusal)
        self.stats["refused"] += 1
        self.stats[f"refused:{reason}"] += 1
        what = f"model {name} version {version}" if name is not None else "record"
        logger.warning("refused %s at %s offset %s: %s", what, self.topic, offset, message)
        if self._on_refusal is not None:
            self._on_refusal(refusal)

    # -- resume state -------------------------------------------------------------
    def _load_state(self) -> dict[str, int]:
        if self._state_path is None or not self._state_path.exists():
            return {}
        try:
            data = orjson.loads(self._state_path.read_bytes())
            return {str(k): int(v) for k, v in data.get("seen", {}).items()}
        except (OSError, orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            logger.warning("ignoring unreadable subscriber state %s", self._state_path)
            return {}

    def _ack(self, model: ServedModel) -> None:
        if model.version <= self._seen.get(model.name, 0):
            return
        self._seen[model.name] = model.version
        if self._state_path is None:
            return
        body = orjson.dumps({"topic": self.topic, "seen": self._seen}, option=orjson.OPT_SORT_KEYS)
        self._state_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._state_path.parent, prefix=".subscriber-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
            os.replace(tmp, self._state_path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def check_chunk(chunk: ModelChunk, data: bytes) -> bool:
    """Whether a chunk's bytes match its own checksum (the release checks the whole too)."""
    ok = hashlib.sha256(data).hexdigest() == chunk.sha256
    if not ok:
        logger.warning("dropping chunk %s: bytes do not match its SHA-256", chunk.key)
    return ok
