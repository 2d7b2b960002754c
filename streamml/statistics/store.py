"""A DuckDB store of statistics windows, so statistics over time can be queried with SQL.

Every :class:`~streamml.payloads.statistics.StatisticsWindow` becomes rows of
four tables, keyed by ``(pipeline, split, window_id)``:

* ``windows`` — one row per window: kind, size, index, event-time bounds
  (``start_ms``/``end_ms``), ``num_examples``, ``schema_version``, ``final``,
  ``created_at``;
* ``feature_stats`` — one row per (window, feature), flattened: type, count,
  num_missing, mean, std_dev, min, max, median, ``q01`` … ``q99`` (the default
  quantiles; the full map is in ``quantiles`` as JSON), num_zeros, num_nan,
  num_inf, distinct, avg_length, the top value and its count;
* ``top_values`` — the top-k values of categorical features (rank, value, count);
* ``offsets`` — for the :class:`StatisticsStore` sink: the next input offset of
  each partition it consumed, written in the same transaction as the rows.

and a view ``stats`` = ``windows`` ⨝ ``feature_stats``, e.g. the mean fare per window::

    SELECT window_id, start_ms, mean FROM stats
    WHERE pipeline = 'taxi' AND feature = 'fare' AND final ORDER BY created_at

**Idempotent.** :meth:`StatisticsDB.append` replaces the rows of the window's
key in one transaction (delete + insert), so re-delivering a record after a
crash leaves exactly one copy; a record older than the stored one for its key
— a progress update (``final=False``) after the final record, or a smaller
``created_at``/``num_examples`` — is ignored, so an out-of-order re-delivery
cannot roll a window back.

>>> import tempfile
>>> from pathlib import Path
>>> from streamml.statistics.dataset import StatisticsAccumulator
>>> from streamml.payloads.statistics import StatisticsWindow, Window
>>> acc = StatisticsAccumulator(); acc.add_batch([{"fare": 2.0}, {"fare": 4.0, "pay": "Cash"}])
>>> w = StatisticsWindow(pipeline="taxi", split="train", window=Window(id="count:2:0",
...                      kind="count", size=2, index=0), num_examples=2,
...                      features=acc.extract(), created_at=5)
>>> db = StatisticsDB(Path(tempfile.mkdtemp()) / "stats.duckdb")
>>> db.append([w]), db.append([w])          # re-delivery: replaced, not duplicated
(1, 1)
>>> db.query("SELECT feature, count, mean, top_value FROM stats ORDER BY feature")
[('fare', 2, 3.0, None), ('pay', 1, None, 'Cash')]
>>> db.close()
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from streamml.errors import ConfigError
from streamml.payloads.statistics import StatisticsWindow
from streamml.processors.base import Emit, Message, Processor, State

#: Quantile columns of ``feature_stats`` (``q01`` = the 0.01 quantile), when reported.
QUANTILE_COLUMNS = {"0.01": "q01", "0.05": "q05", "0.1": "q10", "0.25": "q25", "0.5": "q50",
                    "0.75": "q75", "0.9": "q90", "0.95": "q95", "0.99": "q99"}

_KEY = "pipeline VARCHAR NOT NULL, split VARCHAR NOT NULL, window_id VARCHAR NOT NULL"
# DDL built from constants only
_TABLES = f"""
CREATE TABLE IF NOT EXISTS windows (
    {_KEY}, kind VARCHAR, size BIGINT, idx BIGINT, start_ms BIGINT, end_ms BIGINT,
    num_examples BIGINT, schema_version INTEGER, final BOOLEAN, created_at BIGINT,
    inputs VARCHAR);
CREATE TABLE IF NOT EXISTS feature_stats (
    {_KEY}, feature VARCHAR NOT NULL, type VARCHAR, count BIGINT, num_missing BIGINT,
    mean DOUBLE, std_dev DOUBLE, min DOUBLE, max DOUBLE, median DOUBLE,
    {", ".join(f"{c} DOUBLE" for c in QUANTILE_COLUMNS.values())},
    quantiles VARCHAR, num_zeros BIGINT, num_nan BIGINT, num_inf BIGINT, distinct_count BIGINT,
    avg_length DOUBLE, top_value VARCHAR, top_count DOUBLE, values_per_example DOUBLE);
CREATE TABLE IF NOT EXISTS top_values (
    {_KEY}, feature VARCHAR NOT NULL, rank INTEGER, value VARCHAR, count DOUBLE);
CREATE TABLE IF NOT EXISTS offsets (
    consumer VARCHAR NOT NULL, topic VARCHAR NOT NULL, partition INTEGER NOT NULL,
    next_offset BIGINT NOT NULL, PRIMARY KEY (consumer, topic, partition));
