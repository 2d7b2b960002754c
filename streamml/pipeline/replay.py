"""``ReplaySource``: a CSV file replayed as a live stream, with optional injected drift.

The rows are shuffled with a fixed seed (a deterministic shuffle: the same
run gives the same stream), given event times ``start_ms + i * step_ms`` (a
live clock, in the order they are replayed) and, from ``drift.at`` of the way
through, changed by a :class:`Drift`: numeric columns scaled and a share of a
categorical column replaced by a value never seen before.

Why shuffle: the bundled taxi file is not stationary in file order (its rows
are grouped, e.g. by pickup area), so windowed statistics of a replay in file
order drift on ``pickup_*``/``dropoff_*`` with no drift injected. A shuffled
replay is a stationary stream, so every alert it raises comes from the
injected drift.

Records are CSV lines (ExampleGen types them as the file connector's) with
ids ``<name>:<line>`` (the original line number: stable across runs).

``start_ms=None`` anchors the clock so the replay's last event is about now
(rounded down to the minute). Use it on Kafka: processors stamp their output
records with event times (e.g. the Trainer's candidates, the Evaluator's
evaluations) and the broker deletes records by *their timestamps*, so a replay
of 2023 event times loses those topics to ``retention.ms`` (7-90 days) within
seconds of writing them (the broker checks retention every few seconds).

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
>>> _ = path.write_text("fare,payment_type\\n1.0,Cash\\n2.0,Cash\\n3.0,Cash\\n4.0,Cash\\n")
>>> src = ReplaySource("t", str(path), seed=None, start_ms=0, step_ms=1000,
...                    drift=Drift(at=0.5, scale={"fare": 10.0},
...                                new_category=("payment_type", "Crypto", 1.0)))
>>> src.open()
>>> [(r.id, r.event_time_ms, r.raw) for r in src.read(10)]   # doctest: +NORMALIZE_WHITESPACE
[('t:2', 0, b'1.0,Cash'), ('t:3', 1000, b'2.0,Cash'), ('t:4', 2000, b'30.0,Crypto'),
 ('t:5', 3000, b'40.0,Crypto')]
>>> src.exhausted, src.position
(True, {'row': 4})
"""

from __future__ import annotations

import csv
import io
import random
import time
from dataclasses import dataclass, field
from typing import Any

from streamml.connectors.base import Position, SourceConnector, SourceRecord
from streamml.errors import ConfigError


@dataclass(frozen=True)
class Drift:
    """What changes from ``at`` (a fraction of the stream) on.

    ``scale``: column → factor for numeric columns; ``new_category``:
    ``(column, value, share)`` — that share of rows (a draw seeded by the replay's
    seed and the row index, made once when the replay opens) gets ``value`` in
    ``column``.
    """

    at: float = 0.5
    scale: dict[str, float] = field(default_factory=dict)
    new_category: tuple[str, str, float] | None = None

    def describe(self) -> str:
        """``fare ×1.5, payment_type='Crypto' (20%)``."""
        parts = [f"{c} ×{f:g}" for c, f in self.scale.items()]
        if self.new_category:
            col, value, share = self.new_category
            parts.append(f"{col}={value!r} ({share:.0%})")
        return ", ".join(parts)


def _fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.1f}"


