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
* the **cumulative** window is republished as a progress update
  (``final=False``) each time it crosses a multiple of ``cumulative_every``
  examples (checked when a micro-batch is flushed), and is finalized and
  restarted (id ``cumulative:v<n>``) when a new schema version arrives on the
  optional ``schema_topic``.

Each micro-batch is cut into *pieces* (same split, count window and time
window) with numpy — window assignment, lateness against the running
watermark, and each piece's offsets and event-time extent are computed once
per batch, not per example; the features become columns once per batch
(:class:`~streamml.statistics.batch.ExampleBatch`, shared with an
ExampleValidator handed the same batch); each piece is accumulated once with
pyarrow/numpy and then merged into the windows it belongs to, so several
window kinds cost little more than one. Output keys and ``created_at`` (the
highest log timestamp of the window's inputs) are deterministic; ``snapshot()``
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

from streamml.processors.base import Emit, Message, Processor, State
from streamml.statistics.batch import ExampleBatch
from streamml.statistics.options import StatisticsOptions
from streamml.statistics.windows import (
    OpenWindow,
    count_window_id,
    cumulative_window_id,
    time_window_id,
)

SplitMode = Literal["each", "all", "both"]
_STATE_VERSION = 1
_NO_WATERMARK = np.iinfo(np.int64).min


class _SplitState:
    """Open windows of one split."""

    def __init__(self) -> None:
        self.count_index = 0
        self.count_seen = 0
        self.counts: dict[int, OpenWindow] = {}
        self.times: dict[int, OpenWindow] = {}
        self.cumulative: OpenWindow | None = None
        self.cumulative_emitted = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "count_index": self.count_index, "count_seen": self.count_seen,
            "counts": {str(i): w.to_dict() for i, w in self.counts.items()},
            "times": {str(t): w.to_dict() for t, w in self.times.items()},
            "cumulative": self.cumulative.to_dict() if self.cumulative else None,
            "cumulative_emitted": self.cumulative_emitted,
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> _SplitState:
        s = cls()
        s.count_index, s.count_seen = int(state["count_index"]), int(state["count_seen"])
        s.counts = {int(i): OpenWindow.from_dict(w) for i, w in state["counts"].items()}
        s.times = {int(t): OpenWindow.from_dict(w) for t, w in state["times"].items()}
        cum = state["cumulative"]
        s.cumulative = OpenWindow.from_dict(cum) if cum is not None else None
        s.cumulative_emitted = int(state["cumulative_emitted"])
        return s


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

    def __init__(self, examples_topic: str, statistics_topic: str, pipeline: str | None = None,
                 count_window: int | None = 10_000, time_window_ms: int | None = None,
                 cumulative: bool = True, cumulative_every: int | None = 10_000,
                 allowed_lateness_ms: int = 0, splits: SplitMode = "each",
                 schema_topic: str | None = None, with_sketches: bool = True,
                 options: StatisticsOptions | None = None) -> None:
        for name, value in (("count_window", count_window), ("time_window_ms", time_window_ms),
                            ("cumulative_every", cumulative_every)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 (or None to disable)")
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
        self.inputs = (examples_topic,) + ((schema_topic,) if schema_topic else ())
        self.outputs = (statistics_topic,)
        self.state: dict[str, _SplitState] = {}
        self.watermark_ms: int | None = None
        self.late = 0
        self.schema_version: int | None = None

    # -- input --------------------------------------------------------------------
    def _split_keys(self, value: Mapping[str, Any]) -> tuple[str, ...]:
        split = value.get("split")
        split = split if isinstance(split, str) and split else "all"
        if self.splits == "all" or split == "all":
            return ("all",)
        return (split,) if self.splits == "each" else (split, "all")

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
            value = msg.value if isinstance(msg.value, Mapping) else {}
            version = value.get("version")
            if isinstance(version, int) and version != self.schema_version:
                out.extend(self._examples(run))
                run = []
                out.extend(self._new_schema_version(version))
        out.extend(self._examples(run if len(run) < len(batch) else batch))
        return out

    def _split_indices(self, splits: list[Any]) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        mode = self.splits
        for i, split in enumerate(splits):
            split = split if isinstance(split, str) and split else "all"
            if mode == "all" or split == "all":
                out.setdefault("all", []).append(i)
            else:
                out.setdefault(split, []).append(i)
                if mode == "both":
                    out.setdefault("all", []).append(i)
        return out

    def _examples(self, msgs: Sequence[Message]) -> list[Emit]:
        """Cut a run of examples into pieces with numpy, accumulate each piece once, flush."""
        if not msgs:
            return []
        b = ExampleBatch.of_messages(msgs)
        n = b.n
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
        pieces: list[tuple[int, str, int, int, np.ndarray]] = []
        closed: list[tuple[int, str, int]] = []
        for split, members in self._split_indices(b.splits).items():
            idx = np.asarray(members, dtype=np.int64)
            st = self.state.get(split)
            if st is None:
                st = self.state[split] = _SplitState()
            cidx = np.full(idx.size, -1, dtype=np.int64)
            if self.count_window is not None:
                cw = self.count_window
                ranks = np.arange(idx.size, dtype=np.int64) + st.count_seen
                cidx = st.count_index + ranks // cw
                for j in np.nonzero((ranks + 1) % cw == 0)[0].tolist():
                    closed.append((int(idx[j]), split, int(cidx[j])))
                total = st.count_seen + idx.size
                st.count_index += total // cw
                st.count_seen = total % cw
            t = tstart[idx]
            if cidx[0] == cidx[-1] and t.min() == t.max():
                pieces.append((int(idx[0]), split, int(cidx[0]), int(t[0]), idx))
                continue
            keys = np.stack([cidx, t], axis=1)
            uniq, first, inverse = np.unique(keys, axis=0, return_index=True,
                                             return_inverse=True)
            inverse = inverse.reshape(-1)
            for k in range(len(uniq)):
                sel = idx[inverse == k]
                pieces.append((int(idx[first[k]]), split, int(uniq[k, 0]), int(uniq[k, 1]), sel))
        pieces.sort(key=lambda p: p[0])
        closed.sort()
        filled = []
        for _, split, ci, ts, sel in pieces:
            piece = self._window("count", "piece")
            piece.accumulator.add_columns(b.columns(sel), int(sel.size))
            piece.observe_many(b.topic, b.partition[sel], b.offset[sel], b.log_ms[sel],
                               b.event_ms[sel])
            filled.append((split, ci, ts, piece))
        return self._flush(filled, [(split, ci) for _, split, ci in closed])

    def _flush(self, pieces: list[tuple[str, int, int, OpenWindow]],
               closed_counts: list[tuple[str, int]]) -> list[Emit]:
        for split, cidx, tstart, piece in pieces:
            st = self.state[split]
            if cidx >= 0 and self.count_window is not None:
                target = st.counts.get(cidx)
                if target is None:
                    target = st.counts[cidx] = self._window(
                        "count", count_window_id(self.count_window, cidx),
                        size=self.count_window, index=cidx)
                target.merge(piece)
            if tstart >= 0 and self.time_window_ms is not None:
                target = st.times.get(tstart)
                if target is None:
                    target = st.times[tstart] = self._window(
                        "time", time_window_id(self.time_window_ms, tstart),
                        size=self.time_window_ms, start_ms=tstart)
                target.merge(piece)
            if self.cumulative:
                if st.cumulative is None:
                    st.cumulative = self._window(
                        "cumulative", cumulative_window_id(self.schema_version),
                        since_schema_version=self.schema_version)
                st.cumulative.merge(piece)
        out = [self._emit(split, self.state[split].counts.pop(cidx))
               for split, cidx in closed_counts]
        out.extend(self._close_time_windows(self.watermark_ms))
        out.extend(self._cumulative_progress())
        return out

    # -- output -------------------------------------------------------------------
    def _emit(self, split: str, window: OpenWindow, final: bool = True) -> Emit:
        payload = window.payload(self.pipeline, split, self.schema_version, self.with_sketches,
                                 final=final)
        return Emit(self.statistics_topic, payload.to_json(), key=f"{split}/{window.window_id}",
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
        mark = now_ms - self.allowed_lateness_ms
        if self.watermark_ms is None or mark > self.watermark_ms:
            self.watermark_ms = mark
        return self._close_time_windows(self.watermark_ms)

    def cumulative_statistics(self) -> list[Emit]:
        """Progress records of every cumulative window now (e.g. at shutdown or on demand)."""
        return [self._emit(split, st.cumulative, final=False)
                for split, st in sorted(self.state.items()) if st.cumulative is not None]

    # -- state --------------------------------------------------------------------
    def snapshot(self) -> State:
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
        self.state = {split: _SplitState.from_dict(st) for split, st in state["splits"].items()}


def statistics_gen_worker() -> StatisticsGen:
    """Factory for ``streamml worker``: ``<p>.examples`` → ``<p>.statistics``."""
    from streamml.settings import load_settings

    p = load_settings().pipeline
    return StatisticsGen(f"{p}.examples", f"{p}.statistics", pipeline=p,
                         schema_topic=f"{p}.schema")