CREATE OR REPLACE VIEW stats AS
    SELECT w.*, f.* EXCLUDE (pipeline, split, window_id)
    FROM windows w JOIN feature_stats f USING (pipeline, split, window_id);
"""  # noqa: S608
_FEATURE_COLS = 12 + len(QUANTILE_COLUMNS) + 9
# placeholders only: the column counts are constants
_INSERT_WINDOW = "INSERT INTO windows VALUES (" + ", ".join("?" * 13) + ")"  # noqa: S608
_INSERT_FEATURES = (
    "INSERT INTO feature_stats VALUES (" + ", ".join("?" * _FEATURE_COLS) + ")")  # noqa: S608


def _num(x: float | None) -> float | None:
    return None if x is None else float(x)


def window_rows(w: StatisticsWindow) -> tuple[tuple[Any, ...], list[tuple[Any, ...]],
                                              list[tuple[Any, ...]]]:
    """The ``windows`` row, ``feature_stats`` rows and ``top_values`` rows of one window."""
    key = (w.pipeline, w.split, w.window.id)
    et = w.window.event_time
    win = (*key, w.window.kind, w.window.size, w.window.index,
           et.start_ms if et else None, et.end_ms if et else None, w.num_examples,
           w.schema_version, w.final, w.created_at,
           orjson.dumps([r.to_json() for r in w.inputs]).decode())
    feats: list[tuple[Any, ...]] = []
    tops: list[tuple[Any, ...]] = []
    for name, fs in sorted(w.features.items()):
        num, cat = fs.numeric, fs.categorical
        qs = num.quantiles if num is not None else {}
        top = cat.top_values[0] if cat is not None and cat.top_values else None
        distinct = (num.distinct if num is not None and num.distinct is not None
                    else cat.distinct if cat is not None else None)
        feats.append((
            *key, name, fs.type, fs.count, fs.num_missing,
            _num(num.mean) if num else None, _num(num.std_dev) if num else None,
            _num(num.min) if num else None, _num(num.max) if num else None,
            _num(num.median) if num else None,
            *(_num(qs.get(q)) for q in QUANTILE_COLUMNS),
            orjson.dumps(qs).decode() if qs else None,
            num.num_zeros if num else None, num.num_nan if num else None,
            num.num_inf if num else None, distinct,
            cat.avg_length if cat else None, top.value if top else None,
            top.count if top else None,
            fs.values_per_example.mean if fs.values_per_example else None,
        ))
        if cat is not None:
            tops.extend((*key, name, rank, v.value, v.count)
                        for rank, v in enumerate(cat.top_values, 1))
    return win, feats, tops


class StatisticsDB:
    """The DuckDB file (one writer process at a time; ``read_only`` for readers)."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        import duckdb

        self.path = Path(path)
        if read_only and not self.path.is_file():
            raise ConfigError(f"no statistics store at {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise ConfigError(f"cannot open statistics store {self.path}: "
                              f"{str(exc).splitlines()[0]}") from None
        if not read_only:
            self.con.execute(_TABLES)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> StatisticsDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _newer_or_same(self, w: StatisticsWindow) -> bool:
        row = self.con.execute(
            "SELECT final, created_at, num_examples FROM windows "
            "WHERE pipeline = ? AND split = ? AND window_id = ?",
            [w.pipeline, w.split, w.window.id]).fetchone()
        return row is None or (w.final, w.created_at, w.num_examples) >= tuple(row)

    def append(self, windows: Sequence[StatisticsWindow],
               offsets: dict[tuple[str, str, int], int] | None = None) -> int:
        """Upsert ``windows`` (and ``(consumer, topic, partition) -> next offset``) atomically.

        Returns how many windows were written (older re-deliveries are skipped).
        """
        written = 0
        self.con.execute("BEGIN TRANSACTION")
        try:
            for w in windows:
                if not self._newer_or_same(w):
                    continue
                key = [w.pipeline, w.split, w.window.id]
                for table in ("windows", "feature_stats", "top_values"):
                    self.con.execute(
                        f"DELETE FROM {table} "  # noqa: S608 - table names are constants
                        "WHERE pipeline = ? AND split = ? AND window_id = ?", key)
                win, feats, tops = window_rows(w)
                self.con.execute(_INSERT_WINDOW, list(win))
                if feats:
                    self.con.executemany(_INSERT_FEATURES, [list(r) for r in feats])
                if tops:
                    self.con.executemany("INSERT INTO top_values VALUES (?, ?, ?, ?, ?, ?, ?)",
                                         [list(r) for r in tops])
                written += 1
            for (consumer, topic, partition), nxt in (offsets or {}).items():
                self.con.execute("INSERT OR REPLACE INTO offsets VALUES (?, ?, ?, ?)",
                                 [consumer, topic, partition, nxt])
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return written

    def offsets(self, consumer: str) -> dict[tuple[str, int], int]:
        """Next offset per (topic, partition) recorded for ``consumer``."""
        rows = self.con.execute("SELECT topic, partition, next_offset FROM offsets "
                                "WHERE consumer = ?", [consumer]).fetchall()
        return {(t, int(p)): int(o) for t, p, o in rows}

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a SQL query over the tables and the ``stats`` view."""
        return self.con.execute(sql, list(params or [])).fetchall()

    def latest(self, pipeline: str, *, feature: str | None = None, last: int = 1,
               split: str | None = None) -> list[dict[str, Any]]:
        """Rows of ``stats`` for the ``last`` most recent windows (newest first).

        A window is one ``(split, window_id)``; cumulative progress updates count as
        one window (the latest record of the key is the stored one).
        """
        where = ["pipeline = ?"]
        params: list[Any] = [pipeline]
        if split is not None:
            where.append("split = ?")
            params.append(split)
        cond = " AND ".join(where)
        feat = " AND feature = ?" if feature is not None else ""
        # only fixed condition text is interpolated; every value is a bound parameter
        sql = (
            f"WITH recent AS (SELECT split, window_id FROM windows WHERE {cond} "  # noqa: S608
            f"ORDER BY created_at DESC, window_id DESC LIMIT ?) "
            f"SELECT s.* FROM stats s JOIN recent USING (split, window_id) "
            f"WHERE s.pipeline = ?{feat} ORDER BY s.created_at DESC, s.window_id DESC, s.feature")
        params += [last, pipeline] + ([feature] if feature is not None else [])
        cur = self.con.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


class StatisticsStore(Processor):
    """Sink processor: ``<p>.statistics`` → :class:`StatisticsDB` (no output topics).

    **Offsets.** Each micro-batch is written in one DuckDB transaction together
    with the next offset of every input partition it covered (table ``offsets``,
    consumer ``name``). The host's checkpoint (state + offsets in the log) may
    lag behind that transaction after a crash; records re-delivered from the
    checkpoint are recognized by the offsets table and skipped, and even without
    it the upsert by window key leaves one row per window. So the store is
    effectively exactly-once, while the runner's checkpoint stays the source of
    the consumer position (``snapshot()`` is only a counter).

    The file is opened per micro-batch (``keep_open=False``, the default) so that
    readers (``streamml stats``) can open it between writes.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from streamml.payloads.statistics import StatisticsWindow, Window
    >>> w = StatisticsWindow(pipeline="p", split="all", window=Window(id="cumulative",
    ...                      kind="cumulative"), num_examples=0, features={}, created_at=1)
    >>> sink = StatisticsStore("p.statistics", str(Path(tempfile.mkdtemp()) / "s.duckdb"))
    >>> m = Message("p.statistics", 0, 0, 1, "all/cumulative", w.to_json())
    >>> list(sink.process([m])), list(sink.process([m])), sink.snapshot()
    ([], [], {'windows': 1, 'skipped': 1})
    """

    name = "statistics_store"

    def __init__(self, statistics_topic: str, db_path: str, keep_open: bool = False) -> None:
        self.statistics_topic = statistics_topic
        self.db_path = db_path
        self.keep_open = keep_open
        self.inputs = (statistics_topic,)
        self.outputs = ()
        self.windows = 0
        self.skipped = 0
        self._db: StatisticsDB | None = None

    def _open(self) -> StatisticsDB:
        if self._db is None:
            self._db = StatisticsDB(self.db_path)
        return self._db

    def process(self, batch: Sequence[Message]) -> Iterable[Emit]:
        db = self._open()
        try:
            done = db.offsets(self.processor_name)
            todo: list[StatisticsWindow] = []
            nxt: dict[tuple[str, str, int], int] = {}
            for m in batch:
                tp = (m.topic, m.partition)
                if m.offset < done.get(tp, 0) or not isinstance(m.value, dict):
                    self.skipped += 1
                    continue
                todo.append(StatisticsWindow.model_validate(m.value))
                key = (self.processor_name, m.topic, m.partition)
                nxt[key] = max(nxt.get(key, 0), m.offset + 1)
            written = db.append(todo, nxt) if nxt else 0
            self.windows += written
            self.skipped += len(todo) - written
        finally:
            if not self.keep_open:
                self.close()
        return ()

    def snapshot(self) -> State:
        return {"windows": self.windows, "skipped": self.skipped}

    def restore(self, state: State) -> None:
        if isinstance(state, dict):
            self.windows = int(state.get("windows", 0))
            self.skipped = int(state.get("skipped", 0))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def statistics_store_worker() -> StatisticsStore:
    """Factory for ``streamml worker``: ``<p>.statistics`` → ``.streamml-stats.duckdb``."""
    from streamml.settings import load_settings

    p = load_settings().pipeline
    return StatisticsStore(f"{p}.statistics", ".streamml-stats.duckdb")
