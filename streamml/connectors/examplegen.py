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
  column is ``180``; nested JSON objects are flattened to ``a.b``; a value
  that does not fit its column's type (``N/A`` among numbers) is kept as it
  came, for the ExampleValidator to flag (``UNEXPECTED_DATA_TYPE``) or
  quarantine, by its policy;
* optional **label** (removed from the features); the source **position**.

Dead letter reasons: ``unparsable``, ``bad_encoding``, ``oversize``,
``missing_key``, ``invalid_type`` (an event time that is not a time, a label
that is not of its column's type).
Examples are built as plain dicts (the hot path does not run pydantic); tests
validate them with the payload model.

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

import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter, methodcaller
from typing import Any

import orjson

from streamml.connectors.base import SourceRecord
from streamml.connectors.coltypes import (
    CoercionError,
    ColumnTypes,
    coerce,
    kind_of_values,
    mixed_values_kind,
)
from streamml.connectors.fields import (
    DEFAULT_SPLITS,
    TimeUnit,
    encode_example,
    flatten,
    gc_paused,
    hash_split,
    time_to_ms,
    to_event_ms,
)
from streamml.errors import ConfigError
from streamml.payloads.base import NONFINITE_TOKENS, finite_json

__all__ = ["DEFAULT_SPLITS", "ExampleBatch", "ExampleGen", "TimeUnit", "encode_example",
           "flatten", "gc_paused", "hash_split", "time_to_ms", "to_event_ms"]

_FMT_HEADER_ERROR = attrgetter("fmt", "header", "error")
_RAW, _ID, _EVENT_TIME = attrgetter("raw"), attrgetter("id"), attrgetter("event_time_ms")


@dataclass
class ExampleBatch:
    """What one batch of records became: JSON-ready example and dead-letter dicts."""

    examples: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)


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
        kinds = set(map(_FMT_HEADER_ERROR, records))
        if len(kinds) == 1 and next(iter(kinds))[0] != "row" and next(iter(kinds))[2] is None \
                and max(map(len, map(_RAW, records))) <= self.max_record_bytes:
            self._group(list(records), out, now_ms)  # one clean group: no per-record checks
            return out
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
        body: bytes | None = b"\n".join(lines)
        try:
            body.decode("utf-8")  # type: ignore[union-attr]
            bad_enc: set[int] = set()
        except UnicodeDecodeError:
            bad_enc = {i for i, line in enumerate(lines) if _bad_utf8(line)}
        if bad_enc:
            keep = [i for i in range(len(recs)) if i not in bad_enc]
            for i in sorted(bad_enc):
                self._dead(out, recs[i], "bad_encoding", "not valid UTF-8", now_ms=now_ms)
            lines, body = [lines[i] for i in keep], None
        else:
            keep = list(range(len(recs)))
        parsed = parse_csv_batch(header, lines, self.types, body=body)
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
            # map/zip/dict run in C: no bytecode per row (~20% faster than a comprehension)
            kept = recs if len(parsed.row_pos) == len(recs) else [
                recs[keep[pos]] for pos in parsed.row_pos]
            self._emit_many(kept, list(map(dict, map(zip, repeat(names), rows))), out, now_ms)

    # -- parsed rows (JSON, Parquet, SQL) ------------------------------------------
    def _rows(self, recs: list[SourceRecord], rows: list[dict[str, Any]], out: ExampleBatch,
              now_ms: int, *, infer_integral: bool) -> None:
        columns: dict[str, None] = {}
        for row in rows:
            columns.update(dict.fromkeys(row))
        for col in columns:
            values = [row.get(col) for row in rows]
            kind = kind_of_values(values, infer_integral)
            if kind == "string" and col not in self.types.locked:
                kind = mixed_values_kind(values) or kind  # numbers (bools) with a few tokens
            target = self.types.resolve(col, kind)
            if target in ("null", "list"):
                continue
            if target == "int":
                target = self.types.widen(col, values)
            for row, value in zip(rows, values, strict=True):
                if col not in row:
                    continue
                try:
                    typed = coerce(value, target)
                except CoercionError:  # kept as it came: the validator judges it
                    continue
                if target == "float" and typed is not None and not math.isfinite(typed):
                    typed = finite_json(typed)
                row[col] = typed
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
            ids = list(map(_ID, recs))
        times: list[int | None] = list(map(_EVENT_TIME, recs))
        if etime is not None:
            bad = self._event_times(list(map(methodcaller("get", etime), feats)), times)
            if bad:
                for i, why in bad.items():
                    self._dead(out, recs[i], "invalid_type", f"event time: {why}", now_ms=now_ms)
                ok = [i for i in range(len(recs)) if i not in bad]
                recs, feats = [recs[i] for i in ok], [feats[i] for i in ok]
                ids, times = [ids[i] for i in ok], [times[i] for i in ok]
        labels = (list(map(methodcaller("pop", label, None), feats)) if label is not None
                  else [None] * len(feats))
        lock = self.types.locked.get(label) if label is not None else None
        if lock in ("int", "float", "bool") and str in set(map(type, labels)):
            # a label is what a model learns: one that is not of its column's type (text
            # kept as it came) is refused here, not learned or left for learners to trip on;
            # NaN and infinities travel as tokens ("NaN"), as in every float column
            ok = []
            for i, lab in enumerate(labels):
                if isinstance(lab, str) and not (lock == "float" and lab in NONFINITE_TOKENS):
                    self._dead(out, recs[i], "invalid_type",
                               f"label {label!r} ({lock}): {lab!r} is not a {lock}",
                               now_ms=now_ms)
                else:
                    ok.append(i)
            recs, feats, labels = [recs[i] for i in ok], [feats[i] for i in ok], [
                labels[i] for i in ok]
            ids, times = [ids[i] for i in ok], [times[i] for i in ok]
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
        if unit in ("s", "auto") and values and set(map(type, values)) == {int} \
                and 0 <= min(values) and max(values) < 100_000_000_000:
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
