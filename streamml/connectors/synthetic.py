"""The synthetic source: River's synthetic streams with concept drift at known positions,
or the replay of a file at a given pace with event times from a column.

**River streams** (``stream``: any class of :mod:`river.datasets.synth`, e.g.
``Agrawal``, ``SEA``, ``Hyperplane``, with ``params`` and a ``seed``). ``drifts``
lists concept drifts, each ``{position, width, stream?, params, seed?}``: at
record ``position`` the stream drifts (over ``width`` records, a sigmoid as in
:class:`river.datasets.synth.ConceptDriftStream`; at least ``position/175``
records, or River's sigmoid overflows) to the given concept (same
stream class by default). Each record is the features plus the target column
(``target``, default ``y``); ids are ``<connector>:<n>`` and, with
``event_time_start_ms``, event times are ``start + n * interval_ms`` — so a
drift's position is known in ids *and* time. ``n`` (optional) bounds the
stream (mode once); the position is the count of records returned and a restart
regenerates the same seeded stream and skips to it: exact, deterministic resume.

**Replay** (``stream: replay``): read the file ``path`` (any file-source format)
and release its records paced either at ``rate`` records per second or, with
``event_time`` (a column) and ``speedup``, at the pace of their event times
(``speedup: 60`` plays an hour in a minute). Ids are the file source's. The
position is the file position of the last refill plus how many of its
records were already returned, so resuming is exact.

>>> src = SyntheticSource(name="sea", stream="SEA", params={"variant": 0}, seed=1, n=5,
...                       drifts=[{"position": 3, "width": 1, "params": {"variant": 2}}])
>>> src.open()
>>> recs = src.read(10)
>>> [r.id for r in recs], sorted(recs[0].row), src.exhausted
(['sea:0', 'sea:1', 'sea:2', 'sea:3', 'sea:4'], ['0', '1', '2', 'y'], True)
>>> src.open({"n": 3}); [r.row == o.row for r, o in zip(src.read(10), recs[3:])]
[True, True]
"""

from __future__ import annotations

import csv
import itertools
import time
from collections.abc import Iterator
from typing import Any

import orjson

from streamml.connectors.base import Position, SourceConnector, SourceRecord
from streamml.connectors.fields import TimeUnit, to_event_ms
from streamml.errors import ConfigError


def _make_stream(name: str, params: dict[str, Any], seed: int | None) -> Any:
    from river.datasets import synth

    cls = getattr(synth, name, None)
    if cls is None or not isinstance(cls, type):
        known = ", ".join(n for n in dir(synth) if n[:1].isupper())
        raise ConfigError(f"unknown River synthetic stream {name!r}; known: {known}")
    kwargs = dict(params)
    if seed is not None:
        kwargs.setdefault("seed", seed)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"stream {name}: {exc}") from exc


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