class ReplaySource(SourceConnector):
    """Replay a CSV file's rows as a stream (see the module docstring)."""

    type_name = "replay"

    def __init__(self, name: str, path: str, *, seed: int | None = 7,
                 start_ms: int | None = 0, step_ms: int = 1000, drift: Drift | None = None,
                 limit: int | None = None) -> None:
        if step_ms < 0:
            raise ConfigError("step_ms must be >= 0")
        if drift is not None and not 0.0 <= drift.at <= 1.0:
            raise ConfigError("drift.at is a fraction of the stream, in [0, 1]")
        self.name = name
        self.path = path
        self.seed = seed
        self.limit = limit
        if start_ms is None:  # the last event about now (see the module docstring)
            start_ms = ending_now(self._count_rows(), step_ms)
        self.start_ms = start_ms
        self.step_ms = step_ms
        self.drift = drift
        self._header = b""
        self._columns: list[str] = []
        self._lines: list[tuple[int, bytes]] = []
        self._next = 0

    def describe(self) -> str:
        return f"replay {self.path} (seed {self.seed})"

    def _count_rows(self) -> int:
        with open(self.path, "rb") as fh:
            rows = sum(1 for line in fh if line.strip()) - 1  # minus the header
        rows = max(rows, 0)
        return rows if self.limit is None else min(rows, self.limit)

    @property
    def rows(self) -> int:
        return len(self._lines)

    @property
    def drift_row(self) -> int | None:
        """Index of the first drifted row (``None`` without drift)."""
        return None if self.drift is None else int(self.drift.at * len(self._lines))

    def open(self, position: Position | None = None) -> None:
        with open(self.path, "rb") as fh:
            data = fh.read().splitlines()
        self._header = data[0]
        self._columns = next(csv.reader([self._header.decode()]))
        lines = [(i + 2, line) for i, line in enumerate(data[1:]) if line.strip()]
        if self.seed is not None:
            random.Random(self.seed).shuffle(lines)
        self._lines = lines[: self.limit] if self.limit is not None else lines
        self._next = int((position or {}).get("row", 0))
        # which drifted rows take the new category: decided once here (a seeded draw
        # per row index, not per read), so a resumed replay decides each row the same
        self._take_new: dict[int, bool] = {}
        start = self.drift_row
        if start is not None and self.drift is not None and self.drift.new_category:
            share = self.drift.new_category[2]
            self._take_new = {i: random.Random(f"{self.seed}:{i}").random() < share
                              for i in range(start, len(self._lines))}

    def _drifted(self, index: int, line: bytes) -> bytes:
        drift = self.drift
        assert drift is not None
        row = next(csv.reader([line.decode()]))
        values: dict[str, Any] = dict(zip(self._columns, row, strict=False))
        for column, factor in drift.scale.items():
            raw = values.get(column)
            if raw not in (None, ""):
                try:
                    values[column] = _fmt(float(raw) * factor)
                except ValueError:
                    pass
        if drift.new_category is not None:
            column, value, _ = drift.new_category
            if self._take_new.get(index, False):
                values[column] = value
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow([values.get(c, "") for c in self._columns])
        return out.getvalue().encode()

    def read(self, max_records: int) -> list[SourceRecord]:
        out: list[SourceRecord] = []
        start = self.drift_row
        while self._next < len(self._lines) and len(out) < max_records:
            i = self._next
            line_no, line = self._lines[i]
            if start is not None and i >= start:
                line = self._drifted(i, line)
            out.append(SourceRecord(line, {"row": i, "line": line_no},
                                    id=f"{self.name}:{line_no}", fmt="csv", header=self._header,
                                    event_time_ms=self.start_ms + i * self.step_ms))
            self._next += 1
        return out

    @property
    def position(self) -> Position:
        return {"row": self._next}

    @property
    def exhausted(self) -> bool:
        return self._next >= len(self._lines)


def ending_now(rows: int, step_ms: int, *, now_ms: int | None = None) -> int:
    """A start time such that ``rows`` events ``step_ms`` apart end before ``now_ms``.

    Rounded down to the minute (runs within a minute get the same clock).

    >>> ending_now(10, 1000, now_ms=1_700_000_123_456)
    1700000100000
    """
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return (now - rows * step_ms) // 60_000 * 60_000


def baseline_schema(source: ReplaySource, pipeline: str, *, max_domain_size: int = 100,
                    examplegen: Any = None) -> Any:
    """The schema of the replay's undrifted part (TFX: SchemaGen over the baseline data).

    The records before ``drift.at`` go through the same ExampleGen typing as the
    stream and into a statistics accumulator; the schema is inferred from it
    (:func:`~streamml.validation.schema.infer_schema`), so every value seen
    before the drift is in the schema and only the drift breaks it.
    """
    from streamml.connectors.examplegen import ExampleGen
    from streamml.statistics.dataset import StatisticsAccumulator
    from streamml.validation.schema import infer_schema

    probe = ReplaySource(source.name, source.path, seed=source.seed, start_ms=source.start_ms,
                         step_ms=source.step_ms, drift=None, limit=source.limit)
    probe.open()
    end = int((source.drift.at if source.drift else 1.0) * probe.rows)
    gen = examplegen or ExampleGen(source.name, pipeline=pipeline)
    acc = StatisticsAccumulator()
    while probe.position["row"] < end:
        batch = gen.process(probe.read(min(5000, end - probe.position["row"])))
        acc.add_batch([e["features"] for e in batch.examples])
    return infer_schema(acc, pipeline=pipeline, created_at=source.start_ms,
                        max_domain_size=max_domain_size)
