"""ExampleGen: source records → typed :class:`~streamml.payloads.examples.Example` dicts.

Every record becomes either an example or a dead letter (records in =
examples + dead letters, always):

* **id**: the configured ``key`` column's value, else the record's
  source-and-position id (``<connector>:<file>:<line>``...);
* **event time** from the ``event_time`` column (``unit``: ``s``, ``ms``,
  ``us``, ``iso`` or ``auto``), else the ingest time; **ingest time** is when
  the batch was read;
* **split**: a deterministic hash of the id into buckets, ``train:eval`` 2:1 by
  default as in TFX (``splits={"train": 2, "eval": 1}``-style, any names);
* **features** typed per batch (see :mod:`streamml.connectors.coltypes`): an
  empty CSV cell is missing (``None``), never ``""``; ``180.0`` in an int
  column is ``180``; nested JSON objects are flattened to ``a.b``;
* optional **label** (removed from the features); the source **position**.

Dead letter reasons: ``unparsable``, ``bad_encoding``, ``oversize``,
``missing_key``, ``invalid_type``. Examples are built as plain dicts (the hot
path does not run pydantic); tests validate them with the payload model.

>>> from streamml.connectors.base import SourceRecord
>>> gen = ExampleGen("taxi", key="trip", event_time="ts", label="tips",
...                  clock=lambda: 1_700_000_000.0)
>>> lines = [b"a1,1400269500,180.0,", b"a2,1400269600,7,1.5", b",1,2,3"]
>>> recs = [SourceRecord(line, {"line": i}, id=f"taxi:f.csv:{i}", fmt="csv",
...                      header=b"trip,ts,fare,tips") for i, line in enumerate(lines, 2)]
>>> out = gen.process(recs)
>>> [(e["id"], e["event_time"], e["features"]["fare"], e["label"]) for e in out.examples]
[('a1', 1400269500000, 180, None), ('a2', 1400269600000, 7, 1.5)]
>>> [(d["reason"], d["original"]) for d in out.dead_letters]
[('missing_key', ',1,2,3')]
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from streamml.connectors.base import SourceRecord
from streamml.connectors.coltypes import CoercionError, ColumnTypes, coerce, kind_of_values
from streamml.errors import ConfigError
from streamml.payloads.base import finite_json

TimeUnit = Literal["auto", "s", "ms", "us", "iso"]
DEFAULT_SPLITS: tuple[tuple[str, int], ...] = (("eval", 1), ("train", 2))


def hash_split(example_id: str, splits: Sequence[tuple[str, int]] = DEFAULT_SPLITS) -> str:
    """The split of ``example_id``: blake2b of the id into the splits' cumulative buckets.

    The default (``eval`` 1 bucket, ``train`` 2) gives the same answer as
    :func:`streamml.processors.basic.split_of`.

    >>> from streamml.processors.basic import split_of
    >>> all(hash_split(f"id-{i}") == split_of(f"id-{i}") for i in range(100))
    True
    >>> hash_split("x", [("train", 8), ("eval", 1), ("test", 1)]) in {"train", "eval", "test"}
    True
    """
    total = sum(n for _, n in splits)
    bucket = int.from_bytes(
        hashlib.blake2b(example_id.encode(), digest_size=8).digest(), "big") % total
    for name, n in splits:
        if bucket < n:
            return name
        bucket -= n
    raise AssertionError("unreachable")  # pragma: no cover


def time_to_ms(value: int | float, unit: TimeUnit = "auto") -> int:
    """Milliseconds since the epoch from a number of seconds, ms or µs.

    ``auto`` reads numbers below 1e11 as seconds, below 1e14 as milliseconds,
    else microseconds (see :func:`to_event_ms` for text).

    >>> time_to_ms(1400269500), time_to_ms(1400269500000), time_to_ms(1.5, "s")
    (1400269500000, 1400269500000, 1500)
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a time")
    if unit == "auto":
        unit = "s" if abs(value) < 1e11 else "ms" if abs(value) < 1e14 else "us"
    if unit == "s":
        ms = value * 1000 if isinstance(value, int) else int(value * 1000)
    elif unit == "ms":
        ms = int(value)
    elif unit == "us":
        ms = int(value // 1000)
    else:
        raise ValueError(f"{value!r} is not ISO 8601 text")
    if ms < 0:
        raise ValueError(f"{value!r} is before 1970")
    return ms


def _iso_to_ms(text: str) -> int:
    try:
        parsed = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a time (ISO 8601 or a number)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    ms = int(parsed.timestamp() * 1000)
    if ms < 0:
        raise ValueError(f"{text!r} is before 1970")
    return ms


def to_event_ms(value: Any, unit: TimeUnit) -> int | None:
    """:func:`time_to_ms`, also for text: a number, or ISO 8601 (naive means UTC).

    >>> to_event_ms("2014-05-16T19:45:00Z", "auto"), to_event_ms("1400269500", "s")
    (1400269500000, 1400269500000)
    """
    if value is None:
        return None
    if isinstance(value, str):
        if unit in ("auto", "iso"):
            try:
                return time_to_ms(float(value), "auto" if unit == "iso" else unit)
            except ValueError:
                return _iso_to_ms(value)
        try:
            return time_to_ms(float(value), unit)
        except ValueError:
            raise ValueError(f"{value!r} is not a number of {unit}") from None
    return time_to_ms(value, unit)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for one batch (restored after, if it was on).

    A batch allocates tens of thousands of acyclic dicts and lists; letting the
    collector traverse them again and again costs a third of the batch time.

    >>> import gc
    >>> with gc_paused():
    ...     gc.isenabled()
    False
    >>> gc.isenabled()
    True
    """
    was = gc.isenabled()
    if was:
        gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@dataclass
class ExampleBatch:
    """What one batch of records became: JSON-ready example and dead-letter dicts."""

    examples: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)


def flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects become dotted names; lists of objects become JSON text.

    >>> flatten({"a": {"b": 1, "c": [1, 2]}, "d": [{"x": 1}]})
    {'a.b': 1, 'a.c': [1, 2], 'd': '[{"x":1}]'}
    """
    out: dict[str, Any] = {}
    for k, v in obj.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        elif isinstance(v, list) and any(isinstance(x, dict | list) for x in v):
            out[name] = orjson.dumps(v).decode()
        else:
            out[name] = v
    return out


class ExampleGen:
    """Normalize source records of connector ``source`` into examples and dead letters.

    Configuration: ``key`` (id column), ``event_time`` (column) and
    ``event_time_unit``, ``label`` (column), ``splits`` (name → hash buckets,
    in order), ``max_record_bytes``, ``pipeline`` (for dead letters). State:
    the locked column types (:meth:`snapshot` / :meth:`restore`).
    """

    def __init__(
        self,
        source: str,
        *,
        pipeline: str = "demo",
        key: str | None = None,
        event_time: str | None = None,
        event_time_unit: TimeUnit = "auto",
        label: str | None = None,
        splits: Mapping[str, int] | Sequence[tuple[str, int]] | None = None,
        max_record_bytes: int = 1 << 20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if event_time_unit not in ("auto", "s", "ms", "us", "iso"):
            raise ConfigError(
                f"event_time_unit must be auto, s, ms, us or iso: {event_time_unit!r}")
        pairs = list(splits.items() if isinstance(splits, Mapping) else splits or DEFAULT_SPLITS)
        names = {s for s, _ in pairs}
        if not pairs or any(int(n) < 1 for _, n in pairs) or len(names) != len(pairs):
            raise ConfigError(f"splits must map distinct names to positive bucket counts: {pairs}")
        self.source = source
        self.pipeline = pipeline
        self.key = key
        self.event_time = event_time
        self.event_time_unit: TimeUnit = event_time_unit
        self.label = label
        self.splits = [(str(s), int(n)) for s, n in pairs]
        self.max_record_bytes = max_record_bytes
        self.clock = clock
        self.types = ColumnTypes()

    # -- state ----------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {"types": self.types.snapshot()}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.types = ColumnTypes(dict(state.get("types", {})))

    # -- the batch --------------------------------------------------------------
    def process(self, records: Sequence[SourceRecord]) -> ExampleBatch:
        """Type a batch: consecutive records of one format (and CSV header) are typed together."""
        with gc_paused():
            return self._process(records)

    def _process(self, records: Sequence[SourceRecord]) -> ExampleBatch:
        now_ms = int(self.clock() * 1000)
        out = ExampleBatch()
        group: list[SourceRecord] = []
        group_of: tuple[str, bytes | None] | None = None
        for rec in records:
            if rec.error is not None:
                self._dead(out, rec, *rec.error, now_ms=now_ms)
                continue
            if rec.raw is not None and len(rec.raw) > self.max_record_bytes:
                self._dead(out, rec, "oversize",
                           f"record of {len(rec.raw)} bytes exceeds {self.max_record_bytes}",
                           now_ms=now_ms)
                continue
            kind = (rec.fmt, rec.header)
            if kind != group_of and group:
                self._group(group, out, now_ms)
                group = []
            group_of = kind
            group.append(rec)
        if group:
            self._group(group, out, now_ms)
        return out

    def _group(self, recs: list[SourceRecord], out: ExampleBatch, now_ms: int) -> None:
        fmt = recs[0].fmt
        if fmt == "csv":
            self._csv(recs, out, now_ms)
        elif fmt == "json":
            rows: list[dict[str, Any]] = []
            good: list[SourceRecord] = []
            for rec in recs:
                raw = rec.raw or b""
                try:
                    obj = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    if _bad_utf8(raw):
                        self._dead(out, rec, "bad_encoding", "not valid UTF-8", now_ms=now_ms)
                    else:
                        self._dead(out, rec, "unparsable", f"not valid JSON: {exc}", now_ms=now_ms)
                    continue
                if not isinstance(obj, dict):
                    self._dead(out, rec, "unparsable",
                               f"a JSON {type(obj).__name__}, not an object", now_ms=now_ms)
                    continue
                rows.append(flatten(obj))
                good.append(rec)
            self._rows(good, rows, out, now_ms, infer_integral=True)
        else:
            self._rows(recs, [flatten(r.row or {}) for r in recs], out, now_ms,
                       infer_integral=False)

    # -- CSV: pyarrow over the whole batch -----------------------------------------
    def _csv(self, recs: list[SourceRecord], out: ExampleBatch, now_ms: int) -> None:
        from streamml.connectors.csvbatch import parse_csv_batch

        header = recs[0].header or b""
        if _bad_utf8(header):
            for rec in recs:
                self._dead(out, rec, "bad_encoding", "the CSV header is not valid UTF-8",
                           now_ms=now_ms)
            return
        lines = [rec.raw or b"" for rec in recs]
        try:
            b"\n".join(lines).decode("utf-8")
            bad_enc: set[int] = set()
        except UnicodeDecodeError:
            bad_enc = {i for i, line in enumerate(lines) if _bad_utf8(line)}
        keep = [i for i in range(len(recs)) if i not in bad_enc]
        for i in sorted(bad_enc):
            self._dead(out, recs[i], "bad_encoding", "not valid UTF-8", now_ms=now_ms)
        parsed = parse_csv_batch(header, [lines[i] for i in keep], self.types)
        for pos, (reason, detail) in sorted(parsed.refused.items()):
            self._dead(out, recs[keep[pos]], reason, detail, now_ms=now_ms)
        names, refused = parsed.names, parsed.refused
        rows = zip(*parsed.columns, strict=True) if parsed.columns else iter(())
        if refused:
            good = [(recs[keep[pos]], dict(zip(names, values, strict=True)))
                    for pos, values in zip(parsed.row_pos, rows, strict=False)
                    if pos not in refused]
            self._emit_many([g[0] for g in good], [g[1] for g in good], out, now_ms)
        else:
            self._emit_many([recs[keep[pos]] for pos in parsed.row_pos],
                            [dict(zip(names, values, strict=False)) for values in rows],
                            out, now_ms)

    # -- parsed rows (JSON, Parquet, SQL) ------------------------------------------
    def _rows(self, recs: list[SourceRecord], rows: list[dict[str, Any]], out: ExampleBatch,
              now_ms: int, *, infer_integral: bool) -> None:
        columns: dict[str, None] = {}
        for row in rows:
            columns.update(dict.fromkeys(row))
        bad: dict[int, str] = {}
        for col in columns:
            values = [row.get(col) for row in rows]
            target = self.types.resolve(col, kind_of_values(values, infer_integral))
            if target in ("null", "list"):
                continue
            if target == "int":
                target = self.types.widen(col, values)
            for i, (row, value) in enumerate(zip(rows, values, strict=True)):
                if col not in row:
                    continue
                try:
                    typed = coerce(value, target)
                except CoercionError as exc:
                    bad.setdefault(i, f"column {col!r} ({target}): {exc}")
                    continue
                if target == "float" and typed is not None and not math.isfinite(typed):
                    typed = finite_json(typed)
                row[col] = typed
        for i in sorted(bad):
            self._dead(out, recs[i], "invalid_type", bad[i], now_ms=now_ms)
        if bad:
            recs = [r for i, r in enumerate(recs) if i not in bad]
            rows = [r for i, r in enumerate(rows) if i not in bad]
        self._emit_many(recs, rows, out, now_ms)

    # -- examples, column-wise ------------------------------------------------------
    def _emit_many(self, recs: list[SourceRecord], feats: list[dict[str, Any]],
                   out: ExampleBatch, now_ms: int) -> None:
        """Examples of typed rows ``feats`` (one per record): ids, event times, label and
        split are computed a column at a time; refused rows become dead letters."""
        key, label, etime = self.key, self.label, self.event_time
        if key is not None:
            ids: list[str] = []
            keep: list[int] = []
            for i, (rec, f) in enumerate(zip(recs, feats, strict=True)):
                k = f.get(key)
                if k is None or k == "":
                    self._dead(out, rec, "missing_key", f"no value for key column {key!r}",
                               now_ms=now_ms)
                    continue
                ids.append(k if isinstance(k, str) else orjson.dumps(k).decode())
                keep.append(i)
            if len(keep) < len(recs):
                recs, feats = [recs[i] for i in keep], [feats[i] for i in keep]
        else:
            ids = [r.id for r in recs]
        times: list[int | None] = [r.event_time_ms for r in recs]
        if etime is not None:
            bad = self._event_times([f.get(etime) for f in feats], times)
            if bad:
                for i, why in bad.items():
                    self._dead(out, recs[i], "invalid_type", f"event time: {why}", now_ms=now_ms)
                ok = [i for i in range(len(recs)) if i not in bad]
                recs, feats = [recs[i] for i in ok], [feats[i] for i in ok]
                ids, times = [ids[i] for i in ok], [times[i] for i in ok]
        labels = [f.pop(label, None) for f in feats] if label is not None else [None] * len(feats)
        splits = self.split_many(ids)
        source = self.source
        out.examples.extend([
            {"id": ident, "source": source, "position": rec.position,
             "event_time": now_ms if ev is None else ev, "ingest_time": now_ms,
             "split": split, "features": f, "label": lab}
            for ident, rec, ev, split, f, lab
            in zip(ids, recs, times, splits, feats, labels, strict=True)
        ])

    def split_many(self, ids: Sequence[str]) -> list[str]:
        """:func:`hash_split` of every id (one pass; the default splits are inlined).

        >>> ExampleGen("s").split_many(["a", "b"]) == [hash_split("a"), hash_split("b")]
        True
        """
        if self.splits == list(DEFAULT_SPLITS):
            blake2b, from_bytes = hashlib.blake2b, int.from_bytes
            return ["eval" if from_bytes(blake2b(i.encode(), digest_size=8).digest(), "big") % 3
                    < 1 else "train" for i in ids]
        splits = self.splits
        return [hash_split(i, splits) for i in ids]

    def _event_times(self, values: list[Any], times: list[int | None]) -> dict[int, str]:
        """Fill ``times`` (ms) from the event-time column ``values``; the refused rows' errors."""
        unit = self.event_time_unit
        if unit in ("s", "auto") and all(type(v) is int and 0 <= v < 100_000_000_000
                                         for v in values):
            times[:] = [v * 1000 for v in values]
            return {}
        bad: dict[int, str] = {}
        for i, v in enumerate(values):
            if v is None:
                continue
            try:
                if type(v) is int and (unit == "s" or (unit == "auto"
                                                       and 0 <= v < 100_000_000_000)):
                    times[i] = v * 1000
                else:
                    times[i] = to_event_ms(v, unit)
            except ValueError as exc:
                bad[i] = str(exc)
        return bad

    def _dead(self, out: ExampleBatch, rec: SourceRecord, reason: str, detail: str, *,
              now_ms: int) -> None:
        from streamml.payloads.deadletter import DeadLetter

        letter = DeadLetter.from_bytes(
            rec.original(), id=rec.id, pipeline=self.pipeline, component="ExampleGen",
            reason=reason, detail=detail[:2000], source=self.source,
            position={k: v for k, v in rec.position.items() if isinstance(v, int | str)},
            time=now_ms,
        )
        if rec.size is not None and rec.size > letter.original_size:
            letter = letter.model_copy(update={"original_size": rec.size, "truncated": True})
        out.dead_letters.append(letter.to_json())


def _bad_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def encode_example(example: dict[str, Any]) -> bytes:
    """JSON bytes of an example dict (non-finite floats as ``"NaN"``... tokens)."""
    try:
        return orjson.dumps(example)
    except TypeError:
        return orjson.dumps(finite_json(example), default=str)