class SyntheticSource(SourceConnector):
    """River synthetic streams with drifts, or a paced file replay (see the module docs)."""

    type_name = "synthetic"

    def __init__(
        self,
        *,
        name: str,
        stream: str = "Agrawal",
        params: dict[str, Any] | None = None,
        seed: int | None = 42,
        n: int | None = None,
        drifts: list[dict[str, Any]] | None = None,
        target: str = "y",
        event_time_start_ms: int | None = None,
        interval_ms: int = 1000,
        # replay
        path: str | None = None,
        format: str | None = None,  # noqa: A002 - the option's name
        rate: float | None = None,
        event_time: str | None = None,
        event_time_unit: TimeUnit = "auto",
        speedup: float = 1.0,
        refill: int = 1000,
        max_record_bytes: int = 1 << 20,
        clock: Any = time.monotonic,
    ) -> None:
        self.name = name
        self.stream = stream
        self.params = dict(params or {})
        self.seed = seed
        self.n = n
        self.drifts = [dict(d) for d in drifts or []]
        self.target = target
        self.event_time_start_ms = event_time_start_ms
        self.interval_ms = interval_ms
        self.path, self.format, self.rate = path, format, rate
        self.event_time, self.event_time_unit, self.speedup = event_time, event_time_unit, speedup
        self.refill, self.max_record_bytes, self.clock = refill, max_record_bytes, clock
        if stream == "replay":
            if not path:
                raise ConfigError(f"connector {name!r}: stream replay needs option path")
            if rate is None and event_time is None:
                raise ConfigError(f"connector {name!r}: replay needs rate or event_time")
            if (rate is not None and rate <= 0) or speedup <= 0:
                raise ConfigError(f"connector {name!r}: rate and speedup must be positive")
        else:
            for d in self.drifts:
                if "position" not in d:
                    raise ConfigError(f"connector {name!r}: every drift needs a position")
            self._build()  # validate the stream options now
        self._iter: Iterator[tuple[dict[str, Any], Any]] | None = None
        self._count = 0
        self._opened = False
        # replay state
        self._file: Any = None
        self._buffer: list[SourceRecord] = []
        self._refill_pos: Position | None = None
        self._skip = 0
        self._t0: float = 0.0
        self._e0: int | None = None
        self._released = 0
        self._etime_index: int | None = None

    def describe(self) -> str:
        if self.stream == "replay":
            pace = f"{self.rate}/s" if self.rate else f"{self.event_time} x{self.speedup}"
            return f"synthetic replay {self.path} ({pace})"
        drifts = ", ".join(str(d["position"]) for d in self.drifts)
        return f"synthetic {self.stream} seed {self.seed}" + (f", drifts at {drifts}"
                                                              if drifts else "")

    def _build(self) -> Any:
        from river.datasets import synth

        stream = _make_stream(self.stream, self.params, self.seed)
        # Nested from the last drift outwards: an inner stream only advances once it
        # is drawn from, so each drift's position is relative to the previous one.
        concepts = [stream]
        for i, d in enumerate(self.drifts):
            seed = d.get("seed", None if self.seed is None else self.seed + i + 1)
            concepts.append(_make_stream(d.get("stream", self.stream), d.get("params", {}), seed))
        result = concepts[-1]
        for i in range(len(self.drifts) - 1, -1, -1):
            d = self.drifts[i]
            prev_pos = int(self.drifts[i - 1]["position"]) if i > 0 else 0
            result = synth.ConceptDriftStream(
                stream=concepts[i], drift_stream=result,
                position=int(d["position"]) - prev_pos,
                # River's sigmoid overflows math.exp when position/width > ~175
                width=max(int(d.get("width", 1)), 1, -(-4 * (int(d["position"]) - prev_pos)
                                                         // 700)),
                seed=None if self.seed is None else self.seed + 1000 + i)
        return result

    # -- lifecycle ------------------------------------------------------------
    def open(self, position: Position | None = None) -> None:
        self.close()
        if self.stream == "replay":
            self._open_replay(position)
        else:
            self._count = int((position or {}).get("n", 0))
            self._iter = iter(self._build())
            for _ in itertools.islice(self._iter, self._count):
                pass
        self._opened = True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._iter = None
        self._opened = False

    @property
    def position(self) -> Position:
        if self.stream == "replay":
            return {"file": self._refill_pos, "skip": self._skip}
        return {"n": self._count}

    @property
    def exhausted(self) -> bool:
        if self.stream == "replay":
            return (self._opened and not self._buffer and self._file is not None
                    and self._file.exhausted)
        return self._opened and self.n is not None and self._count >= self.n

    def read(self, max_records: int) -> list[SourceRecord]:
        if not self._opened:
            raise ConfigError(f"connector {self.name!r} is not open")
        if self.stream == "replay":
            return self._read_replay(max_records)
        assert self._iter is not None
        want = max_records if self.n is None else min(max_records, self.n - self._count)
        out = []
        for x, y in itertools.islice(self._iter, max(want, 0)):
            row = {str(k): _plain(v) for k, v in x.items()}
            row[self.target] = _plain(y)
            i = self._count
            event = (None if self.event_time_start_ms is None
                     else self.event_time_start_ms + i * self.interval_ms)
            out.append(SourceRecord(None, {"n": i}, id=f"{self.name}:{i}", fmt="row", row=row,
                                    event_time_ms=event))
            self._count += 1
        return out

    # -- replay ---------------------------------------------------------------
    def _open_replay(self, position: Position | None) -> None:
        from streamml.connectors.file import FileSource

        self._file = FileSource(name=self.name, path=str(self.path),
                                format=self.format,  # type: ignore[arg-type]
                                mode="once", max_record_bytes=self.max_record_bytes)
        pos = position or {}
        self._refill_pos = pos.get("file")
        self._file.open(self._refill_pos)
        self._buffer = self._file.read(self.refill)
        skip = int(pos.get("skip", 0))
        self._buffer = self._buffer[skip:]
        self._skip = skip
        self._t0, self._e0, self._released = self.clock(), None, 0

    def _event_ms(self, rec: SourceRecord) -> int | None:
        col = self.event_time
        if col is None or rec.raw is None:
            return None
        try:
            if rec.fmt == "csv":
                if self._etime_index is None:
                    header = next(csv.reader([(rec.header or b"").decode()]), [])
                    self._etime_index = header.index(col) if col in header else -1
                if self._etime_index < 0:
                    return None
                cells = next(csv.reader([rec.raw.decode()]), [])
                value: Any = cells[self._etime_index] if self._etime_index < len(cells) else None
            else:
                value = orjson.loads(rec.raw).get(col)
            return to_event_ms(value or None, self.event_time_unit)
        except (ValueError, UnicodeDecodeError, AttributeError, orjson.JSONDecodeError):
            return None

    def _read_replay(self, max_records: int) -> list[SourceRecord]:
        assert self._file is not None
        out: list[SourceRecord] = []
        now = self.clock() - self._t0
        while len(out) < max_records:
            if not self._buffer:
                self._refill_pos = self._file.position
                self._skip = 0
                self._buffer = self._file.read(self.refill)
                if not self._buffer:
                    break
            rec = self._buffer[0]
            if self.rate is not None:
                due = self._released < now * self.rate + 1
            else:
                ev = self._event_ms(rec)
                if ev is not None and self._e0 is None:
                    self._e0 = ev
                due = ev is None or self._e0 is None or (ev - self._e0) / 1000 / self.speedup <= now
            if not due:
                break
            out.append(self._buffer.pop(0))
            self._skip += 1
            self._released += 1
        return out
