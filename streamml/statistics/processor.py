"""``StatisticsGen``: rolling per-feature statistics over ``<p>.examples``.

Reads examples, keeps one accumulator per open window and split, and publishes
:class:`~streamml.payloads.statistics.StatisticsWindow` records to
``<p>.statistics`` keyed ``<split>/<window id>`` (see
:mod:`~streamml.statistics.windows` for the ids):

* **count** windows close after exactly ``count_window`` examples of a split;
* **time** windows close when the watermark — the highest event time seen
  minus ``allowed_lateness_ms`` — passes their end, or on idle when the host's
  clock minus the lateness does (a drained replay closes all its windows).
  Examples for a window already closed are *late*: they still count in count
  and cumulative windows, and in :attr:`StatisticsGen.late`;
* an example's ``split`` names its windows' split (``train``, ``eval``...; a value
  that is not a lowercase identifier is normalized: ``Eval-2`` → ``eval_2``, and one
  that is missing or empty counts in ``all``);
* the **cumulative** window is republished as a progress update
  (``final=False``) each time it crosses a multiple of ``cumulative_every``
  examples (checked when a micro-batch is flushed), and is finalized and
  restarted (id ``cumulative:v<n>``) when a new schema version arrives on the
  optional ``schema_topic``.

Each micro-batch is assigned to *pieces* (same split, count window and time
window) with numpy — window assignment and lateness against the running
watermark are computed once per batch, not per example; the features become
columns once per batch (:class:`~streamml.statistics.batch.ExampleBatch`,
shared with an ExampleValidator handed the same batch). Accumulation is
deferred to *blocks*: micro-batches are buffered until ``block_rows`` examples
are pending or an output is due (a count window completes, the watermark
passes a time window's end, a cumulative window crosses ``cumulative_every``,
a schema version arrives, idle, snapshot); the block's columns are then
concatenated and each piece is accumulated once with pyarrow/numpy and merged
into the windows it belongs to, so every window is exactly what per-batch
accumulation gives, at the per-example cost of large batches. Output keys and
``created_at`` (the highest log timestamp of the window's inputs) are
deterministic; ``snapshot()`` accumulates the buffer (nothing is due in it) and
holds every open accumulator as JSON.

>>> from streamml.processors.base import Message
>>> gen = StatisticsGen("demo.examples", "demo.statistics", count_window=2,
...                     cumulative_every=None)
>>> msgs = [Message("demo.examples", 0, i, 1000 + i, f"id{i}",
...                 {"split": "train", "event_time": 1000 + i, "features": {"fare": float(i)}})
...         for i in range(3)]
>>> [out] = gen.process(msgs)
>>> out.key, out.value["num_examples"], out.value["features"]["fare"]["numeric"]["mean"]
('train/count:2:0', 2, 0.5)
>>> clone = gen.clone(); clone.restore(gen.snapshot()); clone.snapshot() == gen.snapshot()
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from streamml.errors import InvalidRecord
from streamml.processors.base import Emit, Message, Processor, State
from streamml.processors.deadletter import dead_letter_emit
from streamml.statistics.batch import ExampleBatch
from streamml.statistics.options import StatisticsOptions
from streamml.statistics.rawbatch import decode_examples, decoded
from streamml.statistics.windows import (
    OpenWindow,
    SplitState,
    count_window_id,
    cumulative_window_id,
    split_key,
    time_window_id,
)

SplitMode = Literal["each", "all", "both"]
_STATE_VERSION = 1
_NO_WATERMARK = np.iinfo(np.int64).min


class StatisticsGen(Processor):
    """Rolling statistics per feature, split and window (see module docs).

    >>> gen = StatisticsGen("p.examples", "p.statistics", pipeline="p", count_window=None,
    ...                     time_window_ms=1000, cumulative=False)
    >>> m = Message("p.examples", 0, 0, 5, "a", {"split": "eval", "event_time": 1500,
    ...                                           "features": {"x": "a"}})
    >>> list(gen.process([m])), [e.key for e in gen.on_idle(now_ms=10_000)]
    ([], ['eval/time:1000:1000'])
    """

    name = "statistics_gen"
    raw_values = True  # examples are decoded a micro-batch at a time (rawbatch)

    def __init__(self, examples_topic: str, statistics_topic: str, pipeline: str | None = None,
                 count_window: int | None = 10_000, time_window_ms: int | None = None,
                 cumulative: bool = True, cumulative_every: int | None = 10_000,
                 allowed_lateness_ms: int = 0, splits: SplitMode = "each",
                 schema_topic: str | None = None, with_sketches: bool = True,
                 options: StatisticsOptions | None = None, block_rows: int = 16_384) -> None:
        for name, value in (("count_window", count_window), ("time_window_ms", time_window_ms),
                            ("cumulative_every", cumulative_every)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 (or None to disable)")
        if block_rows < 1:
            raise ValueError("block_rows must be >= 1")
        if allowed_lateness_ms < 0:
            raise ValueError("allowed_lateness_ms must be >= 0")
        if splits not in ("each", "all", "both"):
            raise ValueError("splits must be 'each', 'all' or 'both'")
        self.examples_topic = examples_topic
        self.statistics_topic = statistics_topic
        self.pipeline = pipeline or examples_topic.rsplit(".", 1)[0]
        self.count_window = count_window
        self.time_window_ms = time_window_ms
        self.cumulative = cumulative
        self.cumulative_every = cumulative_every
        self.allowed_lateness_ms = allowed_lateness_ms
        self.splits = splits
        self.schema_topic = schema_topic
        self.with_sketches = with_sketches
        self.options = options or StatisticsOptions()
        self.block_rows = block_rows
        self.inputs = (examples_topic,) + ((schema_topic,) if schema_topic else ())
        #: records that are not JSON go here (the host's dead-letter topic, as for any input)
        self.deadletter_topic = f"{self.pipeline}.deadletter"
        self.outputs = (statistics_topic,)
        self.state: dict[str, SplitState] = {}
        self.watermark_ms: int | None = None
        self.late = 0
        self.schema_version: int | None = None
        self._reset_pending()

    def _reset_pending(self) -> None:
        """Examples assigned to windows but not accumulated yet (at most ~``block_rows``)."""
        self._pending: list[ExampleBatch] = []
        self._pieces: dict[tuple[str, int, int], list[np.ndarray]] = {}
        self._pending_split: dict[str, int] = {}
        self._pending_n = 0
        self._pending_min_start: int | None = None
        self._closed: list[tuple[int, str, int]] = []

    # -- input --------------------------------------------------------------------
    def _window(self, kind: Literal["count", "time", "cumulative"], window_id: str,
                **kwargs: Any) -> OpenWindow:
        return OpenWindow(kind, window_id, options=self.options, **kwargs)

    def process(self, batch: Sequence[Message]) -> Iterable[Emit]:
        out: list[Emit] = []
        if self.schema_topic is None:
            return self._examples(batch)
        run: list[Message] = []
        for msg in batch:
            if msg.topic != self.schema_topic:
                run.append(msg)
                continue
            try:
                value = decoded(msg).value
            except (InvalidRecord, UnicodeDecodeError) as exc:
                out.append(self._dead_letter(msg, str(exc)))
                continue
            value = value if isinstance(value, Mapping) else {}
            version = value.get("version")
            if isinstance(version, int) and version != self.schema_version:
                out.extend(self._examples(run))
                run = []
                out.extend(self._new_schema_version(version))
        out.extend(self._examples(run if len(run) < len(batch) else batch))
        return out

    def _split_indices(self, splits: list[Any]) -> dict[str, np.ndarray]:
        """Row indices of each split key (numpy, one pass per distinct split value)."""
        if not set(map(type, splits)) <= {str}:  # None, or odd values (lists, NaN): no split
            splits = [v if isinstance(v, str) else None for v in splits]
        distinct = set(splits)
        if len(distinct) == 1:
            [split] = distinct
            groups = {split: np.arange(len(splits), dtype=np.int64)}
        else:
            arr = np.array(splits, dtype=object)
            groups = {v: np.flatnonzero(arr == v) for v in distinct}
        out: dict[str, list[np.ndarray]] = {}
        for split, idx in groups.items():
            key = split_key(split) if isinstance(split, str) else "all"
            if self.splits == "all" or key == "all":
                out.setdefault("all", []).append(idx)
            else:
                out.setdefault(key, []).append(idx)
                if self.splits == "both":
                    out.setdefault("all", []).append(idx)
        return {k: v[0] if len(v) == 1 else np.sort(np.concatenate(v)) for k, v in out.items()}

    def _examples(self, msgs: Sequence[Message]) -> list[Emit]:
        """Assign a run of examples to windows with numpy; accumulate per block; emit."""
        if not msgs:
            return []
        b, _, invalid = decode_examples(msgs)
        letters = [self._dead_letter(m, why) for m, why in invalid]
        if not b.n:
            return letters
        n = b.n
        base = self._pending_n
        tstart = np.full(n, -1, dtype=np.int64)
        if self.time_window_ms is not None:
            size = self.time_window_ms
            ev = b.event_ms
            marks = np.maximum.accumulate(ev - self.allowed_lateness_ms)
            wm0 = self.watermark_ms if self.watermark_ms is not None else _NO_WATERMARK
            before = np.empty(n, dtype=np.int64)
            before[0] = wm0
            np.maximum(marks[:-1], wm0, out=before[1:])
            starts = ev - ev % size
            late = (starts + size <= before) & (before != _NO_WATERMARK)
            self.late += int(np.count_nonzero(late))
            tstart = np.where(late, -1, starts)
            self.watermark_ms = max(wm0, int(marks[-1]))
        for split, idx in self._split_indices(b.splits).items():
            st = self.state.get(split)
            if st is None:
                st = self.state[split] = SplitState()
            cidx = np.full(idx.size, -1, dtype=np.int64)
            if self.count_window is not None:
                cw = self.count_window
                ranks = np.arange(idx.size, dtype=np.int64) + st.count_seen
                cidx = st.count_index + ranks // cw
                for j in np.nonzero((ranks + 1) % cw == 0)[0].tolist():
                    self._closed.append((base + int(idx[j]), split, int(cidx[j])))
                total = st.count_seen + idx.size
                st.count_index += total // cw
                st.count_seen = total % cw
            self._pending_split[split] = self._pending_split.get(split, 0) + int(idx.size)
            t = tstart[idx]
            if cidx[0] == cidx[-1] and t.min() == t.max():
                self._pending_piece(split, int(cidx[0]), int(t[0]), idx + base)
                continue
            keys = np.stack([cidx, t], axis=1)
            uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
            inverse = inverse.reshape(-1)
            for k in range(len(uniq)):
                self._pending_piece(split, int(uniq[k, 0]), int(uniq[k, 1]),
                                    idx[inverse == k] + base)
        self._pending.append(b)
        self._pending_n += n
        if not (self._closed or self._pending_n >= self.block_rows or self._time_due()
                or self._cumulative_due()):
            return letters
        self.drain()
        closed, self._closed = sorted(self._closed), []
        out = letters
        out.extend(self._emit(split, self.state[split].counts.pop(cidx))
                   for _, split, cidx in closed)
        out.extend(self._close_time_windows(self.watermark_ms))
        out.extend(self._cumulative_progress())
        return out

    def _pending_piece(self, split: str, cidx: int, tstart: int, rows: np.ndarray) -> None:
        self._pieces.setdefault((split, cidx, tstart), []).append(rows)
        if tstart >= 0 and (self._pending_min_start is None or tstart < self._pending_min_start):
            self._pending_min_start = tstart

    def _time_due(self) -> bool:
        """Whether the watermark has passed the end of an open or pending time window."""
        if self.time_window_ms is None or self.watermark_ms is None:
            return False
        starts = [start for st in self.state.values() for start in st.times]
        if self._pending_min_start is not None:
            starts.append(self._pending_min_start)
        return bool(starts) and min(starts) + self.time_window_ms <= self.watermark_ms

    def _cumulative_due(self) -> bool:
        """Whether a cumulative window crosses a multiple of ``cumulative_every`` when flushed."""
        every = self.cumulative_every
        if not self.cumulative or every is None:
            return False
        for split, pending in self._pending_split.items():
            st = self.state[split]
            n = st.cumulative.accumulator.num_examples if st.cumulative is not None else 0
            if (n + pending) // every > st.cumulative_emitted // every:
                return True
        return False

    def drain(self) -> None:
        """Accumulate the buffered examples now (window closes, idle and snapshot do it too).

        One piece per (split, count window, time window) of the block, accumulated
        once and merged into each window it belongs to. Emits nothing: no window
        is due among the buffered examples.
        """
        if not self._pending:
            return
        block = ExampleBatch.concat(self._pending)
        for (split, cidx, tstart), parts in self._pieces.items():
            sel = parts[0] if len(parts) == 1 else np.concatenate(parts)
            piece = self._window("count", "piece")
            piece.accumulator.add_columns(block.columns(sel), int(sel.size))
            piece.observe_many(block.topic, block.partition[sel], block.offset[sel],
                               block.log_ms[sel], block.event_ms[sel])
            self._merge_piece(split, cidx, tstart, piece)
        closed = self._closed
        self._reset_pending()
        self._closed = closed

    def _merge_piece(self, split: str, cidx: int, tstart: int, piece: OpenWindow) -> None:
        """Fold a piece into its windows; the first window it opens takes it over (last,
        once the others have merged it) instead of a copy."""
        st = self.state[split]
        targets: list[OpenWindow] = []
        fresh: OpenWindow | None = None
        if cidx >= 0 and self.count_window is not None:
            target = st.counts.get(cidx)
            if target is None:
                target = fresh = st.counts[cidx] = self._window(
                    "count", count_window_id(self.count_window, cidx),
                    size=self.count_window, index=cidx)
            targets.append(target)
        if tstart >= 0 and self.time_window_ms is not None:
            target = st.times.get(tstart)
            if target is None:
                target = st.times[tstart] = self._window(
                    "time", time_window_id(self.time_window_ms, tstart),
                    size=self.time_window_ms, start_ms=tstart)
                fresh = fresh or target
            targets.append(target)
        if self.cumulative:
            if st.cumulative is None:
                st.cumulative = self._window(
                    "cumulative", cumulative_window_id(self.schema_version),
                    since_schema_version=self.schema_version)
            targets.append(st.cumulative)
        for target in targets:
            if target is not fresh:
                target.merge(piece)
        if fresh is not None:
            fresh.take_over(piece)

    def _dead_letter(self, msg: Message, reason: str) -> Emit:
        return dead_letter_emit(msg, reason="invalid_json", detail=reason,
                                component=self.processor_name, pipeline=self.pipeline,
                                topic=self.deadletter_topic)

    # -- output -------------------------------------------------------------------
    def _emit(self, split: str, window: OpenWindow, final: bool = True) -> Emit:
        # the same dict as window.payload(...).to_json(), without building the models
        value = window.payload_dict(self.pipeline, split, self.schema_version,
                                    self.with_sketches, final=final)
        return Emit(self.statistics_topic, value, key=f"{split}/{window.window_id}",
                    timestamp_ms=window.max_log_ms)

    def _close_time_windows(self, watermark_ms: int | None) -> list[Emit]:
        if watermark_ms is None or self.time_window_ms is None:
            return []
        ready = sorted((start, split) for split, st in self.state.items() for start in st.times
                       if start + self.time_window_ms <= watermark_ms)
        return [self._emit(split, self.state[split].times.pop(start)) for start, split in ready]

    def _cumulative_progress(self) -> list[Emit]:
        if not self.cumulative or self.cumulative_every is None:
            return []
        out = []
        for split in sorted(self.state):
            st = self.state[split]
            if st.cumulative is None:
                continue
            n = st.cumulative.accumulator.num_examples
            if n // self.cumulative_every > st.cumulative_emitted // self.cumulative_every:
                st.cumulative_emitted = n
                out.append(self._emit(split, st.cumulative, final=False))
        return out

    def _new_schema_version(self, version: int) -> list[Emit]:
        self.drain()
        out = []
        for split in sorted(self.state):
            st = self.state[split]
            if st.cumulative is not None and st.cumulative.accumulator.num_examples:
                out.append(self._emit(split, st.cumulative, final=True))
            st.cumulative, st.cumulative_emitted = None, 0
        self.schema_version = version
        return out

    def on_idle(self, now_ms: int) -> Iterable[Emit]:
        """Close the time windows that ``now_ms - allowed_lateness_ms`` has passed."""
        self.drain()
        mark = now_ms - self.allowed_lateness_ms
        if self.watermark_ms is None or mark > self.watermark_ms:
            self.watermark_ms = mark
        return self._close_time_windows(self.watermark_ms)

    def cumulative_statistics(self) -> list[Emit]:
        """Progress records of every cumulative window now (e.g. at shutdown or on demand)."""
        self.drain()
        return [self._emit(split, st.cumulative, final=False)
                for split, st in sorted(self.state.items()) if st.cumulative is not None]

    # -- state --------------------------------------------------------------------
    def snapshot(self) -> State:
        self.drain()  # no window is due among them: nothing to emit
        return {
            "version": _STATE_VERSION, "watermark_ms": self.watermark_ms, "late": self.late,
            "schema_version": self.schema_version,
            "splits": {split: st.to_dict() for split, st in self.state.items()},
        }

    def restore(self, state: State) -> None:
        if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
            raise ValueError("not a StatisticsGen snapshot of a supported version")
        self.watermark_ms = state["watermark_ms"]
        self.late = int(state["late"])
        self.schema_version = state["schema_version"]
        self.state = {split: SplitState.from_dict(st) for split, st in state["splits"].items()}
        self._reset_pending()


def statistics_gen_worker() -> StatisticsGen:
    """Factory for ``streamml worker``: ``<p>.examples`` → ``<p>.statistics``."""
    from streamml.settings import load_settings

    p = load_settings().pipeline
    return StatisticsGen(f"{p}.examples", f"{p}.statistics", pipeline=p,
                         schema_topic=f"{p}.schema")
